//! Stream-correct batch processing: the one entry point every consumer calls.
//!
//! - Records of one item key run one at a time, in stream order; different keys run
//!   concurrently, at most `max_concurrency` keys at once.
//! - After a retryable failure, later records of that key are not run in this invocation, and
//!   they are reported as failed together with the failed record. Lambda restarts the shard at
//!   the lowest reported sequence number; records of other keys after it are delivered again
//!   and deduplicated by the ledger (or by the target).
//! - A panic in one record's work fails that record only.
//! - A permanent failure parks the record (full record + error) in the consumer's DLQ, and the
//!   record counts as done, so one poison record never holds a shard. Parking goes through the
//!   ledger (`<consumer>#parked#<eventID>`), so a poison record redelivered is parked once.
//!   A record an operator sent back ([`crate::dlq::RecordOrigin`]) is reported failed instead.
//! - Deadline-aware: a record starts only while the invocation's time left holds its budget
//!   (`RECORD_BUDGET_SECONDS`); the others are reported back unstarted. A record's work is cut
//!   off just before the deadline and fails alone, so the invocation always answers and never
//!   dies mid-batch.
//! - The response never carries an empty or null `itemIdentifier`; success is an empty list.
//! - Either source ([`crate::source`]): DynamoDB Streams records, or Kinesis records carrying
//!   the change. A Kinesis batch's records of one key are run in [`ChangeOrder`] (they may
//!   arrive out of order), and a record whose `eventID` already ran in this batch is a
//!   duplicate, not run again. Failures name the source's own sequence number.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::dynamodb::EventRecord;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::change::item_key;
use crate::dlq::{DeadLetterQueue, RecordOrigin};
use crate::domain::User;
use crate::failure::scrub_personal;
use crate::ledger::{EffectKey, Ledger};
use crate::outcome::{BatchMetrics, RecordError, RecordOutcome, RecordResult};
use crate::source::{ChangeOrder, RecordSource, read_record};
use crate::time::{RESPONSE_MARGIN, TimeBudget};

/// A batch whose response cannot be expressed as a partial batch failure.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A record to be retried has no sequence number; an empty identifier would make Lambda
    /// fail the whole batch anyway, so say so plainly and let Lambda retry it.
    #[error("record {event_id} failed and has no sequence number to report; failing the batch")]
    Unreportable { event_id: String },
    /// The invocation's JSON has no `Records` list: nothing can be read, reported or parked.
    #[error("the event is not a DynamoDB Streams or Kinesis event (no Records list)")]
    NotAnEvent,
}

/// A consumer's per-record work.
///
/// ```
/// use fanout_core::{RecordError, RecordHandler, RecordInput, RecordOutcome};
/// struct CountOnly;
/// impl RecordHandler for CountOnly {
///     async fn handle(&self, input: RecordInput) -> Result<RecordOutcome, RecordError> {
///         if input.record.event_name == "REMOVE" {
///             return Ok(RecordOutcome::Ignored);
///         }
///         Ok(RecordOutcome::Done)
///     }
/// }
/// ```
pub trait RecordHandler: Send + Sync + 'static {
    fn handle(
        &self,
        input: RecordInput,
    ) -> impl Future<Output = Result<RecordOutcome, RecordError>> + Send;
}

/// A [`RecordHandler`] made from an async closure, for tests and small consumers.
#[derive(Clone)]
pub struct HandlerFn<F>(pub F);

impl<F> std::fmt::Debug for HandlerFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandlerFn")
    }
}

