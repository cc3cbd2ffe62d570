//! Encodings of the shared id types that many messages carry (group
//! address, target address, group options), and the operator's
//! [`GroupRegister`].
//!
//! | field | bytes | encoding |
//! |---|---|---|
//! | `GroupAddr` | 7 | ip (4), port (2), proto (1): 6 TCP, 17 UDP, 0 whole IP (port must be 0) |
//! | `TargetAddr` | 6 | ip (4), port (2) |
//! | `GroupOptions` | 2 | criterion (1): 0 proximity, 1 load, 2 random, 3 weighted; flags (1): bit 0 affinity, bit 1 rapless, others 0 |

use core::net::Ipv4Addr;

use pias_dataplane::types::{Criterion, GroupAddr, GroupOptions, GroupProto, TargetAddr};

use super::cursor::{Reader, Writer};
use super::{EmitError, WireError};

/// Bytes of an encoded [`GroupAddr`].
pub const GROUP_ADDR_LEN: usize = 7;
/// Bytes of an encoded [`TargetAddr`].
pub const TARGET_ADDR_LEN: usize = 6;
/// Bytes of encoded [`GroupOptions`].
pub const GROUP_OPTIONS_LEN: usize = 2;

const PROTO_WHOLE_IP: u8 = 0;
const OPT_AFFINITY: u8 = 1 << 0;
const OPT_RAPLESS: u8 = 1 << 1;

/// The 7-byte wire form of a group. Also the input of the rendezvous hash
/// ([`crate::rendezvous::group_hash`]), so it must never change within a
/// protocol version.
pub fn group_addr_bytes(g: &GroupAddr) -> [u8; GROUP_ADDR_LEN] {
    let (ip, port, proto) = match *g {
        GroupAddr::Port { ip, port, proto } => (ip, port, proto.ip_proto()),
        GroupAddr::WholeIp(ip) => (ip, 0, PROTO_WHOLE_IP),
    };
    let o = ip.octets();
    let p = port.to_be_bytes();
    [o[0], o[1], o[2], o[3], p[0], p[1], proto]
}

pub(crate) fn parse_group_addr(r: &mut Reader<'_>) -> Result<GroupAddr, WireError> {
    let ip = r.ipv4()?;
    let port = r.u16()?;
    let proto = r.u8()?;
    if proto == PROTO_WHOLE_IP {
        if port != 0 {
            return Err(WireError::BadField("group port of a whole-IP group"));
        }
        return Ok(GroupAddr::WholeIp(ip));
    }
    let proto = GroupProto::from_ip_proto(proto).ok_or(WireError::BadField("group protocol"))?;
    Ok(GroupAddr::Port { ip, port, proto })
}

pub(crate) fn emit_group_addr(w: &mut Writer<'_>, g: &GroupAddr) -> Result<(), EmitError> {
    w.bytes(&group_addr_bytes(g))
}

pub(crate) fn parse_target_addr(r: &mut Reader<'_>) -> Result<TargetAddr, WireError> {
    let ip: Ipv4Addr = r.ipv4()?;
    let port = r.u16()?;
    Ok(TargetAddr { ip, port })
}

pub(crate) fn emit_target_addr(w: &mut Writer<'_>, t: &TargetAddr) -> Result<(), EmitError> {
    w.ipv4(t.ip)?;
    w.u16(t.port)
}

pub(crate) fn parse_options(r: &mut Reader<'_>) -> Result<GroupOptions, WireError> {
    let criterion = match r.u8()? {
        0 => Criterion::Proximity,
        1 => Criterion::Load,
        2 => Criterion::Random,
        3 => Criterion::Weighted,
        _ => return Err(WireError::BadField("criterion")),
    };
    let flags = r.u8()?;
    if flags & !(OPT_AFFINITY | OPT_RAPLESS) != 0 {
        return Err(WireError::BadField("option flags"));
    }
    Ok(GroupOptions {
        criterion,
        affinity: flags & OPT_AFFINITY != 0,
        rapless: flags & OPT_RAPLESS != 0,
    })
}

pub(crate) fn emit_options(w: &mut Writer<'_>, o: &GroupOptions) -> Result<(), EmitError> {
    let criterion = match o.criterion {
        Criterion::Proximity => 0,
        Criterion::Load => 1,
        Criterion::Random => 2,
        Criterion::Weighted => 3,
    };
    let mut flags = 0;
    if o.affinity {
        flags |= OPT_AFFINITY;
    }
    if o.rapless {
        flags |= OPT_RAPLESS;
    }
    w.u8(criterion)?;
    w.u8(flags)
}

const REG_WITHDRAWN: u8 = 1 << 0;

/// Operator → proxies: register a group, change its options or owner key,
/// or withdraw it. Signed with the operator's Ed25519 key
/// ([`crate::auth::signature`]). Replay and reordering are handled by
/// `serial`: a proxy applies a registration only if its serial is above the
/// one it holds for the group, so registrations can be relayed between
/// proxies verbatim and in any order.
///
/// Body (50 bytes): group (7), options (2), flags (1: bit 0 withdrawn),
/// serial (8), owner public key (32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupRegister {
    /// The group.
    pub group: GroupAddr,
    /// Its options.
    pub options: GroupOptions,
    /// True: the group is deleted; joins for it are refused.
    pub withdrawn: bool,
    /// Registration version, strictly increasing per group.
    pub serial: u64,
    /// The group owner's Ed25519 public key: joins must be signed by it.
    pub owner_key: [u8; 32],
}

impl GroupRegister {
    /// Body length.
    pub const LEN: usize = GROUP_ADDR_LEN + GROUP_OPTIONS_LEN + 1 + 8 + 32;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let group = parse_group_addr(r)?;
        let options = parse_options(r)?;
        let flags = r.u8()?;
        if flags & !REG_WITHDRAWN != 0 {
            return Err(WireError::BadField("registration flags"));
        }
        let serial = r.u64()?;
        let owner_key = r.array::<32>()?;
        Ok(GroupRegister {
            group,
            options,
            withdrawn: flags & REG_WITHDRAWN != 0,
            serial,
            owner_key,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        emit_group_addr(w, &self.group)?;
        emit_options(w, &self.options)?;
        w.u8(if self.withdrawn { REG_WITHDRAWN } else { 0 })?;
        w.u64(self.serial)?;
        w.bytes(&self.owner_key)
    }
}
