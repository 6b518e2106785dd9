//! Reading back what the consumers did, as each one's descriptor says its effects land
//! ([`ObservedIn`]): one line per effect, so the demo, the reliability scenarios and `make e2e`
//! compare lines with the descriptor's expectations and never switch on a consumer's name.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_registry::ConsumerEntry;
use fanout_registry::descriptor::{Descriptor, ObservedIn};
use fanout_testkit::queues::drain_queue;
use fanout_testkit::search_standin::SearchStandIn;
use fanout_testkit::ses_outbox::sent_emails;
use serde_json::Value;

use crate::demo::DemoError;

/// The local places effects land in.
#[derive(Debug, Clone, Copy)]
pub struct EffectPlaces<'a> {
    /// ministack's base URL (its SES outbox).
    pub ministack: &'a str,
    /// The SES sender the consumers send from.
    pub sender: &'a str,
    /// A queue behind the CRM bus (a rule sends every `fanout.users` event to it).
    pub crm_queue: &'a str,
    pub audit_table: &'a str,
    pub ledger_table: &'a str,
    pub search: &'a SearchStandIn,
}

/// A registered consumer with its descriptor.
#[derive(Debug, Clone)]
pub struct Described {
    pub entry: ConsumerEntry,
    pub descriptor: Descriptor,
}

impl Described {
    /// Every consumer of the workspace's registry, each with its crate's descriptor.
    pub fn all() -> Result<Vec<Described>, DemoError> {
        fanout_registry::consumers()?
            .into_iter()
            .map(Described::new)
            .collect()
    }

    pub fn new(entry: ConsumerEntry) -> Result<Described, DemoError> {
        let descriptor = Descriptor::of(&entry)?;
        Ok(Described { entry, descriptor })
    }

    /// The prefix of its ledger keys (`ledgerKeyPrefix`, else its crate name).
    pub fn ledger_prefix(&self) -> &str {
        self.entry.settings["ledgerKeyPrefix"]
            .as_str()
            .unwrap_or(&self.entry.crate_name)
    }

    /// Every effect its place holds now, one line each.
    ///
    /// The CRM bus is read through a queue, which reading drains: only the events that
    /// arrived since the last read are returned. [`Effects`] keeps what earlier reads found.
    pub async fn read_effects(
        &self,
        aws: &aws_config::SdkConfig,
        places: &EffectPlaces<'_>,
    ) -> Result<Vec<String>, DemoError> {
        let dynamodb = || aws_sdk_dynamodb::Client::new(aws);
        Ok(match self.descriptor.observed_in {
            ObservedIn::SesOutbox => sent_emails(places.ministack, places.sender)
                .await?
                .iter()
                .map(|e| format!("{} | {}", e.to.join(","), e.subject))
                .collect(),
            ObservedIn::CrmBus => {
                let sqs = aws_sdk_sqs::Client::new(aws);
                let mut events = Vec::new();
                for body in drain_queue(&sqs, places.crm_queue).await? {
                    let event: Value = serde_json::from_str(&body)?;
                    events.push(format!(
                        "{}({})",
                        event["detail-type"].as_str().unwrap_or("?"),
                        event["detail"]["userId"].as_str().unwrap_or("?")
                    ));
                }
                events
            }
            ObservedIn::SearchIndex => places
                .search
                .documents("users")
                .iter()
                // The item's version, which the document carries (its own is a DocumentVersion).
                .map(|(id, _, source)| {
                    format!(
                        "{id} v{} {}",
                        source["version"].as_u64().unwrap_or_default(),
                        source["plan"].as_str().unwrap_or("?")
                    )
                })
                .collect(),
            ObservedIn::AuditTable => scan(&dynamodb(), places.audit_table)
                .await?
                .iter()
                .map(|row| format!("{} {}", text(row, "userId"), text(row, "eventName")))
                .collect(),
            ObservedIn::Ledger => {
                let prefix = format!("{}#", self.ledger_prefix());
                scan(&dynamodb(), places.ledger_table)
                    .await?
                    .iter()
                    .filter(|entry| text(entry, "status") == "COMPLETED")
                    .filter_map(|entry| {
                        text(entry, "pk")
                            .strip_prefix(&prefix)
                            // The engine's park-once entries (`<prefix>#parked#<eventID>`) are
                            // no effect.
                            .filter(|parts| !parts.starts_with("parked#"))
                            .map(|parts| parts.split('#').collect::<Vec<_>>().join(" "))
                    })
                    .collect()
            }
        })
    }
}

/// What every consumer made, read so far: by crate name, one line per effect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects(pub BTreeMap<String, Vec<String>>);

impl Effects {
    /// Reads each consumer's place again: what a drained place (the CRM bus) gives is added to
    /// what earlier reads found; the others are read anew.
    pub async fn read(
        &mut self,
        consumers: &[Described],
        aws: &aws_config::SdkConfig,
        places: &EffectPlaces<'_>,
    ) -> Result<(), DemoError> {
        for consumer in consumers {
            let found = consumer.read_effects(aws, places).await?;
            let held = self.0.entry(consumer.entry.crate_name.clone()).or_default();
            if consumer.descriptor.observed_in == ObservedIn::CrmBus {
                held.extend(found);
            } else {
                *held = found;
            }
        }
        Ok(())
    }

    /// The effects `consumer` made, none if it was never read.
    pub fn of(&self, consumer: &str) -> &[String] {
        self.0.get(consumer).map_or(&[], Vec::as_slice)
    }
}

fn text(row: &HashMap<String, AttributeValue>, name: &str) -> String {
    row.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// Every item of `table`, read consistently.
pub async fn scan(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<HashMap<String, AttributeValue>>, DemoError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}