impl<F, Fut> RecordHandler for HandlerFn<F>
where
    F: Fn(RecordInput) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<RecordOutcome, RecordError>> + Send,
{
    fn handle(
        &self,
        input: RecordInput,
    ) -> impl Future<Output = Result<RecordOutcome, RecordError>> + Send {
        (self.0)(input)
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Why [`BatchProcessor::run_json`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunJsonError {
    #[error("not a DynamoDB event: {0}")]
    Event(serde_json::Error),
    #[error(transparent)]
    Batch(#[from] BatchError),
}

/// What one invocation gives a record's work.
#[derive(Debug, Clone)]
pub struct RecordInput {
    pub record: Arc<EventRecord>,
    /// The invocation's deadline and the record budget: leases and waits derive from it.
    pub time: TimeBudget,
    /// Where the change sits in its item's history: creation time (to the microsecond on
    /// Kinesis, the second on DynamoDB Streams), then the item's `version`.
    pub order: ChangeOrder,
    /// Which mapping delivered it.
    pub source: RecordSource,
    /// Who sent it: the mapping, or an operator's tool.
    pub origin: RecordOrigin,
}

impl RecordInput {
    /// Whether this record reached the consumer in its item's change order, after every
    /// earlier change of the item: true of a DynamoDB stream record from the mapping (the stream
    /// keeps each item's order, and a redelivery repeats a suffix of it); false on Kinesis,
    /// which may reorder and repeat, and for a record an operator sent back (`redrive`,
    /// `reconcile`), which may be older than what the item has since become.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, SystemTime};
    /// use fanout_core::{ChangeOrder, RecordInput, RecordOrigin, RecordSource, TimeBudget};
    /// let input = RecordInput {
    ///     record: Arc::new(Default::default()),
    ///     time: TimeBudget::new(SystemTime::now() + Duration::from_secs(9), Duration::from_secs(1)),
    ///     order: ChangeOrder::default(),
    ///     source: RecordSource::DynamoDbStream,
    ///     origin: RecordOrigin::Stream,
    /// };
    /// assert!(input.delivered_in_order());
    /// assert!(!RecordInput { source: RecordSource::Kinesis, ..input.clone() }.delivered_in_order());
    /// assert!(!RecordInput { origin: RecordOrigin::Redrive, ..input }.delivered_in_order());
    /// ```
    pub fn delivered_in_order(&self) -> bool {
        self.source == RecordSource::DynamoDbStream && self.origin == RecordOrigin::Stream
    }
}

/// Runs a consumer's per-record work over a stream batch.
#[derive(Debug, Clone)]
pub struct BatchProcessor {
    consumer: String,
    /// The Users table this deployment reads: a record from any other is parked, never run.
    users_table: String,
    dlq: DeadLetterQueue,
    ledger: Ledger,
    max_concurrency: NonZeroUsize,
    record_budget: Duration,
}

/// What one record's work may take at most when `RECORD_BUDGET_SECONDS` is not set.
pub const DEFAULT_RECORD_BUDGET: Duration = Duration::from_secs(10);

/// Keys processed at once within a batch when `MAX_CONCURRENCY` is not set.
pub const DEFAULT_MAX_CONCURRENCY: NonZeroUsize = match NonZeroUsize::new(8) {
    Some(n) => n,
    None => unreachable!(),
};

/// The outcome of one batch: the per-record results (in batch order) and the response.
#[derive(Debug, Clone)]
pub struct BatchReport {
    pub results: Vec<RecordResult>,
    pub response: DynamoDbEventResponse,
    pub metrics: BatchMetrics,
}

impl BatchProcessor {
    /// The processor of `consumer` over the changes of `users_table`: parks into `dlq`, once
    /// per record through `ledger`. A record whose change names another table, or none, is
    /// parked with that reason and never reaches the handler.
    pub fn new(
        consumer: impl Into<String>,
        users_table: impl Into<String>,
        dlq: DeadLetterQueue,
        ledger: Ledger,
    ) -> Self {
        BatchProcessor {
            consumer: consumer.into(),
            users_table: users_table.into(),
            dlq,
            ledger,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            record_budget: DEFAULT_RECORD_BUDGET,
        }
    }

    pub fn with_max_concurrency(mut self, max: NonZeroUsize) -> Self {
        self.max_concurrency = max;
        self
    }

    /// Keys processed at once within a batch (and users checked at once by a reconcile check).
    pub fn max_concurrency(&self) -> NonZeroUsize {
        self.max_concurrency
    }

    /// What one record's work may take at most: no record starts with less time left.
    pub fn with_record_budget(mut self, budget: Duration) -> Self {
        self.record_budget = budget;
        self
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The table whose changes this processor acts on.
    pub fn users_table(&self) -> &str {
        &self.users_table
    }

    /// Processes `event` (the invocation's JSON) with `work` per record and returns Lambda's
    /// partial-batch response. `deadline` is the invocation deadline (`Context::deadline()`),
    /// from which ledger leases and record budgets are derived. Emits the batch's counters as
    /// one EMF line.
    pub async fn process<H: RecordHandler>(
        &self,
        event: Value,
        deadline: SystemTime,
        work: Arc<H>,
    ) -> Result<DynamoDbEventResponse, BatchError> {
        let report = self.run_value(event, deadline, work).await?;
        report.metrics.emit(&self.consumer);
        Ok(report.response)
    }

    /// Runs a DynamoDB event given as JSON text (a fixture from `events/`) with a deadline
    /// `timeout` from now, returning every record's result. For tests and local tools.
    pub async fn run_json<H: RecordHandler>(
        &self,
        event_json: &str,
        timeout: std::time::Duration,
        work: Arc<H>,
    ) -> Result<BatchReport, RunJsonError> {
        let event: Value = serde_json::from_str(event_json).map_err(RunJsonError::Event)?;
        Ok(self
            .run_value(event, SystemTime::now() + timeout, work)
            .await?)
    }

    /// Like [`BatchProcessor::process`], returning every record's result, without emitting
    /// metrics. Each record is read on its own ([`read_record`]): one that is not a change
    /// record (no `dynamodb`, a wrong type, Kinesis data that is not base64 JSON) is parked
    /// with its JSON as delivered, never failing the rest.
    pub async fn run_value<H: RecordHandler>(
        &self,
        event: Value,
        deadline: SystemTime,
        work: Arc<H>,
    ) -> Result<BatchReport, BatchError> {
        let Some(records) = event.get("Records").and_then(Value::as_array) else {
            return Err(BatchError::NotAnEvent);
        };
        let slots = records
            .iter()
            .map(|raw| {
                let read = read_record(raw);
                RecordSlot {
                    source: read.source,
                    item_identifier: read.item_identifier,
                    order: read.order,
                    table: read.table,
                    change: Arc::new(read.change),
                    parsed: read.record.map(Arc::new),
                    raw: Arc::new(raw.clone()),
                }
            })
            .collect();
        self.run_slots(slots, deadline, work).await
    }

    async fn run_slots<H: RecordHandler>(
        &self,
        slots: Vec<RecordSlot>,
        deadline: SystemTime,
        work: Arc<H>,
    ) -> Result<BatchReport, BatchError> {
        let time = TimeBudget::new(deadline, self.record_budget);
        if !slots.is_empty() && !time.can_start() {
            return self.report_unstartable(&slots, time);
        }
        let semaphore = Arc::new(Semaphore::new(self.max_concurrency.get()));
        let parking = Arc::new(Parking {
            consumer: self.consumer.clone(),
            users_table: self.users_table.clone(),
            dlq: self.dlq.clone(),
            ledger: self.ledger.clone(),
        });

        // Group by item key, keeping stream order inside each group. A record without a key
        // (or that could not be read) stands alone.
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, slot) in slots.iter().enumerate() {
            let key = match &slot.parsed {
                Ok(record) if !record.change.keys.is_empty() => item_key(&record.change.keys),
                _ => format!("record#{index}={}", slot.event_id()),
            };
            groups
                .entry(key.clone())
                .or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                })
                .push(index);
        }

        let mut tasks = JoinSet::new();
        for key in order {
            let mut indexes = groups.remove(&key).unwrap_or_default();
            // Kinesis may reorder a key's changes; a stable sort keeps delivery order on ties.
            // A DynamoDB stream is already in order (and its times are whole seconds).
            if indexes
                .iter()
                .any(|&i| slots[i].source == RecordSource::Kinesis)
            {
                indexes.sort_by_key(|&i| slots[i].order);
            }
            let group: Vec<(usize, RecordSlot)> =
                indexes.into_iter().map(|i| (i, slots[i].clone())).collect();
            let semaphore = Arc::clone(&semaphore);
            let work = Arc::clone(&work);
            let parking = Arc::clone(&parking);
            tasks.spawn(async move {
                // The semaphore is never closed, so acquire only fails if it were.
                let _permit = semaphore.acquire_owned().await.ok();
                run_key(&parking, &key, group, time, work).await
            });
        }

        let mut results = vec![RecordResult::NotRun; slots.len()];
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(key_results) => {
                    for (index, result) in key_results {
                        results[index] = result;
                    }
                }
                // run_key itself does not panic (record work runs in its own task); a
                // cancelled or panicked group leaves its records NotRun, which are retried.
                Err(err) => tracing::error!(error = %err, "key group task failed"),
            }
        }

        report(&slots, results)
    }

    /// An invocation with less time than one record's budget from its start: no record can
    /// start, on this delivery or any other, until the budget or the function's timeout is
    /// changed. Said once per process as an ERROR naming both numbers (then a WARN per
    /// invocation), and the whole batch reported back unstarted: nothing is acted on.
    fn report_unstartable(
        &self,
        slots: &[RecordSlot],
        time: TimeBudget,
    ) -> Result<BatchReport, BatchError> {
        let remaining_ms = time.remaining().as_millis() as u64;
        let budget_ms = time.budget().as_millis() as u64;
        if BUDGET_MISFIT_REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(consumer = %self.consumer, remaining_ms, budget_ms, records = slots.len(),
                "no record started: the invocation's time is below RECORD_BUDGET_SECONDS; batch reported for redelivery");
        } else {
            tracing::error!(consumer = %self.consumer, remaining_ms, budget_ms, records = slots.len(),
                "RECORD_BUDGET_SECONDS ({} ms) is larger than the time this invocation has ({} ms): \
                 no record can ever start; lower RECORD_BUDGET_SECONDS below the function timeout \
                 (the stacks keep the timeout at least twice the budget plus 5 s). Every batch is \
                 reported for redelivery until then",
                budget_ms, remaining_ms);
        }
        report(slots, vec![RecordResult::NotRun; slots.len()])
    }
}

