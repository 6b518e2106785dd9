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
//!   record counts as done, so one poison record never holds a shard.
//! - The response never carries an empty or null `itemIdentifier`; success is an empty list.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::SystemTime;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::change::item_key;
use crate::dlq::DeadLetterQueue;
use crate::ledger::Lease;
use crate::outcome::{BatchMetrics, RecordError, RecordOutcome, RecordResult};

/// A batch whose response cannot be expressed as a partial batch failure.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A record to be retried has no sequence number; an empty identifier would make Lambda
    /// fail the whole batch anyway, so say so plainly and let Lambda retry it.
    #[error("record {event_id} failed and has no sequence number to report; failing the batch")]
    Unreportable { event_id: String },
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
    /// The lease for any ledger claim made while handling the record.
    pub lease: Lease,
}

/// Runs a consumer's per-record work over a stream batch.
#[derive(Debug, Clone)]
pub struct BatchProcessor {
    consumer: String,
    dlq: DeadLetterQueue,
    max_concurrency: NonZeroUsize,
}

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
    pub fn new(consumer: impl Into<String>, dlq: DeadLetterQueue) -> Self {
        BatchProcessor {
            consumer: consumer.into(),
            dlq,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }

    pub fn with_max_concurrency(mut self, max: NonZeroUsize) -> Self {
        self.max_concurrency = max;
        self
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Processes `event` with `work` per record and returns Lambda's partial-batch response.
    /// `deadline` is the invocation deadline (`Context::deadline()`), from which ledger leases
    /// are derived. Emits the batch's counters as one EMF line.
    pub async fn process<H: RecordHandler>(
        &self,
        event: Event,
        deadline: SystemTime,
        work: Arc<H>,
    ) -> Result<DynamoDbEventResponse, BatchError> {
        let report = self.run(event, deadline, work).await?;
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
        let event: Event = serde_json::from_str(event_json).map_err(RunJsonError::Event)?;
        Ok(self.run(event, SystemTime::now() + timeout, work).await?)
    }

    /// Like [`BatchProcessor::process`], returning every record's result, without emitting
    /// metrics. For tests and the local event source mapping.
    pub async fn run<H: RecordHandler>(
        &self,
        event: Event,
        deadline: SystemTime,
        work: Arc<H>,
    ) -> Result<BatchReport, BatchError> {
        let records: Vec<Arc<EventRecord>> = event.records.into_iter().map(Arc::new).collect();
        let lease = Lease::until_deadline(deadline);
        let semaphore = Arc::new(Semaphore::new(self.max_concurrency.get()));

        // Group by item key, keeping stream order inside each group.
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, record) in records.iter().enumerate() {
            let key = if record.change.keys.is_empty() {
                // No key to order by: the record stands alone.
                format!("eventID={}", record.event_id)
            } else {
                item_key(&record.change.keys)
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
            let indexes = groups.remove(&key).unwrap_or_default();
            let group: Vec<(usize, Arc<EventRecord>)> = indexes
                .into_iter()
                .map(|i| (i, Arc::clone(&records[i])))
                .collect();
            let semaphore = Arc::clone(&semaphore);
            let work = Arc::clone(&work);
            let dlq = self.dlq.clone();
            let consumer = self.consumer.clone();
            tasks.spawn(async move {
                // The semaphore is never closed, so acquire only fails if it were.
                let _permit = semaphore.acquire_owned().await.ok();
                run_key(&consumer, &dlq, &key, group, lease, work).await
            });
        }

        let mut results = vec![RecordResult::NotRun; records.len()];
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

        let mut failures = Vec::new();
        for (record, result) in records.iter().zip(&results) {
            if !result.must_retry() {
                continue;
            }
            match record.change.sequence_number.as_deref() {
                Some(seq) if !seq.is_empty() => {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(seq.to_owned());
                    failures.push(failure);
                }
                _ => {
                    return Err(BatchError::Unreportable {
                        event_id: record.event_id.clone(),
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
}

async fn run_key<H: RecordHandler>(
    consumer: &str,
    dlq: &DeadLetterQueue,
    key: &str,
    group: Vec<(usize, Arc<EventRecord>)>,
    lease: Lease,
    work: Arc<H>,
) -> Vec<(usize, RecordResult)> {
    let mut results = Vec::with_capacity(group.len());
    let mut stopped = false;
    for (index, record) in group {
        if stopped {
            tracing::info!(event_id = %record.event_id, key, "not run: an earlier record of this key failed");
            results.push((index, RecordResult::NotRun));
            continue;
        }
        let span = tracing::info_span!(
            "record",
            consumer,
            event_id = %record.event_id,
            sequence_number = record.change.sequence_number.as_deref().unwrap_or(""),
            key,
        );
        let result = run_record(consumer, dlq, Arc::clone(&record), lease, &work)
            .instrument(span)
            .await;
        stopped = result.must_retry();
        results.push((index, result));
    }
    results
}

async fn run_record<H: RecordHandler>(
    consumer: &str,
    dlq: &DeadLetterQueue,
    record: Arc<EventRecord>,
    lease: Lease,
    work: &Arc<H>,
) -> RecordResult {
    let input = RecordInput {
        record: Arc::clone(&record),
        lease,
    };
    // Its own task, so a panic in the work becomes a JoinError for this record only.
    let work = Arc::clone(work);
    let handle = tokio::spawn(async move { work.handle(input).await }.in_current_span());
    match handle.await {
        Ok(Ok(outcome)) => {
            tracing::info!(?outcome, "record done");
            RecordResult::Succeeded(outcome)
        }
        Ok(Err(RecordError::Retryable(reason))) => {
            tracing::warn!(error = %reason, "record failed, will be retried");
            RecordResult::Failed(reason)
        }
        Ok(Err(RecordError::Permanent(reason))) => {
            match dlq.park(consumer, &record, &reason).await {
                Ok(()) => {
                    tracing::error!(error = %reason, queue = dlq.queue_url(), "record parked in DLQ");
                    RecordResult::Parked
                }
                Err(park_error) => {
                    // Not parked means not safe to drop: retry the record instead.
                    tracing::error!(error = %reason, park_error = %park_error,
                        "permanent failure could not be parked; failing the record");
                    RecordResult::Failed(format!("{reason}; and parking failed: {park_error}"))
                }
            }
        }
        Err(join_error) => {
            let reason = if join_error.is_panic() {
                format!(
                    "record work panicked: {}",
                    panic_message(join_error.into_panic())
                )
            } else {
                format!("record work was cancelled: {join_error}")
            };
            tracing::error!(error = %reason, "record failed");
            RecordResult::Failed(reason)
        }
    }
}
