//! welcome-email against the local stack: SES (ministack) for mail, DynamoDB Local for the
//! ledger, SQS (ministack) for the DLQ. Mail is read back from ministack's outbox.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_core::{
    BatchProcessor, BatchReport, ConsumerConfig, Env, Ledger, RecordOutcome, RecordResult,
};
use fanout_testkit::logs::LogSink;
use fanout_testkit::resources::create_verified_sender;
use fanout_testkit::ses_outbox::{SentEmail, sent_emails};
use fanout_testkit::{ConsumerResources, fixture_text, ministack_url, unique_name};
use welcome_email::{CONSUMER, WelcomeEmail};

struct Setup {
    aws: aws_config::SdkConfig,
    resources: ConsumerResources,
    from: String,
    processor: BatchProcessor,
    handler: Arc<WelcomeEmail>,
}

impl Setup {
    /// A fresh ledger, DLQ and sender; `verified` says whether SES knows the sender.
    async fn new(verified: bool) -> Self {
        let resources = ConsumerResources::create(CONSUMER).await;
        let aws = resources.aws.clone();
        let from = format!("{}@fanout.example", unique_name("welcome"));
        if verified {
            create_verified_sender(&aws_sdk_sesv2::Client::new(&aws), &from)
                .await
                .unwrap();
        }
        let config = ConsumerConfig::from_env(
            &Env::from_pairs(resources.env(4)),
            welcome_email::STREAM_VIEW,
        )
        .unwrap();
        let processor = config.processor(CONSUMER, &aws);
        let ledger = Ledger::new(aws_sdk_dynamodb::Client::new(&aws), &resources.ledger_table);
        let handler = Arc::new(WelcomeEmail::new(
            ledger,
            aws_sdk_sesv2::Client::new(&aws),
            &from,
        ));
        Setup {
            aws,
            resources,
            from,
            processor,
            handler,
        }
    }

    async fn deliver(&self, fixture: &str) -> BatchReport {
        let timeout = Duration::from_secs(60);
        let handler = Arc::clone(&self.handler);
        self.processor
            .run_json(&fixture_text(fixture), timeout, handler)
            .await
            .unwrap()
    }

    async fn sent(&self) -> Vec<SentEmail> {
        sent_emails(&ministack_url(), &self.from).await.unwrap()
    }

    async fn ledger_entry(&self, key: &str) -> Option<HashMap<String, AttributeValue>> {
        self.resources.ledger_entry(key).await
    }
}

fn outcomes(report: &BatchReport) -> Vec<RecordResult> {
    report.results.clone()
}

const DONE: RecordResult = RecordResult::Succeeded(RecordOutcome::Done);
const IGNORED: RecordResult = RecordResult::Succeeded(RecordOutcome::Ignored);
const DUPLICATE: RecordResult = RecordResult::Succeeded(RecordOutcome::Duplicate);

#[tokio::test]
async fn upgrade_free_to_pro_sends_one_welcome_email() {
    let setup = Setup::new(true).await;
    let report = setup.deliver("user-upgrade-free-to-pro.json").await;
    assert_eq!(outcomes(&report), vec![DONE]);
    assert!(report.response.batch_item_failures.is_empty());
    let sent = setup.sent().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, vec!["u-1001@example.com"]);
    assert_eq!(sent[0].subject, "Welcome to Pro");
    assert!(sent[0].body_text.contains("Hello Ada Lovelace,"));
    let entry = setup
        .ledger_entry("welcome-email#u-1001#pro")
        .await
        .unwrap();
    assert_eq!(entry["status"].as_s().unwrap(), "COMPLETED");
}

#[tokio::test]
async fn same_record_delivered_twice_sends_one_email() {
    let setup = Setup::new(true).await;
    assert_eq!(
        outcomes(&setup.deliver("user-upgrade-free-to-pro.json").await),
        vec![DONE]
    );
    assert_eq!(
        outcomes(&setup.deliver("user-upgrade-free-to-pro.json").await),
        vec![DUPLICATE]
    );
    assert_eq!(setup.sent().await.len(), 1);
}

