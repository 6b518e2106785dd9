//! JSON logs for Lambda, and the stdout line writer CloudWatch Embedded Metric Format lines go
//! through. A leaf: it imports nothing from the rest of the crate.

use std::io::Write;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;

/// Installs the global tracing subscriber.
///
/// - Level: `RUST_LOG` if set (`target=level` directives, e.g. `info,fanout_core=debug`), else
///   `AWS_LAMBDA_LOG_LEVEL` (the function's advanced logging control: TRACE, DEBUG, INFO,
///   WARN, ERROR, FATAL), else INFO. Target directives, not `EnvFilter`'s span and field
///   filters: those need the regex engine, a tenth of a consumer's zip.
/// - Format: JSON unless `AWS_LAMBDA_LOG_FORMAT=Text`, with the current span (the record's
///   eventID, sequence number and key, when the level enables it) on every line.
///
/// Calling it twice is harmless: the second call leaves the first subscriber in place.
pub fn init_tracing() {
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    // Lambda adds its own timestamp and request id to every line.
    let result = if text {
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry()
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_target(false)
                        .without_time(),
                )
                .with(filter_from_env()),
        )
    } else {
        tracing::subscriber::set_global_default(json_subscriber(filter_from_env(), std::io::stdout))
    };
    if result.is_err() {
        tracing::debug!("tracing subscriber already installed");
    }
}

/// The JSON log subscriber Lambda functions use, writing to `writer`: one JSON object per
/// line, event fields flattened, with the current span (the record's eventID, sequence
/// number and key). Tests use it with an in-memory writer to check what is logged.
///
/// ```
/// let filter: tracing_subscriber::filter::Targets = "debug".parse().unwrap();
/// let subscriber = fanout_core::telemetry::json_subscriber(filter, std::io::sink);
/// tracing::subscriber::with_default(subscriber, || tracing::debug!("kept"));
/// ```
pub fn json_subscriber<W>(filter: Targets, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_span_events(FmtSpan::NONE)
                .with_writer(writer)
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
        )
        .with(filter)
}

fn filter_from_env() -> Targets {
    if let Some(filter) = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
    {
        return filter;
    }
    let level = match std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .unwrap_or_default()
        .to_ascii_uppercase()
        .as_str()
    {
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "WARN" => LevelFilter::WARN,
        "ERROR" | "FATAL" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    };
    Targets::new().with_default(level)
}

/// Writes one JSON document as a line to stdout, where Lambda ships it to CloudWatch Logs
/// (which extracts EMF metrics from it).
pub fn write_line(document: &serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{document}").is_err() {
        tracing::warn!("could not write a line to stdout");
    }
}
