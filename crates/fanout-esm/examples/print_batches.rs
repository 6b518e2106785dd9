//! Drives a local event source mapping over a DynamoDB Local stream and prints each batch the
//! function would get, answering every batch with success.
//!
//! ```sh
//! AWS_ENDPOINT_URL=http://127.0.0.1:8000 AWS_REGION=us-east-1 \
//! AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
//!   cargo run -p fanout-esm --example print_batches -- <stream-arn>
//! ```

use fanout_esm::{Invoke, InvokeError, LocalMapping, MappingSettings};
use serde_json::{Value, json};

/// A function that prints what it is given and reports no failure.
#[derive(Debug)]
struct Print;

impl Invoke for Print {
    async fn invoke(&self, event: Value) -> Result<Value, InvokeError> {
        for record in event["Records"].as_array().into_iter().flatten() {
            println!(
                "{} {} keys={}",
                record["dynamodb"]["SequenceNumber"].as_str().unwrap_or("?"),
                record["eventName"].as_str().unwrap_or("?"),
                record["dynamodb"]["Keys"]
            );
        }
        Ok(json!({"batchItemFailures": []}))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(stream_arn) = std::env::args().nth(1) else {
        return Err("usage: print_batches <stream-arn>".into());
    };
    let settings = MappingSettings::from_json(&json!({
        "startingPosition": "TRIM_HORIZON", "batchSize": 10, "maxBatchingWindowSeconds": 0,
        "parallelizationFactor": 1, "bisectBatchOnFunctionError": true,
        "maximumRetryAttempts": 2, "maximumRecordAgeSeconds": 3600,
        "reportBatchItemFailures": true, "filters": []
    }))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // No OnFailure queue is needed while every batch succeeds.
    let mut mapping = LocalMapping::new(&aws, &stream_arn, "print", "", settings, Print);
    let report = mapping.poll().await?;
    println!(
        "{} invocation(s), {} record(s) filtered out",
        report.invocations.len(),
        report.filtered_out
    );
    Ok(())
}
