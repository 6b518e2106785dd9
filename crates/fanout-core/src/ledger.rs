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
//! A claim held by another invocation is waited for, bounded by this invocation's own time
//! ([`TimeBudget`]): when the holder completes, the record is a duplicate; when its lease
//! lapses (it crashed, or its release failed), the claim is taken over and the effect made. A
//! holder's crash therefore never spends the mapping's retries and loses the effect.
//!
//! The windows, measured in the fault scenarios (README "Reliability"): a crash after the
//! effect but before `complete` lands, or a `complete` that fails through all its retries,
//! repeats the effect once, after the lease; `complete` is one network call, retried within
//! the invocation's remaining time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use crate::failure::error_chain;
use crate::outcome::{RecordError, RecordOutcome};
use crate::time::{RESPONSE_MARGIN, TimeBudget, epoch_millis, epoch_secs};

const STATUS_IN_PROGRESS: &str = "IN_PROGRESS";
const STATUS_COMPLETED: &str = "COMPLETED";

/// How often a held claim is tried again while waiting for its holder (one conditional
/// `PutItem` each).
pub const HELD_CLAIM_POLL: Duration = Duration::from_secs(1);

/// How many times `complete` is sent before its failure is logged (within the remaining time).
pub const COMPLETE_ATTEMPTS: u32 = 3;

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
    /// The lease of a claim made within `time`: until its deadline plus the clock skew.
    pub fn of(time: &TimeBudget) -> Self {
        Lease {
            until: time.lease_until(),
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
    /// Another invocation holds a live lease: wait for it, or fail the record as retryable.
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
                        // The SDK resent our own PutItem after its response was lost: the
                        // entry is ours.
                        Some(STATUS_IN_PROGRESS) if text(&old, "owner") == Some(owner.as_str()) => {
                            ClaimOutcome::Claimed(LedgerClaim {
                                key: key.clone(),
                                owner,
                                lease,
                                took_over_from: None,
                            })
                        }
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

    /// Marks the effect done, if the claim is still ours. Idempotent: when an earlier attempt
    /// landed (its response was lost), the entry is already COMPLETED under our owner token and
    /// that is success, not a fenced claim.
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
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Err(SdkError::ServiceError(err)) => match err.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    let old = failed.item.unwrap_or_default();
                    if text(&old, "owner") == Some(claim.owner.as_str())
                        && text(&old, "status") == Some(STATUS_COMPLETED)
                    {
                        Ok(())
                    } else {
                        Err(LedgerError::Fenced {
                            key: claim.key.to_string(),
                        })
                    }
                }
                other => Err(request_error("complete", &claim.key, &other)),
            },
            Err(other) => Err(request_error("complete", &claim.key, &other)),
            Ok(_) => Ok(()),
        }
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

    /// Whether the effect of `key` is recorded as made: a `COMPLETED` entry that has not
    /// expired (one strongly consistent `GetItem`). What `fanout-ops reconcile` checks.
    pub async fn completed(&self, key: &EffectKey) -> Result<bool, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| request_error("read", key, &e))?;
        let now = epoch_secs(self.clock.now());
        Ok(output.item().is_some_and(|item| {
            text(item, "status") == Some(STATUS_COMPLETED)
                && number(item, "expiresAt").is_none_or(|expires| expires >= now)
        }))
    }

    /// How long a completed entry keeps deduplicating.
    pub fn retention(&self) -> Duration {
        self.retention
    }
}

