//! Time as the state machines see it: passed in by the driver, never read
//! from the OS inside this crate (STYLE.md, quinn-proto shape).
//!
//! Two clocks, deliberately different types so one cannot be passed for the
//! other:
//! - [`Instant`]: monotonic nanoseconds since an arbitrary origin (the
//!   driver's start, or 0 in the simulator). Timers and failure detection.
//! - [`UnixTime`]: wall-clock seconds since the Unix epoch. Only the
//!   freshness check of signed target joins uses it (±30 s skew), because
//!   the target and the proxy share no other clock.

use core::ops::{Add, AddAssign};
use core::time::Duration;

/// A point on the driver's monotonic clock, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);

    /// From nanoseconds since the clock's origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// Nanoseconds since the clock's origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the end of time instead of wrapping.
    pub fn saturating_add(self, d: Duration) -> Instant {
        let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(d))
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

/// Wall-clock time in whole seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// Seconds since the Unix epoch.
    pub const fn as_secs(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_instead_of_wrapping() {
        let t = Instant::from_nanos(u64::MAX - 5);
        assert_eq!((t + Duration::from_secs(1)).as_nanos(), u64::MAX);
        assert_eq!(Instant::ZERO.saturating_since(t), Duration::ZERO);
        assert_eq!(
            Instant::from_nanos(3_000).saturating_since(Instant::from_nanos(1_000)),
            Duration::from_nanos(2_000)
        );
        assert_eq!((Instant::ZERO + Duration::MAX).as_nanos(), u64::MAX);
    }
}
