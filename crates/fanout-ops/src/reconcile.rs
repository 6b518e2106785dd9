//! `fanout-ops reconcile <consumer> [--repair]`: find the effects that were never made.
//!
//! A parallel `Scan` of `Users` (segments, a bounded rate) asks the consumer's own check
//! (`fanout_core::EffectCheck`, in its crate) about each item's current image. The check runs
//! inside the consumer's deployed function, a page of users per invocation
//! (`fanout_core::reconcile::CheckRequest`): the function has its configuration and the
//! permissions to read its own record, and this tool holds no consumer's code. Drift is an
//! item whose effect is missing or behind. `--repair` sends each drifting item through the
//! consumer's function as an `INSERT` record of its current image, `eventSource` naming the
//! reconciler, so the ledger (or the target) keeps the repair exactly-once; then checks it
//! again.
//!
//! Items written within the settle time are not judged: their records may still be on their
//! way through the stream. Items written before the ledger's retention are not judged either
//! ([`EffectState::OutsideWindow`]): the ledger can no longer vouch for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_core::reconcile::{CheckedItem, written_within};
use fanout_core::{EffectState, RecordOrigin, User};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::deployed::Deployed;
use crate::error::OpsError;
use crate::invoke::{Function, InvokeAnswer};
use crate::progress::Progress;

/// Users per check invocation, and items per Scan page.
const CHECK_PAGE: usize = 100;

/// How reconcile runs.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    pub users_table: String,
    /// Parallel scan segments.
    pub segments: u32,
    /// Items judged per second at most, over all segments (0: unbounded).
    pub rate: u32,
    /// Items written more recently than this are not judged (still in flight).
    pub settle: Duration,
    pub repair: bool,
}

/// One drifting item.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub user_id: String,
    pub version: u64,
    pub what: String,
}

/// What `--repair` did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairReport {
    pub invocations: usize,
    /// Drifting items whose effect the check finds made after the repair.
    pub repaired: usize,
    /// Items still drifting after the repair, and why.
    pub still_drifting: Vec<Drift>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub consumer: String,
    pub users_table: String,
    pub scanned: u64,
    pub made: u64,
    pub not_due: u64,
    pub outside_window: u64,
    pub in_flight: u64,
    /// Items that are not a readable `User` (the consumer cannot act on them either).
    pub unreadable: Vec<String>,
    /// Items whose check could not be made (an error reaching the target).
    pub unchecked: Vec<Drift>,
    pub drift: Vec<Drift>,
    pub repair: Option<RepairReport>,
    pub seconds: f64,
}

impl ReconcileReport {
    /// Whether nothing is left drifting, unreadable or unchecked.
    pub fn clean(&self) -> bool {
        self.unreadable.is_empty()
            && self.unchecked.is_empty()
            && match &self.repair {
                Some(repair) => repair.still_drifting.is_empty(),
                None => self.drift.is_empty(),
            }
    }

    pub fn summary(&self) -> String {
        let mut lines = Vec::new();
        for d in &self.drift {
            lines.push(format!("  drift {} v{}: {}", d.user_id, d.version, d.what));
        }
        for d in &self.unchecked {
            lines.push(format!(
                "  unchecked {} v{}: {}",
                d.user_id, d.version, d.what
            ));
        }
        for id in &self.unreadable {
            lines.push(format!("  unreadable item {id}: not a User"));
        }
        lines.push(format!(
            "reconcile {}: {} item(s) in {:.1} s: {} made, {} drift, {} not due, {} outside the ledger's retention, {} in flight, {} unreadable, {} unchecked",
            self.consumer,
            self.scanned,
            self.seconds,
            self.made,
            self.drift.len(),
            self.not_due,
            self.outside_window,
            self.in_flight,
            self.unreadable.len(),
            self.unchecked.len(),
        ));
        match &self.repair {
            Some(repair) => lines.push(format!(
                "repair: {} invocation(s), {} repaired, {} still drifting",
                repair.invocations,
                repair.repaired,
                repair.still_drifting.len()
            )),
            None if !self.drift.is_empty() => lines.push(format!(
                "run `fanout-ops reconcile {} --repair` to make the missing effects",
                self.consumer
            )),
            None => {}
        }
        lines.join("\n")
    }
}

/// A drifting item and its raw image, for the repair.
struct Found {
    drift: Drift,
    user: User,
    item: HashMap<String, AttributeValue>,
}

#[derive(Default)]
struct Tally {
    report: ReconcileReport,
    found: Vec<Found>,
}

/// What a scan of the Users table needs to know first: its key attributes and roughly how
/// many items it holds (DescribeTable's count, refreshed about every six hours).
pub(crate) struct UsersTable {
    pub(crate) keys: Vec<String>,
    pub(crate) item_count: u64,
}

