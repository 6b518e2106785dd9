//! `fanout-ops check-items [--sample N]`: what the consumers would make of the items in the
//! Users table, judged as they judge a record, without invoking anything or writing anywhere.
//!
//! Each item (a `Scan`, at most `--sample` of them) is read as the change record an insert of it
//! would be, and each consumer of this version of fanout judges it with its own first step:
//! welcome-email, crm-sync and search-warm decode the image as a `User` (the writer's contract,
//! docs/writer-contract.md), audit-log builds its row. A record one of them cannot take is one
//! it would park, and the reason is the one it would park with. Items that would pass but bend
//! the contract (a plan no consumer knows, an `updatedAt` reconcile cannot read) are noted.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_core::aws_lambda_events::dynamodb::EventRecord;
use fanout_core::{Change, Plan, User};
use serde::Serialize;
use serde_json::json;

use crate::error::OpsError;
use crate::reconcile::{UsersTable, insert_of};

/// The consumers whose judgement this version of fanout-ops knows.
pub const JUDGED: [&str; 4] = [
    welcome_email::CONSUMER,
    crm_sync::CONSUMER,
    search_warm::CONSUMER,
    audit_log::CONSUMER,
];

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

/// What each known consumer would do with `record`: why it would park it, if it would.
fn judge(record: &EventRecord) -> BTreeMap<String, String> {
    let mut parked = BTreeMap::new();
    let as_user = Change::<User>::from_record(record).map_err(|e| e.to_string());
    for consumer in JUDGED {
        let refusal = if consumer == audit_log::CONSUMER {
            audit_log::audit_row(record).err().map(|e| e.to_string())
        } else {
            as_user.as_ref().err().cloned()
        };
        if let Some(why) = refusal {
            parked.insert(consumer.to_owned(), why);
        }
    }
    parked
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
) -> Result<CheckItemsReport, OpsError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let keys = UsersTable::describe(&dynamodb, users_table).await?.keys;
    let mut report = CheckItemsReport {
        users_table: users_table.to_owned(),
        checked: 0,
        clean: 0,
        findings: Vec::new(),
        would_park: JUDGED.iter().map(|c| ((*c).to_owned(), 0)).collect(),
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
                Ok(record) => (judge(&record), notes(&record)),
                Err(why) => (
                    JUDGED
                        .iter()
                        .map(|c| ((*c).to_owned(), format!("not a record: {why}")))
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
        assert!(judge(&record).is_empty(), "{:?}", judge(&record));
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
        let parked = judge(&record);
        for consumer in [
            welcome_email::CONSUMER,
            crm_sync::CONSUMER,
            search_warm::CONSUMER,
        ] {
            assert!(
                parked
                    .get(consumer)
                    .is_some_and(|why| why.contains("version")),
                "{consumer}: {parked:?}"
            );
        }
        assert!(
            !parked.contains_key(audit_log::CONSUMER),
            "audit-log keeps a row of any item"
        );
        assert!(
            !parked.values().any(|why| why.contains("u-2@example.com")),
            "no personal data"
        );
    }
}
