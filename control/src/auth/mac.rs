//! HMAC-SHA256 over the proxy-group key for proxy-to-proxy messages
//! (PROTOCOL.md, "Authentication"; CHECKLISTS.md "Control authentication").
//!
//! The tag is HMAC-SHA256 truncated to its left 128 bits (as RFC 4868's
//! HMAC-SHA-256-128) over
//!
//! ```text
//! outer IPv4 source (4) ‖ UDP source port (2) ‖ datagram without its tag
//! ```
//!
//! so it covers version, type, length, sender id, key id, flags, epoch,
//! sequence and body, and binds the message to the address it was sent
//! from (a captured message replayed from elsewhere fails). Tags are
//! compared in constant time (`hmac`'s `verify_truncated_left`, built on
//! `subtle`). Two keys may be live at once, so a key can be rotated without
//! a flag day: add the new key everywhere, switch senders to it, remove the
//! old one.

use core::fmt;
use core::net::SocketAddrV4;

use hmac::{Hmac, Mac};
use pias_dataplane::types::ProxyId;
use sha2::Sha256;

use crate::wire::{EmitError, KeyId, Message, ProxyHeader, MAC_TAG_LEN};

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted: 256 bits, the hash's output size (RFC 2104 §3
/// recommends at least that much key).
pub const MIN_SECRET_LEN: usize = 32;

/// A key-ring or key misuse (configuration, never network input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("secret shorter than {MIN_SECRET_LEN} bytes")]
    TooShort,
    /// A key with this id is already live.
    #[error("key id {0:?} already in the ring")]
    Duplicate(KeyId),
    /// Two keys are live already; remove one first.
    #[error("two keys are live already")]
    Full,
    /// No live key has this id.
    #[error("no key with id {0:?}")]
    Unknown(KeyId),
    /// The key is the one messages are sent with; switch first.
    #[error("key {0:?} is the send key")]
    IsSendKey(KeyId),
}

struct LiveKey {
    id: KeyId,
    /// Keyed once; cloned per message (saves re-hashing the key pads).
    mac: HmacSha256,
}

/// The (at most two) live proxy-group keys, and which one senders use.
pub struct KeyRing {
    keys: [Option<LiveKey>; 2],
    send: KeyId,
}

impl fmt::Debug for KeyRing {
    // Never print secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<KeyId> = self.keys.iter().flatten().map(|k| k.id).collect();
        f.debug_struct("KeyRing")
            .field("live", &ids)
            .field("send", &self.send)
            .finish()
    }
}

fn keyed(secret: &[u8]) -> Result<HmacSha256, KeyError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(KeyError::TooShort);
    }
    HmacSha256::new_from_slice(secret).map_err(|_| KeyError::TooShort)
}

impl KeyRing {
    /// A ring with one key, used for sending.
    pub fn new(id: KeyId, secret: &[u8]) -> Result<Self, KeyError> {
        Ok(KeyRing {
            keys: [
                Some(LiveKey {
                    id,
                    mac: keyed(secret)?,
                }),
                None,
            ],
            send: id,
        })
    }

    /// Add a second live key (accepted on receive; not sent with until
    /// [`KeyRing::set_send`]).
    pub fn add(&mut self, id: KeyId, secret: &[u8]) -> Result<(), KeyError> {
        if self.get(id).is_some() {
            return Err(KeyError::Duplicate(id));
        }
        let mac = keyed(secret)?;
        let slot = self
            .keys
            .iter_mut()
            .find(|k| k.is_none())
            .ok_or(KeyError::Full)?;
        *slot = Some(LiveKey { id, mac });
        Ok(())
    }

    /// Send with this (live) key from now on.
    pub fn set_send(&mut self, id: KeyId) -> Result<(), KeyError> {
        self.get(id).ok_or(KeyError::Unknown(id))?;
        self.send = id;
        Ok(())
    }

    /// Stop accepting a key (not the send key).
    pub fn remove(&mut self, id: KeyId) -> Result<(), KeyError> {
        if id == self.send {
            return Err(KeyError::IsSendKey(id));
        }
        let slot = self
            .keys
            .iter_mut()
            .find(|k| k.as_ref().is_some_and(|k| k.id == id))
            .ok_or(KeyError::Unknown(id))?;
        *slot = None;
        Ok(())
    }

    /// The key senders use.
    pub fn send_key_id(&self) -> KeyId {
        self.send
    }

