//! Authentication of everything a proxy receives, and the counters of what
//! it refused (PROTOCOL.md, "Authentication"; CHECKLISTS.md "Control
//! messages", "Control authentication").
//!
//! [`Gate::open`] is the one door for received datagrams. Per class:
//!
//! | class | checks, in order | state touched, only if all pass |
//! |---|---|---|
//! | proxy → proxy | frame; key id live; HMAC (constant time); replay window; body | the sender's replay window |
//! | target request | frame; body; group registered; timestamp within skew; nonce unseen; Ed25519 by the group owner's key | the nonce cache |
//! | group registration | frame; body; Ed25519 by the operator's key | none (the registry checks the serial) |
//! | session refresh | frame; body; session held; not expired; HMAC with the session key (constant time); counter above the last | none (the JAP records the counter) |
//! | reply to a target | frame; body | none |
//!
//! Nothing is written before every check of its row passed: a forged,
//! bit-flipped or replayed message moves no window, fills no cache and
//! reaches no state machine. Each refusal bumps one named counter
//! ([`Reject`], [`Counters`]).
//!
//! Why one HMAC key for the proxy group rather than an Ed25519 key per
//! proxy is argued in PROTOCOL.md ("Why a group key").

pub mod exchange;
pub mod hkdf;
pub mod mac;
pub mod replay;
pub mod session;
pub mod signature;

use core::net::SocketAddrV4;

use ed25519_dalek::VerifyingKey;
use pias_dataplane::types::{GroupAddr, ProxyId};

use crate::time::UnixTime;
use crate::wire::{
    AuthClass, Frame, GroupRegister, Message, ProxyHeader, TargetRequest, WireError,
};
pub use exchange::{EphemeralSecret, SmallOrder};
pub use mac::{KeyError, KeyRing, SealError, Sealer, MIN_SECRET_LEN};
pub use replay::{ReplayError, ReplayTable, ReplayWindow, WINDOW_BITS};
pub use session::{
    seal_session_refresh, NoSessions, SessionSecret, SessionState, Sessions, TargetSession,
    SESSION_CONTEXT,
};
pub use signature::{
    sign_group_register, sign_target_request, NonceCache, NonceError, SignError, GROUP_CONTEXT,
    OPERATOR_CONTEXT,
};

macro_rules! reasons {
    ($( $(#[$doc:meta])* $name:ident => $label:literal, )*) => {
        /// Why a received datagram was dropped: one counter each.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
        pub enum Reject {
            $( $(#[$doc])* #[error($label)] $name, )*
        }

        impl Reject {
            /// Every reason, in counter order.
            pub const ALL: &'static [Reject] = &[$(Reject::$name,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// The counter's index.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// A stable snake_case name for metrics.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Reject::$name => $label, )*
                }
            }
        }
    };
}

reasons! {
    /// The datagram or a field ended early.
    Truncated => "truncated",
    /// Longer than the protocol's maximum datagram.
    Oversized => "oversized",
    /// Unknown protocol version.
    UnknownVersion => "unknown_version",
    /// Unknown message type.
    UnknownType => "unknown_type",
    /// Declared length differs from the received length.
    BadLength => "bad_length",
    /// A list longer than its cap.
    TooManyElements => "too_many_elements",
    /// A field with an undefined value, or trailing bytes.
    Malformed => "malformed",
    /// The key id names no live proxy-group key.
    UnknownKeyId => "unknown_key_id",
    /// The HMAC tag did not verify.
    BadMac => "bad_mac",
    /// The sender's `(epoch, seq)` was accepted before.
    Duplicate => "duplicate",
    /// The sequence number is behind the sender's window.
    TooOld => "too_old",
    /// The epoch is before the sender's current one.
    OldEpoch => "old_epoch",
    /// A message claiming to come from this proxy itself.
    FromSelf => "from_self",
    /// A new sender and the replay table is full.
    SenderTableFull => "sender_table_full",
    /// A target request for a group that is not registered.
    UnknownGroup => "unknown_group",
    /// A target request whose signature does not verify with the group
    /// owner's key.
    BadSignature => "bad_signature",
    /// A target request whose timestamp is older than the skew allows.
    TimestampTooOld => "timestamp_too_old",
    /// A target request whose timestamp is further ahead than the skew
    /// allows.
    TimestampInFuture => "timestamp_in_future",
    /// A target request whose nonce was seen before.
    NonceReplay => "nonce_replay",
    /// The nonce cache is full of fresh nonces.
    NonceCacheFull => "nonce_cache_full",
    /// A group registration and no operator key is configured.
    NoOperatorKey => "no_operator_key",
    /// A group registration whose signature does not verify with the
    /// operator's key.
    BadOperatorSignature => "bad_operator_signature",
    /// A session refresh for no session held (or another id).
    UnknownSession => "unknown_session",
    /// A session refresh after its session's expiry.
    SessionExpired => "session_expired",
    /// A session refresh whose tag does not verify with the session key.
    BadSessionMac => "bad_session_mac",
    /// A session refresh whose counter is not above the last accepted.
    SessionReplay => "session_replay",
}

impl From<WireError> for Reject {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated => Reject::Truncated,
            WireError::Oversized => Reject::Oversized,
            WireError::UnsupportedVersion(_) => Reject::UnknownVersion,
            WireError::UnknownType(_) => Reject::UnknownType,
            WireError::LengthMismatch { .. } => Reject::BadLength,
            WireError::TooMany { .. } => Reject::TooManyElements,
            WireError::TrailingBytes | WireError::BadField(_) => Reject::Malformed,
        }
    }
}