#[tokio::test]
async fn two_stream_records_of_one_upgrade_send_one_email() {
    let setup = Setup::new(true).await;
    let report = setup.deliver("user-upgrade-written-twice.json").await;
    assert_eq!(outcomes(&report), vec![DONE, DUPLICATE]);
    assert_eq!(report.metrics.duplicate, 1);
    assert_eq!(setup.sent().await.len(), 1);
}

#[tokio::test]
async fn downgrade_name_change_free_insert_and_remove_send_nothing() {
    let setup = Setup::new(true).await;
    for fixture in [
        "user-downgrade-pro-to-free.json",
        "user-name-change.json",
        "user-insert-free.json",
        "user-remove.json",
        "user-ttl-delete.json",
        "user-unknown-plan.json",
    ] {
        assert_eq!(
            outcomes(&setup.deliver(fixture).await),
            vec![IGNORED],
            "{fixture}"
        );
    }
    assert!(setup.sent().await.is_empty());
}

#[tokio::test]
async fn insert_with_enterprise_sends_one_email_for_enterprise() {
    let setup = Setup::new(true).await;
    assert_eq!(
        outcomes(&setup.deliver("user-insert-enterprise.json").await),
        vec![DONE]
    );
    let sent = setup.sent().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, vec!["u-2002@example.com"]);
    assert_eq!(sent[0].subject, "Welcome to Enterprise");
}

#[tokio::test]
async fn rejected_send_fails_the_record_releases_the_claim_and_succeeds_once_verified() {
    let setup = Setup::new(false).await;
    let report = setup.deliver("user-upgrade-free-to-pro.json").await;
    let RecordResult::Failed(reason) = &report.results[0] else {
        panic!("expected a retryable failure, got {:?}", report.results);
    };
    assert!(reason.contains("MessageRejected"), "{reason}");
    assert_eq!(
        report.response.batch_item_failures[0]
            .item_identifier
            .as_deref(),
        Some("4000000000000000000001")
    );
    assert!(
        setup
            .ledger_entry("welcome-email#u-1001#pro")
            .await
            .is_none(),
        "claim released"
    );
    assert!(setup.sent().await.is_empty());
    assert!(
        setup.resources.parked().await.is_empty(),
        "a rejection an operator can fix is retried, not parked"
    );

    create_verified_sender(&aws_sdk_sesv2::Client::new(&setup.aws), &setup.from)
        .await
        .unwrap();
    let report = setup.deliver("user-upgrade-free-to-pro.json").await;
    assert_eq!(outcomes(&report), vec![DONE]);
    assert_eq!(setup.sent().await.len(), 1);
}

#[tokio::test]
async fn undecodable_record_is_parked_and_sends_nothing() {
    let setup = Setup::new(true).await;
    let report = setup.deliver("poison-undecodable-image.json").await;
    assert_eq!(outcomes(&report), vec![RecordResult::Parked]);
    let parked = setup.resources.parked().await;
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0]["record"]["eventID"],
        "8b9c0d1e2f3a4b4c5d6e7f8091a2b3c4"
    );
    assert_eq!(parked[0]["consumer"], CONSUMER);
    assert!(setup.sent().await.is_empty());
}

/// Makes this thread's log lines, at `level` and above, go to a new sink, as Lambda's JSON
/// lines would; logging returns to the global subscriber when the guard drops.
fn capture_logs(level: &str) -> (LogSink, tracing::subscriber::DefaultGuard) {
    let logs = LogSink::default();
    let writer = logs.clone();
    let subscriber = fanout_core::telemetry::json_subscriber(
        level
            .parse::<tracing_subscriber::filter::Targets>()
            .unwrap(),
        move || writer.clone(),
    );
    (logs, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn no_email_address_in_any_log_line_even_at_debug() {
    let (logs, _guard) = capture_logs("debug");

    let setup = Setup::new(false).await;
    setup.deliver("user-upgrade-free-to-pro.json").await; // rejected: error path
    create_verified_sender(&aws_sdk_sesv2::Client::new(&setup.aws), &setup.from)
        .await
        .unwrap();
    setup.deliver("user-upgrade-free-to-pro.json").await; // sent
    setup.deliver("user-upgrade-free-to-pro.json").await; // duplicate
    setup.deliver("poison-undecodable-image.json").await; // parked
    assert_eq!(setup.sent().await.len(), 1);

    let text = logs.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("welcome email sent")),
        "the success path logged nothing"
    );
    assert!(
        lines.iter().any(|l| l.contains("record parked")),
        "the parking path logged nothing"
    );
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for address in ["u-1001@example.com", "u-5005@example.com"] {
            assert!(
                !line.contains(address),
                "log line leaks an email address: {line}"
            );
        }
    }
}

