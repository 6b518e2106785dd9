//! Lambda wiring shared by every consumer's `main.rs`.

use std::sync::Arc;

use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{LambdaEvent, service_fn};

use crate::batch::{BatchProcessor, RecordHandler};
use crate::reconcile::{CheckAnswer, CheckRequest, EffectCheck, check_all};

/// The allocator of every consumer binary (`#[global_allocator]` in its `main.rs`): mimalloc.
/// The AWS SDK allocates and frees many small buffers per request; with glibc's malloc that
/// was about a fifth of welcome-email's CPU per record in the `make bench` profile.
pub use mimalloc::MiMalloc as Allocator;

/// The error a consumer's `main` returns.
pub type Error = lambda_runtime::Error;

/// Loads the shared AWS SDK configuration once at cold start. Endpoints come from the
/// standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables, region and
/// credentials from the usual chain. HTTPS is rustls with ring, the one TLS stack in a
/// consumer binary (the SDK's default client would add aws-lc, a third of the zip).
pub async fn aws_config() -> aws_config::SdkConfig {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https)
        .load()
        .await
}

/// What a consumer's function answers: a stream batch's partial-batch response, or the
/// answer to a reconcile check.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
enum Answer {
    Batch(DynamoDbEventResponse),
    Check(CheckAnswer),
}

/// Serves stream batches with `handler`, and `fanout-ops reconcile`'s check requests
/// ([`CheckRequest`]) with `check`, until the Lambda runtime stops.
///
/// Consumers run it on tokio's current-thread runtime: below 1,769 MB a function has less than
/// one vCPU, and a second worker thread only adds cross-thread wake-ups (measured by `make
/// bench`). The records of a batch still run concurrently, on that one thread.
pub async fn serve<H: RecordHandler, C: EffectCheck + 'static>(
    processor: BatchProcessor,
    handler: H,
    check: C,
) -> Result<(), lambda_runtime::Error> {
    let processor = Arc::new(processor);
    let handler = Arc::new(handler);
    let check = Arc::new(check);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let processor = Arc::clone(&processor);
        let handler = Arc::clone(&handler);
        let check = Arc::clone(&check);
        async move {
            answer(
                &processor,
                handler,
                check,
                event.payload,
                event.context.deadline(),
            )
            .await
        }
    }))
    .await
}

/// One invocation's answer: a check request is checked, anything else is a stream batch.
/// The batch is read record by record in the processor, so one malformed record is parked
/// alone instead of failing the invocation.
async fn answer<H: RecordHandler, C: EffectCheck + 'static>(
    processor: &BatchProcessor,
    handler: Arc<H>,
    check: Arc<C>,
    payload: serde_json::Value,
    deadline: std::time::SystemTime,
) -> Result<Answer, lambda_runtime::Error> {
    match CheckRequest::from_payload(&payload) {
        Some(Ok(request)) => {
            let concurrency = processor.max_concurrency().get();
            Ok(Answer::Check(check_all(check, request, concurrency).await))
        }
        Some(Err(err)) => Err(format!("a check request whose users do not read: {err}").into()),
        None => Ok(Answer::Batch(
            processor.process(payload, deadline, handler).await?,
        )),
    }
}

/// Logs a configuration error at cold start and returns it for `main` to fail with, so the
/// message naming the variable reaches both the log and Lambda's init error.
pub fn cold_start_failure(
    consumer: &str,
    err: crate::config::ConfigError,
) -> crate::config::ConfigError {
    tracing::error!(consumer, error = %err, "cold start failed: configuration");
    err
}
