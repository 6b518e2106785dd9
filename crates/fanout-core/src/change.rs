//! Typed decoding of DynamoDB stream records.
//!
//! A stream record becomes a [`Change`]: insert, modify, or remove (by the application or by
//! TTL). Images decode with serde_dynamo into any `T: DeserializeOwned`. An empty image is
//! absent (the events crate turns a missing image into an empty map), so a `KEYS_ONLY` record
//! decodes to a change whose images are `None`.

use std::collections::{BTreeMap, BTreeSet};

use aws_lambda_events::dynamodb::EventRecord;
use serde::de::DeserializeOwned;
use serde_dynamo::{AttributeValue, Item};

/// Who removed an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Remover {
    /// The application deleted the item.
    Application,
    /// DynamoDB's Time to Live process deleted the expired item.
    Ttl,
}

/// One item-level change read from a stream record.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// A new item. `new` is `None` on a `KEYS_ONLY` or `OLD_IMAGE` stream.
    Insert { new: Option<T> },
    /// An existing item was overwritten or updated.
    Modify { old: Option<T>, new: Option<T> },
    /// The item was deleted.
    Remove { old: Option<T>, by: Remover },
}

impl<T> Change<T> {
    /// The stream event name this change came from (`INSERT`, `MODIFY`, `REMOVE`).
    pub fn event_name(&self) -> &'static str {
        match self {
            Change::Insert { .. } => "INSERT",
            Change::Modify { .. } => "MODIFY",
            Change::Remove { .. } => "REMOVE",
        }
    }

    /// The image before the change, when the stream carried one.
    pub fn old(&self) -> Option<&T> {
        match self {
            Change::Insert { .. } => None,
            Change::Modify { old, .. } | Change::Remove { old, .. } => old.as_ref(),
        }
    }

    /// The image after the change, when the stream carried one.
    pub fn new_image(&self) -> Option<&T> {
        match self {
            Change::Insert { new } | Change::Modify { new, .. } => new.as_ref(),
            Change::Remove { .. } => None,
        }
    }
}

impl<T> Change<T> {
    /// The new image, or the permanent error a consumer that needs it must fail with.
    pub fn require_new(&self, record: &EventRecord) -> Result<&T, DecodeError> {
        self.new_image()
            .ok_or_else(|| missing(record, ImageSide::New))
    }

    /// The old image, or the permanent error a consumer that needs it must fail with.
    pub fn require_old(&self, record: &EventRecord) -> Result<&T, DecodeError> {
        self.old().ok_or_else(|| missing(record, ImageSide::Old))
    }
}

fn missing(record: &EventRecord, side: ImageSide) -> DecodeError {
    DecodeError::MissingImage {
        event_id: record.event_id.clone(),
        event_name: record.event_name.clone(),
        side,
        view: record
            .change
            .stream_view_type
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "not stated".to_owned()),
    }
}

/// Which image of a record failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSide {
    Keys,
    New,
    Old,
}

impl std::fmt::Display for ImageSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageSide::Keys => "Keys",
            ImageSide::New => "NewImage",
            ImageSide::Old => "OldImage",
        })
    }
}

/// A stream's view type: which images its records carry. A consumer states the least it
/// needs, and its cold start fails when the table's stream (`STREAM_VIEW_TYPE`, set by the
/// stack from the tables stack) cannot serve it, instead of every record being parked.
///
/// ```
/// use fanout_core::StreamView;
/// let table: StreamView = "NEW_IMAGE".parse().unwrap();
/// assert!(table.serves(StreamView::NewImage));
/// assert!(!table.serves(StreamView::NewAndOldImages));
/// assert!("NEW_AND_OLD_IMAGES".parse::<StreamView>().unwrap().serves(StreamView::KeysOnly));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamView {
    KeysOnly,
    NewImage,
    OldImage,
    NewAndOldImages,
}

