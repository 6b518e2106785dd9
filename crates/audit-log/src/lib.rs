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
//!
//! A row must fit DynamoDB's 400 KB item limit, and a `Users` item may itself be near it, so
//! two images can never both fit. Such a change is still recorded, never parked: the row keeps
//! as much as fits, in this order ([`ImagesKept`]): both images; the new image and the old
//! values of the changed attributes; the old and new values of the changed attributes only;
//! no image (their sizes are kept). The stream record itself stays in the stream for 24 hours.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use fanout_core::aws_lambda_events::dynamodb::EventRecord;
use fanout_core::{
    BatchProcessor, ConfigError, ConsumerConfig, EffectCheck, EffectState, Env, RecordError,
    RecordHandler, RecordInput, RecordOutcome, Remover, StreamView, User, changed_attributes,
    classify_sdk_error,
};

pub const CONSUMER: &str = "audit-log";

/// The least stream view it can work from: a row records whichever images the record carries.
pub const STREAM_VIEW: StreamView = StreamView::KeysOnly;

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
            consumer: ConsumerConfig::from_env(env, STREAM_VIEW)?,
            audit_table: env.required("AUDIT_TABLE")?,
        })
    }
}

/// The sort key of a record's audit row: unique per change record, in stream order.
///
/// A change carried by Kinesis has no stream sequence number, and a Kinesis duplicate has a
/// Kinesis sequence number of its own: its key is the creation time (whole seconds) and the
/// change's `eventID`, the same for every copy, so a duplicate finds its row written.
pub fn audit_id(record: &EventRecord) -> String {
    let position = match record.change.sequence_number.as_deref() {
        Some(sequence) => sequence.to_owned(),
        None => record
            .change
            .approximate_creation_date_time
            .timestamp()
            .to_string(),
    };
    format!("{position:0>40}#{}", record.event_id)
}

/// DynamoDB's item size limit, less room for rounding in the estimate.
pub const MAX_ROW_BYTES: usize = 400 * 1024 - 8 * 1024;

/// How much of a record's images its audit row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagesKept {
    /// Both images as delivered.
    Full,
    /// The new image, and the old values of the changed attributes.
    NewAndChangedOld,
    /// The old and new values of the changed attributes only.
    ChangedOnly,
    /// No image fits; only their sizes.
    Omitted,
}

impl ImagesKept {
    pub fn as_str(self) -> &'static str {
        match self {
            ImagesKept::Full => "full",
            ImagesKept::NewAndChangedOld => "new-and-changed-old",
            ImagesKept::ChangedOnly => "changed-only",
            ImagesKept::Omitted => "omitted",
        }
    }
}

/// The size DynamoDB counts for an item: attribute names plus values (numbers counted as
/// their text, an over-estimate), nested maps and lists with their few bytes of overhead.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.iter().map(String::len).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::M(m) => 3 + item_size(m) + m.len(),
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        _ => 1,
    }
}

