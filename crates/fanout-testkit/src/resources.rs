//! Local copies of the resources the CDK app creates. Key schemas here must match
//! `infra/lib/tables-stack.ts`.

use aws_sdk_dynamodb::Client as DynamoDb;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_sqs::Client as Sqs;

#[derive(Debug, thiserror::Error)]
#[error("creating {what} {name}: {message}")]
pub struct ResourceError {
    pub what: &'static str,
    pub name: String,
    pub message: String,
}

fn fail(what: &'static str, name: &str, err: impl std::error::Error) -> ResourceError {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ResourceError {
        what,
        name: name.to_owned(),
        message,
    }
}

fn attribute(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, ResourceError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .map_err(|e| fail("attribute", name, e))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, ResourceError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| fail("key", name, e))
}

/// The view of the local `Users` stream, as consumers read it from `STREAM_VIEW_TYPE`.
pub const USERS_STREAM_VIEW: &str = "NEW_AND_OLD_IMAGES";

/// `Users`: key `userId`, stream [`USERS_STREAM_VIEW`]. Returns the stream ARN.
pub async fn create_users_table(client: &DynamoDb, name: &str) -> Result<String, ResourceError> {
    let output = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("userId", ScalarAttributeType::S)?)
        .key_schema(key("userId", KeyType::Hash)?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(USERS_STREAM_VIEW))
                .build()
                .map_err(|e| fail("stream", name, e))?,
        )
        .send()
        .await
        .map_err(|e| fail("table", name, e))?;
    output
        .table_description()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_owned)
        .ok_or_else(|| ResourceError {
            what: "table",
            name: name.to_owned(),
            message: "no stream ARN in CreateTable output".to_owned(),
        })
}

/// `EffectLedger`: key `pk`, TTL on `expiresAt`.
pub async fn create_ledger_table(client: &DynamoDb, name: &str) -> Result<(), ResourceError> {
    create_string_keyed_table(client, name, "pk").await?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expiresAt")
                .build()
                .map_err(|e| fail("ttl", name, e))?,
        )
        .send()
        .await
        .map_err(|e| fail("ttl", name, e))?;
    Ok(())
}

/// A table keyed by `id` alone: what Powertools' idempotency `DynamoDBPersistenceLayer` uses
/// by default (the peer `make bench` measures fanout against).
pub async fn create_id_keyed_table(client: &DynamoDb, name: &str) -> Result<(), ResourceError> {
    create_string_keyed_table(client, name, "id").await
}

/// An on-demand table whose key is the one string attribute `key_name`.
async fn create_string_keyed_table(
    client: &DynamoDb,
    name: &str,
    key_name: &str,
) -> Result<(), ResourceError> {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(key_name, ScalarAttributeType::S)?)
        .key_schema(key(key_name, KeyType::Hash)?)
        .send()
        .await
        .map_err(|e| fail("table", name, e))?;
    Ok(())
}

/// `UserAudit`: key `userId` + sort key `auditId` (unique per stream record).
pub async fn create_audit_table(client: &DynamoDb, name: &str) -> Result<(), ResourceError> {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("userId", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("auditId", ScalarAttributeType::S)?)
        .key_schema(key("userId", KeyType::Hash)?)
        .key_schema(key("auditId", KeyType::Range)?)
        .send()
        .await
        .map_err(|e| fail("table", name, e))?;
    Ok(())
}

/// A standard SQS queue; returns its URL.
pub async fn create_queue(client: &Sqs, name: &str) -> Result<String, ResourceError> {
    let output = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| fail("queue", name, e))?;
    output
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| ResourceError {
            what: "queue",
            name: name.to_owned(),
            message: "no queue URL in CreateQueue output".to_owned(),
        })
}

#[cfg(feature = "services")]
/// A verified SESv2 email identity (ministack verifies at once).
pub async fn create_verified_sender(
    client: &aws_sdk_sesv2::Client,
    address: &str,
) -> Result<(), ResourceError> {
    client
        .create_email_identity()
        .email_identity(address)
        .send()
        .await
        .map_err(|e| fail("SES identity", address, e))?;
    Ok(())
}

#[cfg(feature = "services")]
/// An EventBridge bus with a rule that sends every `fanout.users` event to `queue_arn`.
/// Returns the bus ARN.
pub async fn create_bus_to_queue(
    client: &aws_sdk_eventbridge::Client,
    bus: &str,
    queue_arn: &str,
) -> Result<String, ResourceError> {
    let output = client
        .create_event_bus()
        .name(bus)
        .send()
        .await
        .map_err(|e| fail("event bus", bus, e))?;
    let rule = format!("{bus}-to-queue");
    client
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(r#"{"source":["fanout.users"]}"#)
        .send()
        .await
        .map_err(|e| fail("rule", &rule, e))?;
    client
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .map_err(|e| fail("target", &rule, e))?,
        )
        .send()
        .await
        .map_err(|e| fail("target", &rule, e))?;
    Ok(output.event_bus_arn().unwrap_or(bus).to_owned())
}

/// The ARN of a queue.
pub async fn queue_arn(client: &Sqs, queue_url: &str) -> Result<String, ResourceError> {
    let output = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| fail("queue attributes", queue_url, e))?;
    output
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| ResourceError {
            what: "queue attributes",
            name: queue_url.to_owned(),
            message: "no QueueArn".to_owned(),
        })
}
