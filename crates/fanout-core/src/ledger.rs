//! The idempotency ledger: exactly-once effects on an at-least-once stream.
//!
//! Protocol (table `EffectLedger`, key `pk` = [`EffectKey`]):
//!
//! 1. [`Ledger::claim`]: one conditional `PutItem` that succeeds when the entry is absent,
//!    expired (checked in the condition, never trusting TTL to have run) or `IN_PROGRESS`
//!    with a lapsed lease. On failure `ReturnValuesOnConditionCheckFailure=ALL_OLD` says why,
//!    so a duplicate costs that one write and no read.
//! 2. The caller performs the effect.
//! 3. [`Ledger::complete`]: `UpdateItem` to `COMPLETED`, fenced on the owner token.
//! 4. On failure, [`Ledger::release`]: `DeleteItem` fenced on the owner token.
//!
//! A crash after the effect but before `complete` leaves an `IN_PROGRESS` entry whose lease
//! lapses at the invocation deadline; the next delivery then repeats the effect. That window
//! is one network call wide (the `complete` request).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use crate::failure::error_chain;
use crate::outcome::{RecordError, RecordOutcome};
use crate::time::{epoch_millis, epoch_secs};

const STATUS_IN_PROGRESS: &str = "IN_PROGRESS";
const STATUS_COMPLETED: &str = "COMPLETED";

/// Margin added to the invocation deadline for clock skew between Lambda hosts: an
/// invocation cannot still be running past its deadline, but another host's clock may read
/// slightly behind ours.
pub const LEASE_CLOCK_SKEW: Duration = Duration::from_secs(5);

/// The semantic key of one effect, such as `welcome-email#<userId>#<plan>`. Two stream
/// records for one logical change build the same key and so give one effect.
///
/// ```
/// use fanout_core::EffectKey;
/// let key = EffectKey::new("welcome-email", &["u-1", "pro"]);
/// assert_eq!(key.as_str(), "welcome-email#u-1#pro");
/// // `#` inside a part is escaped so that parts can never run into each other.
/// assert_eq!(EffectKey::new("crm", &["a#b"]).as_str(), "crm#a%23b");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EffectKey(String);

impl EffectKey {
    /// `consumer` is the key prefix the consumer's IAM policy is scoped to (`<consumer>#*`).
    pub fn new(consumer: &str, parts: &[&str]) -> Self {
        let mut key = consumer.to_owned();
        for part in parts {
            key.push('#');
            key.push_str(&part.replace('%', "%25").replace('#', "%23"));
        }
        EffectKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EffectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a claim may be held before another invocation may take it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    until: SystemTime,
}

impl Lease {
    /// A lease that lasts until the invocation's deadline (plus [`LEASE_CLOCK_SKEW`]): no
    /// invocation outlives its deadline, so after it the claim is surely abandoned.
    pub fn until_deadline(deadline: SystemTime) -> Self {
        Lease {
            until: deadline + LEASE_CLOCK_SKEW,
        }
    }

    /// A lease ending at exactly `until`, without the skew margin.
    pub fn until(until: SystemTime) -> Self {
        Lease { until }
    }

