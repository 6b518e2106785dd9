//! The local stack as tests see it: SDK config that can only reach loopback, and names unique
//! to one test.
//!
//! Tests run against the local stack that `make test` starts (`fanout-local with -- …`). Run
//! outside it, they fail with a message saying so: they never skip, and they never reach a
//! real AWS endpoint.

use aws_config::{BehaviorVersion, SdkConfig};

/// Region the local stack uses. DynamoDB Local with `-sharedDb` ignores it.
pub const LOCAL_REGION: &str = "us-east-1";

/// Endpoint variables every integration test needs.
const REQUIRED: [&str; 3] = [
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_S3",
];

/// SDK config for the local stack. Panics (this is test code) when the endpoints are unset or
/// not on loopback, so a test can never touch a real account.
pub async fn local_sdk_config() -> SdkConfig {
    for name in REQUIRED {
        let value = std::env::var(name).unwrap_or_default();
        assert!(
            value.starts_with("http://127.0.0.1:") || value.starts_with("http://localhost:"),
            "{name} is {value:?}: integration tests need the local stack; run them with `make test`"
        );
    }
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(LOCAL_REGION))
        .load()
        .await
}

/// ministack's own base URL (for `/_ministack/...` inspection), from the SQS endpoint.
pub fn ministack_url() -> String {
    std::env::var("AWS_ENDPOINT_URL_SQS").unwrap_or_default()
}

/// A resource name unique to one test, so tests share the stack but never each other's data.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
