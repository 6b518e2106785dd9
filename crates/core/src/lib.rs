//! fanout-core: what every DynamoDB Stream consumer of the `Users` table needs.
//!
//! - [`change`]: typed decoding of stream records into [`Change`]s, and field diffs.
//! - [`domain`]: the [`User`] row, [`Plan`]s and [`PlanChange`]s.
//! - [`ledger`]: exactly-once effects through conditional writes to `EffectLedger`.
//! - [`batch`]: stream-correct batch processing with partial batch responses.
//! - [`dlq`]: parking permanent failures with the full record.
//! - [`config`], [`telemetry`]: environment config, JSON logs and EMF counters.
//! - [`lambda`]: the Lambda wiring every consumer's `main.rs` calls.

pub mod batch;
pub mod change;
pub mod config;
pub mod dlq;
pub mod domain;
pub mod failure;
pub mod lambda;
pub mod ledger;
pub mod telemetry;

pub use batch::{
    BatchError, BatchProcessor, BatchReport, HandlerFn, RecordError, RecordHandler, RecordInput,
    RecordOutcome, RecordResult,
};
pub use change::{Change, DecodeError, ImageSide, Remover, changed_attributes, item_key};
pub use config::{ConfigError, ConsumerConfig, Env, LedgerConfig};
pub use dlq::{DeadLetterQueue, ParkedRecord};
pub use domain::{Email, Plan, PlanChange, PlanDirection, User};
pub use failure::classify_sdk_error;
pub use ledger::{ClaimOutcome, EffectKey, Lease, Ledger, LedgerClaim, LedgerError};

// Re-exported so consumers and tests use exactly the versions core is built with.
pub use aws_lambda_events;
pub use lambda_runtime;
pub use serde_dynamo;

/// An error and all its sources on one line, for log lines and error messages (the SDK's
/// top-level errors say little without their sources).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
