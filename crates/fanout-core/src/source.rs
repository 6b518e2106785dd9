//! Where a change record comes from, and the one reader for both sources.
//!
//! A consumer's function may be invoked by a DynamoDB Streams mapping (each `Records[]` entry
//! is the change record itself) or by a Kinesis Data Streams mapping on the table's Kinesis
//! streaming destination (each entry carries the change as base64 JSON in `kinesis.data`). Both
//! read into the same [`EventRecord`], so handlers never know which one ran them; during a
//! switch from one source to the other both mappings invoke the same function.
//!
//! What differs, and is kept here:
//! - the identifier a batch response names on failure: the stream record's `SequenceNumber`,
//!   or the Kinesis record's `kinesis.sequenceNumber`;
//! - `ApproximateCreationDateTime`: whole seconds on DynamoDB Streams; milliseconds (or
//!   microseconds, `ApproximateCreationDateTimePrecision`) on Kinesis. The record's time is
//!   whole seconds either way (the events crate reads fractions wrongly); [`ChangeOrder`] keeps
//!   the full precision;
//! - order: a Kinesis record may arrive out of order or twice, so a key's records are ordered
//!   by [`ChangeOrder`] (creation time, then the item's `version`), and a repeated `eventID`
//!   is recognised.
//!
//! A change carried by Kinesis has no stream `SequenceNumber` (AWS's documented shape has
//! none; a local AWS that puts a Streams-shaped payload on the stream has one of its own): it
//! is dropped, so `change.sequence_number` is `None` for every Kinesis record.

use aws_lambda_events::dynamodb::EventRecord;
use base64::Engine;
use serde_json::Value;

/// Which mapping delivered a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordSource {
    /// A DynamoDB Streams event source mapping: records in stream order, each once per
    /// delivery.
    DynamoDbStream,
    /// A Kinesis Data Streams mapping on the table's Kinesis streaming destination: records
    /// may be out of order and duplicated.
    Kinesis,
}

impl RecordSource {
    /// The source of one `Records[]` entry as delivered: Kinesis when it has a `kinesis`
    /// object. (An operator's redrive rewrites `eventSource`, so that is not what decides.)
    pub fn of(raw: &Value) -> RecordSource {
        if raw.get("kinesis").is_some_and(Value::is_object) {
            RecordSource::Kinesis
        } else {
            RecordSource::DynamoDbStream
        }
    }
}

/// One `Records[]` entry read: its source, the identifier a batch response names, the DynamoDB
/// change record as JSON, and the typed record (or why it could not be read).
#[derive(Debug, Clone)]
pub struct SourceRecord {
    pub source: RecordSource,
    /// The sequence number to report when the record must be retried.
    pub item_identifier: Option<String>,
    /// The change record (`dynamodb`, images, `eventID`...): the entry itself on DynamoDB
    /// Streams, the decoded `kinesis.data` on Kinesis; `Null` when that could not be decoded.
    pub change: Value,
    pub record: Result<EventRecord, String>,
    /// Where the change sits in its item's history.
    pub order: ChangeOrder,
    /// The table the change was made in, as the record names it ([`source_table`]).
    pub table: Option<String>,
}

