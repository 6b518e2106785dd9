//! `fanout-ops discard <consumer>`: take parked records that can never succeed out of the
//! consumer's DLQ, saying what each one was, instead of deleting messages by hand.
//!
//! Which records is always explicit: `--event-id` names them (the change's `eventID`, or a
//! Kinesis record's own), and `--superseded` picks those whose item the Users table now holds
//! at a higher `version` than the record's (a record whose images do not decode cannot be
//! judged and stays). Superseded is safe where the consumer's effect is the item's latest
//! state (search-warm's document); where each change has an effect of its own (an email, a CRM
//! event, an audit row) discarding it gives up that effect: `reconcile` shows what is missing.
//!
//! Only parked records of this consumer are candidates; OnFailure ranges and anything else stay.
//! `--dry-run` lists what would go and deletes nothing.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_core::source::read_record;
use fanout_core::{Change, ParkedRecord, User};
use serde::Serialize;

use crate::deployed::Deployed;
use crate::error::OpsError;
use crate::redrive::{DlqMessage, RedriveOptions, receive_all, release};

/// Which parked records go.
#[derive(Debug, Clone)]
pub struct DiscardOptions {
    /// Records with these event IDs.
    pub event_ids: Vec<String>,
    /// Records older than their item's current version.
    pub superseded: bool,
    /// The Users table (for `superseded`; resolved before `discard` runs).
    pub users_table: Option<String>,
    pub dry_run: bool,
    /// The messages received, as redrive receives them.
    pub receive: RedriveOptions,
}

/// One record taken out (or, in a dry run, that would be).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discarded {
    pub message_id: String,
    pub event_id: String,
    pub event_name: String,
    /// The item's key (`userId=...`).
    pub key: String,
    /// The record's item version, when its image decodes.
    pub version: Option<u64>,
    pub parked_at: String,
    /// Why it was parked (scrubbed of personal data when it was parked).
    pub reason: String,
    /// Why it was picked: named by `--event-id`, or superseded by the item's version now.
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscardReport {
    pub consumer: String,
    pub dlq_url: String,
    pub dry_run: bool,
    pub discarded: Vec<Discarded>,
    /// `--event-id`s no parked record of this consumer carries.
    pub not_found: Vec<String>,
    /// Parked records `--superseded` could not judge (an image that does not decode).
    pub not_judged: Vec<String>,
    /// Messages left in the queue.
    pub kept: usize,
}

impl DiscardReport {
    /// Whether every named record was found.
    pub fn complete(&self) -> bool {
        self.not_found.is_empty()
    }

    pub fn summary(&self) -> String {
        let verb = if self.dry_run {
            "would discard"
        } else {
            "discarded"
        };
        let mut lines: Vec<String> = self
            .discarded
            .iter()
            .map(|d| {
                format!(
                    "  {verb} {} {} {} (version {}), parked {}: {} [{}]",
                    d.event_id,
                    d.event_name,
                    d.key,
                    d.version.map_or("?".to_owned(), |v| v.to_string()),
                    d.parked_at,
                    d.reason,
                    d.why
                )
            })
            .collect();
        for id in &self.not_found {
            lines.push(format!(
                "  no parked record of {} has event ID {id}",
                self.consumer
            ));
        }
        for id in &self.not_judged {
            lines.push(format!(
                "  {id}: its image does not decode, so whether it is superseded cannot be told; kept"
            ));
        }
        lines.push(format!(
            "discard {}: {} {} record(s), {} message(s) left in {}",
            self.consumer,
            verb,
            self.discarded.len(),
            self.kept,
            self.dlq_url
        ));
        lines.join("\n")
    }
}

/// What a parked record is about.
struct ParkedChange {
    event_ids: Vec<String>,
    event_name: String,
    keys: HashMap<String, AttributeValue>,
    version: Option<u64>,
}

impl ParkedChange {
    fn of(parked: &ParkedRecord) -> Self {
        let read = read_record(&parked.record);
        let mut event_ids: Vec<String> = [&read.change["eventID"], &parked.record["eventID"]]
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        event_ids.dedup();
        let (event_name, keys, version) = match &read.record {
            Ok(record) => {
                let version = Change::<User>::from_record(record)
                    .ok()
                    .and_then(|c| c.new_image().or_else(|| c.old()).map(|user| user.version));
                let keys: HashMap<String, AttributeValue> = record.change.keys.clone().into();
                (record.event_name.clone(), keys, version)
            }
            Err(_) => (String::new(), HashMap::new(), None),
        };
        ParkedChange {
            event_ids,
            event_name,
            keys,
            version,
        }
    }

    fn key_text(&self) -> String {
        let mut parts: Vec<String> = self
            .keys
            .iter()
            .map(|(name, value)| match value {
                AttributeValue::S(s) | AttributeValue::N(s) => format!("{name}={s}"),
                other => format!("{name}={other:?}"),
            })
            .collect();
        parts.sort();
        parts.join(",")
    }
}

/// The item's `version` in the Users table now (`None` when the item is gone or has none).
async fn current_version(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: &HashMap<String, AttributeValue>,
) -> Result<Option<u64>, OpsError> {
    let item = dynamodb
        .get_item()
        .table_name(table)
        .set_key(Some(keys.clone()))
        .consistent_read(true)
        .projection_expression("#v")
        .expression_attribute_names("#v", "version")
        .send()
        .await
        .map_err(OpsError::aws(format!("DynamoDB GetItem on {table}")))?
        .item;
    Ok(item
        .and_then(|mut item| item.remove("version"))
        .and_then(|v| v.as_n().ok().and_then(|n| n.parse().ok())))
}

