//! The session key exchange (PROTOCOL.md §5.6): ephemeral-ephemeral X25519
//! (RFC 7748) bound to the signed request, then HKDF-SHA256 (RFC 5869).
//!
//! The target puts a fresh [`KeyShare`] into its signed join or refresh
//! (so the share cannot be swapped without breaking the signature); the
//! JAP answers with its own share in the ack. Both compute the X25519
//! shared secret and derive the 16-byte session key:
//!
//! ```text
//! PRK = HKDF-Extract(salt = target share (32) ‖ JAP share (32), IKM = X25519 shared secret)
//! key = HKDF-Expand(PRK, info = "PIAS v2 session key\0" ‖ group (7) ‖ target (6)
//!                              ‖ request nonce (8) ‖ session id (8) ‖ expiry (8), 16)
//! ```
//!
//! A passive observer sees two public shares and learns nothing of the
//! key; an active attacker who swaps the JAP's share in the
//! (unauthenticated) ack makes the target derive a key the JAP never
//! accepts, which only denies the session (the target signs again). An
//! all-zero shared secret (a share of small order) is refused
//! ([`SmallOrder`]): no session is granted or used.

use core::fmt;

use curve25519_dalek::montgomery::MontgomeryPoint;
use pias_dataplane::types::{GroupAddr, TargetAddr};
use rand::RngCore;
use zeroize::Zeroizing;

use super::hkdf;
use crate::time::UnixTime;
use crate::wire::group::group_addr_bytes;
use crate::wire::{KeyShare, KEY_SHARE_LEN, SESSION_KEY_LEN};

/// The label that starts the HKDF info of a session key.
pub const SESSION_KEY_INFO: &[u8] = b"PIAS v2 session key\0";

/// The X25519 function of RFC 7748 §5: `scalar` (clamped) times the point
/// of u-coordinate `u`.
pub fn x25519(scalar: [u8; 32], u: [u8; 32]) -> [u8; 32] {
    MontgomeryPoint(u).mul_clamped(scalar).to_bytes()
}

/// The exchange produced an all-zero shared secret: the peer's share has
/// small order (RFC 7748 §6.1), so the "secret" is known to everyone. No
/// session comes of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key share of small order (all-zero shared secret)")]
pub struct SmallOrder;

/// An ephemeral X25519 private key and its public share. Used for one
/// exchange: [`EphemeralSecret::session_key`] consumes it, and the private
/// bytes are zeroed when it is dropped.
pub struct EphemeralSecret {
    secret: Zeroizing<[u8; 32]>,
    share: KeyShare,
}

impl fmt::Debug for EphemeralSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralSecret")
            .field("share", &self.share)
            .finish_non_exhaustive()
    }
}

impl EphemeralSecret {
    /// The key of 32 secret random bytes (clamped by X25519 itself).
    pub fn from_bytes(secret: [u8; 32]) -> Self {
        let secret = Zeroizing::new(secret);
        let share = KeyShare(MontgomeryPoint::mul_base_clamped(*secret).to_bytes());
        EphemeralSecret { secret, share }
    }

    /// A key drawn from `rng` (a cryptographic generator: the agent's).
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut b[..]);
        Self::from_bytes(*b)
    }

    /// The public share to send.
    pub fn share(&self) -> KeyShare {
        self.share
    }

    /// The session key agreed with `peer`'s share over `t`, consuming this
    /// key (an ephemeral key serves one exchange).
    pub fn session_key(
        self,
        peer: &KeyShare,
        t: &Transcript<'_>,
    ) -> Result<[u8; SESSION_KEY_LEN], SmallOrder> {
        let shared = Zeroizing::new(x25519(*self.secret, peer.0));
        // Constant time: OR of every byte, no early exit.
        if shared.iter().fold(0u8, |acc, b| acc | b) == 0 {
            return Err(SmallOrder);
        }
        Ok(derive_key(&shared, t))
    }
}

/// What a session key is bound to besides the shared secret: the signed
/// request's group, target and nonce, the session the ack grants, and both
/// shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transcript<'a> {
    /// The group.
    pub group: &'a GroupAddr,
    /// The target.
    pub target: &'a TargetAddr,
    /// The nonce of the signed request (echoed in the ack).
    pub nonce: u64,
    /// The session id the ack grants.
    pub session: u64,
    /// The session's expiry the ack states.
    pub expires: UnixTime,
    /// The target's share (in the signed request).
    pub target_share: &'a KeyShare,
    /// The JAP's share (in the ack).
    pub jap_share: &'a KeyShare,
}