impl StreamView {
    /// Whether records of this view carry everything `needed` does.
    pub fn serves(self, needed: StreamView) -> bool {
        use StreamView::*;
        match needed {
            KeysOnly => true,
            NewImage => matches!(self, NewImage | NewAndOldImages),
            OldImage => matches!(self, OldImage | NewAndOldImages),
            NewAndOldImages => self == NewAndOldImages,
        }
    }

    /// The name DynamoDB gives it (`StreamViewType`).
    pub fn as_str(self) -> &'static str {
        match self {
            StreamView::KeysOnly => "KEYS_ONLY",
            StreamView::NewImage => "NEW_IMAGE",
            StreamView::OldImage => "OLD_IMAGE",
            StreamView::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }
}

impl std::str::FromStr for StreamView {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        [
            StreamView::KeysOnly,
            StreamView::NewImage,
            StreamView::OldImage,
            StreamView::NewAndOldImages,
        ]
        .into_iter()
        .find(|view| view.as_str() == raw)
        .ok_or_else(|| {
            "not a stream view type (KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES)"
                .to_owned()
        })
    }
}

/// A stream record that cannot be turned into a typed [`Change`]. Always a permanent failure
/// of that one record: redelivering the same bytes cannot make them decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record {event_id}: unknown eventName {event_name:?}")]
    UnknownEventName {
        event_id: String,
        event_name: String,
    },
    /// The record lacks an image the consumer needs to judge it (a `KEYS_ONLY`, `NEW_IMAGE` or
    /// `OLD_IMAGE` stream view, or a table whose view changed): never counted as done.
    #[error(
        "record {event_id} ({event_name}) carries no {side}: the stream view is {view}, and this \
         consumer needs NEW_AND_OLD_IMAGES to judge the change"
    )]
    MissingImage {
        event_id: String,
        event_name: String,
        side: ImageSide,
        view: String,
    },
    #[error("record {event_id}: {side} attribute `{attribute}`: {reason}")]
    Image {
        event_id: String,
        side: ImageSide,
        /// Path of the offending attribute, such as `plan` or `address.city`; `.` for the
        /// image as a whole (for example a missing required attribute).
        attribute: String,
        reason: String,
    },
}

impl<T: DeserializeOwned> Change<T> {
    /// Decodes one stream record.
    ///
    /// ```
    /// use fanout_core::{Change, User};
    /// let record: aws_lambda_events::dynamodb::EventRecord = serde_json::from_str(r#"{
    ///   "eventID": "1", "eventName": "INSERT", "awsRegion": "eu-west-1",
    ///   "dynamodb": {"Keys": {"userId": {"S": "u1"}}, "SizeBytes": 10,
    ///     "NewImage": {"userId": {"S": "u1"}, "email": {"S": "a@example.com"},
    ///                  "plan": {"S": "pro"}, "version": {"N": "1"},
    ///                  "updatedAt": {"S": "2026-01-01T00:00:00Z"}}}}"#).unwrap();
    /// let change = Change::<User>::from_record(&record).unwrap();
    /// assert_eq!(change.new_image().unwrap().user_id, "u1");
    /// ```
    pub fn from_record(record: &EventRecord) -> Result<Self, DecodeError> {
        let event_id = record.event_id.as_str();
        let new = || decode_image(event_id, ImageSide::New, &record.change.new_image);
        let old = || decode_image(event_id, ImageSide::Old, &record.change.old_image);
        match record.event_name.as_str() {
            "INSERT" => Ok(Change::Insert { new: new()? }),
            "MODIFY" => Ok(Change::Modify {
                old: old()?,
                new: new()?,
            }),
            "REMOVE" => Ok(Change::Remove {
                old: old()?,
                by: Remover::of(record),
            }),
            other => Err(DecodeError::UnknownEventName {
                event_id: event_id.to_owned(),
                event_name: other.to_owned(),
            }),
        }
    }
}

