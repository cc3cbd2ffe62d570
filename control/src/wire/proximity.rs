//! Cluster proximity messages (seed §3.5): RTT probes between clusters and
//! advertisements of the measured minimum RTTs.

use pias_dataplane::types::ClusterId;

use super::cursor::{Reader, Writer};
use super::{EmitError, WireError, MAX_RTT_ENTRIES};

/// Probe to a proxy of another cluster; answered by [`RttReply`].
///
/// Body (10 bytes): the prober's cluster (2), nonce (8; opaque to the
/// replier, e.g. the prober's send time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RttProbe {
    /// The prober's cluster.
    pub cluster: ClusterId,
    /// Echoed in the reply.
    pub nonce: u64,
}

impl RttProbe {
    /// Body length.
    pub const LEN: usize = 10;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(RttProbe {
            cluster: ClusterId(r.u16()?),
            nonce: r.u64()?,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.u16(self.cluster.0)?;
        w.u64(self.nonce)
    }
}

/// Reply to an [`RttProbe`].
///
/// Body (10 bytes): the replier's cluster (2), the probe's nonce (8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RttReply {
    /// The replier's cluster.
    pub cluster: ClusterId,
    /// The probe's nonce.
    pub nonce: u64,
}

impl RttReply {
    /// Body length.
    pub const LEN: usize = 10;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(RttReply {
            cluster: ClusterId(r.u16()?),
            nonce: r.u64()?,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.u16(self.cluster.0)?;
        w.u64(self.nonce)
    }
}

/// One measured RTT from the advertising cluster to `peer`.
///
/// Wire (6 bytes): peer cluster (2), RTT in microseconds (4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RttEntry {
    /// The other cluster.
    pub peer: ClusterId,
    /// Minimum RTT measured, in microseconds.
    pub rtt_us: u32,
}

/// A cluster's minimum RTTs to other clusters, advertised to all proxies.
/// A cluster with many peers sends several adverts with the same version;
/// receivers merge entries per `(origin, peer)` and keep the highest
/// version's value.
///
/// Body: origin cluster (2), version (4), count (1), `count` × [`RttEntry`]
/// (6 bytes), `count` ≤ [`MAX_RTT_ENTRIES`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RttAdvert {
    /// The measuring cluster.
    pub origin: ClusterId,
    /// Measurement round; larger is newer.
    pub version: u32,
    /// The RTTs.
    pub entries: Vec<RttEntry>,
}

impl RttAdvert {
    const ENTRY_LEN: usize = 6;

    pub(crate) fn body_len(&self) -> usize {
        2 + 4 + 1 + self.entries.len() * Self::ENTRY_LEN
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let origin = ClusterId(r.u16()?);
        let version = r.u32()?;
        let n = r.count("rtt entries", MAX_RTT_ENTRIES, Self::ENTRY_LEN)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(RttEntry {
                peer: ClusterId(r.u16()?),
                rtt_us: r.u32()?,
            });
        }
        Ok(RttAdvert {
            origin,
            version,
            entries,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.u16(self.origin.0)?;
        w.u32(self.version)?;
        w.count("rtt entries", self.entries.len(), MAX_RTT_ENTRIES)?;
        self.entries.iter().try_for_each(|e| {
            w.u16(e.peer.0)?;
            w.u32(e.rtt_us)
        })
    }
}
