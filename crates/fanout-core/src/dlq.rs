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

use aws_sdk_sqs::Client;
use serde::{Deserialize, Serialize};

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

/// The consumer's own SQS queue for parked records (`DLQ_URL`).
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    client: Client,
    queue_url: String,
}

impl DeadLetterQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        DeadLetterQueue {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
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
            queue_url: self.queue_url.clone(),
            message,
        };
        let parked = ParkedRecord {
            consumer: consumer.to_owned(),
            error: error.to_owned(),
            parked_at: crate::time::rfc3339_now(),
            record: record.clone(),
        };
        let body = serde_json::to_string(&parked).map_err(|e| fail(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| fail(crate::failure::error_chain(&e)))?;
        Ok(())
    }
}