fn derive_key(shared: &[u8; 32], t: &Transcript<'_>) -> [u8; SESSION_KEY_LEN] {
    let mut salt = [0u8; 2 * KEY_SHARE_LEN];
    salt[..KEY_SHARE_LEN].copy_from_slice(&t.target_share.0);
    salt[KEY_SHARE_LEN..].copy_from_slice(&t.jap_share.0);
    let prk = hkdf::extract(&salt, shared);
    let mut key = [0u8; SESSION_KEY_LEN];
    // 16 bytes is far below HKDF's limit: expand cannot refuse it.
    let _ = hkdf::expand(
        &prk,
        &[
            SESSION_KEY_INFO,
            &group_addr_bytes(t.group),
            &t.target.ip.octets(),
            &t.target.port.to_be_bytes(),
            &t.nonce.to_be_bytes(),
            &t.session.to_be_bytes(),
            &t.expires.0.to_be_bytes(),
        ],
        &mut key,
    );
    key
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use pias_dataplane::types::GroupProto;

    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    /// RFC 7748 §5.2, the two single-shot vectors.
    #[test]
    fn rfc7748_5_2_vectors() {
        assert_eq!(
            x25519(
                hex32("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                hex32("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
            ),
            hex32("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
        );
        assert_eq!(
            x25519(
                hex32("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
                hex32("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"),
            ),
            hex32("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957")
        );
    }

    /// RFC 7748 §5.2, the iterated vector (1 and 1 000 iterations):
    /// k, u = X25519(k, u), k, starting from k = u = 9.
    #[test]
    fn rfc7748_5_2_iterated() {
        let mut k = [0u8; 32];
        k[0] = 9;
        let mut u = k;
        for i in 1..=1000 {
            let r = x25519(k, u);
            u = k;
            k = r;
            if i == 1 {
                assert_eq!(
                    k,
                    hex32("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
                );
            }
        }
        assert_eq!(
            k,
            hex32("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
        );
    }

    /// RFC 7748 §6.1: both public keys and the shared secret.
    #[test]
    fn rfc7748_6_1_diffie_hellman() {
        let alice = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let bob = hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let alice_pub = EphemeralSecret::from_bytes(alice).share();
        let bob_pub = EphemeralSecret::from_bytes(bob).share();
        assert_eq!(
            alice_pub.0,
            hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            bob_pub.0,
            hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let shared = hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(x25519(alice, bob_pub.0), shared);
        assert_eq!(x25519(bob, alice_pub.0), shared);
    }

    fn group() -> GroupAddr {
        GroupAddr::Port {
            ip: Ipv4Addr::new(198, 51, 100, 10),
            port: 53,
            proto: GroupProto::Udp,
        }
    }

    fn target() -> TargetAddr {
        TargetAddr {
            ip: Ipv4Addr::new(203, 0, 113, 5),
            port: 53,
        }
    }

    #[test]
    fn both_ends_agree_and_every_transcript_field_changes_the_key() {
        let (g, t) = (group(), target());
        let a = EphemeralSecret::from_bytes([1; 32]);
        let b = EphemeralSecret::from_bytes([2; 32]);
        let (sa, sb) = (a.share(), b.share());
        let tr = Transcript {
            group: &g,
            target: &t,
            nonce: 7,
            session: 1,
            expires: UnixTime(100),
            target_share: &sa,
            jap_share: &sb,
        };
        let ka = a.session_key(&sb, &tr).expect("not small order");
        let kb = b.session_key(&sa, &tr).expect("not small order");
        assert_eq!(ka, kb);
        let key = |tr: &Transcript<'_>| {
            EphemeralSecret::from_bytes([1; 32])
                .session_key(&sb, tr)
                .expect("not small order")
        };
        assert_eq!(key(&tr), ka, "deterministic");
        let g2 = GroupAddr::Port {
            ip: Ipv4Addr::new(198, 51, 100, 10),
            port: 54,
            proto: GroupProto::Udp,
        };
        let t2 = TargetAddr { port: 54, ..t };
        let other = KeyShare([9; 32]);
        for changed in [
            Transcript { group: &g2, ..tr },
            Transcript { target: &t2, ..tr },
            Transcript { nonce: 8, ..tr },
            Transcript { session: 2, ..tr },
            Transcript {
                expires: UnixTime(101),
                ..tr
            },
            Transcript {
                target_share: &other,
                ..tr
            },
            Transcript {
                jap_share: &other,
                ..tr
            },
        ] {
            assert_ne!(key(&changed), ka, "{changed:?}");
        }
    }

    /// Points of small order (RFC 7748 §6.1 "check for the all-zero
    /// value"): 0, 1, and the order-8 points; also their non-canonical
    /// encodings (u + p). Every one gives an all-zero secret and is refused.
    #[test]
    fn small_order_shares_are_refused() {
        let (g, t) = (group(), target());
        let small = [
            hex32("0000000000000000000000000000000000000000000000000000000000000000"),
            hex32("0100000000000000000000000000000000000000000000000000000000000000"),
            hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            hex32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
            hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            hex32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            hex32("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ];
        for s in small {
            let a = EphemeralSecret::from_bytes([5; 32]);
            let share = a.share();
            let peer = KeyShare(s);
            let tr = Transcript {
                group: &g,
                target: &t,
                nonce: 1,
                session: 1,
                expires: UnixTime(1),
                target_share: &share,
                jap_share: &peer,
            };
            assert_eq!(a.session_key(&peer, &tr), Err(SmallOrder), "{s:02x?}");
        }
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let s = format!("{:?}", EphemeralSecret::from_bytes([0xAB; 32]));
        assert!(
            !s.contains("171") && !s.to_lowercase().contains("ab, ab"),
            "{s}"
        );
    }
}