impl Remover {
    /// Who removed the item of a `REMOVE` record: TTL deletes carry
    /// `userIdentity {type: Service, principalId: dynamodb.amazonaws.com}`.
    pub fn of(record: &EventRecord) -> Remover {
        match &record.user_identity {
            Some(identity)
                if identity.type_ == "Service"
                    && identity.principal_id == "dynamodb.amazonaws.com" =>
            {
                Remover::Ttl
            }
            _ => Remover::Application,
        }
    }
}

/// Decodes an item into `T`, naming the failing attribute path on error.
pub fn decode_item<T: DeserializeOwned>(
    event_id: &str,
    side: ImageSide,
    item: &Item,
) -> Result<T, DecodeError> {
    let map: std::collections::HashMap<String, AttributeValue> = item.as_ref().clone();
    let deserializer = serde_dynamo::Deserializer::from_attribute_value(AttributeValue::M(map));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        DecodeError::Image {
            event_id: event_id.to_owned(),
            side,
            attribute: path,
            reason: err.into_inner().to_string(),
        }
    })
}

fn decode_image<T: DeserializeOwned>(
    event_id: &str,
    side: ImageSide,
    item: &Item,
) -> Result<Option<T>, DecodeError> {
    if item.is_empty() {
        return Ok(None);
    }
    decode_item(event_id, side, item).map(Some)
}

/// The record's `userId` key as a consumer that keeps the images raw reads it: a string, not
/// empty. `None` for a record that cannot be a change of `Users`.
///
/// ```
/// use fanout_core::aws_lambda_events::dynamodb::EventRecord;
/// use fanout_core::change::user_key;
/// let record: EventRecord = serde_json::from_value(serde_json::json!({
///     "eventID": "e", "eventName": "INSERT", "awsRegion": "eu-west-1",
///     "dynamodb": {"Keys": {"userId": {"S": "u-1"}}, "SizeBytes": 20}})).unwrap();
/// assert_eq!(user_key(&record), Some("u-1"));
/// ```
pub fn user_key(record: &EventRecord) -> Option<&str> {
    match record.change.keys.get("userId") {
        Some(AttributeValue::S(id)) if !id.is_empty() => Some(id),
        _ => None,
    }
}

/// The item key of a record as a stable string, for grouping records of one item.
///
/// Attribute names are sorted, so `{"a":..,"b":..}` and `{"b":..,"a":..}` give one key.
pub fn item_key(keys: &Item) -> String {
    let sorted: BTreeMap<&String, String> = keys
        .iter()
        .map(|(name, value)| (name, scalar_text(value)))
        .collect();
    sorted
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn scalar_text(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// The top-level attributes whose values differ between two images (added, removed or
/// changed). Sets compare as sets: DynamoDB does not promise their order.
///
/// ```
/// use fanout_core::changed_attributes;
/// use serde_dynamo::{AttributeValue, Item};
/// let old: Item = [("plan".to_string(), AttributeValue::S("free".into()))].into_iter()
///     .collect::<std::collections::HashMap<_, _>>().into();
/// let new: Item = [("plan".to_string(), AttributeValue::S("pro".into()))].into_iter()
///     .collect::<std::collections::HashMap<_, _>>().into();
/// assert_eq!(changed_attributes(&old, &new).into_iter().collect::<Vec<_>>(), vec!["plan"]);
/// ```
pub fn changed_attributes(old: &Item, new: &Item) -> BTreeSet<String> {
    old.keys()
        .chain(new.keys())
        .filter(|name| !same_value(old.get(name.as_str()), new.get(name.as_str())))
        .cloned()
        .collect()
}

fn same_value(a: Option<&AttributeValue>, b: Option<&AttributeValue>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => normalized(a) == normalized(b),
        (None, None) => true,
        _ => false,
    }
}

fn normalized(value: &AttributeValue) -> AttributeValue {
    let mut value = value.clone();
    match &mut value {
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.sort(),
        AttributeValue::Bs(v) => v.sort(),
        _ => {}
    }
    value
}

#[cfg(test)]
mod tests;
