//! SipHash-2-4 (Aumasson & Bernstein, 2012), the hash behind rendezvous
//! RAP selection ([`crate::rendezvous`]).
//!
//! Why our own 60 lines: RAP choice must be identical on every proxy, on
//! every build, platform and Rust version, forever within a protocol
//! version. `std`'s `DefaultHasher` promises none of that, and a crate
//! upgrade must not silently move every group's RAPs. SipHash-2-4 is
//! specified exactly, and this implementation is checked against the
//! paper's test vectors and against `std`'s (deprecated, but stable)
//! `SipHasher`, which is SipHash-2-4.

/// SipHash-2-4 of `data` under the 128-bit key `(k0, k1)` (each half read
/// little-endian from the key bytes, as in the reference implementation).
pub fn siphash24(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        compress(&mut v, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    // Length mod 256 in the top byte, as the specification says.
    last[7] = data.len() as u8;
    compress(&mut v, u64::from_le_bytes(last));
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    round(v);
    round(v);
    v[0] ^= m;
}

fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;

    const K0: u64 = 0x0706_0504_0302_0100;
    const K1: u64 = 0x0f0e_0d0c_0b0a_0908;

    #[test]
    fn paper_vectors() {
        // Key 00..0f; message 00..(n-1). From the reference test vectors
        // (vectors.h) and the paper's Appendix A (15-byte message).
        let msg: Vec<u8> = (0u8..64).collect();
        assert_eq!(siphash24(K0, K1, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(K0, K1, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(K0, K1, &msg[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash24(K0, K1, &msg[..15]), 0xa129_ca61_49be_45e5);
    }

    #[test]
    #[allow(deprecated)]
    fn matches_std_siphasher() {
        use std::hash::{Hasher, SipHasher};
        let mut x: u64 = 0x1234_5678;
        for len in 0..200usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 56) as u8
                })
                .collect();
            let (k0, k1) = (x, x.rotate_left(17) ^ 0xdead_beef);
            let mut h = SipHasher::new_with_keys(k0, k1);
            h.write(&data);
            assert_eq!(siphash24(k0, k1, &data), h.finish(), "len {len}");
        }
    }
}
