//! audit-log against DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use audit_log::{AuditLog, AuditLogConfig, CONSUMER};
use aws_sdk_dynamodb::types::AttributeValue;
use fanout_core::aws_lambda_events::dynamodb::Event;
use fanout_core::{BatchProcessor, BatchReport, ConsumerConfig, Env, RecordOutcome, RecordResult};
use fanout_testkit::resources::create_audit_table;
use fanout_testkit::{ConsumerResources, fixture_text, unique_name};

struct Setup {
    resources: ConsumerResources,
    table: String,
    processor: BatchProcessor,
    handler: Arc<AuditLog>,
}

impl Setup {
    async fn new() -> Self {
        let resources = ConsumerResources::create(CONSUMER).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&resources.aws);
        let table = unique_name("UserAudit");
        create_audit_table(&dynamodb, &table).await.unwrap();
        let config =
            ConsumerConfig::from_env(&Env::from_pairs(resources.env(4)), audit_log::STREAM_VIEW)
                .unwrap();
        let processor = config.processor(CONSUMER, &resources.aws);
        let handler = Arc::new(AuditLog::new(dynamodb, &table));
        Setup {
            resources,
            table,
            processor,
            handler,
        }
    }

    async fn deliver(&self, event: Event) -> BatchReport {
        let deadline = SystemTime::now() + Duration::from_secs(60);
        self.processor
            .run_value(
                serde_json::to_value(&event).unwrap(),
                deadline,
                Arc::clone(&self.handler),
            )
            .await
            .unwrap()
    }

    async fn rows(&self) -> Vec<HashMap<String, AttributeValue>> {
        let out = aws_sdk_dynamodb::Client::new(&self.resources.aws)
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let mut rows = out.items.unwrap_or_default();
        rows.sort_by(|a, b| {
            a["auditId"]
                .as_s()
                .unwrap()
                .cmp(b["auditId"].as_s().unwrap())
        });
        rows
    }
}

fn fixtures(names: &[&str]) -> Event {
    let mut all = Event::default();
    for name in names {
        let event: Event = serde_json::from_str(&fixture_text(name)).unwrap();
        all.records.extend(event.records);
    }
    all
}

fn s(row: &HashMap<String, AttributeValue>, name: &str) -> String {
    row[name].as_s().unwrap().clone()
}

const ALL: &[&str] = &[
    "user-insert-enterprise.json",
    "user-upgrade-free-to-pro.json",
    "user-upgrade-written-twice.json",
    "user-name-change.json",
    "user-downgrade-pro-to-free.json",
    "user-remove.json",
    "user-ttl-delete.json",
    "poison-undecodable-image.json",
    "aws-record-shapes.json",
];

#[tokio::test]
async fn a_batch_of_n_records_gives_n_rows_and_again_still_n() {
    let setup = Setup::new().await;
    let event = fixtures(ALL);
    let n = event.records.len();
    let report = setup.deliver(event.clone()).await;
    assert!(
        report
            .results
            .iter()
            .all(|r| *r == RecordResult::Succeeded(RecordOutcome::Done)),
        "{:?}",
        report.results
    );
    assert_eq!(setup.rows().await.len(), n);

    let again = setup.deliver(event).await;
    assert!(
        again
            .results
            .iter()
            .all(|r| *r == RecordResult::Succeeded(RecordOutcome::Duplicate)),
        "{:?}",
        again.results
    );
    assert!(again.response.batch_item_failures.is_empty());
    assert_eq!(
        setup.rows().await.len(),
        n,
        "a redelivered batch adds no rows"
    );
}

#[tokio::test]
async fn ttl_delete_is_recorded_with_actor_ttl() {
    let setup = Setup::new().await;
    setup
        .deliver(fixtures(&["user-ttl-delete.json", "user-remove.json"]))
        .await;
    let rows = setup.rows().await;
    let by_user: HashMap<String, &HashMap<String, AttributeValue>> =
        rows.iter().map(|r| (s(r, "userId"), r)).collect();
    let ttl = by_user["u-3003"];
    assert_eq!(s(ttl, "actor"), "ttl");
    assert_eq!(s(ttl, "eventName"), "REMOVE");
    assert!(ttl.contains_key("oldImage") && !ttl.contains_key("newImage"));
    assert_eq!(s(by_user["u-2002"], "actor"), "application");
}

#[tokio::test]
async fn row_holds_event_changed_fields_and_both_images() {
    let setup = Setup::new().await;
    setup.deliver(fixtures(&["user-name-change.json"])).await;
    let rows = setup.rows().await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(s(row, "userId"), "u-1001");
    assert_eq!(s(row, "eventName"), "MODIFY");
    assert_eq!(s(row, "actor"), "application");
    assert_eq!(s(row, "eventId"), "4d5e6f7a8b9c4d0e1f2a3b4c5d6e7f80");
    assert_eq!(
        s(row, "auditId"),
        format!(
            "{:0>40}#4d5e6f7a8b9c4d0e1f2a3b4c5d6e7f80",
            "4000000000000000000041"
        )
    );
    let changed: Vec<String> = row["changedFields"]
        .as_l()
        .unwrap()
        .iter()
        .map(|v| v.as_s().unwrap().clone())
        .collect();
    assert_eq!(changed, vec!["name", "updatedAt", "version"]);
    let old = row["oldImage"].as_m().unwrap();
    let new = row["newImage"].as_m().unwrap();
    assert_eq!(old["name"].as_s().unwrap(), "Ada Lovelace");
    assert_eq!(new["name"].as_s().unwrap(), "Ada King");
    assert_eq!(new["version"].as_n().unwrap(), "5");
}

