//! Session credentials: refreshes authenticated by a MAC instead of a
//! signature (PROTOCOL.md §5.6).
//!
//! The ack of a signed join or refresh carries a [`SessionGrant`]: an id, an
//! expiry and a 128-bit key. The key is derived by the JAP from a secret of
//! its own ([`SessionSecret`], itself derived from the proxy-group key, the
//! JAP's id and its boot count) over `(group, target, id, expiry)`, so
//! every session has its own key and the JAP needs no randomness. Until
//! the expiry the target refreshes with a [`SessionRefresh`] tagged with
//! `HMAC-SHA256(key, context ‖ datagram without its tag)`, left 16 bytes,
//! and a counter strictly above the last accepted one.
//!
//! The gate checks, in order and without writing anything: frame, body,
//! the session held for `(group, target)` with this id
//! (`unknown_session`), its expiry (`session_expired`), the tag in
//! constant time (`bad_session_mac`), the counter (`session_replay`). The
//! JAP then records the counter and renews the soft state.

use core::fmt;

use hmac::{Hmac, Mac};
use pias_dataplane::types::{GroupAddr, ProxyId, TargetAddr};
use sha2::Sha256;

use super::KeyRing;
use crate::time::UnixTime;
use crate::wire::group::group_addr_bytes;
use crate::wire::{EmitError, Message, SessionGrant, SessionRefresh, MAC_TAG_LEN, SESSION_KEY_LEN};

type HmacSha256 = Hmac<Sha256>;

/// Context prefix of session MACs: a session tag is never valid as any
/// other MAC of the protocol.
pub const SESSION_CONTEXT: &[u8] = b"PIAS v1 session refresh\0";
const SECRET_LABEL: &[u8] = b"PIAS v1 JAP session secret\0";
const KEY_LABEL: &[u8] = b"PIAS v1 session key\0";

/// A JAP's secret for session keys (keyed HMAC state, ready to use).
#[derive(Clone)]
pub struct SessionSecret(HmacSha256);

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(..)")
    }
}

impl SessionSecret {
    /// A secret from 32 random bytes.
    pub fn new(secret: &[u8; 32]) -> Self {
        // HMAC accepts keys of any length: this cannot fail.
        SessionSecret(HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!()))
    }

    /// The secret of JAP `me` in boot `incarnation`: HMAC of the
    /// proxy-group send key over a label, `me` and `incarnation`. Differs
    /// per JAP and per boot (so sessions of an earlier boot are unknown),
    /// and needs no randomness in the sans-IO machine.
    pub fn derive(keys: &KeyRing, me: ProxyId, incarnation: u32) -> Self {
        let mut label = [0u8; SECRET_LABEL.len() + 8];
        label[..SECRET_LABEL.len()].copy_from_slice(SECRET_LABEL);
        label[SECRET_LABEL.len()..SECRET_LABEL.len() + 4].copy_from_slice(&me.0.to_be_bytes());
        label[SECRET_LABEL.len() + 4..].copy_from_slice(&incarnation.to_be_bytes());
        SessionSecret::new(&keys.derive(&label))
    }

    /// The key of session `id` of `(group, target)` ending at `expires`.
    pub fn key(
        &self,
        group: &GroupAddr,
        target: &TargetAddr,
        id: u64,
        expires: UnixTime,
    ) -> [u8; SESSION_KEY_LEN] {
        let mut mac = self.0.clone();
        mac.update(KEY_LABEL);
        mac.update(&group_addr_bytes(group));
        mac.update(&target.ip.octets());
        mac.update(&target.port.to_be_bytes());
        mac.update(&id.to_be_bytes());
        mac.update(&expires.0.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut key = [0u8; SESSION_KEY_LEN];
        key.copy_from_slice(&full[..SESSION_KEY_LEN]);
        key
    }

    /// A grant for session `id` of `(group, target)` ending at `expires`.
    pub fn grant(
        &self,
        group: &GroupAddr,
        target: &TargetAddr,
        id: u64,
        expires: UnixTime,
    ) -> SessionGrant {
        SessionGrant {
            id,
            expires,
            key: self.key(group, target, id, expires),
        }
    }
}

fn tag_state(key: &[u8; SESSION_KEY_LEN], covered: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(SESSION_CONTEXT);
    mac.update(covered);
    mac
}

/// Write a session refresh into `buf`, tagged with the session's key.
/// Returns the datagram's length.
pub fn seal_session_refresh(
    key: &[u8; SESSION_KEY_LEN],
    msg: &SessionRefresh,
    buf: &mut [u8],
) -> Result<usize, EmitError> {
    let len = Message::SessionRefresh(*msg).emit(None, buf)?;
    let body_end = len - MAC_TAG_LEN;
    let tag = tag_state(key, &buf[..body_end]).finalize().into_bytes();
    buf[body_end..len].copy_from_slice(&tag[..MAC_TAG_LEN]);
    Ok(len)
}

/// Constant-time check of a session tag. Under `cfg(fuzzing)` every tag
/// passes, so the fuzzer reaches what follows.
pub(crate) fn verify(key: &[u8; SESSION_KEY_LEN], covered: &[u8], tag: &[u8]) -> bool {
    if cfg!(fuzzing) {
        return true;
    }
    tag.len() == MAC_TAG_LEN && tag_state(key, covered).verify_truncated_left(tag).is_ok()
}

/// What a JAP holds of a target's session, as the gate reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionState {
    /// The session's id.
    pub id: u64,
    /// Its key.
    pub key: [u8; SESSION_KEY_LEN],
    /// The last counter accepted (0: none yet).
    pub counter: u64,
    /// When it ends.
    pub expires: UnixTime,
}

/// Where the gate finds sessions (the JAP).
pub trait Sessions {
    /// The session held for `(group, target)`, if any.
    fn session(&self, group: &GroupAddr, target: &TargetAddr) -> Option<&SessionState>;
}

/// No sessions: every session refresh is `unknown_session`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSessions;

impl Sessions for NoSessions {
    fn session(&self, _: &GroupAddr, _: &TargetAddr) -> Option<&SessionState> {
        None
    }
}
