//! fanout-ops: operating fanout against AWS, or the local AWS, with the standard credential
//! chain and endpoint variables.
//!
//! - [`preflight`]: what must exist before a stack is deployed, checked and named.
//! - [`context`]: the CDK context a deploy uses (`infra/cdk.json` and `-c` overrides).
//!
//! **Architecture invariant:** talks to AWS only through the SDK and names no resource: table,
//! queue and function names come from SSM parameters, stack outputs and the registry.

pub mod context;
pub mod error;
pub mod preflight;

pub use context::CdkContext;
pub use error::OpsError;
