//! Lambda wiring shared by every consumer's `main.rs`.

use std::sync::Arc;

use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{LambdaEvent, service_fn};

use crate::batch::{BatchProcessor, RecordHandler};

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

/// Serves stream batches with `handler` until the Lambda runtime stops.
///
/// Consumers run it on tokio's current-thread runtime: below 1,769 MB a function has less than
/// one vCPU, and a second worker thread only adds cross-thread wake-ups (measured by `make
/// bench`). The records of a batch still run concurrently, on that one thread.
pub async fn serve<H: RecordHandler>(
    processor: BatchProcessor,
    handler: H,
) -> Result<(), lambda_runtime::Error> {
    let processor = Arc::new(processor);
    let handler = Arc::new(handler);
    // The event is read record by record in the processor, so one malformed record is parked
    // alone instead of failing the invocation.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let processor = Arc::clone(&processor);
        let handler = Arc::clone(&handler);
        async move {
            let deadline = event.context.deadline();
            let response: DynamoDbEventResponse =
                processor.process(event.payload, deadline, handler).await?;
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
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