    pub fn expires_at(&self) -> SystemTime {
        self.until
    }
}

/// Where the ledger reads the time. Tests use a shifted clock to reach expiry without
/// sleeping; production uses [`SystemClock`].
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A claim this invocation holds; the proof needed to complete or release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerClaim {
    pub key: EffectKey,
    pub owner: String,
    pub lease: Lease,
    /// `Some` when this claim took over an abandoned `IN_PROGRESS` entry (its lease lapsed):
    /// the effect may already have happened once.
    pub took_over_from: Option<String>,
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This invocation owns the effect: do it, then complete or release.
    Claimed(LedgerClaim),
    /// The effect was completed before: skip it.
    AlreadyDone,
    /// Another invocation holds a live lease: fail the record as retryable.
    HeldByAnother { lease_until: Option<SystemTime> },
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {operation} on {key} failed: {message}")]
    Request {
        operation: &'static str,
        key: String,
        message: String,
    },
    /// Our claim was taken over (our lease lapsed); another owner now holds the entry.
    #[error("ledger claim on {key} is no longer ours (fenced by owner token)")]
    Fenced { key: String },
}

impl From<LedgerError> for RecordError {
    fn from(err: LedgerError) -> Self {
        RecordError::Retryable(err.to_string())
    }
}

/// The `EffectLedger` table.
#[derive(Debug, Clone)]
pub struct Ledger {
    client: Client,
    table: String,
    retention: Duration,
    clock: Arc<dyn Clock>,
}

/// How long a COMPLETED entry keeps deduplicating. Longer than the 24-hour stream retention,
/// so no redelivery can outlive it.
pub const DEFAULT_LEDGER_RETENTION: Duration = Duration::from_secs(48 * 3600);

impl Ledger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Ledger {
            client,
            table: table.into(),
            retention: DEFAULT_LEDGER_RETENTION,
            clock: Arc::new(SystemClock),
        }
    }

    /// How long a completed entry deduplicates (`expiresAt = now + retention`).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Claims `key` for this invocation with one conditional `PutItem`.
    pub async fn claim(&self, key: &EffectKey, lease: Lease) -> Result<ClaimOutcome, LedgerError> {
        let now = self.clock.now();
        let owner = uuid::Uuid::new_v4().to_string();
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(key.0.clone())),
            ("status".to_owned(), s(STATUS_IN_PROGRESS)),
            ("owner".to_owned(), s(&owner)),
            ("leaseUntil".to_owned(), n(epoch_millis(lease.until))),
            (
                "expiresAt".to_owned(),
                n(epoch_secs(now + self.retention).into()),
            ),
            ("attempts".to_owned(), n(1)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR expiresAt < :nowSecs \
                 OR (#status = :inProgress AND leaseUntil < :nowMillis)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":nowSecs", n(epoch_secs(now).into()))
            .expression_attribute_values(":nowMillis", n(epoch_millis(now)))
            .expression_attribute_values(":inProgress", s(STATUS_IN_PROGRESS))
            // On success, the replaced item (if any) tells us we took over a lapsed lease.
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let took_over_from = output.attributes().and_then(|old| {
                    (text(old, "status") == Some(STATUS_IN_PROGRESS))
                        .then(|| text(old, "owner").unwrap_or_default().to_owned())
                });
                if let Some(previous) = &took_over_from {
                    tracing::warn!(effect_key = %key, previous_owner = %previous,
                        "took over an abandoned claim whose lease lapsed; the effect may repeat");
                }
                Ok(ClaimOutcome::Claimed(LedgerClaim {
                    key: key.clone(),
                    owner,
                    lease,
                    took_over_from,
                }))
            }
            Err(SdkError::ServiceError(err)) => match err.into_err() {
                PutItemError::ConditionalCheckFailedException(failed) => {
                    let old = failed.item.unwrap_or_default();
                    Ok(match text(&old, "status") {
                        Some(STATUS_COMPLETED) => ClaimOutcome::AlreadyDone,
                        _ => ClaimOutcome::HeldByAnother {
                            lease_until: number(&old, "leaseUntil")
                                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
                        },
                    })
                }
                other => Err(request_error("claim", key, &other)),
            },
            Err(other) => Err(request_error("claim", key, &other)),
        }
    }

    /// Marks the effect done, if the claim is still ours.
    pub async fn complete(&self, claim: &LedgerClaim) -> Result<(), LedgerError> {
        let now = self.clock.now();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(claim.key.as_str()))
            .update_expression("SET #status = :completed, completedAt = :nowSecs REMOVE leaseUntil")
            .condition_expression("#owner = :owner AND #status = :inProgress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":completed", s(STATUS_COMPLETED))
            .expression_attribute_values(":inProgress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":owner", s(&claim.owner))
            .expression_attribute_values(":nowSecs", n(epoch_secs(now).into()))
            .send()
            .await;
        fenced("complete", claim, result.map(drop))
    }

    /// Gives the claim up after a failed effect, if it is still ours, so a retry can claim it.
    pub async fn release(&self, claim: &LedgerClaim) -> Result<(), LedgerError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(claim.key.as_str()))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&claim.owner))
            .send()
            .await;
        fenced("release", claim, result.map(drop))
    }
}

impl Ledger {
    /// Runs `effect` at most once for `key`: claim, effect, then complete (or release on
    /// failure). The whole protocol for a consumer's record, in one call.
    ///
    /// - Already completed: `Ok(Duplicate)`, without running the effect.
    /// - Held by a live lease elsewhere: a retryable error.
    /// - Effect failed: the claim is released and the effect's error returned.
    /// - Effect done but `complete` failed: `Ok(Done)` and an error log. The effect happened,
    ///   so failing the record would only repeat it; the entry stays `IN_PROGRESS` until its
    ///   lease lapses, the documented one-call window for a repeat.
    pub async fn perform_once<F, Fut>(
        &self,
        key: &EffectKey,
        lease: Lease,
        effect: F,
    ) -> Result<RecordOutcome, RecordError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), RecordError>>,
    {
        match self.claim(key, lease).await? {
            ClaimOutcome::AlreadyDone => {
                tracing::info!(effect_key = %key, "duplicate delivery: effect already done");
                Ok(RecordOutcome::Duplicate)
            }
            ClaimOutcome::HeldByAnother { lease_until } => Err(RecordError::Retryable(format!(
                "effect {key} is in progress in another invocation (lease until {:?})",
                lease_until.map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis())
            ))),
            ClaimOutcome::Claimed(claim) => match effect().await {
                Ok(()) => {
                    if let Err(err) = self.complete(&claim).await {
                        tracing::error!(effect_key = %key, error = %err,
                            "effect done but not marked complete; a redelivery after the lease may repeat it");
                    }
                    Ok(RecordOutcome::Done)
                }
                Err(effect_error) => {
                    if let Err(err) = self.release(&claim).await {
                        tracing::warn!(effect_key = %key, error = %err, "could not release claim after a failed effect");
                    }
                    Err(effect_error)
                }
            },
        }
    }
}

/// A fenced write's result: a failed owner condition means the claim is no longer ours.
fn fenced<E, R>(
    operation: &'static str,
    claim: &LedgerClaim,
    result: Result<(), SdkError<E, R>>,
) -> Result<(), LedgerError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(()) => Ok(()),
        Err(err) if is_conditional_failure(&err) => Err(LedgerError::Fenced {
            key: claim.key.to_string(),
        }),
        Err(err) => Err(request_error(operation, &claim.key, &err)),
    }
}

fn is_conditional_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    err: &SdkError<E, R>,
) -> bool {
    matches!(err, SdkError::ServiceError(service) if service.err().code() == Some("ConditionalCheckFailedException"))
}

fn request_error(
    operation: &'static str,
    key: &EffectKey,
    err: &dyn std::error::Error,
) -> LedgerError {
    LedgerError::Request {
        operation,
        key: key.to_string(),
        message: error_chain(err),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u128) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}