/// Set once the budget-larger-than-the-invocation ERROR has been logged by this process.
static BUDGET_MISFIT_REPORTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The batch's response and counters from its records' results (in batch order).
fn report(slots: &[RecordSlot], results: Vec<RecordResult>) -> Result<BatchReport, BatchError> {
    let mut failures = Vec::new();
    for (slot, result) in slots.iter().zip(&results) {
        if !result.must_retry() {
            continue;
        }
        match slot.item_identifier.clone() {
            Some(seq) if !seq.is_empty() => {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(seq);
                failures.push(failure);
            }
            _ => {
                return Err(BatchError::Unreportable {
                    event_id: slot.event_id(),
                });
            }
        }
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures;
    let metrics = BatchMetrics::from_results(&results);
    Ok(BatchReport {
        results,
        response,
        metrics,
    })
}

/// One record of an invocation: its JSON as delivered, the change it carries and the record
/// read from it (or why it could not be).
#[derive(Debug, Clone)]
struct RecordSlot {
    raw: Arc<Value>,
    source: RecordSource,
    /// The sequence number the response names when this record must be retried.
    item_identifier: Option<String>,
    order: ChangeOrder,
    /// The table the change names ([`crate::source::source_table`]).
    table: Option<String>,
    /// The change record as JSON (for Kinesis, decoded from `kinesis.data`).
    change: Arc<Value>,
    parsed: Result<Arc<EventRecord>, String>,
}

impl RecordSlot {
    /// `text` without the personal values of this record's images, nor any email address.
    fn scrub(&self, text: &str) -> String {
        let image_values = ["NewImage", "OldImage"].into_iter().flat_map(|image| {
            User::PERSONAL_FIELDS.iter().filter_map(move |field| {
                self.change["dynamodb"][image][*field]["S"]
                    .as_str()
                    .map(str::to_owned)
            })
        });
        scrub_personal(text, &image_values.collect::<Vec<_>>())
    }

    /// The record's eventID, or for a record without one a stable name from its JSON, so a
    /// redelivery is recognised.
    fn event_id(&self) -> String {
        match &self.parsed {
            Ok(record) if !record.event_id.is_empty() => record.event_id.clone(),
            _ => self.change["eventID"]
                .as_str()
                .or_else(|| self.raw["eventID"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    // FNV-1a of the JSON text: stable across deliveries of the same bytes.
                    let hash = self
                        .raw
                        .to_string()
                        .bytes()
                        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                        });
                    format!("unnamed-{hash:016x}")
                }),
        }
    }

    fn sequence_number(&self) -> Option<String> {
        self.item_identifier.clone()
    }

    /// Why this record must not be acted on by a consumer of `users_table`: its change names
    /// another table, or none. Table names are not personal data.
    fn foreign_to(&self, users_table: &str) -> Option<String> {
        match self.table.as_deref() {
            Some(table) if table == users_table => None,
            Some(other) => Some(format!(
                "record {} is a change of table {other:?}, and this consumer acts only on \
                 {users_table:?}: parked, not acted on",
                self.event_id()
            )),
            None => Some(format!(
                "record {} names no table (no tableName, no DynamoDB stream eventSourceARN), and \
                 this consumer acts only on {users_table:?}: parked, not acted on",
                self.event_id()
            )),
        }
    }
}

