//! Turning AWS SDK errors into record failures: retryable unless the service said the request
//! itself can never succeed. And [`error_chain`], the one way errors become log text.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::outcome::RecordError;

/// Classifies an SDK error. `permanent_codes` are the service error codes that mean this
/// request can never succeed however often it is sent (for example `ValidationException`);
/// everything else (throttling, 5xx, timeouts, connection errors, and errors an operator can
/// fix such as an unverified identity) is retryable.
///
/// The message carries the error code and the whole source chain.
pub fn classify_sdk_error<E, R>(
    operation: &str,
    err: &SdkError<E, R>,
    permanent_codes: &[&str],
) -> RecordError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().unwrap_or("");
    let message = format!(
        "{operation} failed{}: {}",
        if code.is_empty() {
            String::new()
        } else {
            format!(" ({code})")
        },
        err.message()
            .map(str::to_owned)
            .unwrap_or_else(|| error_chain(err)),
    );
    if matches!(err, SdkError::ServiceError(_)) && permanent_codes.contains(&code) {
        RecordError::Permanent(message)
    } else {
        RecordError::Retryable(message)
    }
}

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
