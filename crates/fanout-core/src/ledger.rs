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
//! The windows, measured in the fault scenarios (docs/reliability.md): a crash after the
//! effect but before `complete` lands, or a `complete` that fails through all its retries,
//! repeats the effect once, after the lease; `complete` is one network call, retried within
//! the invocation's remaining time.
//!
//! Where the entries live is a port, [`LedgerStore`]: [`DynamoDbLedger`] (the table, as
//! deployed) or [`InMemoryLedger`] (hermetic tests, local tools). Both keep one contract,
//! tested against each (`crates/fanout-core/tests/contract/ledger.rs`); the protocol around
//! them (waiting for a holder, completing within the record's time) is [`Ledger`]'s.

mod dynamodb;
mod memory;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use dynamodb::DynamoDbLedger;
pub use memory::InMemoryLedger;

use crate::outcome::{RecordError, RecordOutcome};
use crate::port::PortFuture;
use crate::time::{RESPONSE_MARGIN, TimeBudget, epoch_millis};

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

/// An entry of the ledger as stored: who holds the effect, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub status: EntryStatus,
    /// The owner token of the claim that wrote it.
    pub owner: String,
    /// Until when an `InProgress` entry's holder may complete it (millisecond precision).
    pub lease_until: Option<SystemTime>,
    /// When the entry stops deduplicating (second precision); TTL removes it some time later.
    pub expires_at: Option<SystemTime>,
}

/// Where an effect stands in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    /// Claimed; the effect is being made (or its holder died, until the lease lapses).
    InProgress,
    /// The effect was made.
    Completed,
}

impl EntryStatus {
    /// The stored `status` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryStatus::InProgress => "IN_PROGRESS",
            EntryStatus::Completed => "COMPLETED",
        }
    }
}

/// Where the ledger's entries live: the protocol's conditional steps, each one request.
/// Times come from the [`Ledger`]'s clock, so an adapter never reads one itself.
///
/// ```
/// use std::sync::Arc;
/// use fanout_core::ledger::{InMemoryLedger, Ledger};
/// use fanout_core::{ClaimOutcome, EffectKey, Lease};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let ledger = Ledger::with_store(Arc::new(InMemoryLedger::default()));
/// let key = EffectKey::new("welcome-email", &["u-1", "pro"]);
/// let lease = Lease::until(std::time::SystemTime::now() + std::time::Duration::from_secs(60));
/// let ClaimOutcome::Claimed(claim) = ledger.claim(&key, lease).await.unwrap() else { panic!() };
/// ledger.complete(&claim).await.unwrap();
/// assert_eq!(ledger.claim(&key, lease).await.unwrap(), ClaimOutcome::AlreadyDone);
/// # });
/// ```
pub trait LedgerStore: Send + Sync + std::fmt::Debug {
    /// Where the entries are, for messages (the table's name).
    fn name(&self) -> &str;

    /// Writes `claim` as an `IN_PROGRESS` entry expiring at `expires_at`, unless the key holds
    /// an entry that at `now` is unexpired and either `COMPLETED` ([`ClaimOutcome::AlreadyDone`])
    /// or `IN_PROGRESS` under a live lease ([`ClaimOutcome::HeldByAnother`]). Replacing an
    /// `IN_PROGRESS` entry whose lease lapsed is a takeover: the claim returned names the
    /// previous owner. An entry already holding `claim`'s owner token (a resent write) is ours.
    fn claim<'a>(
        &'a self,
        claim: &'a LedgerClaim,
        now: SystemTime,
        expires_at: SystemTime,
    ) -> PortFuture<'a, Result<ClaimOutcome, LedgerError>>;

    /// Marks the entry `COMPLETED` at `now` if `claim`'s owner still holds it `IN_PROGRESS`;
    /// already `COMPLETED` by that owner is success; any other state is [`LedgerError::Fenced`].
    fn complete<'a>(
        &'a self,
        claim: &'a LedgerClaim,
        now: SystemTime,
    ) -> PortFuture<'a, Result<(), LedgerError>>;

    /// Deletes the entry if `claim`'s owner holds it; otherwise [`LedgerError::Fenced`].
    fn release<'a>(&'a self, claim: &'a LedgerClaim) -> PortFuture<'a, Result<(), LedgerError>>;

    /// The entry of `key`, as stored (expired or not), read consistently.
    fn entry<'a>(
        &'a self,
        key: &'a EffectKey,
    ) -> PortFuture<'a, Result<Option<LedgerEntry>, LedgerError>>;
}

