//! Target requests (seed Figure 2: `join(AA:g, AT:r, options)`) and the
//! JAP's replies. A target sends [`TargetRequest`]s to the group's anycast
//! address on the control port, so native anycast delivers them to the
//! nearest proxy, which becomes the target's JAP.

use pias_dataplane::types::{GroupAddr, GroupOptions, ProxyId, TargetAddr};

use super::cursor::{Reader, Writer};
use super::group::{
    emit_group_addr, emit_options, emit_target_addr, parse_group_addr, parse_options,
    parse_target_addr, GROUP_ADDR_LEN, GROUP_OPTIONS_LEN, TARGET_ADDR_LEN,
};
use super::{EmitError, MessageType, WireError};
use crate::time::UnixTime;

/// A join, refresh or leave (the type byte says which), signed with the
/// group owner's Ed25519 key over the whole datagram, so none of the fields
/// can be changed and a request for group A cannot be presented for group B.
///
/// Body: group (7), target (6), options (2), lifetime in seconds (4; 0 for
/// a leave), timestamp in Unix seconds (8), nonce (8) — 35 bytes — and, in
/// a join or refresh only, the target's ephemeral X25519 key share (32;
/// 67 bytes in all), inside the signature so nobody can swap it
/// (PROTOCOL.md §5.6). A leave asks for no session and carries none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TargetRequest {
    /// The group `AA:g`.
    pub group: GroupAddr,
    /// The target `AT:r` that wants the group's traffic.
    pub target: TargetAddr,
    /// Options the target asks for (the registered ones win where they
    /// differ; see the JAP).
    pub options: GroupOptions,
    /// Soft-state lifetime asked for; the JAP may shorten it. Zero in a
    /// leave.
    pub lifetime_s: u32,
    /// When the target made the request (freshness: ±30 s by default).
    pub timestamp: UnixTime,
    /// Random per request: proxies remember it while the timestamp is
    /// fresh and refuse it a second time.
    pub nonce: u64,
    /// The target's ephemeral X25519 key share for the session the ack
    /// grants: present in a join or refresh, absent in a leave.
    pub share: Option<KeyShare>,
}

impl TargetRequest {
    /// Body length without the key share (a leave's).
    pub const LEN: usize = GROUP_ADDR_LEN + TARGET_ADDR_LEN + GROUP_OPTIONS_LEN + 4 + 8 + 8;
    /// Body length with the key share (a join's or refresh's).
    pub const LEN_WITH_SHARE: usize = Self::LEN + KEY_SHARE_LEN;

    /// Whether requests of type `ty` carry a key share (joins and
    /// refreshes do, leaves do not).
    pub const fn has_share(ty: MessageType) -> bool {
        !matches!(ty, MessageType::Leave)
    }

    /// Body length of this request.
    pub const fn body_len(&self) -> usize {
        match self.share {
            Some(_) => Self::LEN_WITH_SHARE,
            None => Self::LEN,
        }
    }

