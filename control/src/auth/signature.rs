//! Ed25519 signatures on messages from outside the proxy group:
//!
//! - target requests (join, refresh, leave), signed with the group owner's
//!   key: the credential of the group (DESIGN.md §1: "only holders of the
//!   group's credential may join"). The public key is registered with the
//!   group ([`crate::wire::GroupRegister`]); a target host holds the private
//!   key (or the operator hands it a group of its own);
//! - group registrations, signed with the operator's key.
//!
//! A signature covers a context string (domain separation: a join
//! signature is never valid as a registration, or in another protocol
//! version) followed by the whole datagram except the signature: version,
//! type, length and every body field. So a request signed for group A
//! cannot be presented for group B, nor a leave as a join.
//!
//! Freshness of target requests: the timestamp must be within the skew of
//! the proxy's wall clock, and the nonce must not have been seen while the
//! timestamp is fresh ([`NonceCache`], bounded).

use core::cmp::Reverse;
use std::collections::BinaryHeap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hashbrown::HashSet;
use pias_dataplane::types::GroupAddr;

use crate::time::UnixTime;
use crate::wire::{EmitError, GroupRegister, Message, MAX_DATAGRAM, SIGNATURE_LEN};

/// Context prefix of group-credential signatures (target requests).
pub const GROUP_CONTEXT: &[u8] = b"PIAS v1 group credential\0";
/// Context prefix of operator signatures (group registrations).
pub const OPERATOR_CONTEXT: &[u8] = b"PIAS v1 operator\0";

const CONTEXT_MAX: usize = 32;

/// Signing a message failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The message could not be written.
    #[error("emit: {0}")]
    Emit(#[from] EmitError),
    /// Only joins, refreshes and leaves are signed with a group credential.
    #[error("not a target request")]
    NotTargetRequest,
}

/// Context ‖ covered bytes, on the stack (covered ≤ [`MAX_DATAGRAM`]).
fn with_context<R>(ctx: &[u8], covered: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let mut buf = [0u8; CONTEXT_MAX + MAX_DATAGRAM];
    let n = ctx.len().checked_add(covered.len())?;
    buf.get_mut(..ctx.len())?.copy_from_slice(ctx);
    buf.get_mut(ctx.len()..n)?.copy_from_slice(covered);
    Some(f(buf.get(..n)?))
}

fn sign_into(ctx: &[u8], key: &SigningKey, buf: &mut [u8], len: usize) -> Result<usize, SignError> {
    let body_end = len - SIGNATURE_LEN;
    let (covered, rest) = buf.split_at_mut(body_end);
    let sig =
        with_context(ctx, covered, |m| key.sign(m)).ok_or(SignError::Emit(EmitError::Oversized))?;
    rest.get_mut(..SIGNATURE_LEN)
        .ok_or(SignError::Emit(EmitError::BufferTooSmall))?
        .copy_from_slice(&sig.to_bytes());
    Ok(len)
}

/// Write a join, refresh or leave into `buf`, signed with the group
/// owner's key. Returns the datagram's length.
pub fn sign_target_request(
    key: &SigningKey,
    msg: &Message,
    buf: &mut [u8],
) -> Result<usize, SignError> {
    if !matches!(
        msg,
        Message::Join(_) | Message::Refresh(_) | Message::Leave(_)
    ) {
        return Err(SignError::NotTargetRequest);
    }
    let len = msg.emit(None, buf)?;
    sign_into(GROUP_CONTEXT, key, buf, len)
}

/// Write a group registration into `buf`, signed with the operator's key.
pub fn sign_group_register(
    key: &SigningKey,
    reg: &GroupRegister,
    buf: &mut [u8],
) -> Result<usize, SignError> {
    let len = Message::GroupRegister(*reg).emit(None, buf)?;
    sign_into(OPERATOR_CONTEXT, key, buf, len)
}

/// Verify a signature over `ctx ‖ covered`. Strict verification (rejects
/// non-canonical signatures and small-order keys). Under `cfg(fuzzing)`
/// every signature passes, so the fuzzer reaches what follows.
pub(crate) fn verify(ctx: &[u8], key: &VerifyingKey, covered: &[u8], sig: &[u8]) -> bool {
    if cfg!(fuzzing) {
        return true;
    }
    let Ok(sig) = <[u8; SIGNATURE_LEN]>::try_from(sig) else {
        return false;
    };
    let sig = Signature::from_bytes(&sig);
    with_context(ctx, covered, |m| key.verify_strict(m, &sig).is_ok()).unwrap_or(false)
}

/// Why a nonce was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// Seen before while its timestamp is still fresh: a replay.
    #[error("nonce seen before")]
    Replay,
    /// The cache is full of fresh nonces (fail closed).
    #[error("nonce cache full")]
    Full,
}

/// The nonces of recently accepted target requests, each kept until its
/// request's timestamp leaves the accepted skew (after that the timestamp
/// check alone refuses a replay). Bounded: when full of unexpired entries,
/// new requests are refused rather than old nonces forgotten.
#[derive(Clone, Debug)]
pub struct NonceCache {
    seen: HashSet<(GroupAddr, u64)>,
    by_expiry: BinaryHeap<Reverse<(UnixTime, GroupAddr, u64)>>,
    cap: usize,
}

impl NonceCache {
    /// An empty cache of at most `cap` nonces.
    pub fn new(cap: usize) -> Self {
        NonceCache {
            seen: HashSet::new(),
            by_expiry: BinaryHeap::new(),
            cap,
        }
    }

    /// Has this nonce been accepted for this group? Read-only.
    pub fn check(&self, group: &GroupAddr, nonce: u64) -> Result<(), NonceError> {
        if self.seen.contains(&(*group, nonce)) {
            Err(NonceError::Replay)
        } else {
            Ok(())
        }
    }

    /// Remember a nonce until `expires`, after dropping expired ones.
    pub fn insert(
        &mut self,
        now: UnixTime,
        group: &GroupAddr,
        nonce: u64,
        expires: UnixTime,
    ) -> Result<(), NonceError> {
        self.expire(now);
        if self.seen.contains(&(*group, nonce)) {
            return Err(NonceError::Replay);
        }
        if self.seen.len() >= self.cap {
            return Err(NonceError::Full);
        }
        self.seen.insert((*group, nonce));
        self.by_expiry.push(Reverse((expires, *group, nonce)));
        Ok(())
    }

    /// Forget nonces whose expiry is before `now`.
    pub fn expire(&mut self, now: UnixTime) {
        while let Some(Reverse((t, g, n))) = self.by_expiry.peek().copied() {
            if t >= now {
                break;
            }
            self.by_expiry.pop();
            self.seen.remove(&(g, n));
        }
    }

    /// Nonces held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