/// Parks a record that can never succeed; a record that could not be parked is failed, so it
/// is retried rather than dropped.
async fn park_or_fail(
    parking: &Parking,
    slot: &RecordSlot,
    reason: String,
    time: &TimeBudget,
) -> RecordResult {
    if RecordOrigin::of(&slot.raw).is_operator() {
        // Its message is still in the DLQ: the operator's tool keeps it there on this answer.
        tracing::warn!(event_id = %slot.event_id(), error = %reason,
            "a record sent back by an operator failed permanently; reported, not parked again");
        return RecordResult::Failed(reason);
    }
    match parking
        .park(&slot.event_id(), &slot.raw, &reason, time)
        .await
    {
        Ok(RecordOutcome::Duplicate) => {
            tracing::warn!(event_id = %slot.event_id(), error = %reason, "record already parked by an earlier delivery");
            RecordResult::Parked
        }
        Ok(_) => {
            tracing::error!(event_id = %slot.event_id(), sequence_number = slot.sequence_number().unwrap_or_default(),
                error = %reason, queue = parking.dlq.queue_url(), "record parked in DLQ");
            RecordResult::Parked
        }
        Err(park_error) => {
            tracing::error!(event_id = %slot.event_id(), sequence_number = slot.sequence_number().unwrap_or_default(),
                error = %reason, park_error = %park_error,
                "permanent failure could not be parked; failing the record");
            RecordResult::Failed(format!("{reason}; and parking failed: {park_error}"))
        }
    }
}

