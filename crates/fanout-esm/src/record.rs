//! DynamoDB Streams records, as `GetRecords` returns them, turned into the JSON Lambda
//! delivers in a DynamoDB event's `Records[]`.

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