    /// The ids of the live keys.
    pub fn live_ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().flatten().map(|k| k.id)
    }

    fn get(&self, id: KeyId) -> Option<&HmacSha256> {
        self.keys
            .iter()
            .flatten()
            .find(|k| k.id == id)
            .map(|k| &k.mac)
    }

    /// A secret derived from the send key: HMAC-SHA256(key, `label`).
    /// Labels start with `"PIAS v1 "`, whose seventh byte (`'1'`) is never
    /// the version byte a proxy MAC's input has there, so a derived secret
    /// is never a tag. Used for per-JAP session secrets
    /// ([`super::session::SessionSecret::derive`]).
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Some(k) = self.get(self.send) {
            let mut mac = k.clone();
            mac.update(label);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    /// Whether a key with this id is live.
    pub fn contains(&self, id: KeyId) -> bool {
        self.get(id).is_some()
    }

    fn tag_state(&self, id: KeyId, src: SocketAddrV4, covered: &[u8]) -> Option<HmacSha256> {
        let mut mac = self.get(id)?.clone();
        mac.update(&src.ip().octets());
        mac.update(&src.port().to_be_bytes());
        mac.update(covered);
        Some(mac)
    }

    /// The tag for `covered` sent from `src` with key `id`.
    pub fn tag(&self, id: KeyId, src: SocketAddrV4, covered: &[u8]) -> Option<[u8; MAC_TAG_LEN]> {
        let full = self.tag_state(id, src, covered)?.finalize().into_bytes();
        let mut out = [0u8; MAC_TAG_LEN];
        out.copy_from_slice(full.get(..MAC_TAG_LEN)?);
        Some(out)
    }

    /// Constant-time check of a received tag. `false` also for an unknown
    /// key id or a tag of the wrong length.
    pub fn verify(&self, id: KeyId, src: SocketAddrV4, covered: &[u8], tag: &[u8]) -> bool {
        if tag.len() != MAC_TAG_LEN {
            return false;
        }
        match self.tag_state(id, src, covered) {
            Some(mac) => mac.verify_truncated_left(tag).is_ok(),
            None => false,
        }
    }
}

/// Sealing a proxy-to-proxy message failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The message could not be written.
    #[error("emit: {0}")]
    Emit(#[from] EmitError),
    /// The sequence space of this epoch is used up: restart with a new
    /// epoch (at one message per nanosecond this takes 584 years).
    #[error("sequence numbers of this epoch exhausted")]
    SequenceExhausted,
    /// The ring has no send key (cannot happen with a ring built by
    /// [`KeyRing::new`]).
    #[error("no send key")]
    NoSendKey,
}

/// The sending side of one proxy: its id, its epoch (boot count, persisted
/// and incremented by the driver at every start, RFC 7474 §4) and the
/// message counter within the epoch.
#[derive(Clone, Debug)]
pub struct Sealer {
    sender: ProxyId,
    epoch: u32,
    next_seq: u64,
}

impl Sealer {
    /// A sealer for a proxy that just started with this boot count.
    pub fn new(sender: ProxyId, epoch: u32) -> Self {
        Sealer {
            sender,
            epoch,
            next_seq: 0,
        }
    }

    /// The sender id.
    pub fn sender(&self) -> ProxyId {
        self.sender
    }

    /// The epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Write `msg` into `buf` with a fresh `(epoch, seq)` and the MAC for a
    /// datagram sent from `src`. Returns the datagram's length.
    pub fn seal(
        &mut self,
        keys: &KeyRing,
        msg: &Message,
        src: SocketAddrV4,
        buf: &mut [u8],
    ) -> Result<usize, SealError> {
        let seq = self.next_seq;
        let next = seq.checked_add(1).ok_or(SealError::SequenceExhausted)?;
        let header = ProxyHeader {
            sender: self.sender,
            key_id: keys.send_key_id(),
            epoch: self.epoch,
            seq,
        };
        let len = msg.emit(Some(&header), buf)?;
        let body_end = len - MAC_TAG_LEN;
        let (covered, rest) = buf.split_at_mut(body_end);
        let tag = keys
            .tag(header.key_id, src, covered)
            .ok_or(SealError::NoSendKey)?;
        rest.get_mut(..MAC_TAG_LEN)
            .ok_or(SealError::Emit(EmitError::BufferTooSmall))?
            .copy_from_slice(&tag);
        self.next_seq = next;
        Ok(len)
    }
}