/// Reads one `Records[]` entry of either source.
///
/// ```
/// use base64::Engine;
/// use fanout_core::source::{read_record, RecordSource};
/// let change = serde_json::json!({
///     "awsRegion": "eu-west-1", "eventID": "e-1", "eventName": "INSERT",
///     "eventSource": "aws:dynamodb", "recordFormat": "application/json", "tableName": "Users",
///     "userIdentity": null,
///     "dynamodb": {"ApproximateCreationDateTime": 1763892000123_i64,
///                  "Keys": {"userId": {"S": "u-1"}}, "SizeBytes": 20}
/// });
/// let data = base64::engine::general_purpose::STANDARD.encode(change.to_string());
/// let raw = serde_json::json!({"eventSource": "aws:kinesis",
///     "kinesis": {"sequenceNumber": "4959", "data": data, "partitionKey": "p"}});
/// let read = read_record(&raw);
/// assert_eq!(read.source, RecordSource::Kinesis);
/// assert_eq!(read.item_identifier.as_deref(), Some("4959"));
/// let record = read.record.unwrap();
/// assert_eq!(record.event_id, "e-1");
/// assert_eq!(record.change.approximate_creation_date_time.timestamp(), 1763892000);
/// assert_eq!(read.order.created_micros, 1763892000123000);
/// ```
pub fn read_record(raw: &Value) -> SourceRecord {
    match RecordSource::of(raw) {
        RecordSource::DynamoDbStream => SourceRecord {
            source: RecordSource::DynamoDbStream,
            item_identifier: raw["dynamodb"]["SequenceNumber"]
                .as_str()
                .map(str::to_owned),
            order: ChangeOrder::of(raw),
            table: source_table(raw),
            change: raw.clone(),
            record: serde_json::from_value::<EventRecord>(raw.clone()).map_err(|e| e.to_string()),
        },
        RecordSource::Kinesis => {
            let item_identifier = raw["kinesis"]["sequenceNumber"].as_str().map(str::to_owned);
            match kinesis_change(raw) {
                Ok(change) => SourceRecord {
                    source: RecordSource::Kinesis,
                    item_identifier,
                    record: serde_json::from_value::<EventRecord>(normalized(&change))
                        .map_err(|e| format!("kinesis.data: {e}")),
                    order: ChangeOrder::of(&change),
                    table: source_table(&change),
                    change,
                },
                Err(why) => SourceRecord {
                    source: RecordSource::Kinesis,
                    item_identifier,
                    change: Value::Null,
                    record: Err(why),
                    order: ChangeOrder::default(),
                    table: None,
                },
            }
        }
    }
}

/// The table a change record (either source's change, not the Kinesis envelope) names: its
/// `tableName` (AWS's Kinesis shape), else the table of its `eventSourceARN` when that is a
/// DynamoDB stream's (`arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`, as a
/// DynamoDB Streams record carries). `None` when it names neither.
///
/// ```
/// use fanout_core::source::source_table;
/// let streams = serde_json::json!({"eventSourceARN":
///     "arn:aws:dynamodb:eu-west-1:123456789012:table/Users/stream/2026-11-01T00:00:00.000"});
/// assert_eq!(source_table(&streams).as_deref(), Some("Users"));
/// let kinesis = serde_json::json!({"tableName": "UsersArchive"});
/// assert_eq!(source_table(&kinesis).as_deref(), Some("UsersArchive"));
/// assert_eq!(source_table(&serde_json::json!({"eventID": "e-1"})), None);
/// ```
pub fn source_table(change: &Value) -> Option<String> {
    if let Some(name) = change["tableName"].as_str().filter(|n| !n.is_empty()) {
        return Some(name.to_owned());
    }
    let arn = change["eventSourceARN"].as_str()?;
    let (_, rest) = arn.split_once(":table/")?;
    let name = rest.split('/').next().filter(|n| !n.is_empty())?;
    Some(name.to_owned())
}

/// The change record a Kinesis record carries: `kinesis.data`, base64 of JSON.
fn kinesis_change(raw: &Value) -> Result<Value, String> {
    let data = raw["kinesis"]["data"]
        .as_str()
        .ok_or("kinesis.data is missing or not a string")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("kinesis.data is not base64: {e}"))?;
    let change: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("kinesis.data is not JSON: {e}"))?;
    if !change.is_object() {
        return Err("kinesis.data is not a JSON object".to_owned());
    }
    Ok(change)
}

/// The change record in the shape the DynamoDB Streams reader takes: creation time in whole
/// seconds, and no stream sequence number.
fn normalized(change: &Value) -> Value {
    let created = created_micros(change);
    let mut change = change.clone();
    if let Some(inner) = change.get_mut("dynamodb").and_then(Value::as_object_mut) {
        inner.remove("SequenceNumber");
        if let Some(micros) = created {
            inner.insert(
                "ApproximateCreationDateTime".into(),
                Value::from(micros.div_euclid(1_000_000)),
            );
        }
    }
    change
}

