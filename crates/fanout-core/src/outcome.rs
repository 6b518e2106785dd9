//! The shared vocabulary of record processing: what a record's work did
//! ([`RecordOutcome`]), why it failed ([`RecordError`]), its final state in an invocation
//! ([`RecordResult`]) and the counters of a batch ([`BatchMetrics`]), counted here where the
//! outcomes are defined.
//!
//! A leaf of the crate: handlers, the ledger and the batch processor all speak it, and it
//! imports only the decoding errors it classifies and the telemetry line writer.

use crate::change::DecodeError;

/// What a record's work did, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The effect was performed.
    Done,
    /// The effect had already been performed for an earlier delivery: skipped.
    Duplicate,
    /// The record needs no effect from this consumer (for example a downgrade for the
    /// welcome email).
    Ignored,
}

/// Why a record's work failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// May succeed later (throttling, a 5xx, a held lease): report it so Lambda retries.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Can never succeed (undecodable, invalid, a 4xx): park it in the DLQ and move on.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl RecordError {
    pub fn retryable(err: impl std::fmt::Display) -> Self {
        RecordError::Retryable(err.to_string())
    }

    pub fn permanent(err: impl std::fmt::Display) -> Self {
        RecordError::Permanent(err.to_string())
    }
}

impl From<DecodeError> for RecordError {
    fn from(err: DecodeError) -> Self {
        RecordError::Permanent(err.to_string())
    }
}

/// The final state of one record in an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordResult {
    Succeeded(RecordOutcome),
    /// Permanently failed and parked in the DLQ: counts as done.
    Parked,
    /// Failed and must be retried.
    Failed(String),
    /// Not run because an earlier record of the same key failed.
    NotRun,
}

impl RecordResult {
    /// Whether the record goes back to Lambda in the partial batch response.
    pub fn must_retry(&self) -> bool {
        matches!(self, RecordResult::Failed(_) | RecordResult::NotRun)
    }
}

/// Counters for one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchMetrics {
    /// Records whose effect was performed.
    pub processed: u64,
    /// Records that needed no effect (a downgrade for welcome-email, say).
    pub ignored: u64,
    /// Records whose effect had already been performed (a redelivery).
    pub duplicate: u64,
    /// Records reported back to Lambda for retry (failed, or not run behind a failure).
    pub retryable_failed: u64,
    /// Records parked in the DLQ as permanent failures.
    pub parked: u64,
}

impl BatchMetrics {
    pub fn from_results(results: &[RecordResult]) -> Self {
        let mut metrics = BatchMetrics::default();
        for result in results {
            match result {
                RecordResult::Succeeded(RecordOutcome::Duplicate) => metrics.duplicate += 1,
                RecordResult::Succeeded(RecordOutcome::Ignored) => metrics.ignored += 1,
                RecordResult::Succeeded(_) => metrics.processed += 1,
                RecordResult::Parked => metrics.parked += 1,
                RecordResult::Failed(_) | RecordResult::NotRun => metrics.retryable_failed += 1,
            }
        }
        metrics
    }

    /// The counters as one CloudWatch EMF JSON document, namespace `fanout`, dimension
    /// `Consumer`.
    pub fn to_emf(&self, consumer: &str, timestamp_millis: u128) -> serde_json::Value {
        serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_millis,
                "CloudWatchMetrics": [{
                    "Namespace": "fanout",
                    "Dimensions": [["Consumer"]],
                    "Metrics": [
                        {"Name": "Processed", "Unit": "Count"},
                        {"Name": "Ignored", "Unit": "Count"},
                        {"Name": "Duplicate", "Unit": "Count"},
                        {"Name": "RetryableFailed", "Unit": "Count"},
                        {"Name": "Parked", "Unit": "Count"}
                    ]
                }]
            },
            "Consumer": consumer,
            "Processed": self.processed,
            "Ignored": self.ignored,
            "Duplicate": self.duplicate,
            "RetryableFailed": self.retryable_failed,
            "Parked": self.parked,
        })
    }

    /// Writes the EMF line to stdout, where Lambda ships it to CloudWatch Logs, which
    /// extracts the metrics.
    pub fn emit(&self, consumer: &str) {
        let now = crate::time::epoch_millis(std::time::SystemTime::now());
        crate::telemetry::write_line(&self.to_emf(consumer, now));
    }
}
