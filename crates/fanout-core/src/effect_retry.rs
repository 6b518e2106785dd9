//! Which failed attempts of a non-idempotent effect the SDK may retry by itself.
//!
//! The SDK's standard retry resends a request after a timeout, a lost response or a 5xx. For a
//! request that is not idempotent (SESv2 `SendEmail`, EventBridge `PutEvents`) that resend can
//! make the effect twice inside one call: the first request may have been acted on. Measured
//! against the fault proxy: one dropped response gave two emails, every response dropped
//! gave four. [`UnsentOnlyRetries`] lets the SDK retry only what proves the request was not
//! acted on: a throttling answer, or a connection refused before anything was sent. Anything
//! else goes back to the batch as a failure, where the ledger decides.
//!
//! ```
//! use fanout_core::effect_retry::UnsentOnlyRetries;
//! # fn build(aws: &aws_config::SdkConfig) {
//! // Any SDK client's config builder takes it; the consumers use it for SESv2 and EventBridge.
//! let sqs = aws_sdk_sqs::Client::from_conf(
//!     aws_sdk_sqs::config::Builder::from(aws).retry_classifier(UnsentOnlyRetries).build(),
//! );
//! # }
//! ```

use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};

/// Service error codes that say the request was refused before it was acted on.
pub const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "SlowDown",
];

/// A retry classifier for non-idempotent effects: forbids every retry but those of a
/// throttling answer or a refused connection, which the SDK's own classifiers then retry.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnsentOnlyRetries;

impl ClassifyRetry for UnsentOnlyRetries {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        if let Some(response) = ctx.response() {
            let code = error_code(
                response.headers().get("x-amzn-errortype"),
                response.body().bytes(),
            );
            let throttled = response.status().as_u16() == 429
                || code.is_some_and(|c| THROTTLING_CODES.contains(&c.as_str()));
            return if throttled {
                RetryAction::NoActionIndicated
            } else {
                RetryAction::RetryForbidden
            };
        }
        if refused_before_sending(error as &(dyn std::error::Error + 'static)) {
            RetryAction::NoActionIndicated
        } else {
            // A timeout, a reset or a dropped response: the request may have been acted on.
            RetryAction::RetryForbidden
        }
    }

    fn name(&self) -> &'static str {
        "fanout: retry a non-idempotent effect only when it was surely not acted on"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// The service error code of a response: the `x-amzn-errortype` header (REST-JSON, JSON) or the
/// `__type`/`code` of a JSON body, without its namespace prefix.
fn error_code(header: Option<&str>, body: Option<&[u8]>) -> Option<String> {
    let raw = header.map(str::to_owned).or_else(|| {
        let json: serde_json::Value = serde_json::from_slice(body?).ok()?;
        json.get("__type")
            .or_else(|| json.get("code"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    })?;
    // "com.amazonaws.dynamodb.v20120810#ThrottlingException", "TooManyRequests:http://...".
    let name = raw.rsplit('#').next().unwrap_or(&raw);
    Some(name.split(':').next().unwrap_or(name).to_owned())
}

fn refused_before_sending(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_code_comes_from_the_header_or_the_json_body_without_its_namespace() {
        assert_eq!(
            error_code(Some("TooManyRequestsException:http://internal"), None).as_deref(),
            Some("TooManyRequestsException")
        );
        let body = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}"#;
        assert_eq!(
            error_code(None, Some(body)).as_deref(),
            Some("ProvisionedThroughputExceededException")
        );
        assert_eq!(error_code(None, Some(b"not json")), None);
    }

    #[test]
    fn only_a_refused_connection_counts_as_unsent() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(refused_before_sending(&refused));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(!refused_before_sending(&reset));
    }
}
