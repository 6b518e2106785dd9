//! `fanout-ops check-items [--sample N]`: what the consumers would make of the items in the
//! Users table, judged as they judge a record, without invoking anything or writing anywhere.
//!
//! Each item (a `Scan`, at most `--sample` of them) is read as the change record an insert of it
//! would be, and each consumer of the deployment (or of `--registry`) judges it as its entry
//! says it reads images (`decodes`): `user` decodes a `User` (the writer's contract,
//! docs/writer-contract.md), `raw-images` needs only a string `userId` key. A record one of them
//! cannot take is one it would park, and the reason is the one it would park with. Items that
//! would pass but bend the contract (a plan no consumer knows, an `updatedAt` reconcile cannot
//! read) are noted.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_core::aws_lambda_events::dynamodb::EventRecord;
use fanout_core::{Change, Plan, User};
use fanout_registry::{ConsumerEntry, Decodes};
use serde::Serialize;
use serde_json::json;

use crate::error::OpsError;
use crate::reconcile::{UsersTable, insert_of};

/// A consumer as check-items judges for it: its crate name and how it reads images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judge {
    pub consumer: String,
    pub decodes: Decodes,
}

impl Judge {
    /// The judges of `entries`; an entry that does not say how it reads images is an error
    /// (deployed by an older version of the app).
    pub fn of(entries: &[ConsumerEntry]) -> Result<Vec<Judge>, OpsError> {
        if entries.is_empty() {
            return Err(OpsError::Lookup {
                what: "the deployment's consumers".to_owned(),
                message: "none is registered: deploy a consumer stack, pass --stage, or pass --registry <infra/consumers>".to_owned(),
            });
        }
        entries
            .iter()
            .map(|entry| {
                Ok(Judge {
                    consumer: entry.crate_name.clone(),
                    decodes: entry.decodes().ok_or_else(|| OpsError::Lookup {
                        what: format!("how {} reads images", entry.crate_name),
                        message: "its registry entry has no `decodes` (user or raw-images): redeploy its stack from this version, or pass --registry".to_owned(),
                    })?,
                })
            })
            .collect()
    }

    /// Why this consumer would park `record`, if it would.
    fn refusal(&self, record: &EventRecord, as_user: &Result<(), String>) -> Option<String> {
        match self.decodes {
            Decodes::User => as_user.as_ref().err().cloned(),
            Decodes::RawImages => fanout_core::change::user_key(record)
                .is_none()
                .then(|| "no string userId key".to_owned()),
        }
    }
}

/// One item that a consumer would park, or that bends the contract.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFinding {
    /// The item's key (`userId=...`); no other attribute of it is shown.
    pub key: String,
    /// Consumer -> why it would park the item's record.
    pub parked_by: BTreeMap<String, String>,
    /// Where the item bends the contract without anything being parked.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckItemsReport {
    pub users_table: String,
    pub checked: usize,
    /// Items every consumer takes, without a note.
    pub clean: usize,
    pub findings: Vec<ItemFinding>,
    /// Per consumer, how many items it would park.
    pub would_park: BTreeMap<String, usize>,
}

impl CheckItemsReport {
    /// Whether no consumer would park any item checked.
    pub fn clean(&self) -> bool {
        self.would_park.values().all(|n| *n == 0)
    }

    pub fn summary(&self) -> String {
        let mut lines = Vec::new();
        for finding in &self.findings {
            for (consumer, why) in &finding.parked_by {
                lines.push(format!(
                    "  {}: {consumer} would park it: {why}",
                    finding.key
                ));
            }
            for note in &finding.notes {
                lines.push(format!("  {}: {note}", finding.key));
            }
        }
        let parked: Vec<String> = self
            .would_park
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        lines.push(format!(
            "check-items {}: {} item(s) checked, {} clean; would park: {}",
            self.users_table,
            self.checked,
            self.clean,
            parked.join(", ")
        ));
        lines.join("\n")
    }
}

/// The record an insert of `item` would be, as the consumers read it.
fn insert_record(
    item: &HashMap<String, AttributeValue>,
    keys: &[String],
    table: &str,
) -> Result<EventRecord, String> {
    let mut record = insert_of(item, keys, table);
    record["eventID"] = json!("check-items");
    record["eventSource"] = json!("fanout:check-items");
    serde_json::from_value(record).map_err(|e| e.to_string())
}

/// What each consumer would do with `record`: why it would park it, if it would.
fn judge(record: &EventRecord, judges: &[Judge]) -> BTreeMap<String, String> {
    let as_user = Change::<User>::from_record(record)
        .map(drop)
        .map_err(|e| e.to_string());
    judges
        .iter()
        .filter_map(|j| Some((j.consumer.clone(), j.refusal(record, &as_user)?)))
        .collect()
}

