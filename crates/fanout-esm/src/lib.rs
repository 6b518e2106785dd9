//! fanout-esm: Lambda's event source mapping for DynamoDB Streams, emulated locally, and the
//! function hosts it drives. Usable by any project that wants to run its stream consumers
//! against DynamoDB Local with the semantics they will meet in AWS.
//!
//! - [`LocalMapping`]: polls a stream (parents before children), filters, batches, invokes,
//!   and applies partial batch responses, bisection, retries, maximum record age and the
//!   OnFailure record, as AWS documents them.
//! - [`MappingSettings`]: the mapping's knobs, read from the CloudFormation-shaped JSON a CDK
//!   app deploys.
//! - [`filter`]: Lambda's event filtering pattern language.
//! - [`Invoke`]: how a mapping calls its function; [`InvokeApi`] (the Lambda Invoke API, for
//!   example `cargo lambda watch`) and [`RuntimeApiHost`] (a binary run as Lambda runs a
//!   `provided.al2023` function, through the Runtime API) implement it.
//! - [`LocalLambdaApi`]: the Lambda Invoke and GetFunctionConfiguration API in front of
//!   Runtime API hosts, for tools built on the AWS SDK.
//!
//! **Architecture invariant:** this crate knows nothing of fanout: no table, consumer or
//! settings file names. It depends on no other crate of the workspace.

pub mod filter;
// The README's example is compiled as a doc test, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
pub mod invoke;
pub mod lambda_api;
pub mod mapping;
pub mod record;
pub mod runtime_api;
pub mod settings;

pub use invoke::{Invoke, InvokeApi, InvokeError};
pub use lambda_api::LocalLambdaApi;
pub use mapping::{
    Discarded, Invocation, InvocationOutcome, LocalMapping, MappingError, OnFailureDestination,
    PollReport, on_failure_object_key, s3_client,
};
pub use record::RecordShape;
pub use runtime_api::{FunctionConfig, HostError, HostStats, RuntimeApiHost};
pub use settings::{MappingSettings, SettingsError, StartingPosition};
