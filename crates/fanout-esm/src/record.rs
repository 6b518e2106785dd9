//! DynamoDB Streams and Kinesis records, as `GetRecords` returns them, turned into the JSON
//! Lambda delivers in an event's `Records[]`.

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record};
use base64::Engine;
use serde_json::{Map, Value, json};

/// A DynamoDB Streams record as the JSON Lambda delivers (`Records[]` of a DynamoDB event).
pub fn record_json(record: &Record, stream_arn: &str) -> Value {
    let mut out = Map::new();
    let text = |v: Option<&str>| {
        v.map(|s| Value::String(s.to_owned()))
            .unwrap_or(Value::Null)
    };
    out.insert("eventID".into(), text(record.event_id()));
    out.insert(
        "eventName".into(),
        text(record.event_name().map(|n| n.as_str())),
    );
    out.insert("eventVersion".into(), text(record.event_version()));
    out.insert("eventSource".into(), text(record.event_source()));
    out.insert("awsRegion".into(), text(record.aws_region()));
    out.insert(
        "eventSourceARN".into(),
        Value::String(stream_arn.to_owned()),
    );
    if let Some(identity) = record.user_identity() {
        out.insert(
            "userIdentity".into(),
            json!({"type": identity.r#type(), "principalId": identity.principal_id()}),
        );
    }
    let mut change = Map::new();
    if let Some(c) = record.dynamodb() {
        if let Some(t) = c.approximate_creation_date_time() {
            change.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
        }
        for (name, image) in [
            ("Keys", c.keys()),
            ("NewImage", c.new_image()),
            ("OldImage", c.old_image()),
        ] {
            if let Some(image) = image {
                change.insert(name.into(), item_json(image));
            }
        }
        change.insert("SequenceNumber".into(), text(c.sequence_number()));
        change.insert("SizeBytes".into(), json!(c.size_bytes().unwrap_or(0)));
        change.insert(
            "StreamViewType".into(),
            text(c.stream_view_type().map(|v| v.as_str())),
        );
    }
    out.insert("dynamodb".into(), Value::Object(change));
    Value::Object(out)
}

fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect(),
    )
}

fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |bytes: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b64(b.as_ref())}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::Bs(v) => {
            json!({"BS": v.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>()})
        }
        AttributeValue::M(m) => json!({"M": item_json(m)}),
        AttributeValue::L(l) => json!({"L": l.iter().map(attribute_json).collect::<Vec<_>>()}),
        AttributeValue::Null(n) => json!({"NULL": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        _ => Value::Null,
    }
}

/// How a mapping hands records to its function.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RecordShape {
    /// `Records[]` are DynamoDB Streams records, as a mapping on the table's stream delivers.
    #[default]
    DynamoDbStream,
    /// `Records[]` are Kinesis records carrying each change, as a mapping on the table's
    /// Kinesis streaming destination (`stream_arn`) delivers them.
    Kinesis { stream_arn: String },
}

/// A DynamoDB Streams record (as [`record_json`] gives it) carried as a Kinesis record, in the
/// shape AWS documents for Kinesis Data Streams for DynamoDB: `kinesis.data` is base64 of
/// `{awsRegion, eventID, eventName, userIdentity, recordFormat, tableName, dynamodb, eventSource}`
/// with the creation time in milliseconds and no stream sequence number. `sequence_number` is
/// the Kinesis one; the local mapping reuses the stream record's, which orders the same way.
pub fn kinesis_record_json(change: &Value, sequence_number: &str, stream_arn: &str) -> Value {
    let table_name = change["eventSourceARN"]
        .as_str()
        .and_then(|arn| arn.split(":table/").nth(1))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let mut inner = Map::new();
    for name in ["Keys", "NewImage", "OldImage", "SizeBytes"] {
        if let Some(value) = change["dynamodb"].get(name) {
            inner.insert(name.into(), value.clone());
        }
    }
    if let Some(seconds) = change["dynamodb"]["ApproximateCreationDateTime"].as_f64() {
        inner.insert(
            "ApproximateCreationDateTime".into(),
            json!((seconds * 1000.0).round() as i64),
        );
        inner.insert(
            "ApproximateCreationDateTimePrecision".into(),
            json!("MILLISECOND"),
        );
    }
    let data = json!({
        "awsRegion": change["awsRegion"],
        "eventID": change["eventID"],
        "eventName": change["eventName"],
        "userIdentity": change.get("userIdentity").cloned().unwrap_or(Value::Null),
        "recordFormat": "application/json",
        "tableName": table_name,
        "dynamodb": Value::Object(inner),
        "eventSource": "aws:dynamodb",
    });
    kinesis_event_record(
        &KinesisRecord {
            data: data.to_string().as_bytes(),
            partition_key: &change["dynamodb"]["Keys"].to_string(),
            sequence_number,
            arrival_seconds: change["dynamodb"]["ApproximateCreationDateTime"]
                .as_f64()
                .unwrap_or_default(),
            shard_id: "shardId-000000000000",
        },
        stream_arn,
    )
}

/// One record of a Kinesis shard, as `GetRecords` returns it.
#[derive(Debug, Clone, Copy)]
pub struct KinesisRecord<'a> {
    pub data: &'a [u8],
    pub partition_key: &'a str,
    pub sequence_number: &'a str,
    /// `ApproximateArrivalTimestamp`, seconds since the epoch.
    pub arrival_seconds: f64,
    pub shard_id: &'a str,
}

/// A Kinesis record as the JSON Lambda delivers (`Records[]` of a Kinesis event): the data
/// base64, `eventID` `<shardId>:<sequenceNumber>`, the region taken from the stream ARN.
pub fn kinesis_event_record(record: &KinesisRecord<'_>, stream_arn: &str) -> Value {
    json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record.partition_key,
            "sequenceNumber": record.sequence_number,
            "data": base64::engine::general_purpose::STANDARD.encode(record.data),
            "approximateArrivalTimestamp": record.arrival_seconds,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{}:{}", record.shard_id, record.sequence_number),
        "eventName": "aws:kinesis:record",
        "awsRegion": stream_arn.split(':').nth(3).unwrap_or_default(),
        "eventSourceARN": stream_arn,
    })
}

#[cfg(test)]
mod kinesis_tests {
    use super::*;

    #[test]
    fn a_stream_record_carried_by_kinesis_has_aws_documented_shape() {
        let change = json!({
            "eventID": "e-1", "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:1:table/Users/stream/2026",
            "dynamodb": {"ApproximateCreationDateTime": 1_763_892_000, "Keys": {"userId": {"S": "u"}},
                         "NewImage": {"userId": {"S": "u"}}, "SequenceNumber": "100",
                         "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        });
        let record = kinesis_record_json(&change, "100", "arn:aws:kinesis:eu-west-1:1:stream/s");
        assert_eq!(record["kinesis"]["sequenceNumber"], "100");
        assert_eq!(record["eventSource"], "aws:kinesis");
        let data = base64::engine::general_purpose::STANDARD
            .decode(record["kinesis"]["data"].as_str().unwrap())
            .unwrap();
        let data: Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(data["tableName"], "Users");
        assert_eq!(data["recordFormat"], "application/json");
        assert_eq!(data["userIdentity"], Value::Null);
        assert_eq!(
            data["dynamodb"]["ApproximateCreationDateTime"],
            1_763_892_000_000_i64
        );
        assert!(data["dynamodb"].get("SequenceNumber").is_none());
        assert!(data["dynamodb"].get("StreamViewType").is_none());
        assert_eq!(data["dynamodb"]["NewImage"], change["dynamodb"]["NewImage"]);
    }
}
