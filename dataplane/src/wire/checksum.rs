//! The internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums here are *one's complement sums folded to 16 bits*, not yet
//! complemented: [`data`] and [`pseudo_header_v4`] return sums, and
//! [`combine`] adds them; a header's checksum field holds `!sum`. A buffer
//! that includes a correct checksum field sums to `0xFFFF`.
//!
//! # Incremental update
//!
//! When a 16-bit field changes from `m` to `m'`, the new checksum is
//! RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` ([`update16`]); a 32-bit field
//! (an IPv4 address, a TCP sequence number) is two such words
//! ([`update32`]). RFC 1141's older form `HC' = HC + m + ~m'` is *not* used:
//! it can produce `0x0000` where a full recompute gives `0xFFFF` (RFC 1624
//! §3). With eqn. 3, for any header whose bytes are not all zero (every IPv4
//! header, every pseudo-header), the incremental result equals a full
//! recompute exactly.
//!
//! # UDP's zero
//!
//! In UDP over IPv4 a checksum field of 0 means "no checksum" (RFC 768): an
//! update must leave it 0, and a computed checksum of 0 is sent as `0xFFFF`
//! (its other one's complement representation). [`crate::wire::udp`] does
//! both; TCP and ICMP have no such rule and keep a computed 0.

use core::net::Ipv4Addr;

use super::ip::IpProtocol;

/// Folds a 64-bit accumulator of 16-bit words to a 16-bit one's
/// complement sum (end-around carry).
///
/// Four end-around-carry steps, no loop: 2³² ≡ 2¹⁶ ≡ 1 (mod 0xFFFF), so
/// each step keeps the value's residue, and a non-zero value stays
/// non-zero; the bounds (< 2³³, ≤ 0x2FFFE, ≤ 0x10001, ≤ 0xFFFF) make the
/// last one fit. The result is the one representative in 1..=0xFFFF of a
/// non-zero sum's residue (0 for 0): what folding 16 bits at a time until
/// it fits gives (`fold_matches_the_loop` checks), without its
/// data-dependent branch on every checksum update of the fast path.
#[inline]
fn fold(sum: u64) -> u16 {
    let s = (sum & 0xFFFF_FFFF) + (sum >> 32);
    let s = (s & 0xFFFF) + (s >> 16);
    let s = (s & 0xFFFF) + (s >> 16);
    let s = (s & 0xFFFF) + (s >> 16);
    s as u16
}

/// One's complement sum of `bytes` as big-endian 16-bit words (an odd last
/// byte is padded with a zero byte), folded to 16 bits.
///
/// Reads 32-bit words into a 64-bit accumulator: 2¹⁶ ≡ 1 (mod 2¹⁶ − 1), so
/// summing 32-bit words and folding equals summing 16-bit words.
///
/// An IPv4 header without options (20 bytes: every outer header, nearly
/// every inner one) takes [`header20`]'s straight-line sum instead of the
/// loop and its tail handling: it is summed once or twice per packet on
/// the fast path.
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    if let Ok(h) = <&[u8; 20]>::try_from(bytes) {
        return header20(h);
    }
    let mut acc: u64 = 0;
    let mut words = bytes.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_be_bytes(tail));
    fold(acc)
}

/// [`data`] of exactly 20 bytes: five 32-bit words, no loop, no tail.
#[inline]
pub fn header20(h: &[u8; 20]) -> u16 {
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    fold(w(0) + w(4) + w(8) + w(12) + w(16))
}

/// One's complement sum of several sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo-header (RFC 768, RFC 793 §3.1): source,
/// destination, zero, protocol, and the transport length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, len: u16) -> u16 {
    let acc = u64::from(u32::from(src))
        + u64::from(u32::from(dst))
        + u64::from(proto.number())
        + u64::from(len);
    fold(acc)
}

/// The checksum field value for a buffer whose sum is `sum`.
#[inline]
pub const fn finish(sum: u16) -> u16 {
    !sum
}