/// Where permanent failures go: the consumer's DLQ, once per record through the ledger.
struct Parking {
    consumer: String,
    users_table: String,
    dlq: DeadLetterQueue,
    ledger: Ledger,
}

impl Parking {
    /// Parks the record `raw` unless an earlier delivery already did.
    async fn park(
        &self,
        event_id: &str,
        raw: &Value,
        reason: &str,
        time: &TimeBudget,
    ) -> Result<RecordOutcome, RecordError> {
        let key = EffectKey::new(&self.consumer, &["parked", event_id]);
        self.ledger
            .perform_once(&key, time, || async {
                self.dlq
                    .park(&self.consumer, event_id, raw, reason)
                    .await
                    .map_err(RecordError::retryable)
            })
            .await
    }
}

async fn run_key<H: RecordHandler>(
    parking: &Parking,
    key: &str,
    group: Vec<(usize, RecordSlot)>,
    time: TimeBudget,
    work: Arc<H>,
) -> Vec<(usize, RecordResult)> {
    let mut results = Vec::with_capacity(group.len());
    let mut stopped = false;
    let mut ran: Vec<String> = Vec::new();
    for (index, slot) in group {
        let event_id = slot.event_id();
        if stopped {
            tracing::debug!(%event_id, key, "not run: an earlier record of this key failed");
            results.push((index, RecordResult::NotRun));
            continue;
        }
        // Kinesis may deliver a change twice in one batch: the first ran (and succeeded, or
        // `stopped` would be set), so the second is that effect again.
        if ran.contains(&event_id) {
            tracing::debug!(%event_id, key, "a repeat of a record already run in this batch");
            results.push((index, RecordResult::Succeeded(RecordOutcome::Duplicate)));
            continue;
        }
        ran.push(event_id.clone());
        if !time.can_start() {
            tracing::warn!(%event_id, key, remaining_ms = time.remaining().as_millis() as u64,
                budget_ms = time.budget().as_millis() as u64,
                "not started: the invocation's time left is below the record budget; reported for redelivery");
            results.push((index, RecordResult::NotRun));
            stopped = true;
            continue;
        }
        // DEBUG: at INFO a span per record costs more than its one line is worth; the WARN and
        // ERROR lines carry the record's ids themselves.
        let span = tracing::debug_span!(
            "record",
            consumer = %parking.consumer,
            %event_id,
            sequence_number = slot.sequence_number().unwrap_or_default(),
            key,
        );
        let foreign = slot.foreign_to(&parking.users_table);
        let result = match (&slot.parsed, foreign) {
            (Ok(_), Some(reason)) => {
                park_or_fail(parking, &slot, reason, &time)
                    .instrument(span)
                    .await
            }
            (Ok(record), None) => {
                run_record(parking, &slot, Arc::clone(record), time, &work)
                    .instrument(span)
                    .await
            }
            (Err(why), _) => {
                let reason = slot.scrub(&format!(
                    "record {event_id} is not a DynamoDB stream record: {why}"
                ));
                park_or_fail(parking, &slot, reason, &time)
                    .instrument(span)
                    .await
            }
        };
        stopped = result.must_retry();
        results.push((index, result));
    }
    results
}