impl UsersTable {
    pub(crate) async fn describe(
        dynamodb: &aws_sdk_dynamodb::Client,
        name: &str,
    ) -> Result<UsersTable, OpsError> {
        let output = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(OpsError::aws(format!("DynamoDB DescribeTable {name}")))?;
        let table = output.table();
        Ok(UsersTable {
            keys: table
                .map(|t| {
                    t.key_schema()
                        .iter()
                        .map(|k| k.attribute_name().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            item_count: table
                .and_then(|t| t.item_count())
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
        })
    }
}

/// Reconciles `deployed` against the Users table.
pub async fn reconcile(
    aws: &aws_config::SdkConfig,
    deployed: &Deployed,
    options: &ReconcileOptions,
    progress: &Progress,
) -> Result<ReconcileReport, OpsError> {
    let started = Instant::now();
    let function = Function::new(aws, &deployed.function_name);
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let table = UsersTable::describe(&dynamodb, &options.users_table).await?;
    let keys = table.keys;
    progress.start(table.item_count, "items");

    let tally = Arc::new(Mutex::new(Tally::default()));
    let segments = options.segments.max(1);
    // Each segment paces itself to its share of the rate.
    let pause = (options.rate > 0)
        .then(|| Duration::from_secs_f64(f64::from(segments) / f64::from(options.rate)));
    let mut tasks = tokio::task::JoinSet::new();
    for segment in 0..segments {
        let (dynamodb, function, tally, progress) = (
            dynamodb.clone(),
            function.clone(),
            Arc::clone(&tally),
            progress.clone(),
        );
        let (table, settle) = (options.users_table.clone(), options.settle);
        tasks.spawn(async move {
            scan_segment(
                &dynamodb, &table, segment, segments, pause, settle, &function, &tally, &progress,
            )
            .await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => result?,
            Err(err) => {
                return Err(OpsError::Aws {
                    operation: "a scan segment".to_owned(),
                    message: err.to_string(),
                });
            }
        }
    }
    progress.finish();

    let Tally {
        mut report,
        mut found,
    } = Arc::try_unwrap(tally)
        .map(Mutex::into_inner)
        .unwrap_or_default();
    report.consumer = deployed.consumer.clone();
    report.users_table = options.users_table.clone();
    found.sort_by(|a, b| a.drift.user_id.cmp(&b.drift.user_id));
    report.drift = found.iter().map(|f| f.drift.clone()).collect();
    if options.repair {
        report.repair = Some(
            repair(
                &function,
                deployed,
                &keys,
                &found,
                &options.users_table,
                aws,
            )
            .await?,
        );
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn scan_segment(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    segment: u32,
    segments: u32,
    pause: Option<Duration>,
    settle: Duration,
    function: &Function,
    tally: &Mutex<Tally>,
    progress: &Progress,
) -> Result<(), OpsError> {
    let mut pages = dynamodb
        .scan()
        .table_name(table)
        .segment(i32::try_from(segment).unwrap_or(0))
        .total_segments(i32::try_from(segments).unwrap_or(1))
        .limit(i32::try_from(CHECK_PAGE).unwrap_or(100))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(OpsError::aws(format!(
            "DynamoDB Scan {table} segment {segment}"
        )))?;
        let items = page.items();
        if let Some(pause) = pause {
            tokio::time::sleep(pause * u32::try_from(items.len()).unwrap_or(u32::MAX)).await;
        }
        judge_page(items, settle, function, tally).await?;
        for _ in items {
            progress.inc();
        }
    }
    Ok(())
}

/// Judges one page of items: unreadable and in-flight ones here, the rest by one check
/// invocation of the consumer's function.
async fn judge_page(
    items: &[HashMap<String, AttributeValue>],
    settle: Duration,
    function: &Function,
    tally: &Mutex<Tally>,
) -> Result<(), OpsError> {
    let mut due: Vec<(User, &HashMap<String, AttributeValue>)> = Vec::new();
    {
        let mut tally = tally.lock().await;
        for item in items {
            tally.report.scanned += 1;
            match serde_dynamo::from_item::<_, User>(item.clone()) {
                Err(_) => tally.report.unreadable.push(
                    item.get("userId")
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_else(|| "<no userId>".to_owned()),
                ),
                Ok(user)
                    if !settle.is_zero() && written_within(&user, settle, SystemTime::now()) =>
                {
                    tally.report.in_flight += 1;
                }
                Ok(user) => due.push((user, item)),
            }
        }
    }
    if due.is_empty() {
        return Ok(());
    }
    let states = checked(function, due.iter().map(|(user, _)| user.clone()).collect()).await?;
    let mut tally = tally.lock().await;
    for ((user, item), state) in due.into_iter().zip(states) {
        let drift = |what: String| Drift {
            user_id: user.user_id.clone(),
            version: user.version,
            what,
        };
        match state {
            Ok(EffectState::Made) => tally.report.made += 1,
            Ok(EffectState::NotDue) => tally.report.not_due += 1,
            Ok(EffectState::OutsideWindow) => tally.report.outside_window += 1,
            Ok(EffectState::Missing { what }) => tally.found.push(Found {
                drift: drift(what),
                user: user.clone(),
                item: item.clone(),
            }),
            Ok(EffectState::Behind { have, want }) => tally.found.push(Found {
                drift: drift(format!("the target holds version {have}, the table {want}")),
                user: user.clone(),
                item: item.clone(),
            }),
            Err(why) => tally.report.unchecked.push(drift(why)),
        }
    }
    Ok(())
}

/// The function's check of `users`, one state (or why not) per user, in order. A function
/// that fails, or answers for another user, leaves those users unchecked with the reason.
async fn checked(
    function: &Function,
    users: Vec<User>,
) -> Result<Vec<Result<EffectState, String>>, OpsError> {
    let wanted: Vec<(String, u64)> = users
        .iter()
        .map(|u| (u.user_id.clone(), u.version))
        .collect();
    let answer = match function.check(users).await? {
        Ok(answer) => answer,
        Err(why) => {
            let why = format!("the function's check failed: {why}");
            return Ok(wanted.iter().map(|_| Err(why.clone())).collect());
        }
    };
    let mut items: HashMap<(String, u64), CheckedItem> = answer
        .items
        .into_iter()
        .map(|item| ((item.user_id.clone(), item.version), item))
        .collect();
    Ok(wanted
        .into_iter()
        .map(|key| match items.remove(&key) {
            Some(CheckedItem {
                state: Some(state), ..
            }) => Ok(state),
            Some(CheckedItem { error, .. }) => {
                Err(error.unwrap_or_else(|| "the check said nothing".to_owned()))
            }
            None => Err("the function's check did not answer for this item".to_owned()),
        })
        .collect())
}

/// Sends each drifting item through the function, in batches of the mapping's size, then
/// checks it again.
async fn repair(
    function: &Function,
    deployed: &Deployed,
    keys: &[String],
    found: &[Found],
    users_table: &str,
    aws: &aws_config::SdkConfig,
) -> Result<RepairReport, OpsError> {
    let region = aws.region().map(|r| r.to_string()).unwrap_or_default();
    let mut report = RepairReport::default();
    for chunk in found.chunks(deployed.batch_size) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|f| reconcile_record(&f.item, keys, &f.user, users_table, &region))
            .collect();
        report.invocations += 1;
        if let InvokeAnswer::FunctionError(message) = function.invoke(&records).await? {
            tracing::warn!(%message, "the function failed a repair batch; its items are checked again below");
        }
    }
    for page in found.chunks(CHECK_PAGE) {
        let states = checked(function, page.iter().map(|f| f.user.clone()).collect()).await?;
        for (f, state) in page.iter().zip(states) {
            match state {
                Ok(EffectState::Made) => report.repaired += 1,
                Ok(other) => report.still_drifting.push(Drift {
                    what: format!("after the repair: {other:?}"),
                    ..f.drift.clone()
                }),
                Err(err) => report.still_drifting.push(Drift {
                    what: format!("after the repair, not checked: {err}"),
                    ..f.drift.clone()
                }),
            }
        }
    }
    Ok(report)
}

/// An `INSERT` stream record of `item` as it is now, the shape the consumers decode: its key
/// attributes (`keys`) and its whole image, naming `users_table` as a Kinesis record does
/// (`tableName`). `eventID`, `eventSource`, `awsRegion`, the creation time and sequence number
/// are placeholders for the caller to fill.
pub fn insert_of(
    item: &HashMap<String, AttributeValue>,
    keys: &[String],
    users_table: &str,
) -> Value {
    let image = |names: Option<&[String]>| {
        let chosen: HashMap<String, AttributeValue> = item
            .iter()
            .filter(|(name, _)| names.is_none_or(|n| n.contains(name)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::to_value(serde_dynamo::Item::from(chosen)).unwrap_or(Value::Null)
    };
    json!({
        "eventID": "",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "",
        "awsRegion": "",
        "tableName": users_table,
        "dynamodb": {
            "ApproximateCreationDateTime": 0,
            "Keys": image(Some(keys)),
            "NewImage": image(None),
            "SequenceNumber": "0",
            "SizeBytes": 0,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
    })
}

/// The stream record reconcile sends for an item of `users_table`: an `INSERT` of its current
/// image, named after the item and version (so a second repair is the same record), from the
/// reconciler.
pub fn reconcile_record(
    item: &HashMap<String, AttributeValue>,
    keys: &[String],
    user: &User,
    users_table: &str,
    region: &str,
) -> Value {
    let mut record = insert_of(item, keys, users_table);
    record["eventID"] = json!(format!("reconcile-{}-v{}", user.user_id, user.version));
    record["eventSource"] = json!(RecordOrigin::RECONCILE_EVENT_SOURCE);
    record["awsRegion"] = json!(region);
    record["dynamodb"]["ApproximateCreationDateTime"] = json!(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    );
    // Not a stream position: the item's version, so the record is reportable and the same on
    // every repair.
    record["dynamodb"]["SequenceNumber"] = json!(user.version.to_string());
    record
}