#[tokio::test]
async fn rich_attribute_types_survive_into_the_audit_row() {
    let setup = Setup::new().await;
    setup.deliver(fixtures(&["aws-record-shapes.json"])).await;
    let rows = setup.rows().await;
    let row = rows.iter().find(|r| s(r, "userId") == "u-6006").unwrap();
    let new = row["newImage"].as_m().unwrap();
    assert_eq!(
        new["avatar"].as_b().unwrap().as_ref(),
        &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]
    );
    assert_eq!(new["tags"].as_ss().unwrap().len(), 2);
    assert!(new["address"].as_m().unwrap().contains_key("geo"));
    // The KEYS_ONLY record has no images but is still audited.
    let keys_only = rows.iter().find(|r| s(r, "userId") == "u-6007").unwrap();
    assert!(!keys_only.contains_key("newImage"));
}

#[tokio::test]
async fn record_without_user_key_is_parked() {
    let setup = Setup::new().await;
    let mut event = fixtures(&["user-insert-free.json"]);
    event.records[0].change.keys.clear();
    event.records[0]
        .change
        .keys
        .insert("pk".into(), serde_dynamo::AttributeValue::S("x".into()));
    let report = setup.deliver(event).await;
    assert_eq!(report.results, vec![RecordResult::Parked]);
    assert_eq!(setup.resources.parked().await.len(), 1);
}

#[tokio::test]
async fn missing_table_is_retryable_not_parked() {
    let setup = Setup::new().await;
    let config = ConsumerConfig::from_env(
        &Env::from_pairs(setup.resources.env(1)),
        audit_log::STREAM_VIEW,
    )
    .unwrap();
    let processor = config.processor(CONSUMER, &setup.resources.aws);
    let handler = Arc::new(AuditLog::new(
        aws_sdk_dynamodb::Client::new(&setup.resources.aws),
        unique_name("NoSuchTable"),
    ));
    let report = processor
        .run_value(
            serde_json::to_value(fixtures(&["user-insert-free.json"])).unwrap(),
            SystemTime::now() + Duration::from_secs(60),
            handler,
        )
        .await
        .unwrap();
    assert!(
        matches!(&report.results[0], RecordResult::Failed(reason) if reason.contains("ResourceNotFoundException")),
        "{:?}",
        report.results
    );
    assert!(setup.resources.parked().await.is_empty());
}

#[test]
fn missing_variable_fails_the_cold_start_naming_it() {
    let err = AuditLogConfig::from_env(&Env::from_pairs([
        ("DLQ_URL", "http://127.0.0.1:1/q"),
        ("USERS_TABLE", "Users"),
        ("LEDGER_TABLE", "IdempotencyLedger"),
    ]))
    .unwrap_err();
    assert_eq!(err.to_string(), "missing environment variable AUDIT_TABLE");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_audit-log"))
        .env_clear()
        .env("AUDIT_TABLE", "UserAudit")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DLQ_URL"));
}

/// On Kinesis: one row per change, whatever the order; a duplicate (same eventID, its own
/// Kinesis sequence number) finds its row written, in this batch or a later one.
#[tokio::test]
async fn kinesis_changes_give_one_row_each_and_duplicates_none() {
    let setup = Setup::new().await;
    let timeout = Duration::from_secs(60);
    let run = |fixture: &'static str| {
        let processor = setup.processor.clone();
        let handler = Arc::clone(&setup.handler);
        async move {
            processor
                .run_json(&fixture_text(fixture), timeout, handler)
                .await
                .unwrap()
        }
    };
    let report = run("kinesis-out-of-order-and-duplicate.json").await;
    assert_eq!(
        report.results,
        vec![
            RecordResult::Succeeded(RecordOutcome::Done),
            RecordResult::Succeeded(RecordOutcome::Done),
            RecordResult::Succeeded(RecordOutcome::Done),
            RecordResult::Succeeded(RecordOutcome::Duplicate),
        ]
    );
    let late = run("kinesis-user-upgrade-free-to-pro.json").await;
    assert_eq!(
        late.results,
        vec![RecordResult::Succeeded(RecordOutcome::Duplicate)]
    );
    let rows = setup.rows().await;
    let events: Vec<(String, String)> = rows
        .iter()
        .map(|r| (s(r, "userId"), s(r, "eventName")))
        .collect();
    assert_eq!(rows.len(), 3, "{events:?}");
    // Rows sort by creation time: u-1001's upgrade, u-1002's insert, u-1001's downgrade.
    let u1001: Vec<&String> = rows
        .iter()
        .filter(|r| s(r, "userId") == "u-1001")
        .map(|r| r["auditId"].as_s().unwrap())
        .collect();
    assert!(u1001[0] < u1001[1]);
}
