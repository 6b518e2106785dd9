//! JSON logs for Lambda and batch counters as CloudWatch Embedded Metric Format lines.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::batch::{RecordOutcome, RecordResult};

/// Installs the global tracing subscriber.
///
/// - Level: `RUST_LOG` if set, else `AWS_LAMBDA_LOG_LEVEL` (the function's advanced logging
///   control: TRACE, DEBUG, INFO, WARN, ERROR, FATAL), else INFO.
/// - Format: JSON unless `AWS_LAMBDA_LOG_FORMAT=Text`, with the current span (the record's
///   eventID, sequence number and key) on every line.
///
/// Calling it twice is harmless: the second call leaves the first subscriber in place.
pub fn init_tracing() {
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    // Lambda adds its own timestamp and request id to every line.
    let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = if text {
        tracing_subscriber::fmt()
            .with_env_filter(filter_from_env())
            .with_target(false)
            .without_time()
            .try_init()
    } else {
        tracing::subscriber::set_global_default(json_subscriber(filter_from_env(), std::io::stdout))
            .map_err(|e| e.into())
    };
    if result.is_err() {
        tracing::debug!("tracing subscriber already installed");
    }
}

/// The JSON log subscriber Lambda functions use, writing to `writer`: one JSON object per
/// line, event fields flattened, with the current span (the record's eventID, sequence
/// number and key). Tests use it with an in-memory writer to check what is logged.
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_span_events(FmtSpan::NONE)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .finish()
}

fn filter_from_env() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = match std::env::var("AWS_LAMBDA_LOG_LEVEL")
            .unwrap_or_default()
            .to_ascii_uppercase()
            .as_str()
        {
            "TRACE" => "trace",
            "DEBUG" => "debug",
            "WARN" => "warn",
            "ERROR" | "FATAL" => "error",
            _ => "info",
        };
        EnvFilter::new(level)
    })
}

/// Counters for one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchMetrics {
    /// Records whose effect was performed, or that needed none.
    pub processed: u64,
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
                        {"Name": "Duplicate", "Unit": "Count"},
                        {"Name": "RetryableFailed", "Unit": "Count"},
                        {"Name": "Parked", "Unit": "Count"}
                    ]
                }]
            },
            "Consumer": consumer,
            "Processed": self.processed,
            "Duplicate": self.duplicate,
            "RetryableFailed": self.retryable_failed,
            "Parked": self.parked,
        })
    }

    /// Writes the EMF line to stdout, where Lambda ships it to CloudWatch Logs, which
    /// extracts the metrics.
    pub fn emit(&self, consumer: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let line = self.to_emf(consumer, now).to_string();
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{line}").is_err() {
            tracing::warn!("could not write metrics line");
        }
    }
}

/// The current time as RFC 3339 (UTC, seconds precision).
pub fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Logs a configuration error at cold start and returns it for `main` to fail with, so the
/// message naming the variable reaches both the log and Lambda's init error.
pub fn cold_start_failure(consumer: &str, err: crate::ConfigError) -> crate::ConfigError {
    tracing::error!(consumer, error = %err, "cold start failed: configuration");
    err
}