/// A change record's creation time in microseconds since the epoch: in the unit its precision
/// names; without one, by magnitude (DynamoDB Streams and a Streams-shaped payload carry
/// seconds, and no time in seconds reaches 1e11 before the year 5138).
fn created_micros(change: &Value) -> Option<i64> {
    let inner = &change["dynamodb"];
    let value = inner["ApproximateCreationDateTime"].as_f64()?;
    let per_unit = match inner["ApproximateCreationDateTimePrecision"].as_str() {
        Some("MICROSECOND") => 1.0,
        Some("MILLISECOND") => 1e3,
        _ if value >= 1e14 => 1.0,
        _ if value >= 1e11 => 1e3,
        _ => 1e6,
    };
    // Rounded: 1763892000.123 s is not exact in binary.
    Some((value * per_unit).round() as i64)
}

/// Where a change sits in its item's history: creation time (microseconds), then the item's
/// `version`. Kinesis records of one key are run in this order; ties keep delivery order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChangeOrder {
    pub created_micros: i64,
    /// The `version` of the new image, or of the old one for a removal; `None` sorts first.
    pub version: Option<u64>,
}

impl ChangeOrder {
    /// The order of a change record given as JSON (either source's change, not the Kinesis
    /// envelope); what it lacks sorts first.
    pub fn of(change: &Value) -> ChangeOrder {
        let version = |image: &str| {
            change["dynamodb"][image]["version"]["N"]
                .as_str()
                .and_then(|n| n.parse::<u64>().ok())
        };
        ChangeOrder {
            created_micros: created_micros(change).unwrap_or(0),
            version: version("NewImage").or_else(|| version("OldImage")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(value: Value, precision: Option<&str>) -> Option<i64> {
        let mut change = serde_json::json!({"dynamodb": {"ApproximateCreationDateTime": value}});
        if let Some(p) = precision {
            change["dynamodb"]["ApproximateCreationDateTimePrecision"] = p.into();
        }
        created_micros(&change)
    }

    #[test]
    fn creation_time_in_each_unit() {
        let micros = 1_763_892_000_000_000;
        assert_eq!(created(1_763_892_000_i64.into(), None), Some(micros));
        assert_eq!(
            created(1_763_892_000.5.into(), None),
            Some(micros + 500_000)
        );
        assert_eq!(
            created(1_763_892_000_123_i64.into(), None),
            Some(micros + 123_000)
        );
        assert_eq!(
            created(1_763_892_000_123_i64.into(), Some("MILLISECOND")),
            Some(micros + 123_000)
        );
        assert_eq!(
            created(1_763_892_000_123_456_i64.into(), Some("MICROSECOND")),
            Some(micros + 123_456)
        );
        assert_eq!(created(Value::Null, None), None);
    }

    #[test]
    fn order_is_time_then_version() {
        let change = |t: i64, v: &str| {
            serde_json::json!({"dynamodb": {"ApproximateCreationDateTime": t,
                "NewImage": {"version": {"N": v}}}})
        };
        assert!(ChangeOrder::of(&change(1_000, "9")) < ChangeOrder::of(&change(1_001, "1")));
        assert!(ChangeOrder::of(&change(1_000, "2")) < ChangeOrder::of(&change(1_000, "10")));
        let removed = serde_json::json!({"dynamodb": {"ApproximateCreationDateTime": 1_000,
            "OldImage": {"version": {"N": "3"}}}});
        assert_eq!(ChangeOrder::of(&removed).version, Some(3));
    }

    #[test]
    fn a_kinesis_record_that_is_not_base64_json_says_why() {
        for (data, why) in [
            (Value::Null, "missing"),
            (Value::from("%%%"), "not base64"),
            (Value::from("bm90IGpzb24="), "not JSON"),
            (Value::from("WzFd"), "not a JSON object"),
        ] {
            let read = read_record(&serde_json::json!({
                "kinesis": {"sequenceNumber": "7", "data": data}
            }));
            assert_eq!(read.item_identifier.as_deref(), Some("7"));
            let err = read.record.unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
