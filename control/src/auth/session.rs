//! Session credentials: refreshes authenticated by a MAC instead of a
//! signature (PROTOCOL.md §5.6).
//!
//! The signed join or refresh carries the target's ephemeral X25519 share;
//! the ack carries a [`SessionGrant`]: an id, an expiry and the JAP's
//! ephemeral share. Each end derives the 128-bit session key from the
//! X25519 exchange and the transcript ([`super::exchange`]): the key never
//! travels. The JAP draws its ephemeral key from a secret of its own
//! ([`SessionSecret`], itself derived from the proxy-group key, the JAP's
//! id and its boot count) over the request and the session, so the sans-IO
//! JAP needs no randomness, and keeps only the derived key. Until the
//! expiry the target refreshes with a [`SessionRefresh`] tagged with
//! `HMAC-SHA256(key, context ‖ datagram without its tag)`, left 16 bytes,
//! and a counter strictly above the last accepted one ([`TargetSession`]).
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

use super::exchange::{EphemeralSecret, SmallOrder, Transcript};
use super::KeyRing;
use crate::time::UnixTime;
use crate::wire::group::group_addr_bytes;
use crate::wire::{
    EmitError, JoinAck, KeyShare, Message, SessionGrant, SessionRefresh, TargetRequest,
    MAC_TAG_LEN, SESSION_KEY_LEN,
};

type HmacSha256 = Hmac<Sha256>;

/// Context prefix of session MACs: a session tag is never valid as any
/// other MAC of the protocol.
pub const SESSION_CONTEXT: &[u8] = b"PIAS v1 session refresh\0";
const SECRET_LABEL: &[u8] = b"PIAS v1 JAP session secret\0";
const EPHEMERAL_LABEL: &[u8] = b"PIAS v2 JAP ephemeral key\0";

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

    /// The JAP's ephemeral X25519 key for session `id` granted to `req`
    /// until `expires`: HMAC of the secret over a label, group, target,
    /// nonce, the target's share, id and expiry. Unique per session (ids
    /// never repeat within a boot, and the secret changes per boot).
    fn ephemeral(
        &self,
        req: &TargetRequest,
        share: &KeyShare,
        id: u64,
        expires: UnixTime,
    ) -> EphemeralSecret {
        let mut mac = self.0.clone();
        mac.update(EPHEMERAL_LABEL);
        mac.update(&group_addr_bytes(&req.group));
        mac.update(&req.target.ip.octets());
        mac.update(&req.target.port.to_be_bytes());
        mac.update(&req.nonce.to_be_bytes());
        mac.update(&share.0);
        mac.update(&id.to_be_bytes());
        mac.update(&expires.0.to_be_bytes());
        EphemeralSecret::from_bytes(mac.finalize().into_bytes().into())
    }

    /// Session `id` for the signed request `req`, ending at `expires`: the
    /// grant for the ack (with the JAP's share) and the session key, both
    /// from an X25519 exchange with the request's share. `None` for a
    /// request without a share (a leave). Refused ([`SmallOrder`]) when the
    /// target's share has small order: no session then.
    pub fn grant(
        &self,
        req: &TargetRequest,
        id: u64,
        expires: UnixTime,
    ) -> Option<Result<(SessionGrant, [u8; SESSION_KEY_LEN]), SmallOrder>> {
        let target_share = req.share?;
        let eph = self.ephemeral(req, &target_share, id, expires);
        let jap_share = eph.share();
        let t = Transcript {
            group: &req.group,
            target: &req.target,
            nonce: req.nonce,
            session: id,
            expires,
            target_share: &target_share,
            jap_share: &jap_share,
        };
        Some(eph.session_key(&target_share, &t).map(|key| {
            (
                SessionGrant {
                    id,
                    expires,
                    share: jap_share,
                },
                key,
            )
        }))
    }
}

/// A session as the target holds it: the key it derived, the grant's id
/// and expiry, and the last counter it used.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TargetSession {
    /// The session's id at the JAP.
    pub id: u64,
    /// When it ends.
    pub expires: UnixTime,
    /// The derived key (crate-visible for tests that forge with it).
    pub(crate) key: [u8; SESSION_KEY_LEN],
    /// The last counter used (0: none yet).
    pub counter: u64,
}

impl fmt::Debug for TargetSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetSession")
            .field("id", &self.id)
            .field("expires", &self.expires)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl TargetSession {
    /// The session `ack` grants, derived with `secret`, the ephemeral key
    /// whose share went in the signed request the ack answers (its nonce).
    /// `None` if the ack grants none; [`SmallOrder`] if the JAP's share has
    /// small order (no session: the target keeps signing). Consumes the
    /// secret either way.
    pub fn accept(
        secret: EphemeralSecret,
        ack: &JoinAck,
    ) -> Option<Result<TargetSession, SmallOrder>> {
        let g = ack.session?;
        let target_share = secret.share();
        let t = Transcript {
            group: &ack.group,
            target: &ack.target,
            nonce: ack.nonce,
            session: g.id,
            expires: g.expires,
            target_share: &target_share,
            jap_share: &g.share,
        };
        Some(secret.session_key(&g.share, &t).map(|key| TargetSession {
            id: g.id,
            expires: g.expires,
            key,
            counter: 0,
        }))
    }

    /// Whether a refresh at `wall` should go under this session: it has
    /// more than `margin_s` seconds to run.
    pub fn usable(&self, wall: UnixTime, margin_s: u64) -> bool {
        wall.0.saturating_add(margin_s) < self.expires.0
    }

    /// Write the next session refresh of `(group, target)` into `buf`
    /// (counter one above the last), tagged with the session key. Returns
    /// the datagram's length.
    pub fn seal_next(
        &mut self,
        group: GroupAddr,
        target: TargetAddr,
        nonce: u64,
        lifetime_s: u32,
        buf: &mut [u8],
    ) -> Result<usize, EmitError> {
        self.counter += 1;
        let r = SessionRefresh {
            group,
            target,
            session: self.id,
            counter: self.counter,
            nonce,
            lifetime_s,
        };
        seal_session_refresh(&self.key, &r, buf)
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
