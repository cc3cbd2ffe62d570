//! Proximity between clusters (seed §3.5): RAPs choose JAPs, and IAPs
//! choose among a group's RAPs, by the RTT between clusters. This module
//! holds the RTT matrix; the probing and advertising state machine that
//! fills it is issue 5 item 8 (it will feed [`RttMatrix::set`] from
//! [`crate::wire::RttAdvert`]s).

use hashbrown::HashMap;
use pias_dataplane::types::ClusterId;

/// Symmetric RTTs between clusters, in microseconds. The RTT of a cluster
/// to itself is 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RttMatrix {
    rtt_us: HashMap<(ClusterId, ClusterId), u32>,
}

fn pair(a: ClusterId, b: ClusterId) -> (ClusterId, ClusterId) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl RttMatrix {
    /// An empty matrix.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record the RTT between two clusters (both directions).
    pub fn set(&mut self, a: ClusterId, b: ClusterId, rtt_us: u32) {
        if a != b {
            self.rtt_us.insert(pair(a, b), rtt_us);
        }
    }

    /// The RTT between two clusters, if measured.
    pub fn get(&self, a: ClusterId, b: ClusterId) -> Option<u32> {
        if a == b {
            Some(0)
        } else {
            self.rtt_us.get(&pair(a, b)).copied()
        }
    }

    /// Forget the RTTs of a cluster (its last proxy went down).
    pub fn remove_cluster(&mut self, c: ClusterId) {
        self.rtt_us.retain(|&(a, b), _| a != c && b != c);
    }

    /// Number of measured pairs.
    pub fn len(&self) -> usize {
        self.rtt_us.len()
    }

    /// True when nothing is measured.
    pub fn is_empty(&self) -> bool {
        self.rtt_us.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_self_zero() {
        let mut m = RttMatrix::new();
        m.set(ClusterId(2), ClusterId(1), 500);
        assert_eq!(m.get(ClusterId(1), ClusterId(2)), Some(500));
        assert_eq!(m.get(ClusterId(2), ClusterId(1)), Some(500));
        assert_eq!(m.get(ClusterId(3), ClusterId(3)), Some(0));
        assert_eq!(m.get(ClusterId(1), ClusterId(3)), None);
        m.remove_cluster(ClusterId(1));
        assert!(m.is_empty());
    }
}