/// RFC 1624 eqn. 3: the checksum after a 16-bit word of the covered data
/// changes from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// RFC 1624 eqn. 3 for a 32-bit field (two adjacent 16-bit words, at an even
/// offset of the covered data), e.g. an IPv4 address.
#[inline]
pub fn update32(checksum: u16, old: u32, new: u32) -> u16 {
    let acc = u64::from(!checksum)
        + u64::from(!(old >> 16) as u16)
        + u64::from(!(old as u16))
        + u64::from((new >> 16) as u16)
        + u64::from(new as u16);
    !fold(acc)
}

/// [`update16`] for a 16-bit field that starts at `offset` in the covered
/// data. At an odd offset the field straddles two words and contributes its
/// bytes swapped (RFC 1071 §2(B): the sum is byte-order independent), so the
/// update uses the swapped values.
#[inline]
pub fn update16_at(checksum: u16, offset: usize, old: u16, new: u16) -> u16 {
    if offset % 2 == 0 {
        update16(checksum, old, new)
    } else {
        update16(checksum, old.swap_bytes(), new.swap_bytes())
    }
}

/// Several RFC 1624 replacements (eqn. 3) summed, applied with one fold:
/// the fast path rewrites up to four words of one checksum at once (NAT:
/// both addresses of the pseudo-header and both ports).
///
/// Applying a `Delta` gives exactly the checksum that applying each
/// replacement in turn with [`update16`] / [`update32`] gives. Each of those
/// computes `!fold(!c + d)`; chained, the value folded last is congruent
/// (mod 0xFFFF) to the plain sum `!c₀ + Σd`, and it is zero exactly when
/// that sum is zero (a chained fold input is zero only if every term
/// before it is). `fold` maps both to the same value: 0 for 0, else the one
/// representative in 1..=0xFFFF. (`delta_matches_updates_in_turn` checks
/// it, with UDP's zero rule too.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta(u64);

impl Delta {
    /// No change.
    pub const NONE: Delta = Delta(0);

    /// A 16-bit word changes from `old` to `new`.
    #[inline]
    pub fn word(&mut self, old: u16, new: u16) {
        self.0 += u64::from(!old) + u64::from(new);
    }

    /// A 32-bit field (an address) changes from `old` to `new`.
    #[inline]
    pub fn word32(&mut self, old: u32, new: u32) {
        self.word((old >> 16) as u16, (new >> 16) as u16);
        self.word(old as u16, new as u16);
    }

