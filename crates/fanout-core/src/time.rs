//! Time as the ledger and the parked messages write it. The one place time is formatted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Margin added to an invocation's deadline for clock skew between Lambda hosts: an
/// invocation cannot still run past its deadline, but another host's clock may read slightly
/// behind ours.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// Kept free before the deadline so the invocation can still answer: a record's work is cut
/// off this long before it, and `complete` stops trying before then.
pub const RESPONSE_MARGIN: Duration = Duration::from_millis(500);

/// The time one record's work has: the invocation's deadline (from Lambda's context, never a
/// constant) and the budget one record needs at most (claim, effect, complete). A record is
/// only started, and a held claim only waited for, while the budget still fits.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use fanout_core::time::TimeBudget;
/// let time = TimeBudget::new(SystemTime::now() + Duration::from_secs(30), Duration::from_secs(10));
/// assert!(time.can_start());
/// assert!(time.lease_until() > time.deadline());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBudget {
    deadline: SystemTime,
    budget: Duration,
}

impl TimeBudget {
    pub fn new(deadline: SystemTime, budget: Duration) -> Self {
        TimeBudget { deadline, budget }
    }

    /// When the invocation ends.
    pub fn deadline(&self) -> SystemTime {
        self.deadline
    }

    /// What one record's work may take at most.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The last moment a record's work may start and still finish before the deadline.
    pub fn latest_start(&self) -> SystemTime {
        self.deadline.checked_sub(self.budget).unwrap_or(UNIX_EPOCH)
    }

    /// Whether a record started now would finish in time.
    pub fn can_start(&self) -> bool {
        SystemTime::now() <= self.latest_start()
    }

    /// Time left until the deadline (zero once past it).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }

    /// Until when a claim made in this invocation holds: its deadline plus [`CLOCK_SKEW`]. No
    /// invocation outlives its deadline, so after that the claim is surely abandoned.
    pub fn lease_until(&self) -> SystemTime {
        self.deadline + CLOCK_SKEW
    }
}

/// `at` as RFC 3339 in UTC, to the second (`2026-11-23T10:00:00Z`).
pub fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The current time as RFC 3339 in UTC, to the second.
pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

/// Milliseconds since the Unix epoch (0 for a time before it).
pub fn epoch_millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// Whole seconds since the Unix epoch (0 for a time before it).
pub fn epoch_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_budget_that_no_longer_fits_stops_new_work() {
        let now = SystemTime::now();
        let late = TimeBudget::new(now + Duration::from_secs(5), Duration::from_secs(10));
        assert!(!late.can_start());
        assert!(late.remaining() <= Duration::from_secs(5));
        let past = TimeBudget::new(now - Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(past.remaining(), Duration::ZERO);
        assert_eq!(
            past.lease_until(),
            now - Duration::from_secs(1) + CLOCK_SKEW
        );
    }

    #[test]
    fn formats_utc_to_the_second_and_counts_from_the_epoch() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(at), "2026-11-18T11:06:40Z");
        assert_eq!(epoch_millis(at), 1_795_000_000_123);
        assert_eq!(epoch_secs(at), 1_795_000_000);
        assert_eq!(epoch_secs(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