/// Discards `deployed`'s parked records that `options` picks.
pub async fn discard(
    aws: &aws_config::SdkConfig,
    deployed: &Deployed,
    options: &DiscardOptions,
) -> Result<DiscardReport, OpsError> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let users_table = match (&options.users_table, options.superseded) {
        (_, false) => None,
        (Some(table), true) => Some(table.clone()),
        (None, true) => {
            return Err(OpsError::Context(
                "--superseded needs the Users table to compare versions with".to_owned(),
            ));
        }
    };
    let messages = receive_all(&sqs, deployed, &options.receive).await?;
    let mut wanted: BTreeSet<&str> = options.event_ids.iter().map(String::as_str).collect();
    let mut report = DiscardReport {
        consumer: deployed.consumer.clone(),
        dlq_url: deployed.dlq_url.clone(),
        dry_run: options.dry_run,
        discarded: Vec::new(),
        not_found: Vec::new(),
        not_judged: Vec::new(),
        kept: 0,
    };
    let mut keep = Vec::new();
    let mut failure = None;
    for message in &messages {
        let receipt = message.receipt_handle().unwrap_or_default().to_owned();
        let parked = match DlqMessage::parse(message.body().unwrap_or_default()) {
            DlqMessage::Parked(parked)
                if parked.consumer == deployed.consumer && failure.is_none() =>
            {
                parked
            }
            _ => {
                keep.push(receipt);
                continue;
            }
        };
        let change = ParkedChange::of(&parked);
        let named = change
            .event_ids
            .iter()
            .find(|id| wanted.contains(id.as_str()))
            .cloned();
        let why = match (&named, &users_table) {
            (Some(id), _) => {
                wanted.remove(id.as_str());
                Some(format!("named by --event-id {id}"))
            }
            (None, Some(table)) => match change.version {
                None => {
                    report.not_judged.extend(change.event_ids.first().cloned());
                    None
                }
                Some(version) => match current_version(&dynamodb, table, &change.keys).await {
                    Ok(Some(now)) if now > version => Some(format!(
                        "superseded: the item is at version {now} in {table}"
                    )),
                    Ok(_) => None,
                    Err(err) => {
                        failure = Some(err);
                        None
                    }
                },
            },
            (None, None) => None,
        };
        let Some(why) = why else {
            keep.push(receipt);
            continue;
        };
        if !options.dry_run {
            if let Err(err) = sqs
                .delete_message()
                .queue_url(&deployed.dlq_url)
                .receipt_handle(&receipt)
                .send()
                .await
            {
                keep.push(receipt);
                failure = Some(OpsError::aws("SQS DeleteMessage")(err));
                continue;
            }
        } else {
            keep.push(receipt);
        }
        report.discarded.push(Discarded {
            message_id: message.message_id().unwrap_or_default().to_owned(),
            event_id: named
                .or_else(|| change.event_ids.first().cloned())
                .unwrap_or_default(),
            event_name: change.event_name.clone(),
            key: change.key_text(),
            version: change.version,
            parked_at: parked.parked_at.clone(),
            reason: parked.error.clone(),
            why,
        });
    }
    report.kept = keep.len();
    release(&sqs, &deployed.dlq_url, keep).await;
    if let Some(err) = failure {
        return Err(err);
    }
    report.not_found = wanted.into_iter().map(str::to_owned).collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// The event IDs a parked message body carries.
    fn parked_event_ids(body: &str) -> Vec<String> {
        match DlqMessage::parse(body) {
            DlqMessage::Parked(parked) => ParkedChange::of(&parked).event_ids,
            _ => Vec::new(),
        }
    }

    fn parked(record: Value) -> String {
        serde_json::json!({"consumer": "search-warm", "error": "search index answered 400",
            "parkedAt": "2026-12-04T10:00:00Z", "record": record})
        .to_string()
    }

    #[test]
    fn a_parked_record_is_known_by_its_change_and_its_kinesis_event_ids() {
        let stream: Value = serde_json::from_str(&fanout_testkit::fixture_text(
            "user-upgrade-free-to-pro.json",
        ))
        .unwrap_or_default();
        let ids = parked_event_ids(&parked(stream["Records"][0].clone()));
        assert_eq!(ids, vec!["0c8d3f5a6a1e4b7c9e2d1f3a5b7c9d01"]);
        let kinesis: Value = serde_json::from_str(&fanout_testkit::fixture_text(
            "kinesis-user-upgrade-free-to-pro.json",
        ))
        .unwrap_or_default();
        let record = kinesis["Records"][0].clone();
        let ids = parked_event_ids(&parked(record.clone()));
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert_eq!(ids[1], record["eventID"].as_str().unwrap_or_default());
    }

    #[test]
    fn a_parked_record_tells_its_key_and_version() {
        let stream: Value = serde_json::from_str(&fanout_testkit::fixture_text(
            "user-upgrade-free-to-pro.json",
        ))
        .unwrap_or_default();
        let body = parked(stream["Records"][0].clone());
        let DlqMessage::Parked(record) = DlqMessage::parse(&body) else {
            panic!("not parked: {body}");
        };
        let change = ParkedChange::of(&record);
        assert_eq!(change.key_text(), "userId=u-1001");
        assert_eq!(change.version, Some(2));
        assert_eq!(change.event_name, "MODIFY");
    }
}