    /// The checksum `checksum` after every change.
    #[inline]
    pub fn apply(self, checksum: u16) -> u16 {
        !fold(u64::from(!checksum) + self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: 16 bits at a time until it fits.
    fn fold_loop(mut sum: u64) -> u16 {
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        sum as u16
    }

    proptest! {
        #[test]
        fn delta_matches_updates_in_turn(c0: u16, changes in prop::collection::vec((any::<bool>(), any::<u32>(), any::<u32>()), 0..6)) {
            let edge = [0u16, 0xFFFF, 1, 0xFFFE];
            for c in [c0, edge[usize::from(c0) % 4]] {
                let (mut seq, mut udp, mut d) = (c, c, Delta::NONE);
                for &(wide, old, new) in &changes {
                    if wide {
                        seq = update32(seq, old, new);
                        udp = nz(update32(udp, old, new));
                        d.word32(old, new);
                    } else {
                        let (o, n) = (old as u16, new as u16);
                        seq = update16(seq, o, n);
                        udp = nz(update16(udp, o, n));
                        d.word(o, n);
                    }
                }
                prop_assert_eq!(d.apply(c), seq);
                // UDP: every step maps 0 to 0xFFFF; so does the whole.
                if c != 0 && !changes.is_empty() {
                    prop_assert_eq!(nz(d.apply(c)), udp);
                }
            }
        }
    }

    fn nz(c: u16) -> u16 {
        if c == 0 { 0xFFFF } else { c }
    }

    #[test]
    fn fold_matches_the_loop_at_the_edges() {
        for x in [0, 1, 0xFFFF, 0x1_0000, 0x1_FFFE, 0x1_FFFF, 0x2_FFFE, 0xFFFF_FFFF, 0x1_0000_0000, 0x1_FFFF_FFFE, u64::MAX, u64::MAX - 1, 0xFFFF_0000_FFFF_0000] {
            assert_eq!(fold(x), fold_loop(x), "{x:#x}");
        }
    }

    proptest! {
        #[test]
        fn fold_matches_the_loop(x: u64, small in 0u64..0x10_0000) {
            prop_assert_eq!(fold(x), fold_loop(x));
            prop_assert_eq!(fold(small), fold_loop(small));
        }
    }

    /// Reference: RFC 1071 written the obvious way, 16 bits at a time.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(w);
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(finish(data(&bytes)), 0x220d);
    }

    #[test]
    fn odd_lengths() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: a header sums to 0xCD7A (checksum 0x3285); a word
        // changes from 0x5555 to 0x3285. Eqn. 3 gives 0x0000, where
        // RFC 1141 gives the wrong 0xFFFF.
        assert_eq!(update16(0xDD2F, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn pseudo_header_sum() {
        let s = pseudo_header_v4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(198, 51, 100, 7),
            IpProtocol::Udp,
            8,
        );
        let mut bytes = [0u8; 12];
        bytes[0..4].copy_from_slice(&[192, 0, 2, 1]);
        bytes[4..8].copy_from_slice(&[198, 51, 100, 7]);
        bytes[9] = 17;
        bytes[10..12].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(s, data(&bytes));
    }

    fn full(buf: &[u8], field: usize) -> u16 {
        let mut b = buf.to_vec();
        b[field] = 0;
        b[field + 1] = 0;
        finish(data(&b))
    }

    proptest! {
        #[test]
        fn data_matches_reference(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(data(&bytes), reference(&bytes));
        }

        /// The 20-byte fast path (what `data` takes for a header without
        /// options) against the reference.
        #[test]
        fn header20_matches_reference(bytes in any::<[u8; 20]>()) {
            prop_assert_eq!(header20(&bytes), reference(&bytes));
            prop_assert_eq!(data(&bytes), reference(&bytes));
        }

        /// A buffer with its checksum written in sums to 0xFFFF.
        #[test]
        fn verify_after_fill(mut bytes in proptest::collection::vec(any::<u8>(), 4..100)) {
            bytes[0] |= 0x40; // never all zero
            bytes[2] = 0;
            bytes[3] = 0;
            let c = finish(data(&bytes));
            bytes[2..4].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(data(&bytes), 0xFFFF);
        }

        /// RFC 1624 eqn. 3 equals a full recompute, for a 16-bit word at any
        /// offset (even or odd) and any values, including 0x0000 and 0xFFFF.
        #[test]
        fn update16_equals_recompute(
            mut bytes in proptest::collection::vec(any::<u8>(), 8..64),
            at in 4usize..64,
            new in prop_oneof![Just(0u16), Just(0xFFFF), any::<u16>()],
        ) {
            bytes[0] |= 0x40;
            let at = 4 + (at - 4) % (bytes.len() - 5);
            bytes[2] = 0;
            bytes[3] = 0;
            let c = finish(data(&bytes));
            bytes[2..4].copy_from_slice(&c.to_be_bytes());
            let old = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
            bytes[at..at + 2].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update16_at(c, at, old, new), full(&bytes, 2));
        }

        #[test]
        fn update32_equals_recompute(
            mut bytes in proptest::collection::vec(any::<u8>(), 12..64),
            word in 1usize..16,
            new in prop_oneof![Just(0u32), Just(u32::MAX), Just(0xFFFF_0000), any::<u32>()],
        ) {
            bytes[0] |= 0x40;
            let at = 4 * (1 + word % (bytes.len() / 4 - 1));
            bytes[2] = 0;
            bytes[3] = 0;
            let c = finish(data(&bytes));
            bytes[2..4].copy_from_slice(&c.to_be_bytes());
            let old = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
            bytes[at..at + 4].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update32(c, old, new), full(&bytes, 2));
        }
    }
}