/// Where a decoded user bends the contract without being parked.
fn notes(record: &EventRecord) -> Vec<String> {
    let Ok(change) = Change::<User>::from_record(record) else {
        return Vec::new();
    };
    let Some(user) = change.new_image() else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    if matches!(user.plan, Plan::Unknown(_)) {
        notes.push(format!(
            "plan {:?} is none of free, pro, enterprise: no consumer treats it as paid",
            user.plan.as_str()
        ));
    }
    if chrono::DateTime::parse_from_rfc3339(&user.updated_at).is_err() {
        notes.push(
            "updatedAt is not RFC 3339: reconcile cannot tell when it was written, and judges it outside every window"
                .to_owned(),
        );
    }
    notes
}

/// Checks at most `sample` items of `users_table`.
pub async fn check_items(
    aws: &aws_config::SdkConfig,
    users_table: &str,
    sample: usize,
    judges: &[Judge],
) -> Result<CheckItemsReport, OpsError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let keys = UsersTable::describe(&dynamodb, users_table).await?.keys;
    let mut report = CheckItemsReport {
        users_table: users_table.to_owned(),
        checked: 0,
        clean: 0,
        findings: Vec::new(),
        would_park: judges.iter().map(|j| (j.consumer.clone(), 0)).collect(),
    };
    let mut start = None;
    while report.checked < sample {
        let page = dynamodb
            .scan()
            .table_name(users_table)
            .set_exclusive_start_key(start)
            .limit(i32::try_from((sample - report.checked).min(1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(OpsError::aws(format!("DynamoDB Scan {users_table}")))?;
        for item in page.items() {
            report.checked += 1;
            let key = keys
                .iter()
                .map(|k| match item.get(k) {
                    Some(AttributeValue::S(s) | AttributeValue::N(s)) => format!("{k}={s}"),
                    _ => format!("{k}=?"),
                })
                .collect::<Vec<_>>()
                .join(",");
            let (parked_by, notes) = match insert_record(item, &keys, users_table) {
                Ok(record) => (judge(&record, judges), notes(&record)),
                Err(why) => (
                    judges
                        .iter()
                        .map(|j| (j.consumer.clone(), format!("not a record: {why}")))
                        .collect(),
                    Vec::new(),
                ),
            };
            for consumer in parked_by.keys() {
                *report.would_park.entry(consumer.clone()).or_default() += 1;
            }
            if parked_by.is_empty() && notes.is_empty() {
                report.clean += 1;
            } else {
                report.findings.push(ItemFinding {
                    key,
                    parked_by,
                    notes,
                });
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    /// The shipped registry's consumers.
    fn judges() -> Vec<Judge> {
        Judge::of(&fanout_registry::consumers().unwrap()).unwrap()
    }

    fn reading(decodes: Decodes) -> Vec<String> {
        judges()
            .into_iter()
            .filter(|j| j.decodes == decodes)
            .map(|j| j.consumer)
            .collect()
    }

    #[test]
    fn an_item_that_keeps_the_contract_is_taken_by_every_consumer() {
        let good = item(&[
            ("userId", s("u-1")),
            ("email", s("u-1@example.com")),
            ("plan", s("pro")),
            ("version", AttributeValue::N("3".to_owned())),
            ("updatedAt", s("2026-12-01T10:00:00Z")),
        ]);
        let record = insert_record(&good, &["userId".to_owned()], "Users").unwrap_or_default();
        assert!(judge(&record, &judges()).is_empty());
        assert!(notes(&record).is_empty());
    }

    #[test]
    fn a_version_that_is_not_a_number_is_parked_by_the_consumers_that_decode_users() {
        let bad = item(&[
            ("userId", s("u-2")),
            ("email", s("u-2@example.com")),
            ("plan", s("gold")),
            ("version", s("seven")),
            ("updatedAt", s("yesterday")),
        ]);
        let record = insert_record(&bad, &["userId".to_owned()], "Users").unwrap_or_default();
        let parked = judge(&record, &judges());
        assert!(!reading(Decodes::User).is_empty());
        for consumer in reading(Decodes::User) {
            assert!(
                parked
                    .get(&consumer)
                    .is_some_and(|why| why.contains("version")),
                "{consumer}: {parked:?}"
            );
        }
        for consumer in reading(Decodes::RawImages) {
            assert!(
                !parked.contains_key(&consumer),
                "{consumer} keeps the images of any item"
            );
        }
        assert!(
            !parked.values().any(|why| why.contains("u-2@example.com")),
            "no personal data"
        );
    }

    #[test]
    fn an_item_of_a_table_not_keyed_by_user_id_is_parked_even_by_raw_image_readers() {
        let foreign = item(&[("id", s("x-1")), ("plan", s("pro"))]);
        let record = insert_record(&foreign, &["id".to_owned()], "Orders").unwrap_or_default();
        let parked = judge(&record, &judges());
        for consumer in reading(Decodes::RawImages) {
            assert_eq!(
                parked.get(&consumer).map(String::as_str),
                Some("no string userId key")
            );
        }
        assert_eq!(parked.len(), judges().len(), "every consumer parks it");
    }
}