    pub(crate) fn parse(r: &mut Reader<'_>, ty: MessageType) -> Result<Self, WireError> {
        let group = parse_group_addr(r)?;
        let target = parse_target_addr(r)?;
        let options = parse_options(r)?;
        let lifetime_s = r.u32()?;
        if ty == MessageType::Leave && lifetime_s != 0 {
            return Err(WireError::BadField("lifetime of a leave"));
        }
        let timestamp = UnixTime(r.u64()?);
        let nonce = r.u64()?;
        let share = if Self::has_share(ty) {
            Some(KeyShare(r.array::<KEY_SHARE_LEN>()?))
        } else {
            None
        };
        Ok(TargetRequest {
            group,
            target,
            options,
            lifetime_s,
            timestamp,
            nonce,
            share,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>, ty: MessageType) -> Result<(), EmitError> {
        if ty == MessageType::Leave && self.lifetime_s != 0 {
            return Err(EmitError::BadField("lifetime of a leave"));
        }
        if Self::has_share(ty) != self.share.is_some() {
            return Err(EmitError::BadField("key share (joins and refreshes only)"));
        }
        emit_group_addr(w, &self.group)?;
        emit_target_addr(w, &self.target)?;
        emit_options(w, &self.options)?;
        w.u32(self.lifetime_s)?;
        w.u64(self.timestamp.0)?;
        w.u64(self.nonce)?;
        match &self.share {
            Some(k) => w.bytes(&k.0),
            None => Ok(()),
        }
    }
}

/// Length of an X25519 public key (RFC 7748 §5: a u-coordinate, 32 bytes
/// little-endian).
pub const KEY_SHARE_LEN: usize = 32;

/// An ephemeral X25519 public key of the session key exchange
/// (PROTOCOL.md §5.6): the target's in its signed join or refresh, the
/// JAP's in the ack. Any 32 bytes decode; a share of small order is caught
/// when the shared secret comes out all zero ([`crate::auth::exchange`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyShare(pub [u8; KEY_SHARE_LEN]);

/// A session (PROTOCOL.md §5.6) as a JAP grants it in the ack of a signed
/// join or refresh, so that the target's following refreshes are
/// authenticated by a MAC ([`SessionRefresh`]) instead of a signature.
/// `id` names the session at this JAP; it is valid until `expires` (Unix
/// seconds), or until the JAP drops the target. The key of the MACs is not
/// in it: both ends derive it from an X25519 exchange of the request's
/// share and `share`, the JAP's ([`crate::auth::exchange`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionGrant {
    /// The session's id at the JAP, never 0.
    pub id: u64,
    /// When the session ends (Unix seconds); after it only a signed
    /// request is accepted.
    pub expires: UnixTime,
    /// The JAP's ephemeral X25519 key share.
    pub share: KeyShare,
}

/// Length of a session key.
pub const SESSION_KEY_LEN: usize = 16;

/// JAP → target: the request with this nonce was accepted.
///
/// Not authenticated (the target holds no proxy key); it is bound to the
/// request by the echoed 64-bit nonce, which an off-path attacker cannot
/// guess. A forged ack can only make a target believe it joined, which its
/// next refresh corrects.
///
/// Body (77 bytes): group (7), target (6), nonce (8), JAP (4), granted
/// lifetime in seconds (4), session id (8), session expiry in Unix seconds
/// (8), the JAP's X25519 key share (32). A session id of 0 means no new
/// session (acks of leaves and of session refreshes, or a JAP that grants
/// none); its expiry and share are then 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JoinAck {
    /// The request's group.
    pub group: GroupAddr,
    /// The request's target.
    pub target: TargetAddr,
    /// The request's nonce.
    pub nonce: u64,
    /// The proxy that is now the target's JAP.
    pub jap: ProxyId,
    /// Lifetime granted; refresh before it runs out.
    pub lifetime_s: u32,
    /// A new session for MAC'd refreshes, if granted.
    pub session: Option<SessionGrant>,
}

