//! Shared by the integration tests of every crate.
//!
//! Tests run against the local stack that `make test` starts (`fanout-local with -- …`). Run
//! outside it, they fail with a message saying so: they never skip, and they never reach a
//! real AWS endpoint.

use std::path::PathBuf;

use aws_config::{BehaviorVersion, SdkConfig};

/// Endpoint variables every integration test needs.
const REQUIRED: [&str; 2] = ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"];

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
        .region(aws_config::Region::new(crate::LOCAL_REGION))
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

/// The path of a fixture in `events/`.
pub fn fixture_path(name: &str) -> PathBuf {
    crate::stack::workspace_root().join("events").join(name)
}

/// A fixture's text from `events/`.
pub fn fixture_text(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

/// The resources one consumer test needs, unique to that test: an `EffectLedger` table and
/// the consumer's DLQ.
#[derive(Debug, Clone)]
pub struct ConsumerResources {
    pub aws: SdkConfig,
    pub ledger_table: String,
    pub dlq_url: String,
}

impl ConsumerResources {
    pub async fn create(consumer: &str) -> Self {
        let aws = local_sdk_config().await;
        let ledger_table = unique_name("EffectLedger");
        crate::resources::create_ledger_table(&aws_sdk_dynamodb::Client::new(&aws), &ledger_table)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let dlq_url = crate::resources::create_queue(
            &aws_sdk_sqs::Client::new(&aws),
            &unique_name(&format!("{consumer}-dlq")),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        ConsumerResources {
            aws,
            ledger_table,
            dlq_url,
        }
    }

    /// A ledger entry, read consistently (`None` when absent).
    pub async fn ledger_entry(
        &self,
        key: &str,
    ) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        aws_sdk_dynamodb::Client::new(&self.aws)
            .get_item()
            .table_name(&self.ledger_table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(key.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .item
    }

    /// Every record parked in the DLQ so far (drained), as JSON.
    pub async fn parked(&self) -> Vec<serde_json::Value> {
        crate::inspect::drain_queue(&aws_sdk_sqs::Client::new(&self.aws), &self.dlq_url)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|body| serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
            .collect()
    }
}

/// Writes a `Users` row (the contract's attributes) the way the API would.
pub async fn put_user(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    user_id: &str,
    plan: &str,
    version: u64,
) {
    use aws_sdk_dynamodb::types::AttributeValue;
    dynamodb
        .put_item()
        .table_name(table)
        .item("userId", AttributeValue::S(user_id.into()))
        .item("email", AttributeValue::S(format!("{user_id}@example.com")))
        .item("plan", AttributeValue::S(plan.into()))
        .item("version", AttributeValue::N(version.to_string()))
        .item(
            "updatedAt",
            AttributeValue::S("2026-11-23T10:00:00Z".into()),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
}
