//! Reconciliation: does a consumer's durable record of its effect match an item's current
//! image? `fanout-ops reconcile` scans `Users` and asks each item's [`EffectCheck`]; a
//! [`EffectState::Missing`] or [`EffectState::Behind`] item is drift, which `--repair` sends
//! back through the consumer itself (a record whose `eventSource` names the reconciler), so
//! the ledger or the target keeps the repair exactly-once.

use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::domain::User;
use crate::ledger::{EffectKey, Ledger};
use crate::outcome::RecordError;

/// What a consumer's durable record says of the effect an item's current image calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectState {
    /// The effect is recorded as made.
    Made,
    /// The current image calls for no effect (a free user has no welcome email).
    NotDue,
    /// The item was last written before the durable record reaches back (the ledger's
    /// retention): whether the effect was made cannot be told, and a repair could repeat it.
    OutsideWindow,
    /// The effect is not recorded.
    Missing { what: String },
    /// The target holds an older version of the item than the table.
    Behind { have: u64, want: u64 },
}

impl EffectState {
    /// Drift that `--repair` makes good.
    pub fn is_drift(&self) -> bool {
        matches!(
            self,
            EffectState::Missing { .. } | EffectState::Behind { .. }
        )
    }
}

/// How one consumer checks its effect for an item. Implemented by each consumer crate, next
/// to the handler that makes the effect, so both build the same key.
pub trait EffectCheck: Send + Sync {
    fn check(&self, user: &User) -> impl Future<Output = Result<EffectState, RecordError>> + Send;
}

/// Whether `user` was last written within `window` of `now`. An unreadable `updatedAt`
/// counts as outside: the check cannot vouch for it.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use fanout_core::reconcile::written_within;
/// let mut user: fanout_core::User = serde_json::from_value(serde_json::json!({
///     "userId": "u-1", "email": "a@example.com", "plan": "pro", "version": 1,
///     "updatedAt": fanout_core::time::rfc3339_now()})).unwrap();
/// assert!(written_within(&user, Duration::from_secs(3600), SystemTime::now()));
/// user.updated_at = "2001-01-01T00:00:00Z".to_owned();
/// assert!(!written_within(&user, Duration::from_secs(3600), SystemTime::now()));
/// ```
pub fn written_within(user: &User, window: Duration, now: SystemTime) -> bool {
    chrono::DateTime::parse_from_rfc3339(&user.updated_at)
        .map(|written| SystemTime::from(written) + window >= now)
        .unwrap_or(false)
}

/// The check of a consumer whose durable record is its ledger: made when any of `keys` (the
/// keys the current image's effect may have been made under) is completed. Items written
/// before the ledger's retention are [`EffectState::OutsideWindow`].
pub async fn ledger_check(
    ledger: &Ledger,
    user: &User,
    keys: &[EffectKey],
) -> Result<EffectState, RecordError> {
    if !written_within(user, ledger.retention(), SystemTime::now()) {
        return Ok(EffectState::OutsideWindow);
    }
    for key in keys {
        if ledger.completed(key).await? {
            return Ok(EffectState::Made);
        }
    }
    Ok(EffectState::Missing {
        what: match keys {
            [one] => format!("no completed ledger entry {one}"),
            _ => format!(
                "none of the ledger entries {} is completed",
                keys.iter()
                    .map(EffectKey::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    })
}
