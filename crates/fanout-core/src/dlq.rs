//! Parking permanent failures in the consumer's own SQS dead-letter queue.
//!
//! The Lambda event source mapping's OnFailure destination only receives batch metadata
//! (shard, sequence range). A record parked here carries the full stream record and the error,
//! so it can be inspected and replayed.
//!
//! A record an operator sends back (`fanout-ops redrive` or `reconcile --repair`) names its
//! sender in `eventSource` ([`RecordOrigin`]): a permanent failure of such a record is
//! reported back to the operator as failed, never parked again, so the message it came from
//! stays in the queue and no second copy is made.
//!
//! Where a parked record goes is a port, [`ParkingQueue`]: [`SqsQueue`] (the consumer's DLQ,
//! as deployed) or [`InMemoryQueue`] (hermetic tests), one contract tested against each
//! (`crates/fanout-core/tests/contract/dlq.rs`).

mod memory;
mod sqs;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use memory::InMemoryQueue;
pub use sqs::SqsQueue;

use crate::port::PortFuture;

/// Who sent a record: the stream (through the event source mapping), or an operator's tool.
///
/// ```
/// use fanout_core::RecordOrigin;
/// assert_eq!(RecordOrigin::from_event_source(Some("aws:dynamodb")), RecordOrigin::Stream);
/// assert_eq!(RecordOrigin::from_event_source(Some("fanout:redrive")), RecordOrigin::Redrive);
/// assert!(RecordOrigin::Reconcile.is_operator());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOrigin {
    /// Delivered by the mapping from the stream (`aws:dynamodb`, or anything unrecognised).
    Stream,
    /// A parked record sent back by `fanout-ops redrive`.
    Redrive,
    /// A record made by `fanout-ops reconcile --repair` from an item's current image.
    Reconcile,
}

impl RecordOrigin {
    /// The `eventSource` a redriven parked record carries.
    pub const REDRIVE_EVENT_SOURCE: &'static str = "fanout:redrive";
    /// The `eventSource` of a record synthesized by the reconciler.
    pub const RECONCILE_EVENT_SOURCE: &'static str = "fanout:reconcile";

    pub fn from_event_source(source: Option<&str>) -> Self {
        match source {
            Some(Self::REDRIVE_EVENT_SOURCE) => RecordOrigin::Redrive,
            Some(Self::RECONCILE_EVENT_SOURCE) => RecordOrigin::Reconcile,
            _ => RecordOrigin::Stream,
        }
    }

    /// The origin of a record as delivered (its JSON).
    pub fn of(record: &serde_json::Value) -> Self {
        Self::from_event_source(record["eventSource"].as_str())
    }

    /// Sent by an operator who waits for the answer: permanent failures are reported, not parked.
    pub fn is_operator(self) -> bool {
        self != RecordOrigin::Stream
    }
}

/// The SQS message body of a parked record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedRecord {
    /// The consumer that gave up on the record.
    pub consumer: String,
    /// Why the record can never succeed.
    pub error: String,
    /// RFC 3339 time the record was parked.
    pub parked_at: String,
    /// The full stream record, exactly as Lambda delivered it.
    pub record: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
#[error("parking record {event_id} in {queue_url} failed: {message}")]
pub struct ParkError {
    pub event_id: String,
    pub queue_url: String,
    pub message: String,
}

/// Where parked records go: one message per record, sent whole. Only an `Ok` means the
/// queue holds it.
///
/// ```
/// use std::sync::Arc;
/// use fanout_core::dlq::{DeadLetterQueue, InMemoryQueue};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let queue = Arc::new(InMemoryQueue::default());
/// let dlq = DeadLetterQueue::with_queue(queue.clone());
/// let record = serde_json::json!({"eventID": "e-1"});
/// dlq.park("welcome-email", "e-1", &record, "NewImage: missing field `email`").await.unwrap();
/// assert_eq!(queue.parked()[0].record, record);
/// # });
/// ```
pub trait ParkingQueue: Send + Sync + std::fmt::Debug {
    /// Where the messages go, for messages (the queue's URL).
    fn name(&self) -> &str;

    /// Sends one message; `Err` carries why it was not taken.
    fn send(&self, body: String) -> PortFuture<'_, Result<(), String>>;
}

/// The consumer's own queue for parked records (`DLQ_URL`).
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    queue: Arc<dyn ParkingQueue>,
}

impl DeadLetterQueue {
    /// The SQS queue at `queue_url` (the deployed DLQ).
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self::with_queue(Arc::new(SqsQueue::new(client, queue_url)))
    }

    /// Parked records go to `queue`, such as an [`InMemoryQueue`].
    pub fn with_queue(queue: Arc<dyn ParkingQueue>) -> Self {
        DeadLetterQueue { queue }
    }

    pub fn queue_url(&self) -> &str {
        self.queue.name()
    }

    /// Sends the record and its error to the queue. Only when this returns `Ok` may the record
    /// count as done; otherwise it must fail as retryable so it is not lost.
    pub async fn park(
        &self,
        consumer: &str,
        event_id: &str,
        record: &serde_json::Value,
        error: &str,
    ) -> Result<(), ParkError> {
        let fail = |message: String| ParkError {
            event_id: event_id.to_owned(),
            queue_url: self.queue.name().to_owned(),
            message,
        };
        let parked = ParkedRecord {
            consumer: consumer.to_owned(),
            error: error.to_owned(),
            parked_at: crate::time::rfc3339_now(),
            record: record.clone(),
        };
        let body = serde_json::to_string(&parked).map_err(|e| fail(e.to_string()))?;
        self.queue.send(body).await.map_err(fail)
    }
}