/// The ledger: the protocol over a [`LedgerStore`].
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Arc<dyn LedgerStore>,
    retention: Duration,
    clock: Arc<dyn Clock>,
}

/// How long a COMPLETED entry keeps deduplicating. Longer than the 24-hour stream retention,
/// so no redelivery can outlive it.
pub const DEFAULT_LEDGER_RETENTION: Duration = Duration::from_secs(48 * 3600);

impl Ledger {
    /// The ledger in DynamoDB table `table` (the deployed `EffectLedger`).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self::with_store(Arc::new(DynamoDbLedger::new(client, table)))
    }

    /// The ledger in `store`, such as an [`InMemoryLedger`].
    pub fn with_store(store: Arc<dyn LedgerStore>) -> Self {
        Ledger {
            store,
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

    /// Where the entries are (the table's name).
    pub fn table(&self) -> &str {
        self.store.name()
    }

    /// Claims `key` for this invocation: one conditional write.
    pub async fn claim(&self, key: &EffectKey, lease: Lease) -> Result<ClaimOutcome, LedgerError> {
        let now = self.clock.now();
        let proposal = LedgerClaim {
            key: key.clone(),
            owner: uuid::Uuid::new_v4().to_string(),
            lease,
            took_over_from: None,
        };
        let outcome = self
            .store
            .claim(&proposal, now, now + self.retention)
            .await?;
        if let ClaimOutcome::Claimed(LedgerClaim {
            took_over_from: Some(previous),
            ..
        }) = &outcome
        {
            tracing::warn!(effect_key = %key, previous_owner = %previous,
                "took over an abandoned claim whose lease lapsed; the effect may repeat");
        }
        Ok(outcome)
    }

    /// Marks the effect done, if the claim is still ours. Idempotent: when an earlier attempt
    /// landed (its response was lost), the entry is already COMPLETED under our owner token and
    /// that is success, not a fenced claim.
    pub async fn complete(&self, claim: &LedgerClaim) -> Result<(), LedgerError> {
        self.store.complete(claim, self.clock.now()).await
    }

    /// Gives the claim up after a failed effect, if it is still ours, so a retry can claim it.
    pub async fn release(&self, claim: &LedgerClaim) -> Result<(), LedgerError> {
        self.store.release(claim).await
    }

    /// Whether the effect of `key` is recorded as made: a `COMPLETED` entry that has not
    /// expired (one consistent read). What `fanout-ops reconcile` checks.
    pub async fn completed(&self, key: &EffectKey) -> Result<bool, LedgerError> {
        let now = self.clock.now();
        Ok(self.store.entry(key).await?.is_some_and(|entry| {
            entry.status == EntryStatus::Completed
                && entry
                    .expires_at
                    .is_none_or(|expires| !expired(expires, now))
        }))
    }

    /// The entry of `key` as stored (expired or not).
    pub async fn entry(&self, key: &EffectKey) -> Result<Option<LedgerEntry>, LedgerError> {
        self.store.entry(key).await
    }

    /// How long a completed entry keeps deduplicating.
    pub fn retention(&self) -> Duration {
        self.retention
    }
}

/// Whether an entry expiring at `expires_at` no longer deduplicates at `now`, compared in whole
/// seconds as stored (`expiresAt`, TTL's unit): expired once its second has passed.
pub(crate) fn expired(expires_at: SystemTime, now: SystemTime) -> bool {
    crate::time::epoch_secs(expires_at) < crate::time::epoch_secs(now)
}

/// Whether a lease ending at `lease_until` has lapsed at `now`, in milliseconds as stored.
pub(crate) fn lapsed(lease_until: SystemTime, now: SystemTime) -> bool {
    epoch_millis(lease_until) < epoch_millis(now)
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
