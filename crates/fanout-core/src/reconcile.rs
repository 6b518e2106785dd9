//! Reconciliation: does a consumer's durable record of its effect match an item's current
//! image? `fanout-ops reconcile` scans `Users` and asks each item's [`EffectCheck`]; a
//! [`EffectState::Missing`] or [`EffectState::Behind`] item is drift, which `--repair` sends
//! back through the consumer itself (a record whose `eventSource` names the reconciler), so
//! the ledger or the target keeps the repair exactly-once.
//!
//! The check runs inside the consumer's own deployed function: `fanout-ops` invokes it with a
//! [`CheckRequest`] and reads a [`CheckAnswer`] (`fanout_core::lambda::serve` dispatches it).
//! The function already has the check's configuration and the permissions to read its own
//! record, so the operator needs only `lambda:InvokeFunction`, and `fanout-ops` holds no
//! consumer's code.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::User;
use crate::failure::scrub_personal;
use crate::ledger::{EffectKey, Ledger};
use crate::outcome::RecordError;

/// What a consumer's durable record says of the effect an item's current image calls for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
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

/// The payload that asks a consumer's function for its check of `users`, instead of a stream
/// batch: `{"fanout": "check", "users": [...]}`.
///
/// ```
/// use fanout_core::reconcile::CheckRequest;
/// let user: fanout_core::User = serde_json::from_value(serde_json::json!({
///     "userId": "u-1", "email": "a@example.com", "plan": "pro", "version": 2,
///     "updatedAt": "2026-12-01T00:00:00Z"})).unwrap();
/// let payload = CheckRequest { users: vec![user] }.to_payload();
/// assert_eq!(payload["fanout"], "check");
/// let read = CheckRequest::from_payload(&payload).unwrap().unwrap();
/// assert_eq!(read.users[0].version, 2);
/// assert!(CheckRequest::from_payload(&serde_json::json!({"Records": []})).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    pub users: Vec<User>,
}

impl CheckRequest {
    /// The value of the payload's `fanout` field that names this request.
    pub const TAG: &'static str = "check";

    pub fn to_payload(&self) -> Value {
        serde_json::json!({ "fanout": Self::TAG, "users": self.users })
    }

    /// The request `payload` is, if it is one (`None` for a stream batch); `Err` when it names
    /// itself a check but its users do not read.
    pub fn from_payload(payload: &Value) -> Option<Result<CheckRequest, serde_json::Error>> {
        (payload.get("fanout").and_then(Value::as_str) == Some(Self::TAG))
            .then(|| CheckRequest::deserialize(payload))
    }
}

/// What the function answers a [`CheckRequest`] with: one entry per user, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAnswer {
    pub items: Vec<CheckedItem>,
}

/// One user's check: its state, or why it could not be checked (scrubbed of personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckedItem {
    pub user_id: String,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<EffectState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs `check` over `request`'s users, at most `concurrency` at once, answering in order.
pub async fn check_all<C: EffectCheck + 'static>(
    check: Arc<C>,
    request: CheckRequest,
    concurrency: usize,
) -> CheckAnswer {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, user) in request.users.into_iter().enumerate() {
        let (check, semaphore) = (Arc::clone(&check), Arc::clone(&semaphore));
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let state = check.check(&user).await;
            (index, checked(&user, state))
        });
    }
    let mut items: Vec<(usize, CheckedItem)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(item) => items.push(item),
            // A check that panicked answers nothing for its user; the caller counts it unchecked.
            Err(err) => tracing::error!(error = %err, "a reconcile check panicked"),
        }
    }
    items.sort_by_key(|(index, _)| *index);
    CheckAnswer {
        items: items.into_iter().map(|(_, item)| item).collect(),
    }
}

fn checked(user: &User, state: Result<EffectState, RecordError>) -> CheckedItem {
    let (state, error) = match state {
        Ok(state) => (Some(state), None),
        Err(err) => {
            let known: Vec<String> = std::iter::once(user.email.as_str().to_owned())
                .chain(user.name.clone())
                .collect();
            (None, Some(scrub_personal(&err.to_string(), &known)))
        }
    };
    CheckedItem {
        user_id: user.user_id.clone(),
        version: user.version,
        state,
        error,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A check that answers by the user's version, and counts how many run at once.
    #[derive(Default)]
    struct ByVersion {
        running: AtomicUsize,
        most: AtomicUsize,
    }

    impl EffectCheck for ByVersion {
        async fn check(&self, user: &User) -> Result<EffectState, RecordError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            // Later users finish first: the answer must still be in request order.
            tokio::time::sleep(Duration::from_millis(50 - user.version * 5)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            match user.version {
                1 => Ok(EffectState::Made),
                2 => Err(RecordError::Retryable(format!(
                    "ledger read for {} failed",
                    user.email.as_str()
                ))),
                _ => Ok(EffectState::Missing {
                    what: "no row".to_owned(),
                }),
            }
        }
    }

    fn user(id: &str, version: u64) -> User {
        serde_json::from_value(
            serde_json::json!({"userId": id, "email": format!("{id}@example.com"),
            "plan": "pro", "version": version, "updatedAt": "2026-12-01T00:00:00Z"}),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_check_answers_every_user_in_order_bounded_and_scrubbed() {
        let check = Arc::new(ByVersion::default());
        let users = vec![user("a", 1), user("b", 2), user("c", 3), user("d", 4)];
        let answer = check_all(Arc::clone(&check), CheckRequest { users }, 2).await;
        let ids: Vec<&str> = answer.items.iter().map(|i| i.user_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(answer.items[0].state, Some(EffectState::Made));
        let error = answer.items[1].error.as_deref().unwrap();
        assert!(
            error.contains("ledger read") && !error.contains("b@example.com"),
            "{error}"
        );
        assert_eq!(answer.items[1].state, None);
        assert!(
            check.most.load(Ordering::SeqCst) <= 2,
            "at most two at once"
        );
        // What travels back to fanout-ops reads as it was sent.
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(json["items"][2]["state"]["kind"], "missing");
        assert_eq!(serde_json::from_value::<CheckAnswer>(json).unwrap(), answer);
    }
}
