//! Replay protection for proxy-to-proxy messages: a per-sender sliding
//! window over `(epoch, seq)` (RFC 7474's boot count + counter; the window
//! as in IPsec's RFC 4303 §3.4.3 and WireGuard).
//!
//! - `epoch` below the sender's current one: rejected (old epoch).
//! - `epoch` above: a restart; the window starts afresh there.
//! - same epoch: `seq` above the highest seen is accepted and slides the
//!   window; within the last [`WINDOW_BITS`] it is accepted once
//!   (duplicates rejected); older is rejected (too old). 1 024 bits tolerate
//!   the reordering of floods relayed over different paths.
//!
//! Checking is read-only ([`ReplayTable::check`]); the window moves only
//! when the caller commits ([`ReplayTable::commit`]), after the MAC and the
//! body have been verified, so a forged message cannot move it.

use hashbrown::HashMap;
use pias_dataplane::types::ProxyId;

/// Width of the window in sequence numbers.
pub const WINDOW_BITS: u64 = 1024;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// Why a sequence number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// This `(epoch, seq)` was accepted before.
    #[error("duplicate sequence number")]
    Duplicate,
    /// Older than the window.
    #[error("sequence number behind the window")]
    TooOld,
    /// From an epoch before the sender's current one.
    #[error("old epoch")]
    OldEpoch,
    /// A new sender and the table of senders is full.
    #[error("replay table full")]
    TableFull,
}

/// One sender's window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    epoch: u32,
    /// Nothing accepted yet in `epoch` (a fresh window, or one whose epoch
    /// floor was raised).
    empty: bool,
    top: u64,
    bits: [u64; WORDS],
}

impl ReplayWindow {
    /// A window that accepts anything from `floor` on.
    pub fn new(floor: u32) -> Self {
        ReplayWindow {
            epoch: floor,
            empty: true,
            top: 0,
            bits: [0; WORDS],
        }
    }

    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW_BITS;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn is_set(&self, seq: u64) -> bool {
        let (w, m) = Self::bit(seq);
        self.bits.get(w).is_some_and(|b| b & m != 0)
    }

    fn set(&mut self, seq: u64) {
        let (w, m) = Self::bit(seq);
        if let Some(b) = self.bits.get_mut(w) {
            *b |= m;
        }
    }

    fn clear(&mut self, seq: u64) {
        let (w, m) = Self::bit(seq);
        if let Some(b) = self.bits.get_mut(w) {
            *b &= !m;
        }
    }

    /// Would `(epoch, seq)` be accepted? Read-only.
    pub fn check(&self, epoch: u32, seq: u64) -> Result<(), ReplayError> {
        if epoch < self.epoch {
            return Err(ReplayError::OldEpoch);
        }
        if epoch > self.epoch || self.empty || seq > self.top {
            return Ok(());
        }
        if self.top - seq >= WINDOW_BITS {
            return Err(ReplayError::TooOld);
        }
        if self.is_set(seq) {
            return Err(ReplayError::Duplicate);
        }
        Ok(())
    }

    /// Record `(epoch, seq)` as accepted. Call only after [`Self::check`]
    /// passed for it.
    pub fn commit(&mut self, epoch: u32, seq: u64) {
        if epoch > self.epoch || self.empty {
            self.epoch = epoch;
            self.empty = false;
            self.top = seq;
            self.bits = [0; WORDS];
        } else if seq > self.top {
            let advance = seq - self.top;
            if advance >= WINDOW_BITS {
                self.bits = [0; WORDS];
            } else {
                for s in self.top + 1..seq {
                    self.clear(s);
                }
            }
            self.top = seq;
            self.clear(seq);
        }
        self.set(seq);
    }

    /// The sender's current epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Refuse every epoch below `floor` from now on.
    pub fn raise_floor(&mut self, floor: u32) {
        if floor > self.epoch {
            *self = ReplayWindow::new(floor);
        }
    }
}

/// Windows of every sender, with a cap (only MAC-verified senders get a
/// window, so the cap is a safety net against a key holder gone rogue).
#[derive(Clone, Debug)]
pub struct ReplayTable {
    windows: HashMap<ProxyId, ReplayWindow>,
    cap: usize,
}

impl ReplayTable {
    /// An empty table holding at most `cap` senders.
    pub fn new(cap: usize) -> Self {
        ReplayTable {
            windows: HashMap::new(),
            cap,
        }
    }

    /// Would this message be accepted? Read-only.
    pub fn check(&self, sender: ProxyId, epoch: u32, seq: u64) -> Result<(), ReplayError> {
        match self.windows.get(&sender) {
            Some(w) => w.check(epoch, seq),
            None if self.windows.len() >= self.cap => Err(ReplayError::TableFull),
            None => Ok(()),
        }
    }

    /// Record an accepted message. Call only after [`Self::check`] passed.
    pub fn commit(&mut self, sender: ProxyId, epoch: u32, seq: u64) {
        if !self.windows.contains_key(&sender) && self.windows.len() >= self.cap {
            return;
        }
        self.windows
            .entry(sender)
            .or_insert_with(|| ReplayWindow::new(epoch))
            .commit(epoch, seq);
    }

