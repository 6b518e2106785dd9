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
    #[error(
        "no stack {stack}: the app has FanoutTables, FanoutPipelineRoles and the consumer stacks {known}"
    )]
    UnknownStack { stack: String, known: String },
    /// A resource the command needs could not be found or read.
    #[error("looking up {what}: {message}")]
    Lookup { what: String, message: String },
    /// An AWS call failed before the command could do its work.
    #[error("{operation}: {message}")]
    Aws { operation: String, message: String },
    /// No credentials anywhere the SDK looks: said once, before any call.
    #[error(
        "no AWS credentials: looked in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), the profile {profile} of the shared config and credentials files (SSO and credential_process included), a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE), and the container and instance metadata; provide them with AWS_PROFILE=<profile> (after `aws sso login --profile <profile>` for SSO) or by exporting AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({cause})"
    )]
    NoCredentials { profile: String, cause: String },
    #[error(transparent)]
    Stage(#[from] fanout_registry::names::StageError),
    /// The registry entry of a deployed consumer could not be found.
    #[error(
        "no registry entry for {consumer}: SSM parameter {parameter} ({message}); deploy its stack from this version of the app, pass --stage if it was deployed with one, or pass --registry <infra/consumers of its app>"
    )]
    NoEntry {
        consumer: String,
        parameter: String,
        message: String,
    },
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
