//! What can stop an operations command before it does its work.

/// An operations command could not run (as opposed to ran and found problems).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("CDK context: {0}")]
    Context(String),
    #[error(transparent)]
    Registry(#[from] fanout_registry::RegistryError),
    #[error("no stack {stack}: the app has FanoutTables and the consumer stacks {known}")]
    UnknownStack { stack: String, known: String },
    /// A resource the command needs could not be found or read.
    #[error("looking up {what}: {message}")]
    Lookup { what: String, message: String },
    /// An AWS call failed before the command could do its work.
    #[error("{operation}: {message}")]
    Aws { operation: String, message: String },
    #[error(
        "{consumer} has no reconcile check: implement fanout_core::EffectCheck in its crate and name it in crates/fanout-ops/src/reconcile.rs"
    )]
    NoCheck { consumer: String },
    #[error("configuring {consumer}'s check from its function's environment: {message}")]
    CheckConfig { consumer: String, message: String },
}

impl OpsError {
    /// The error of a failed AWS call `operation`, for `map_err`.
    pub fn aws<E: std::error::Error>(operation: impl Into<String>) -> impl FnOnce(E) -> OpsError {
        let operation = operation.into();
        move |err| OpsError::Aws {
            operation,
            message: fanout_core::error_chain(&err),
        }
    }
}
