//! crm-sync against the local stack: the CRM bus routes through an EventBridge rule to an SQS
//! queue in ministack, which the tests read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use crm_sync::{CONSUMER, CrmSync, CrmSyncConfig};
use fanout_core::{
    BatchProcessor, BatchReport, ConsumerConfig, Env, Ledger, RecordOutcome, RecordResult,
};
use fanout_testkit::queues::drain_queue;
use fanout_testkit::resources::{create_bus_to_queue, create_queue, queue_arn};
use fanout_testkit::{ConsumerResources, fixture_text, unique_name};
use serde_json::{Value, json};

struct Setup {
    resources: ConsumerResources,
    inspection_queue: String,
    processor: BatchProcessor,
    handler: Arc<CrmSync>,
}

impl Setup {
    async fn new() -> Self {
        Self::with_bus(None).await
    }

    /// `bus`: publish to this bus instead of the one routed to the inspection queue.
    async fn with_bus(bus: Option<&str>) -> Self {
        let resources = ConsumerResources::create(CONSUMER).await;
        let aws = resources.aws.clone();
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let inspection_queue = create_queue(&sqs, &unique_name("crm-inspect"))
            .await
            .unwrap();
        let arn = queue_arn(&sqs, &inspection_queue).await.unwrap();
        let routed_bus = unique_name("crm-bus");
        create_bus_to_queue(&aws_sdk_eventbridge::Client::new(&aws), &routed_bus, &arn)
            .await
            .unwrap();
        let config =
            ConsumerConfig::from_env(&Env::from_pairs(resources.env(4)), crm_sync::STREAM_VIEW)
                .unwrap();
        let processor = config.processor(CONSUMER, &aws);
        let ledger = Ledger::new(aws_sdk_dynamodb::Client::new(&aws), &resources.ledger_table);
        let handler = Arc::new(CrmSync::new(
            ledger,
            aws_sdk_eventbridge::Client::new(&aws),
            bus.unwrap_or(&routed_bus),
        ));
        Setup {
            resources,
            inspection_queue,
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

    /// Events that reached the CRM queue, in arrival order.
    async fn events(&self) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.resources.aws);
        drain_queue(&sqs, &self.inspection_queue)
            .await
            .unwrap()
            .iter()
            .map(|body| serde_json::from_str(body).unwrap())
            .collect()
    }
}

const DONE: RecordResult = RecordResult::Succeeded(RecordOutcome::Done);
const DUPLICATE: RecordResult = RecordResult::Succeeded(RecordOutcome::Duplicate);

async fn one_event(fixture: &str) -> Value {
    let setup = Setup::new().await;
    assert_eq!(
        setup.deliver(fixture).await.results,
        vec![DONE],
        "{fixture}"
    );
    let mut events = setup.events().await;
    assert_eq!(events.len(), 1, "{fixture}: {events:?}");
    let event = events.remove(0);
    assert_eq!(event["source"], "fanout.users");
    event
}

#[tokio::test]
async fn insert_publishes_user_created_with_only_crm_fields() {
    let event = one_event("user-insert-enterprise.json").await;
    assert_eq!(event["detail-type"], "UserCreated");
    assert_eq!(
        event["detail"],
        json!({
            "idempotencyKey": "crm-sync#u-2002#1#UserCreated",
            "userId": "u-2002",
            "email": "u-2002@example.com",
            "name": "Grace Hopper",
            "plan": "enterprise",
            "version": 1,
            "occurredAt": "2026-11-23T10:01:00Z"
        })
    );
}

#[tokio::test]
async fn plan_change_publishes_user_plan_changed() {
    let event = one_event("user-upgrade-free-to-pro.json").await;
    assert_eq!(event["detail-type"], "UserPlanChanged");
    let detail = &event["detail"];
    assert_eq!(detail["plan"], "pro");
    assert_eq!(detail["previousPlan"], "free");
    assert_eq!(
        detail["changedFields"],
        json!(["plan", "updatedAt", "version"])
    );
    assert_eq!(
        detail["idempotencyKey"],
        "crm-sync#u-1001#2#UserPlanChanged"
    );
}

#[tokio::test]
async fn other_modify_publishes_user_updated_with_changed_fields() {
    let event = one_event("user-name-change.json").await;
    assert_eq!(event["detail-type"], "UserUpdated");
    assert_eq!(
        event["detail"]["changedFields"],
        json!(["name", "updatedAt", "version"])
    );
    assert_eq!(event["detail"]["name"], "Ada King");
    assert!(event["detail"].get("previousPlan").is_none());
}

