//! HKDF-SHA256 (RFC 5869), the key derivation of target sessions
//! (PROTOCOL.md §5.6): Extract concentrates the X25519 shared secret into a
//! pseudorandom key, Expand stretches it over the transcript. A few lines
//! over the `hmac` crate the protocol already uses, pinned by RFC 5869's
//! test vector 1.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Length of SHA-256's output, and of a pseudorandom key.
pub const HASH_LEN: usize = 32;

/// Longest output of Expand: 255 blocks (RFC 5869 §2.3).
pub const MAX_OKM_LEN: usize = 255 * HASH_LEN;

fn hmac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length: this cannot fail.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// HKDF-Extract(salt, IKM) = HMAC-SHA256(salt, IKM) (RFC 5869 §2.2). An
/// empty salt stands for 32 zero bytes, as the RFC says; HMAC pads a short
/// key with zeros, so the two are the same key.
pub fn extract(salt: &[u8], ikm: &[u8]) -> Zeroizing<[u8; HASH_LEN]> {
    let mut mac = hmac(salt);
    mac.update(ikm);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// HKDF-Expand(PRK, info, L) into `okm` (L = `okm.len()`, RFC 5869 §2.3);
/// `info` is given in pieces, concatenated. Returns false, writing
/// nothing, when L exceeds [`MAX_OKM_LEN`].
pub fn expand(prk: &[u8; HASH_LEN], info: &[&[u8]], okm: &mut [u8]) -> bool {
    if okm.len() > MAX_OKM_LEN {
        return false;
    }
    let base = hmac(prk);
    let mut t = Zeroizing::new([0u8; HASH_LEN]);
    for (i, chunk) in okm.chunks_mut(HASH_LEN).enumerate() {
        let mut mac = base.clone();
        if i > 0 {
            mac.update(&t[..]);
        }
        for part in info {
            mac.update(part);
        }
        // i < 255 by the length check above.
        mac.update(&[(i + 1) as u8]);
        t.copy_from_slice(&mac.finalize().into_bytes());
        chunk.copy_from_slice(&t[..chunk.len()]);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// RFC 5869 Appendix A.1 (test case 1, SHA-256).
    #[test]
    fn rfc5869_test_vector_1() {
        let ikm = [0x0b; 22];
        let salt = hex("000102030405060708090a0b0c");
        let info = hex("f0f1f2f3f4f5f6f7f8f9");
        let prk = extract(&salt, &ikm);
        assert_eq!(
            prk[..],
            hex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")[..]
        );
        let mut okm = [0u8; 42];
        assert!(expand(&prk, &[&info], &mut okm));
        assert_eq!(
            okm[..],
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")[..]
        );
        // Info given in pieces is the same info.
        let mut split = [0u8; 42];
        assert!(expand(&prk, &[&info[..3], &info[3..]], &mut split));
        assert_eq!(split, okm);
        // A prefix of the output is the shorter output.
        let mut short = [0u8; 16];
        assert!(expand(&prk, &[&info], &mut short));
        assert_eq!(short[..], okm[..16]);
    }

    #[test]
    fn expand_refuses_more_than_255_blocks() {
        let prk = [7u8; HASH_LEN];
        let mut big = vec![0xAAu8; MAX_OKM_LEN + 1];
        assert!(!expand(&prk, &[b"x"], &mut big));
        assert!(big.iter().all(|&b| b == 0xAA), "nothing written");
        let mut max = vec![0u8; MAX_OKM_LEN];
        assert!(expand(&prk, &[b"x"], &mut max));
    }
}