async fn run_record<H: RecordHandler>(
    parking: &Parking,
    slot: &RecordSlot,
    record: Arc<EventRecord>,
    time: TimeBudget,
    work: &Arc<H>,
) -> RecordResult {
    let input = RecordInput {
        record: Arc::clone(&record),
        time,
        order: slot.order,
        source: slot.source,
        origin: RecordOrigin::of(&slot.raw),
    };
    // Its own task, so a panic in the work becomes a JoinError for this record only; cut off
    // before the deadline, so the invocation can still answer.
    let work = Arc::clone(work);
    let handle = tokio::spawn(async move { work.handle(input).await }.in_current_span());
    let abort = handle.abort_handle();
    let allowed = time.remaining().saturating_sub(RESPONSE_MARGIN);
    let joined = match tokio::time::timeout(allowed, handle).await {
        Ok(joined) => joined,
        Err(_) => {
            abort.abort();
            let reason = format!(
                "record work did not finish {} ms before the deadline; cut off and reported for redelivery",
                RESPONSE_MARGIN.as_millis()
            );
            tracing::error!(event_id = %slot.event_id(), sequence_number = slot.sequence_number().unwrap_or_default(),
                error = %reason, "record failed");
            return RecordResult::Failed(reason);
        }
    };
    match joined {
        Ok(Ok(outcome)) => {
            tracing::debug!(?outcome, "record done");
            RecordResult::Succeeded(outcome)
        }
        Ok(Err(RecordError::Retryable(reason))) => {
            let reason = slot.scrub(&reason);
            tracing::warn!(event_id = %slot.event_id(), sequence_number = slot.sequence_number().unwrap_or_default(),
                error = %reason, "record failed, will be retried");
            RecordResult::Failed(reason)
        }
        Ok(Err(RecordError::Permanent(reason))) => {
            park_or_fail(parking, slot, slot.scrub(&reason), &time).await
        }
        Err(join_error) => {
            let reason = if join_error.is_panic() {
                slot.scrub(&format!(
                    "record work panicked: {}",
                    panic_message(join_error.into_panic())
                ))
            } else {
                format!("record work was cancelled: {join_error}")
            };
            tracing::error!(event_id = %slot.event_id(), sequence_number = slot.sequence_number().unwrap_or_default(),
                error = %reason, "record failed");
            RecordResult::Failed(reason)
        }
    }
}