/// The log budget: at INFO a record that succeeds writes no line of its own (the batch's
/// metrics line counts it); a parked record's ERROR line names it by eventID.
#[tokio::test]
async fn at_info_success_is_silent_and_a_parked_record_is_named() {
    let (logs, _guard) = capture_logs("info");

    let setup = Setup::new(true).await;
    setup.deliver("user-upgrade-free-to-pro.json").await; // sent
    setup.deliver("user-upgrade-free-to-pro.json").await; // duplicate
    setup.deliver("user-downgrade-pro-to-free.json").await; // ignored
    assert_eq!(setup.sent().await.len(), 1);
    let quiet = logs.text();
    assert_eq!(quiet, "", "successful records wrote lines at INFO");

    setup.deliver("poison-undecodable-image.json").await; // parked
    let poison: serde_json::Value = serde_json::from_str(&fanout_testkit::fixture_text(
        "poison-undecodable-image.json",
    ))
    .unwrap();
    let event_id = poison["Records"][0]["eventID"].as_str().unwrap();
    let text = logs.text();
    let parked: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l["message"] == "record parked in DLQ")
        .collect();
    assert_eq!(parked.len(), 1, "{text}");
    assert_eq!(parked[0]["level"], "ERROR");
    assert_eq!(parked[0]["event_id"], event_id);
}

#[test]
fn missing_variable_fails_the_cold_start_naming_it() {
    let full = [
        ("DLQ_URL", "http://127.0.0.1:1/q"),
        ("USERS_TABLE", "Users"),
        ("LEDGER_TABLE", "EffectLedger"),
        ("FROM_ADDRESS", "welcome@fanout.example"),
    ];
    assert!(welcome_email::WelcomeEmailConfig::from_env(&Env::from_pairs(full)).is_ok());
    for missing in ["USERS_TABLE", "DLQ_URL", "LEDGER_TABLE", "FROM_ADDRESS"] {
        let env = Env::from_pairs(full.into_iter().filter(|(k, _)| *k != missing));
        let err = welcome_email::WelcomeEmailConfig::from_env(&env).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("missing environment variable {missing}")
        );
    }
    // The real binary: no Lambda runtime needed to fail at config.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_welcome-email"))
        .env_clear()
        .env("DLQ_URL", "http://127.0.0.1:1/q")
        .env("USERS_TABLE", "Users")
        .env("LEDGER_TABLE", "EffectLedger")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stderr.contains("Error: missing environment variable FROM_ADDRESS")
            && stdout.contains("FROM_ADDRESS"),
        "stderr: {stderr}\nstdout: {stdout}"
    );
}

#[test]
fn a_stream_view_without_old_images_fails_the_cold_start_naming_both_views() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_welcome-email"))
        .env_clear()
        .env("DLQ_URL", "http://127.0.0.1:1/q")
        .env("USERS_TABLE", "Users")
        .env("LEDGER_TABLE", "EffectLedger")
        .env("FROM_ADDRESS", "welcome@fanout.example")
        .env("STREAM_VIEW_TYPE", "NEW_IMAGE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("STREAM_VIEW_TYPE")
            && stderr.contains("NEW_IMAGE")
            && stderr.contains("NEW_AND_OLD_IMAGES"),
        "stderr: {stderr}"
    );
    let full = [
        ("DLQ_URL", "http://127.0.0.1:1/q"),
        ("USERS_TABLE", "Users"),
        ("LEDGER_TABLE", "EffectLedger"),
        ("FROM_ADDRESS", "welcome@fanout.example"),
        ("STREAM_VIEW_TYPE", "NEW_AND_OLD_IMAGES"),
    ];
    assert!(welcome_email::WelcomeEmailConfig::from_env(&Env::from_pairs(full)).is_ok());
}