impl From<ReplayError> for Reject {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Duplicate => Reject::Duplicate,
            ReplayError::TooOld => Reject::TooOld,
            ReplayError::OldEpoch => Reject::OldEpoch,
            ReplayError::TableFull => Reject::SenderTableFull,
        }
    }
}

/// Accepted and refused datagrams, one counter per [`Reject`] reason;
/// readable at any time (hand it to metrics as `(name, value)` pairs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    accepted: u64,
    rejected: [u64; Reject::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            accepted: 0,
            rejected: [0; Reject::COUNT],
        }
    }
}

impl Counters {
    /// Datagrams accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Datagrams refused for `reason`.
    pub fn get(&self, reason: Reject) -> u64 {
        self.rejected.get(reason.index()).copied().unwrap_or(0)
    }

    /// Datagrams refused, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// `(name, count)` for every reason.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reject::ALL.iter().map(|r| (r.name(), self.get(*r)))
    }

    fn bump(&mut self, reason: Reject) {
        if let Some(c) = self.rejected.get_mut(reason.index()) {
            *c = c.saturating_add(1);
        }
    }
}

/// Where the gate finds a group owner's public key.
pub trait GroupKeys {
    /// The owner key of a registered (not withdrawn) group.
    fn owner_key(&self, group: &GroupAddr) -> Option<&VerifyingKey>;
}

/// A datagram that passed the gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// From a proxy of the group: MAC and replay window checked.
    Proxy {
        /// Its authenticated header (sender, epoch, seq).
        header: ProxyHeader,
        /// The message.
        msg: Message,
    },
    /// A join, refresh or leave signed by the group's owner key, fresh and
    /// not replayed.
    Target(Message),
    /// A group registration signed by the operator (its serial is checked
    /// by [`crate::groups::GroupRegistry::apply`]).
    Operator(GroupRegister),
    /// A reply to a target (only a target agent expects these).
    Reply(Message),
    /// A refresh under a session held by the JAP: tag, expiry and counter
    /// checked (the JAP records the counter).
    Session(crate::wire::SessionRefresh),
}

impl Accepted {
    /// The target request inside [`Accepted::Target`].
    pub fn target_request(&self) -> Option<&TargetRequest> {
        match self {
            Accepted::Target(Message::Join(r) | Message::Refresh(r) | Message::Leave(r)) => Some(r),
            _ => None,
        }
    }
}

/// Limits of the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateConfig {
    /// This proxy, if the gate belongs to one: messages claiming to come
    /// from it are refused.
    pub me: Option<ProxyId>,
    /// Accepted distance between a target request's timestamp and the
    /// proxy's wall clock, in seconds.
    pub max_skew_s: u64,
    /// Nonces remembered at most.
    pub nonce_cache_cap: usize,
    /// Senders with a replay window at most.
    pub replay_senders_cap: usize,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            me: None,
            max_skew_s: 30,
            nonce_cache_cap: 65_536,
            replay_senders_cap: 24_000,
        }
    }
}

/// The receive side of authentication: key ring, replay windows, nonce
/// cache, operator key and counters.
#[derive(Debug)]
pub struct Gate {
    cfg: GateConfig,
    keys: KeyRing,
    replay: ReplayTable,
    nonces: NonceCache,
    operator_key: Option<VerifyingKey>,
    counters: Counters,
}

fn mac_ok(keys: &KeyRing, h: &ProxyHeader, src: SocketAddrV4, frame: &Frame<'_>) -> bool {
    if cfg!(fuzzing) {
        return true;
    }
    keys.verify(h.key_id, src, frame.covered, frame.trailer)
}

impl Gate {
    /// A gate with these keys and limits, and no operator key.
    pub fn new(cfg: GateConfig, keys: KeyRing) -> Self {
        Gate {
            replay: ReplayTable::new(cfg.replay_senders_cap),
            nonces: NonceCache::new(cfg.nonce_cache_cap),
            cfg,
            keys,
            operator_key: None,
            counters: Counters::default(),
        }
    }

    /// Accept group registrations signed by this key.
    pub fn set_operator_key(&mut self, key: Option<VerifyingKey>) {
        self.operator_key = key;
    }

