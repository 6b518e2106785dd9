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
}
