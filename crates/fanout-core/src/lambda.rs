//! Lambda wiring shared by every consumer's `main.rs`.

use std::sync::Arc;

use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{LambdaEvent, service_fn};

use crate::batch::{BatchProcessor, RecordHandler};

/// The error a consumer's `main` returns.
pub type Error = lambda_runtime::Error;

/// Loads the shared AWS SDK configuration once at cold start. Endpoints come from the
/// standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables, region and
/// credentials from the usual chain.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Serves stream batches with `handler` until the Lambda runtime stops.
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
