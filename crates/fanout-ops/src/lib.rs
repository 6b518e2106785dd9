//! fanout-ops: operating fanout against AWS, or the local AWS, with the standard credential
//! chain and endpoint variables.
//!
//! - [`preflight`]: what must exist before a stack is deployed, checked and named.
//! - [`redrive`]: a consumer's DLQ sent back through its function (parked records, and the
//!   stream ranges of OnFailure records re-read from the stream).
//! - [`check_items`]: what the consumers would make of the Users table's items, invoking nothing.
//! - [`discard`]: parked records that can never succeed taken out of a DLQ, each one named.
//! - [`reconcile`]: the Users table compared with each consumer's durable record of its
//!   effects; `--repair` makes the missing ones through the consumer.
//! - [`deployed`]: a consumer's registry entry (its registry folder, or the SSM parameter its
//!   stack publishes) and its deployed function, DLQ and bucket (its stack's outputs).
//! - [`aws`]: the SDK configuration, its credentials checked once.
//! - [`invoke`]: records sent to a function through the Lambda Invoke API.
//! - [`context`]: the CDK context a deploy uses (`infra/cdk.json` and `-c` overrides).
//!
//! **Architecture invariant:** talks to AWS only through the SDK and names no resource: table,
//! queue and function names come from SSM parameters, stack outputs and the registry. It never
//! makes an effect itself: every effect goes through the consumer's own function, so the
//! ledger keeps it exactly-once.

pub mod aws;
pub mod check_items;
pub mod context;
pub mod deployed;
pub mod discard;
pub mod error;
pub mod invoke;
pub mod preflight;
pub mod progress;
pub mod reconcile;
pub mod redrive;

pub use context::CdkContext;
pub use error::OpsError;
