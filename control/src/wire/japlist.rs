//! IAP cache traffic (seed §3.2): the RAP's [`JapList`] fills the IAP's
//! cache, a JAP's [`Invalidate`] empties it, and [`RapQuery`] asks a RAP
//! explicitly when the cached list is exhausted.

use pias_dataplane::types::{GroupAddr, ProxyId};

use super::cursor::{Reader, Writer};
use super::group::{emit_group_addr, parse_group_addr, GROUP_ADDR_LEN};
use super::{EmitError, WireError, MAX_JAPS};

/// RAP → IAP: the group's JAPs in the order the IAP should use them (the
/// RAP's choice first, then failover candidates), valid for `ttl_s`.
///
/// Body: group (7), TTL in seconds (4), count (1), `count` × JAP id (4),
/// `count` ≤ [`MAX_JAPS`]. An empty list means the RAP knows no JAP for the
/// group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JapList {
    /// The group.
    pub group: GroupAddr,
    /// How long the IAP may cache the list (invalidations may end it
    /// sooner).
    pub ttl_s: u32,
    /// JAPs, best first.
    pub japs: Vec<ProxyId>,
}

impl JapList {
    pub(crate) fn body_len(&self) -> usize {
        GROUP_ADDR_LEN + 4 + 1 + self.japs.len() * 4
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let group = parse_group_addr(r)?;
        let ttl_s = r.u32()?;
        let n = r.count("japs", MAX_JAPS, 4)?;
        let mut japs = Vec::with_capacity(n);
        for _ in 0..n {
            japs.push(ProxyId(r.u32()?));
        }
        Ok(JapList { group, ttl_s, japs })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        emit_group_addr(w, &self.group)?;
        w.u32(self.ttl_s)?;
        w.count("japs", self.japs.len(), MAX_JAPS)?;
        self.japs.iter().try_for_each(|j| w.u32(j.0))
    }
}

/// JAP → IAP: this JAP no longer serves the group; drop it from the cached
/// list (seed §3.2: "the JAP can inform the IAP of this when a subsequent
/// packet arrives").
///
/// Body (11 bytes): group (7), JAP (4; must equal the header's sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Invalidate {
    /// The group.
    pub group: GroupAddr,
    /// The JAP to drop.
    pub jap: ProxyId,
}

impl Invalidate {
    /// Body length.
    pub const LEN: usize = GROUP_ADDR_LEN + 4;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Invalidate {
            group: parse_group_addr(r)?,
            jap: ProxyId(r.u32()?),
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        emit_group_addr(w, &self.group)?;
        w.u32(self.jap.0)
    }
}

/// IAP → RAP: send me the group's [`JapList`].
///
/// Body (7 bytes): group (7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RapQuery {
    /// The group.
    pub group: GroupAddr,
}

impl RapQuery {
    /// Body length.
    pub const LEN: usize = GROUP_ADDR_LEN;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(RapQuery {
            group: parse_group_addr(r)?,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        emit_group_addr(w, &self.group)
    }
}
