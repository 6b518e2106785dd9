//! What a consumer's integration tests share: its own ledger and DLQ, and a writer of `Users`
//! rows.

use aws_config::SdkConfig;

use crate::local::{local_sdk_config, unique_name};

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

    /// The variables a consumer reads for these resources (`DLQ_URL`, `LEDGER_TABLE`),
    /// `USERS_TABLE` (`Users`, the table the `events/` fixtures name) and `MAX_CONCURRENCY`,
    /// for `Env::from_pairs` in a test.
    pub fn env(&self, max_concurrency: usize) -> Vec<(String, String)> {
        vec![
            (
                "USERS_TABLE".to_owned(),
                crate::fixtures::FIXTURE_USERS_TABLE.to_owned(),
            ),
            ("DLQ_URL".to_owned(), self.dlq_url.clone()),
            ("LEDGER_TABLE".to_owned(), self.ledger_table.clone()),
            ("MAX_CONCURRENCY".to_owned(), max_concurrency.to_string()),
        ]
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
        crate::queues::drain_queue(&aws_sdk_sqs::Client::new(&self.aws), &self.dlq_url)
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