impl Ledger {
    /// Runs `effect` at most once for `key`: claim, effect, then complete (or release on
    /// failure). The whole protocol for a consumer's record, in one call.
    ///
    /// - Already completed: `Ok(Duplicate)`, without running the effect.
    /// - Held by another invocation: tried again every [`HELD_CLAIM_POLL`] until the holder
    ///   completes (a duplicate) or its lease lapses (taken over), while `time` still allows a
    ///   record to start; then a retryable error. Each redelivery waits this way, so the
    ///   mapping's retries outlast any holder's lease.
    /// - Effect failed: the claim is released and the effect's error returned. A release that
    ///   fails leaves the claim to lapse; the next delivery takes it over.
    /// - Effect done: `complete`, tried up to [`COMPLETE_ATTEMPTS`] times within the time left.
    ///   If every attempt fails the effect still counts as done (failing the record would only
    ///   repeat it now); the entry lapses and a later delivery repeats it: the documented window.
    pub async fn perform_once<F, Fut>(
        &self,
        key: &EffectKey,
        time: &TimeBudget,
        effect: F,
    ) -> Result<RecordOutcome, RecordError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), RecordError>>,
    {
        let claim = match self.claim_waiting(key, time).await? {
            Some(claim) => claim,
            None => {
                tracing::debug!(effect_key = %key, "duplicate delivery: effect already done");
                return Ok(RecordOutcome::Duplicate);
            }
        };
        match effect().await {
            Ok(()) => {
                self.complete_within(&claim, time).await;
                Ok(RecordOutcome::Done)
            }
            Err(effect_error) => {
                if let Err(err) = self.release(&claim).await {
                    tracing::warn!(effect_key = %key, error = %err,
                        "could not release the claim after a failed effect; it lapses with its lease and a redelivery takes it over");
                }
                Err(effect_error)
            }
        }
    }

    /// Claims `key`, waiting for another holder as long as `time` allows. `None` when the
    /// effect is already done.
    async fn claim_waiting(
        &self,
        key: &EffectKey,
        time: &TimeBudget,
    ) -> Result<Option<LedgerClaim>, RecordError> {
        let lease = Lease::of(time);
        let mut waited = false;
        loop {
            match self.claim(key, lease).await? {
                ClaimOutcome::Claimed(claim) => return Ok(Some(claim)),
                ClaimOutcome::AlreadyDone => return Ok(None),
                ClaimOutcome::HeldByAnother { lease_until } => {
                    let now = self.clock.now();
                    let latest = time.latest_start();
                    if now >= latest {
                        return Err(RecordError::Retryable(format!(
                            "effect {key} is held by another invocation (lease until {} ms); this invocation's time ran out first",
                            lease_until.map(epoch_millis).unwrap_or_default()
                        )));
                    }
                    if !waited {
                        tracing::info!(effect_key = %key,
                            lease_until_ms = lease_until.map(epoch_millis).unwrap_or_default() as u64,
                            "effect held by another invocation: waiting for it to complete or its lease to lapse");
                        waited = true;
                    }
                    // Until the lease lapses, but look again every poll: a live holder may
                    // complete first.
                    let until_lapse = lease_until
                        .and_then(|t| t.duration_since(now).ok())
                        .unwrap_or_default()
                        + Duration::from_millis(50);
                    let until_latest = latest.duration_since(now).unwrap_or_default();
                    tokio::time::sleep(HELD_CLAIM_POLL.min(until_lapse).min(until_latest)).await;
                }
            }
        }
    }

    /// `complete`, tried again with a short backoff while time is left; each attempt is cut
    /// off before the record's own cut-off, so a slow or failing `complete` never turns a
    /// made effect into a failed record (which would repeat it at once).
    async fn complete_within(&self, claim: &LedgerClaim, time: &TimeBudget) {
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=COMPLETE_ATTEMPTS {
            let allowed = time.remaining().saturating_sub(RESPONSE_MARGIN * 2);
            let outcome = match tokio::time::timeout(allowed, self.complete(claim)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(LedgerError::Request {
                    operation: "complete",
                    key: claim.key.to_string(),
                    message: format!("no answer within the {} ms left", allowed.as_millis()),
                }),
            };
            match outcome {
                Ok(()) => return,
                Err(err @ LedgerError::Fenced { .. }) => {
                    tracing::error!(effect_key = %claim.key, error = %err,
                        "effect done but the claim was taken over: another invocation may repeat it");
                    return;
                }
                Err(err)
                    if attempt == COMPLETE_ATTEMPTS
                        || time.remaining() <= RESPONSE_MARGIN * 2 + backoff =>
                {
                    tracing::error!(effect_key = %claim.key, error = %err, attempt,
                        "effect done but not marked complete; a redelivery after the lease repeats it");
                    return;
                }
                Err(err) => {
                    tracing::warn!(effect_key = %claim.key, error = %err, attempt,
                        "marking the effect complete failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
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