/// The audit row for one stream record, as much of its images as fits ([`ImagesKept`]).
pub fn audit_row(record: &EventRecord) -> Result<HashMap<String, AttributeValue>, RecordError> {
    let Some(user_id) = fanout_core::change::user_key(record).map(str::to_owned) else {
        return Err(RecordError::permanent(format!(
            "record {} has no string userId key; it is not from the Users table",
            record.event_id
        )));
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
    // The item version the row records, whatever images fit: what reconcile looks for.
    if let Some(serde_dynamo::AttributeValue::N(version)) = record.change.new_image.get("version") {
        row.insert("version".to_owned(), AttributeValue::N(version.clone()));
    }
    // `aws:dynamodb`, or the operator's tool that sent the record (a reconcile repair).
    if let Some(source) = record.event_source.as_deref() {
        row.insert("source".to_owned(), text(source));
    }
    let image = |item: &serde_dynamo::Item| -> Option<AttributeValue> {
        (!item.is_empty()).then(|| {
            let map: HashMap<String, serde_dynamo::AttributeValue> = item.clone().into();
            serde_dynamo::AttributeValue::M(map).into()
        })
    };
    let changed_values = |item: &serde_dynamo::Item| -> Option<AttributeValue> {
        let changed = changed_attributes(&record.change.old_image, &record.change.new_image);
        let map: HashMap<String, serde_dynamo::AttributeValue> = item
            .iter()
            .filter(|(name, _)| changed.contains(*name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        (!map.is_empty()).then(|| serde_dynamo::AttributeValue::M(map).into())
    };
    let (old, new) = (&record.change.old_image, &record.change.new_image);
    // Each way of keeping the images, most first: the attributes it writes.
    type Images<'a> = [(&'a str, Option<AttributeValue>); 2];
    let attempts: [(ImagesKept, Images<'_>); 3] = [
        (
            ImagesKept::Full,
            [("oldImage", image(old)), ("newImage", image(new))],
        ),
        (
            ImagesKept::NewAndChangedOld,
            [("oldValues", changed_values(old)), ("newImage", image(new))],
        ),
        (
            ImagesKept::ChangedOnly,
            [
                ("oldValues", changed_values(old)),
                ("newValues", changed_values(new)),
            ],
        ),
    ];
    for (kept, images) in attempts {
        let mut candidate = row.clone();
        candidate.insert("images".to_owned(), text(kept.as_str()));
        for (name, value) in images {
            if let Some(value) = value {
                candidate.insert(name.to_owned(), value);
            }
        }
        if item_size(&candidate) <= MAX_ROW_BYTES {
            if kept != ImagesKept::Full {
                tracing::warn!(event_id = %record.event_id, images = kept.as_str(),
                    "the images do not fit one audit row; kept what fits");
            }
            return Ok(candidate);
        }
    }
    let bytes = |item: &serde_dynamo::Item| {
        let map: HashMap<String, serde_dynamo::AttributeValue> = item.clone().into();
        let converted: HashMap<String, AttributeValue> =
            map.into_iter().map(|(k, v)| (k, v.into())).collect();
        AttributeValue::N(item_size(&converted).to_string())
    };
    row.insert("images".to_owned(), text(ImagesKept::Omitted.as_str()));
    row.insert("oldImageBytes".to_owned(), bytes(old));
    row.insert("newImageBytes".to_owned(), bytes(new));
    tracing::warn!(event_id = %record.event_id, "no image fits one audit row; recorded without them");
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

/// Whether `UserAudit` holds a row for an item's current version.
#[derive(Debug, Clone)]
pub struct AuditCheck {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

impl AuditCheck {
    pub fn from_config(aws: &aws_config::SdkConfig, config: &AuditLogConfig) -> Self {
        AuditCheck {
            dynamodb: aws_sdk_dynamodb::Client::new(aws),
            table: config.audit_table.clone(),
        }
    }
}

impl EffectCheck for AuditCheck {
    async fn check(&self, user: &User) -> Result<EffectState, RecordError> {
        // Rows written before `version` was an attribute carry it in their images.
        let mut pages = self
            .dynamodb
            .query()
            .table_name(&self.table)
            .key_condition_expression("userId = :user")
            .filter_expression("#v = :v OR newImage.#v = :v OR newValues.#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":user", AttributeValue::S(user.user_id.clone()))
            .expression_attribute_values(":v", AttributeValue::N(user.version.to_string()))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                classify_sdk_error(
                    "DynamoDB Query (audit rows)",
                    &err,
                    PERMANENT_DYNAMODB_ERRORS,
                )
            })?;
            if page.count() > 0 {
                return Ok(EffectState::Made);
            }
        }
        Ok(EffectState::Missing {
            what: format!("no audit row for version {}", user.version),
        })
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
                tracing::debug!(event_name = %input.record.event_name, "audit row written");
                Ok(RecordOutcome::Done)
            }
            Err(SdkError::ServiceError(err))
                if matches!(err.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                tracing::debug!("audit row already written: duplicate delivery");
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A MODIFY record whose images hold `bio` (changed or not), an unchanged `notes` and a
    /// changed `plan`.
    fn record_with_notes(old_bio: &str, new_bio: &str, notes: &str) -> EventRecord {
        serde_json::from_value(json!({
            "eventID": "e-big", "eventName": "MODIFY", "awsRegion": "eu-west-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1763892000,
                "Keys": {"userId": {"S": "u-big"}},
                "OldImage": {"userId": {"S": "u-big"}, "plan": {"S": "free"}, "bio": {"S": old_bio}, "notes": {"S": notes}},
                "NewImage": {"userId": {"S": "u-big"}, "plan": {"S": "pro"}, "bio": {"S": new_bio}, "notes": {"S": notes}},
                "SequenceNumber": "100", "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES"
            }
        }))
        .unwrap()
    }

    fn record(old_bio: &str, new_bio: &str) -> EventRecord {
        record_with_notes(old_bio, new_bio, "")
    }

    fn kept(row: &HashMap<String, AttributeValue>) -> &str {
        row["images"].as_s().unwrap()
    }

    #[test]
    fn small_images_are_kept_whole() {
        let row = audit_row(&record("hi", "hello")).unwrap();
        assert_eq!(kept(&row), "full");
        assert!(row.contains_key("oldImage") && row.contains_key("newImage"));
    }

    #[test]
    fn a_large_unchanged_attribute_keeps_the_new_image_and_the_changed_old_values() {
        let big = "x".repeat(300 * 1024);
        let row = audit_row(&record(&big, &big)).unwrap();
        assert_eq!(kept(&row), "new-and-changed-old");
        let old = row["oldValues"].as_m().unwrap();
        assert_eq!(old.keys().collect::<Vec<_>>(), vec!["plan"]);
        assert!(item_size(&row) <= MAX_ROW_BYTES);
    }

    #[test]
    fn two_large_changed_values_are_recorded_without_images_never_refused() {
        let row = audit_row(&record(&"a".repeat(250 * 1024), &"b".repeat(250 * 1024))).unwrap();
        assert_eq!(kept(&row), "omitted");
        assert!(row.contains_key("newImageBytes") && !row.contains_key("newImage"));
        assert!(item_size(&row) <= MAX_ROW_BYTES);
    }

    #[test]
    fn a_large_change_of_one_attribute_keeps_the_changed_values() {
        let notes = "n".repeat(150 * 1024);
        let row = audit_row(&record_with_notes(
            &"a".repeat(150 * 1024),
            &"b".repeat(150 * 1024),
            &notes,
        ))
        .unwrap();
        assert_eq!(kept(&row), "changed-only");
        assert!(row.contains_key("oldValues") && row.contains_key("newValues"));
    }
}
