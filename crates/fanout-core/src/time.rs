//! Time as the ledger and the parked messages write it. The one place time is formatted.

use std::time::{SystemTime, UNIX_EPOCH};

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
    fn formats_utc_to_the_second_and_counts_from_the_epoch() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(at), "2026-11-18T11:06:40Z");
        assert_eq!(epoch_millis(at), 1_795_000_000_123);
        assert_eq!(epoch_secs(at), 1_795_000_000);
        assert_eq!(epoch_secs(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
