//! Registered groups: options and owner key per group, as the operator
//! registered them ([`GroupRegister`]). Every proxy holds the whole table,
//! because any proxy may become a target's JAP and must check its join.
//!
//! Registrations are ordered by their serial: one at or below the serial
//! held for the group is stale and refused, so a registration can be
//! relayed verbatim between proxies, repeated or reordered, and the table
//! ends the same everywhere. A withdrawn group stays as a tombstone with
//! its serial, so an older registration cannot bring it back.

use ed25519_dalek::VerifyingKey;
use hashbrown::HashMap;
use pias_dataplane::types::{GroupAddr, GroupOptions};

use crate::auth::GroupKeys;
use crate::wire::GroupRegister;

/// Default cap on registered groups (tombstones included).
pub const DEFAULT_MAX_GROUPS: usize = 1_000_000;

/// One registered group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    /// Options set by the operator.
    pub options: GroupOptions,
    /// Joins must be signed by this key.
    pub owner_key: VerifyingKey,
    /// Serial of the registration in force.
    pub serial: u64,
    /// Deleted by the operator: joins are refused.
    pub withdrawn: bool,
}

/// What a registration changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupChange {
    /// A group not known before.
    Added,
    /// A known group's options or key changed (or it came back).
    Updated,
    /// The group was withdrawn.
    Withdrawn,
}

/// A registration refused by the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Serial at or below the one held: a replay or a reordered older one.
    #[error("stale serial {got} (holding {have})")]
    StaleSerial {
        /// The serial held.
        have: u64,
        /// The serial received.
        got: u64,
    },
    /// The owner key is not a valid Ed25519 point.
    #[error("invalid owner key")]
    InvalidOwnerKey,
    /// The table holds its maximum of groups.
    #[error("group table full")]
    Full,
}

/// Refusals, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryCounters {
    /// Registrations applied.
    pub applied: u64,
    /// [`RegistryError::StaleSerial`].
    pub stale_serial: u64,
    /// [`RegistryError::InvalidOwnerKey`].
    pub invalid_owner_key: u64,
    /// [`RegistryError::Full`].
    pub full: u64,
}

/// The table of registered groups.
#[derive(Clone, Debug)]
pub struct GroupRegistry {
    groups: HashMap<GroupAddr, GroupRecord>,
    cap: usize,
    counters: RegistryCounters,
}

impl Default for GroupRegistry {
    fn default() -> Self {
        GroupRegistry::new(DEFAULT_MAX_GROUPS)
    }
}

impl GroupRegistry {
    /// An empty table of at most `cap` groups.
    pub fn new(cap: usize) -> Self {
        GroupRegistry {
            groups: HashMap::new(),
            cap,
            counters: RegistryCounters::default(),
        }
    }

    /// Apply an authenticated registration (see [`crate::auth::Accepted::Operator`]).
    pub fn apply(&mut self, reg: &GroupRegister) -> Result<GroupChange, RegistryError> {
        let r = self.apply_inner(reg);
        match r {
            Ok(_) => self.counters.applied += 1,
            Err(RegistryError::StaleSerial { .. }) => self.counters.stale_serial += 1,
            Err(RegistryError::InvalidOwnerKey) => self.counters.invalid_owner_key += 1,
            Err(RegistryError::Full) => self.counters.full += 1,
        }
        r
    }

    fn apply_inner(&mut self, reg: &GroupRegister) -> Result<GroupChange, RegistryError> {
        let prev = self.groups.get(&reg.group);
        if let Some(p) = prev {
            if reg.serial <= p.serial {
                return Err(RegistryError::StaleSerial {
                    have: p.serial,
                    got: reg.serial,
                });
            }
        } else if self.groups.len() >= self.cap {
            return Err(RegistryError::Full);
        }
        let owner_key =
            VerifyingKey::from_bytes(&reg.owner_key).map_err(|_| RegistryError::InvalidOwnerKey)?;
        let change = match (prev, reg.withdrawn) {
            (_, true) => GroupChange::Withdrawn,
            (None, false) => GroupChange::Added,
            (Some(_), false) => GroupChange::Updated,
        };
        self.groups.insert(
            reg.group,
            GroupRecord {
                options: reg.options,
                owner_key,
                serial: reg.serial,
                withdrawn: reg.withdrawn,
            },
        );
        Ok(change)
    }

    /// A group's record (withdrawn ones included).
    pub fn get(&self, group: &GroupAddr) -> Option<&GroupRecord> {
        self.groups.get(group)
    }

    /// Every group held (withdrawn ones included), in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&GroupAddr, &GroupRecord)> + '_ {
        self.groups.iter()
    }

    /// Groups held, tombstones included.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when no group is held.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The counters.
    pub fn counters(&self) -> &RegistryCounters {
        &self.counters
    }
}

impl GroupKeys for GroupRegistry {
    fn owner_key(&self, group: &GroupAddr) -> Option<&VerifyingKey> {
        self.groups
            .get(group)
            .filter(|r| !r.withdrawn)
            .map(|r| &r.owner_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use ed25519_dalek::SigningKey;
    use pias_dataplane::types::GroupProto;

    fn reg(serial: u64, withdrawn: bool, seed: u8) -> GroupRegister {
        GroupRegister {
            group: GroupAddr::Port {
                ip: Ipv4Addr::new(198, 51, 100, 10),
                port: 53,
                proto: GroupProto::Udp,
            },
            options: GroupOptions::default(),
            withdrawn,
            serial,
            owner_key: SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        }
    }

    #[test]
    fn serials_order_registrations() {
        let mut t = GroupRegistry::new(10);
        let g = reg(1, false, 1).group;
        assert_eq!(t.apply(&reg(1, false, 1)), Ok(GroupChange::Added));
        assert_eq!(
            t.apply(&reg(1, false, 2)),
            Err(RegistryError::StaleSerial { have: 1, got: 1 })
        );
        assert_eq!(t.apply(&reg(3, false, 2)), Ok(GroupChange::Updated));
        assert_eq!(
            t.owner_key(&g).map(|k| k.to_bytes()),
            Some(SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes())
        );
        assert_eq!(t.apply(&reg(4, true, 2)), Ok(GroupChange::Withdrawn));
        assert!(t.owner_key(&g).is_none());
        assert!(
            t.apply(&reg(2, false, 1)).is_err(),
            "tombstone keeps old serials out"
        );
        assert_eq!(t.counters().stale_serial, 2);
        assert_eq!(t.counters().applied, 3);
    }

    #[test]
    fn cap_and_bad_key() {
        let mut t = GroupRegistry::new(1);
        t.apply(&reg(1, false, 1)).unwrap();
        let mut other = reg(1, false, 1);
        other.group = GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 11));
        assert_eq!(t.apply(&other), Err(RegistryError::Full));
        let mut t = GroupRegistry::new(4);
        // About half of all 32-byte strings are not a point's encoding.
        let invalid = (2u8..=255)
            .map(|b| [b; 32])
            .find(|k| VerifyingKey::from_bytes(k).is_err())
            .expect("some byte string is not a curve point");
        let mut bad = reg(1, false, 1);
        bad.owner_key = invalid;
        assert_eq!(t.apply(&bad), Err(RegistryError::InvalidOwnerKey));
        assert_eq!(t.counters().invalid_owner_key, 1);
        assert!(t.is_empty());
    }
}