#[tokio::test]
async fn removes_publish_user_deleted_with_who_deleted() {
    let event = one_event("user-remove.json").await;
    assert_eq!(event["detail-type"], "UserDeleted");
    assert_eq!(event["detail"]["deletedBy"], "application");
    assert_eq!(event["detail"]["previousPlan"], "enterprise");
    assert!(
        event["detail"].get("email").is_none(),
        "a delete carries no contact data"
    );

    let event = one_event("user-ttl-delete.json").await;
    assert_eq!(event["detail-type"], "UserDeleted");
    assert_eq!(event["detail"]["deletedBy"], "ttl");
}

#[tokio::test]
async fn redelivery_does_not_republish() {
    let setup = Setup::new().await;
    assert_eq!(
        setup.deliver("user-upgrade-free-to-pro.json").await.results,
        vec![DONE]
    );
    assert_eq!(
        setup.deliver("user-upgrade-free-to-pro.json").await.results,
        vec![DUPLICATE]
    );
    assert_eq!(setup.events().await.len(), 1);
    // Two writes (versions 2 and 3) are two events, even with the same target plan.
    let report = setup.deliver("user-upgrade-written-twice.json").await;
    assert_eq!(report.results, vec![DUPLICATE, DONE]);
    assert_eq!(setup.events().await.len(), 1);
}

#[tokio::test]
async fn failed_entry_fails_the_record_and_releases_the_claim() {
    // A bus in another region does not exist here: PutEvents answers 200 with
    // FailedEntryCount 1 and a ResourceNotFoundException entry.
    let elsewhere = format!(
        "arn:aws:events:eu-central-1:000000000000:event-bus/{}",
        unique_name("crm")
    );
    let setup = Setup::with_bus(Some(&elsewhere)).await;
    let report = setup.deliver("user-upgrade-free-to-pro.json").await;
    let RecordResult::Failed(reason) = &report.results[0] else {
        panic!("expected a retryable failure, got {:?}", report.results);
    };
    assert!(
        reason.contains("entry failed (ResourceNotFoundException)"),
        "{reason}"
    );
    assert_eq!(report.response.batch_item_failures.len(), 1);
    assert!(
        setup
            .resources
            .ledger_entry("crm-sync#u-1001#2#UserPlanChanged")
            .await
            .is_none()
    );
    assert!(setup.resources.parked().await.is_empty());
}

#[tokio::test]
async fn undecodable_record_is_parked() {
    let setup = Setup::new().await;
    let report = setup.deliver("poison-undecodable-image.json").await;
    assert_eq!(report.results, vec![RecordResult::Parked]);
    assert_eq!(setup.resources.parked().await.len(), 1);
    assert!(setup.events().await.is_empty());
}

#[tokio::test]
async fn keys_only_record_is_parked_with_a_clear_reason() {
    let setup = Setup::new().await;
    let report = setup.deliver("aws-record-shapes.json").await;
    assert_eq!(report.results, vec![DONE, RecordResult::Parked]);
    let parked = setup.resources.parked().await;
    assert!(
        parked[0]["error"]
            .as_str()
            .unwrap()
            .contains("NEW_AND_OLD_IMAGES")
    );
}

#[test]
fn missing_variable_fails_the_cold_start_naming_it() {
    let full = [
        ("DLQ_URL", "http://127.0.0.1:1/q"),
        ("USERS_TABLE", "Users"),
        ("LEDGER_TABLE", "EffectLedger"),
        ("CRM_EVENT_BUS", "crm"),
    ];
    assert!(CrmSyncConfig::from_env(&Env::from_pairs(full)).is_ok());
    for missing in ["USERS_TABLE", "DLQ_URL", "LEDGER_TABLE", "CRM_EVENT_BUS"] {
        let env = Env::from_pairs(full.into_iter().filter(|(k, _)| *k != missing));
        let err = CrmSyncConfig::from_env(&env).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("missing environment variable {missing}")
        );
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crm-sync"))
        .env_clear()
        .env("DLQ_URL", "http://127.0.0.1:1/q")
        .env("USERS_TABLE", "Users")
        .env("LEDGER_TABLE", "EffectLedger")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("CRM_EVENT_BUS"));
}