    /// Refuse epochs of `sender` below `floor` (e.g. the incarnation the
    /// membership layer knows for it), so a receiver that restarted cannot
    /// be fed a message captured in the sender's previous life.
    pub fn raise_floor(&mut self, sender: ProxyId, floor: u32) {
        if let Some(w) = self.windows.get_mut(&sender) {
            w.raise_floor(floor);
        } else if self.windows.len() < self.cap {
            self.windows.insert(sender, ReplayWindow::new(floor));
        }
    }

    /// Drop a sender's window (a proxy purged from membership).
    pub fn forget(&mut self, sender: ProxyId) {
        self.windows.remove(&sender);
    }

    /// Number of senders with a window.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// True when no sender has a window.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(w: &mut ReplayWindow, e: u32, s: u64) -> Result<(), ReplayError> {
        w.check(e, s)?;
        w.commit(e, s);
        Ok(())
    }

    #[test]
    fn window_rules() {
        let mut w = ReplayWindow::new(0);
        assert_eq!(accept(&mut w, 5, 100), Ok(()));
        assert_eq!(accept(&mut w, 5, 100), Err(ReplayError::Duplicate));
        assert_eq!(accept(&mut w, 5, 99), Ok(()));
        assert_eq!(accept(&mut w, 5, 99), Err(ReplayError::Duplicate));
        assert_eq!(accept(&mut w, 5, 2000), Ok(()));
        // 2000 - 977 = 1023 < 1024: still inside.
        assert_eq!(accept(&mut w, 5, 977), Ok(()));
        assert_eq!(accept(&mut w, 5, 976), Err(ReplayError::TooOld));
        assert_eq!(accept(&mut w, 5, 100), Err(ReplayError::TooOld));
        assert_eq!(accept(&mut w, 4, 5000), Err(ReplayError::OldEpoch));
        // New epoch: counter restarts.
        assert_eq!(accept(&mut w, 6, 0), Ok(()));
        assert_eq!(accept(&mut w, 6, 0), Err(ReplayError::Duplicate));
        assert_eq!(accept(&mut w, 5, 3000), Err(ReplayError::OldEpoch));
    }

    #[test]
    fn sliding_clears_reused_bits() {
        let mut w = ReplayWindow::new(0);
        accept(&mut w, 1, 10).unwrap();
        // 10 + 1024 maps to the same bit as 10; it must not read as seen.
        assert_eq!(accept(&mut w, 1, 10 + WINDOW_BITS), Ok(()));
        assert_eq!(accept(&mut w, 1, 11 + WINDOW_BITS), Ok(()));
        // top = 1035: 11 is 1 024 behind (out), 12 is 1 023 behind (in).
        assert_eq!(accept(&mut w, 1, 11), Err(ReplayError::TooOld));
        assert_eq!(accept(&mut w, 1, 12), Ok(()));
        assert_eq!(accept(&mut w, 1, 12), Err(ReplayError::Duplicate));
    }

    #[test]
    fn check_does_not_move_the_window() {
        let mut w = ReplayWindow::new(0);
        accept(&mut w, 1, 50).unwrap();
        let before = w.clone();
        assert_eq!(w.check(1, 10_000), Ok(()));
        assert_eq!(w.check(9, 0), Ok(()));
        assert_eq!(w, before);
    }

    #[test]
    fn floor_and_cap() {
        let mut t = ReplayTable::new(2);
        t.raise_floor(ProxyId(1), 7);
        assert_eq!(t.check(ProxyId(1), 6, 0), Err(ReplayError::OldEpoch));
        assert_eq!(t.check(ProxyId(1), 7, 0), Ok(()));
        t.commit(ProxyId(2), 1, 1);
        assert_eq!(t.check(ProxyId(3), 1, 1), Err(ReplayError::TableFull));
        t.forget(ProxyId(2));
        assert_eq!(t.check(ProxyId(3), 1, 1), Ok(()));
    }

    proptest::proptest! {
        /// Against a model that remembers everything: the window never
        /// accepts a duplicate, and accepts every fresh seq within reach.
        #[test]
        fn matches_model(seqs in proptest::collection::vec(0u64..3000, 1..300)) {
            let mut w = ReplayWindow::new(0);
            let mut seen = std::collections::BTreeSet::new();
            let mut top: Option<u64> = None;
            for s in seqs {
                let r = accept(&mut w, 1, s);
                if seen.contains(&s) {
                    proptest::prop_assert!(r.is_err());
                } else if top.is_none_or(|t| s > t || t - s < WINDOW_BITS) {
                    proptest::prop_assert_eq!(r, Ok(()));
                } else {
                    proptest::prop_assert_eq!(r, Err(ReplayError::TooOld));
                }
                if r.is_ok() {
                    seen.insert(s);
                    top = Some(top.map_or(s, |t| t.max(s)));
                }
            }
        }
    }
}
