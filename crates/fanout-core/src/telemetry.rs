//! JSON logs for Lambda, and the stdout line writer CloudWatch Embedded Metric Format lines go
//! through. A leaf: it imports nothing from the rest of the crate.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

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

/// Writes one JSON document as a line to stdout, where Lambda ships it to CloudWatch Logs
/// (which extracts EMF metrics from it).
pub fn write_line(document: &serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{document}").is_err() {
        tracing::warn!("could not write a line to stdout");
    }
}
