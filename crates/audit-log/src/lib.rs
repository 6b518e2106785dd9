//! audit-log: every stream record becomes one row in `UserAudit`.
//!
//! Key: `userId` + `auditId`, where `auditId` is the record's sequence number (zero-padded so
//! rows sort in stream order) and its eventID. The row holds the event name, the actor
//! (`ttl` for a TTL delete, `application` otherwise), the changed top-level fields and both
//! images as DynamoDB delivered them. It is written with `attribute_not_exists(auditId)`, so a
//! redelivered record is a no-op: the target deduplicates by itself and no ledger is needed.
//!
//! The audit trail records every record, including ones other consumers cannot decode: it
//! copies the raw images instead of decoding them into a `User`.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use fanout_core::aws_lambda_events::dynamodb::EventRecord;
use fanout_core::{
    BatchProcessor, ConfigError, ConsumerConfig, Env, RecordError, RecordHandler, RecordInput,
    RecordOutcome, Remover, changed_attributes, classify_sdk_error,
};

pub const CONSUMER: &str = "audit-log";

/// Errors that no retry can fix: a malformed or oversized item.
const PERMANENT_DYNAMODB_ERRORS: &[&str] = &["ValidationException"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLogConfig {
    pub consumer: ConsumerConfig,
    /// `AUDIT_TABLE`: the UserAudit table.
    pub audit_table: String,
}

impl AuditLogConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(AuditLogConfig {
            consumer: ConsumerConfig::from_env(env)?,
            audit_table: env.required("AUDIT_TABLE")?,
        })
    }
}

/// The sort key of a record's audit row: unique per stream record, in stream order.
pub fn audit_id(record: &EventRecord) -> String {
    let sequence = record.change.sequence_number.as_deref().unwrap_or("");
    format!("{sequence:0>40}#{}", record.event_id)
}

/// The audit row for one stream record.
pub fn audit_row(record: &EventRecord) -> Result<HashMap<String, AttributeValue>, RecordError> {
    let user_id = match record.change.keys.get("userId") {
        Some(serde_dynamo::AttributeValue::S(id)) if !id.is_empty() => id.clone(),
        _ => {
            return Err(RecordError::permanent(format!(
                "record {} has no string userId key; it is not from the Users table",
                record.event_id
            )));
        }
    };
    let actor = match (record.event_name.as_str(), Remover::of(record)) {
        ("REMOVE", Remover::Ttl) => "ttl",
        _ => "application",
    };
    let changed: Vec<AttributeValue> =
        changed_attributes(&record.change.old_image, &record.change.new_image)
            .into_iter()
            .map(AttributeValue::S)
            .collect();
    let text = |value: &str| AttributeValue::S(value.to_owned());
    let mut row = HashMap::from([
        ("userId".to_owned(), AttributeValue::S(user_id)),
        ("auditId".to_owned(), AttributeValue::S(audit_id(record))),
        ("eventId".to_owned(), text(&record.event_id)),
        ("eventName".to_owned(), text(&record.event_name)),
        ("actor".to_owned(), text(actor)),
        ("changedFields".to_owned(), AttributeValue::L(changed)),
        (
            "streamTime".to_owned(),
            text(&record.change.approximate_creation_date_time.to_rfc3339()),
        ),
        (
            "recordedAt".to_owned(),
            text(&fanout_core::time::rfc3339_now()),
        ),
    ]);
    if let Some(sequence) = record.change.sequence_number.as_deref() {
        row.insert("sequenceNumber".to_owned(), text(sequence));
    }
    for (name, image) in [
        ("oldImage", &record.change.old_image),
        ("newImage", &record.change.new_image),
    ] {
        if !image.is_empty() {
            let map: HashMap<String, serde_dynamo::AttributeValue> = image.clone().into();
            row.insert(name.to_owned(), serde_dynamo::AttributeValue::M(map).into());
        }
    }
    Ok(row)
}

/// Writes audit rows.
#[derive(Debug, Clone)]
pub struct AuditLog {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

impl AuditLog {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        AuditLog {
            dynamodb,
            table: table.into(),
        }
    }

    pub fn from_config(
        aws: &aws_config::SdkConfig,
        config: &AuditLogConfig,
    ) -> (BatchProcessor, Self) {
        let handler = AuditLog::new(aws_sdk_dynamodb::Client::new(aws), &config.audit_table);
        (config.consumer.processor(CONSUMER, aws), handler)
    }
}

impl RecordHandler for AuditLog {
    async fn handle(&self, input: RecordInput) -> Result<RecordOutcome, RecordError> {
        let row = audit_row(&input.record)?;
        let result = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(row))
            .condition_expression("attribute_not_exists(auditId)")
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(event_name = %input.record.event_name, "audit row written");
                Ok(RecordOutcome::Done)
            }
            Err(SdkError::ServiceError(err))
                if matches!(err.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                tracing::info!("audit row already written: duplicate delivery");
                Ok(RecordOutcome::Duplicate)
            }
            Err(err) => Err(classify_sdk_error(
                "DynamoDB PutItem (audit row)",
                &err,
                PERMANENT_DYNAMODB_ERRORS,
            )),
        }
    }
}
