//! Text forms of the group owner's Ed25519 keys (PROTOCOL.md §5.4), shared
//! by the target agent (`pias-target`) and the proxy's configuration so
//! both read exactly the same thing.
//!
//! - **Secret key file**: the 32-byte Ed25519 secret seed (RFC 8032 §5.1.5,
//!   the "private key" `k`) as 64 hexadecimal digits, upper or lower case,
//!   optionally surrounded by whitespace (a trailing newline), nothing
//!   else. `pias-target keygen` writes it with mode 0600.
//! - **Public key** (what a proxy's configuration holds for a group, and
//!   what [`crate::wire::GroupRegister::owner_key`] carries): the 32-byte
//!   Ed25519 public key as 64 hexadecimal digits.
//!
//! Hex, not base64 or PEM: it can be compared by eye, pasted into YAML
//! without quoting rules, and has a single spelling up to case.

use ed25519_dalek::{SigningKey, VerifyingKey};

/// Why a key text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    /// Not 64 hexadecimal digits.
    #[error("expected 64 hexadecimal digits (32 bytes), found {found}")]
    Format {
        /// What was found instead (length, or the offending character).
        found: String,
    },
    /// 32 bytes that are not a valid Ed25519 public key (not a point of the
    /// curve, or of small order).
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
}

/// Lower-case hexadecimal of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// 32 bytes from exactly 64 hexadecimal digits (whitespace around them is
/// ignored).
pub fn parse_hex32(text: &str) -> Result<[u8; 32], KeyTextError> {
    let t = text.trim().as_bytes();
    if t.len() != 64 {
        return Err(KeyTextError::Format {
            found: format!("{} characters", t.len()),
        });
    }
    let mut out = [0u8; 32];
    for (i, pair) in t.chunks_exact(2).enumerate() {
        let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else {
            let bad = pair
                .iter()
                .find(|c| nibble(**c).is_none())
                .map_or('?', |c| char::from(*c));
            return Err(KeyTextError::Format {
                found: format!("{bad:?} at position {}", i * 2),
            });
        };
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

/// A group owner's secret key from the text of a secret key file.
pub fn parse_secret(text: &str) -> Result<SigningKey, KeyTextError> {
    Ok(SigningKey::from_bytes(&parse_hex32(text)?))
}

/// The text of a secret key file for `key` (with a trailing newline).
pub fn secret_text(key: &SigningKey) -> String {
    let mut s = to_hex(key.as_bytes());
    s.push('\n');
    s
}

/// A group owner's public key from its 64-digit hexadecimal form; refuses
/// bytes that are not a usable Ed25519 key.
pub fn parse_public(text: &str) -> Result<VerifyingKey, KeyTextError> {
    let bytes = parse_hex32(text)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyTextError::InvalidPublicKey)?;
    if key.is_weak() {
        return Err(KeyTextError::InvalidPublicKey);
    }
    Ok(key)
}

/// The 64-digit hexadecimal form of a public key.
pub fn public_text(key: &VerifyingKey) -> String {
    to_hex(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_round_trips_and_matches_rfc8032_test_1() {
        // RFC 8032 §7.1, TEST 1: secret key and its public key.
        let sk = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let pk = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let key = parse_secret(&format!("  {sk}\n")).expect("valid");
        assert_eq!(public_text(&key.verifying_key()), pk);
        assert_eq!(secret_text(&key), format!("{sk}\n"));
        assert_eq!(
            parse_public(&pk.to_uppercase()).expect("valid"),
            key.verifying_key()
        );
    }

    #[test]
    fn bad_texts_say_what_is_wrong() {
        let e = parse_secret("abc").expect_err("short");
        assert_eq!(
            e.to_string(),
            "expected 64 hexadecimal digits (32 bytes), found 3 characters"
        );
        let mut s = "0".repeat(64);
        s.replace_range(10..11, "g");
        let e = parse_secret(&s).expect_err("not hex");
        assert!(e.to_string().contains("'g' at position 10"), "{e}");
        assert!(parse_secret(&"0".repeat(66)).is_err());
        assert!(parse_secret(&format!("{} {}", "0".repeat(32), "0".repeat(32))).is_err());
        // The identity point is of small order: refused as a public key.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert_eq!(
            parse_public(&to_hex(&ident)),
            Err(KeyTextError::InvalidPublicKey)
        );
    }
}
