//! fanout-core: what every DynamoDB Stream consumer of the `Users` table needs.
//!
//! Modules, bottom to top; each imports only modules above it in this list:
//!
//! - [`time`], [`telemetry`]: time formatting; JSON logs and the EMF line writer (leaves).
//! - [`port`]: what the ports at core's I/O boundaries answer with (a leaf).
//! - [`change`]: typed decoding of stream records into [`Change`]s, and field diffs.
//! - [`source`]: either source's records (DynamoDB Streams, Kinesis) read into one record type.
//! - [`domain`]: the [`User`] row, [`Plan`]s and [`PlanChange`]s.
//! - [`outcome`]: the vocabulary of record processing ([`RecordOutcome`], [`RecordError`],
//!   [`RecordResult`]) and the batch counters ([`BatchMetrics`]).
//! - [`failure`]: SDK errors classified into record failures; errors as log text.
//! - [`effect_retry`]: which failed attempts of a non-idempotent effect the SDK may retry.
//! - [`ledger`]: exactly-once effects through conditional writes to `EffectLedger`.
//! - [`dlq`]: parking permanent failures with the full record; where a record came from.
//! - [`reconcile`]: a consumer's check of its durable effect record against an item.
//! - [`batch`]: stream-correct batch processing with partial batch responses.
//! - [`config`]: environment config read once at cold start.
//! - [`lambda`]: the Lambda wiring every consumer's `main.rs` calls.
//!
//! The layering is checked by the workspace tidy test (`crates/fanout-devstack/tests/tidy.rs`,
//! `CORE_LAYERS`).

pub mod batch;
pub mod change;
pub mod config;
pub mod dlq;
pub mod domain;
pub mod effect_retry;
pub mod failure;
pub mod lambda;
pub mod ledger;
pub mod outcome;
pub mod port;
pub mod reconcile;
pub mod source;
pub mod telemetry;
pub mod time;

pub use batch::{BatchError, BatchProcessor, BatchReport, HandlerFn, RecordHandler, RecordInput};
pub use change::{
    Change, DecodeError, ImageSide, Remover, StreamView, changed_attributes, item_key,
};
pub use config::{ConfigError, ConsumerConfig, Env, LedgerConfig};
pub use dlq::{DeadLetterQueue, ParkedRecord, RecordOrigin};
pub use domain::{Email, Plan, PlanChange, PlanDirection, User};
pub use failure::{classify_sdk_error, error_chain, scrub_personal};
pub use ledger::{ClaimOutcome, EffectKey, Lease, Ledger, LedgerClaim, LedgerError};
pub use outcome::{BatchMetrics, RecordError, RecordOutcome, RecordResult};
pub use reconcile::{EffectCheck, EffectState};
pub use source::{ChangeOrder, RecordSource, SourceRecord, read_record};
pub use time::TimeBudget;

// Re-exported so consumers and tests use exactly the versions core is built with.
pub use aws_lambda_events;
pub use lambda_runtime;
pub use serde_dynamo;