impl JoinAck {
    /// Body length.
    pub const LEN: usize = GROUP_ADDR_LEN + TARGET_ADDR_LEN + 8 + 4 + 4 + 8 + 8 + KEY_SHARE_LEN;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let group = parse_group_addr(r)?;
        let target = parse_target_addr(r)?;
        let nonce = r.u64()?;
        let jap = ProxyId(r.u32()?);
        let lifetime_s = r.u32()?;
        let id = r.u64()?;
        let expires = UnixTime(r.u64()?);
        let share = KeyShare(r.array::<KEY_SHARE_LEN>()?);
        let session = if id == 0 {
            if expires.0 != 0 || share.0 != [0; KEY_SHARE_LEN] {
                return Err(WireError::BadField("session of id 0"));
            }
            None
        } else {
            Some(SessionGrant { id, expires, share })
        };
        Ok(JoinAck {
            group,
            target,
            nonce,
            jap,
            lifetime_s,
            session,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        emit_group_addr(w, &self.group)?;
        emit_target_addr(w, &self.target)?;
        w.u64(self.nonce)?;
        w.u32(self.jap.0)?;
        w.u32(self.lifetime_s)?;
        match &self.session {
            Some(s) if s.id == 0 => Err(EmitError::BadField("session id 0")),
            Some(s) => {
                w.u64(s.id)?;
                w.u64(s.expires.0)?;
                w.bytes(&s.share.0)
            }
            None => {
                w.u64(0)?;
                w.u64(0)?;
                w.bytes(&[0; KEY_SHARE_LEN])
            }
        }
    }
}

/// Target → its JAP: renew the soft state of a join under a session the
/// JAP granted ([`SessionGrant`]), authenticated by a MAC with the
/// session's key instead of a signature (PROTOCOL.md §5.6).
///
/// Body (41 bytes): group (7), target (6), session id (8), counter (8),
/// nonce (8), lifetime in seconds (4). Trailer: HMAC-SHA256 tag, left 16
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionRefresh {
    /// The group.
    pub group: GroupAddr,
    /// The target.
    pub target: TargetAddr,
    /// The session's id.
    pub session: u64,
    /// Strictly increasing within the session, from 1: a counter at or
    /// below the last accepted one is a replay.
    pub counter: u64,
    /// Random per request, echoed in the reply (what binds the reply).
    pub nonce: u64,
    /// Soft-state lifetime asked for.
    pub lifetime_s: u32,
}

impl SessionRefresh {
    /// Body length.
    pub const LEN: usize = GROUP_ADDR_LEN + TARGET_ADDR_LEN + 8 + 8 + 8 + 4;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let group = parse_group_addr(r)?;
        let target = parse_target_addr(r)?;
        let session = r.u64()?;
        if session == 0 {
            return Err(WireError::BadField("session id 0"));
        }
        Ok(SessionRefresh {
            group,
            target,
            session,
            counter: r.u64()?,
            nonce: r.u64()?,
            lifetime_s: r.u32()?,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        if self.session == 0 {
            return Err(EmitError::BadField("session id 0"));
        }
        emit_group_addr(w, &self.group)?;
        emit_target_addr(w, &self.target)?;
        w.u64(self.session)?;
        w.u64(self.counter)?;
        w.u64(self.nonce)?;
        w.u32(self.lifetime_s)
    }
}

/// Why a JAP refused a target request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NackReason {
    /// No group is registered at this address (wire 1).
    UnknownGroup,
    /// The signature did not verify with the group owner's key (wire 2).
    BadSignature,
    /// The timestamp is outside the accepted skew (wire 3).
    Stale,
    /// The nonce was seen before (wire 4).
    Replay,
    /// The JAP's target table for the group is full (wire 5).
    Full,
    /// The group was withdrawn by the operator (wire 6).
    Withdrawn,
    /// Leave for a target this JAP does not hold (wire 7).
    NotJoined,
    /// The target address cannot be a target: not a unicast host address,
    /// inside the anycast prefix, a proxy's address, or a port on a
    /// whole-IP group (wire 8).
    BadTarget,
    /// A session refresh for a session this JAP does not hold (the target
    /// left, expired, or routing moved it to another JAP): sign a join
    /// (wire 9).
    SessionUnknown,
    /// A session refresh after the session's expiry: sign a refresh
    /// (wire 10).
    SessionExpired,
}

impl NackReason {
    fn parse(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            1 => NackReason::UnknownGroup,
            2 => NackReason::BadSignature,
            3 => NackReason::Stale,
            4 => NackReason::Replay,
            5 => NackReason::Full,
            6 => NackReason::Withdrawn,
            7 => NackReason::NotJoined,
            8 => NackReason::BadTarget,
            9 => NackReason::SessionUnknown,
            10 => NackReason::SessionExpired,
            _ => return Err(WireError::BadField("nack reason")),
        })
    }

    const fn to_u8(self) -> u8 {
        match self {
            NackReason::UnknownGroup => 1,
            NackReason::BadSignature => 2,
            NackReason::Stale => 3,
            NackReason::Replay => 4,
            NackReason::Full => 5,
            NackReason::Withdrawn => 6,
            NackReason::NotJoined => 7,
            NackReason::BadTarget => 8,
            NackReason::SessionUnknown => 9,
            NackReason::SessionExpired => 10,
        }
    }
}

/// JAP → target: the request with this nonce was refused. Unauthenticated
/// like [`JoinAck`], and shorter than the request it answers (no
/// amplification).
///
/// Body (22 bytes): group (7), target (6), nonce (8), reason (1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JoinNack {
    /// The request's group.
    pub group: GroupAddr,
    /// The request's target.
    pub target: TargetAddr,
    /// The request's nonce.
    pub nonce: u64,
    /// Why.
    pub reason: NackReason,
}

impl JoinNack {
    /// Body length.
    pub const LEN: usize = GROUP_ADDR_LEN + TARGET_ADDR_LEN + 8 + 1;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(JoinNack {
            group: parse_group_addr(r)?,
            target: parse_target_addr(r)?,
            nonce: r.u64()?,
            reason: NackReason::parse(r.u8()?)?,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        emit_group_addr(w, &self.group)?;
        emit_target_addr(w, &self.target)?;
        w.u64(self.nonce)?;
        w.u8(self.reason.to_u8())
    }
}