    /// The key ring (for [`Sealer::seal`]).
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The key ring, for rotation.
    pub fn keys_mut(&mut self) -> &mut KeyRing {
        &mut self.keys
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The replay windows (to raise a sender's epoch floor or forget it).
    pub fn replay_mut(&mut self) -> &mut ReplayTable {
        &mut self.replay
    }

    /// Nonces currently remembered.
    pub fn nonces(&self) -> &NonceCache {
        &self.nonces
    }

    /// Check a datagram received from `src` at wall-clock `now`; on
    /// success return what it holds, on failure count and return the
    /// reason. `groups` supplies owner keys for target requests.
    pub fn open(
        &mut self,
        now: UnixTime,
        src: SocketAddrV4,
        buf: &[u8],
        groups: &impl GroupKeys,
    ) -> Result<Accepted, Reject> {
        self.open_with_sessions(now, src, buf, groups, &NoSessions)
    }

    /// [`Gate::open`], with `sessions` (the JAP's) for session refreshes.
    pub fn open_with_sessions(
        &mut self,
        now: UnixTime,
        src: SocketAddrV4,
        buf: &[u8],
        groups: &impl GroupKeys,
        sessions: &impl Sessions,
    ) -> Result<Accepted, Reject> {
        let r = self.open_inner(now, src, buf, groups, sessions);
        match r {
            Ok(_) => self.counters.accepted = self.counters.accepted.saturating_add(1),
            Err(reason) => self.counters.bump(reason),
        }
        r
    }

    fn open_inner(
        &mut self,
        now: UnixTime,
        src: SocketAddrV4,
        buf: &[u8],
        groups: &impl GroupKeys,
        sessions: &impl Sessions,
    ) -> Result<Accepted, Reject> {
        let frame = Frame::parse(buf)?;
        match frame.msg_type.auth_class() {
            AuthClass::ProxyMac => {
                let h = frame.proxy.ok_or(Reject::Malformed)?;
                if !self.keys.contains(h.key_id) {
                    return Err(Reject::UnknownKeyId);
                }
                if !mac_ok(&self.keys, &h, src, &frame) {
                    return Err(Reject::BadMac);
                }
                if Some(h.sender) == self.cfg.me {
                    return Err(Reject::FromSelf);
                }
                self.replay.check(h.sender, h.epoch, h.seq)?;
                let msg = frame.message()?;
                self.replay.commit(h.sender, h.epoch, h.seq);
                Ok(Accepted::Proxy { header: h, msg })
            }
            AuthClass::GroupSigned => {
                let msg = frame.message()?;
                let req = match &msg {
                    Message::Join(r) | Message::Refresh(r) | Message::Leave(r) => *r,
                    _ => return Err(Reject::Malformed),
                };
                let key = groups.owner_key(&req.group).ok_or(Reject::UnknownGroup)?;
                let (t, n) = (req.timestamp.as_secs(), now.as_secs());
                if n.saturating_sub(t) > self.cfg.max_skew_s {
                    return Err(Reject::TimestampTooOld);
                }
                if t.saturating_sub(n) > self.cfg.max_skew_s {
                    return Err(Reject::TimestampInFuture);
                }
                self.nonces
                    .check(&req.group, req.nonce)
                    .map_err(|_| Reject::NonceReplay)?;
                if !signature::verify(GROUP_CONTEXT, key, frame.covered, frame.trailer) {
                    return Err(Reject::BadSignature);
                }
                let expires = UnixTime(t.saturating_add(self.cfg.max_skew_s));
                self.nonces
                    .insert(now, &req.group, req.nonce, expires)
                    .map_err(|e| match e {
                        NonceError::Replay => Reject::NonceReplay,
                        NonceError::Full => Reject::NonceCacheFull,
                    })?;
                Ok(Accepted::Target(msg))
            }
            AuthClass::OperatorSigned => {
                let msg = frame.message()?;
                let Message::GroupRegister(reg) = msg else {
                    return Err(Reject::Malformed);
                };
                let key = self.operator_key.as_ref().ok_or(Reject::NoOperatorKey)?;
                if !signature::verify(OPERATOR_CONTEXT, key, frame.covered, frame.trailer) {
                    return Err(Reject::BadOperatorSignature);
                }
                Ok(Accepted::Operator(reg))
            }
            AuthClass::SessionMac => {
                let Message::SessionRefresh(r) = frame.message()? else {
                    return Err(Reject::Malformed);
                };
                let st = sessions
                    .session(&r.group, &r.target)
                    .filter(|s| s.id == r.session)
                    .ok_or(Reject::UnknownSession)?;
                if now > st.expires {
                    return Err(Reject::SessionExpired);
                }
                if !session::verify(&st.key, frame.covered, frame.trailer) {
                    return Err(Reject::BadSessionMac);
                }
                if r.counter <= st.counter {
                    return Err(Reject::SessionReplay);
                }
                Ok(Accepted::Session(r))
            }
            AuthClass::Unauthenticated => Ok(Accepted::Reply(frame.message()?)),
        }
    }
}

#[cfg(test)]
mod tests;
