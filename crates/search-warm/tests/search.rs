//! search-warm against the search stand-in (the OpenSearch external-version document API on
//! 127.0.0.1, started inside the test) and SQS in ministack for parked records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use fanout_core::{BatchProcessor, BatchReport, ConsumerConfig, Env, RecordOutcome, RecordResult};
use fanout_testkit::search_standin::SearchStandIn;
use fanout_testkit::{ConsumerResources, fixture_batch, fixture_text};
use search_warm::{CONSUMER, SearchIndex, SearchWarm, SearchWarmConfig};
use serde_json::json;

const INDEX: &str = "users";

struct Setup {
    resources: ConsumerResources,
    search: SearchStandIn,
    processor: BatchProcessor,
    handler: Arc<SearchWarm>,
}

impl Setup {
    async fn new() -> Self {
        let resources = ConsumerResources::create(CONSUMER).await;
        let search = SearchStandIn::start().await.unwrap();
        let index = SearchIndex::local(search.endpoint().parse().unwrap(), INDEX).unwrap();
        Self::with_index(resources, search, index)
    }

    fn with_index(resources: ConsumerResources, search: SearchStandIn, index: SearchIndex) -> Self {
        let config =
            ConsumerConfig::from_env(&Env::from_pairs(resources.env(4)), search_warm::STREAM_VIEW)
                .unwrap();
        let processor = config.processor(CONSUMER, &resources.aws);
        Setup {
            resources,
            search,
            processor,
            handler: Arc::new(SearchWarm::new(index)),
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

    /// The item `version` the live document of `user_id` holds.
    fn version_of(&self, user_id: &str) -> Option<u64> {
        self.search
            .document(INDEX, user_id)
            .and_then(|d| d.source)
            .and_then(|source| source["version"].as_u64())
    }
}

const DONE: RecordResult = RecordResult::Succeeded(RecordOutcome::Done);
const DUPLICATE: RecordResult = RecordResult::Succeeded(RecordOutcome::Duplicate);

#[tokio::test]
async fn stale_version_after_newer_leaves_the_newer_document() {
    let setup = Setup::new().await;
    let report = setup.deliver("search-versions-out-of-order.json").await;
    assert_eq!(
        report.results,
        vec![DONE, DUPLICATE],
        "version 2 after 3 is a 409 no-op"
    );
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(setup.version_of("u-7007"), Some(3));
    let doc = setup.search.document(INDEX, "u-7007").unwrap();
    assert_eq!(doc.source.unwrap()["updatedAt"], "2026-11-23T11:03:00Z");
}

#[tokio::test]
async fn repeat_is_a_no_op_and_the_document_holds_the_user() {
    let setup = Setup::new().await;
    assert_eq!(
        setup.deliver("user-upgrade-free-to-pro.json").await.results,
        vec![DONE]
    );
    assert_eq!(
        setup.deliver("user-upgrade-free-to-pro.json").await.results,
        vec![DUPLICATE]
    );
    let doc = setup.search.document(INDEX, "u-1001").unwrap();
    // Its external version: the change's time (us; on a DynamoDB stream the version stands in
    // for the microseconds of its whole second) over the item's version.
    assert_eq!(doc.version, ((1_763_892_000_000_000 + 2) << 11) | 2);
    assert_eq!(
        doc.source.unwrap(),
        json!({"userId": "u-1001", "email": "u-1001@example.com", "name": "Ada Lovelace",
               "plan": "pro", "updatedAt": "2026-11-23T10:02:00Z", "version": 2})
    );
}

#[tokio::test]
async fn remove_deletes_the_document() {
    let setup = Setup::new().await;
    setup.deliver("user-insert-enterprise.json").await;
    assert_eq!(setup.version_of("u-2002"), Some(1));
    assert_eq!(setup.deliver("user-remove.json").await.results, vec![DONE]);
    assert_eq!(setup.version_of("u-2002"), None);
    // The same remove again: the tombstone's version makes it a no-op.
    assert_eq!(
        setup.deliver("user-remove.json").await.results,
        vec![DUPLICATE]
    );
    assert_eq!(setup.version_of("u-2002"), None);
}

/// Shortens the stand-in's `index.gc_deletes` as an operator can on OpenSearch.
async fn collect_tombstones_after(setup: &Setup, after: &str) {
    let status = reqwest::Client::new()
        .put(format!("{}/{INDEX}/_settings", setup.search.endpoint()))
        .json(&json!({"index": {"gc_deletes": after}}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
}

#[tokio::test]
async fn a_user_deleted_and_created_again_with_a_restarted_version_reaches_the_index() {
    let setup = Setup::new().await;
    collect_tombstones_after(&setup, "2s").await;
    setup.deliver("user-insert-enterprise.json").await;
    assert_eq!(setup.deliver("user-remove.json").await.results, vec![DONE]);
    // Created again at version 1: refused while the tombstone (version 2) is remembered, then
    // written once it is collected, within the record's time.
    assert_eq!(
        setup.deliver("user-insert-enterprise.json").await.results,
        vec![DONE]
    );
    assert_eq!(setup.version_of("u-2002"), Some(1));
}

#[tokio::test]
async fn a_redelivered_insert_and_remove_end_with_the_user_deleted() {
    let setup = Setup::new().await;
    collect_tombstones_after(&setup, "2s").await;
    let batch = fixture_batch(&["user-insert-enterprise.json", "user-remove.json"]);
    let handler = Arc::clone(&setup.handler);
    let timeout = Duration::from_secs(60);
    let first = setup
        .processor
        .run_json(&batch, timeout, Arc::clone(&handler))
        .await
        .unwrap();
    assert_eq!(first.results, vec![DONE, DONE]);
    // Delivered again (a retry from an earlier failure): the insert cannot tell itself from a
    // re-creation and waits out the tombstone, and the remove that follows it in stream order
    // deletes the user again, so the index ends as the table did.
    let again = setup
        .processor
        .run_json(&batch, timeout, handler)
        .await
        .unwrap();
    assert!(
        again.response.batch_item_failures.is_empty(),
        "{:?}",
        again.results
    );
    assert_eq!(setup.version_of("u-2002"), None);
}

#[tokio::test]
async fn remove_of_a_never_indexed_user_is_done() {
    let setup = Setup::new().await;
    assert_eq!(
        setup.deliver("user-ttl-delete.json").await.results,
        vec![DONE]
    );
}

#[tokio::test]
async fn server_error_is_retryable_and_the_retry_succeeds() {
    let setup = Setup::new().await;
    reqwest::Client::new()
        .post(format!("{}/_standin/faults", setup.search.endpoint()))
        .json(&json!({"status": 503, "count": 1}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let report = setup.deliver("user-upgrade-free-to-pro.json").await;
    assert!(
        matches!(&report.results[0], RecordResult::Failed(r) if r.contains("503")),
        "{:?}",
        report.results
    );
    assert_eq!(
        report.response.batch_item_failures[0]
            .item_identifier
            .as_deref(),
        Some("4000000000000000000001")
    );
    assert!(setup.resources.parked().await.is_empty());
    assert_eq!(
        setup.deliver("user-upgrade-free-to-pro.json").await.results,
        vec![DONE]
    );
    assert_eq!(setup.version_of("u-1001"), Some(2));
}

#[tokio::test]
async fn mapping_error_is_parked() {
    let setup = Setup::new().await;
    // A strict mapping that does not know `name`: OpenSearch answers 400.
    reqwest::Client::new()
        .put(format!("{}/{INDEX}", setup.search.endpoint()))
        .json(&json!({"mappings": {"dynamic": "strict", "properties": {
            "userId": {"type": "keyword"}, "email": {"type": "keyword"},
            "plan": {"type": "keyword"}, "updatedAt": {"type": "date"}}}}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let report = setup.deliver("user-upgrade-free-to-pro.json").await;
    assert_eq!(report.results, vec![RecordResult::Parked]);
    assert!(
        report.response.batch_item_failures.is_empty(),
        "a 400 must not hold the shard"
    );
    let parked = setup.resources.parked().await;
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0]["error"]
            .as_str()
            .unwrap()
            .contains("strict_dynamic_mapping_exception")
    );
    assert_eq!(
        parked[0]["record"]["eventID"],
        "0c8d3f5a6a1e4b7c9e2d1f3a5b7c9d01"
    );
}

#[tokio::test]
async fn unreachable_endpoint_is_retryable() {
    let resources = ConsumerResources::create(CONSUMER).await;
    let search = SearchStandIn::start().await.unwrap();
    // Nothing listens on port 1 of loopback.
    let index = SearchIndex::local("http://127.0.0.1:1".parse().unwrap(), INDEX).unwrap();
    let setup = Setup::with_index(resources, search, index);
    let report = setup.deliver("user-insert-enterprise.json").await;
    assert!(
        matches!(&report.results[0], RecordResult::Failed(_)),
        "{:?}",
        report.results
    );
}

#[tokio::test]
async fn https_endpoints_are_signed_with_sigv4() {
    let resources = ConsumerResources::create(CONSUMER).await;
    let search = SearchStandIn::start().await.unwrap();
    let credentials =
        SharedCredentialsProvider::new(Credentials::new("AKIDLOCAL", "secret", None, None, "test"));
    let index = SearchIndex::signed(
        search.endpoint().parse().unwrap(),
        INDEX,
        credentials,
        "eu-west-1",
        "es",
    )
    .unwrap();
    let setup = Setup::with_index(resources, search, index);
    assert_eq!(
        setup.deliver("user-upgrade-free-to-pro.json").await.results,
        vec![DONE]
    );
    let headers = setup.search.last_write_headers();
    let authorization = &headers["authorization"];
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDLOCAL/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/eu-west-1/es/aws4_request"),
        "{authorization}"
    );
    assert!(
        authorization.contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date"),
        "{authorization}"
    );
    assert!(headers.contains_key("x-amz-date"));
}

#[tokio::test]
async fn keys_only_record_is_parked() {
    let setup = Setup::new().await;
    let report = setup.deliver("aws-record-shapes.json").await;
    assert_eq!(report.results, vec![DONE, RecordResult::Parked]);
}

#[test]
fn config_requires_an_endpoint_and_refuses_plain_http_off_loopback() {
    let env = |endpoint: &str| {
        Env::from_pairs([
            ("DLQ_URL", "http://127.0.0.1:1/q"),
            ("USERS_TABLE", "Users"),
            ("LEDGER_TABLE", "IdempotencyLedger"),
            ("SEARCH_ENDPOINT", endpoint),
        ])
    };
    let config =
        SearchWarmConfig::from_env(&env("https://search-users.eu-west-1.es.amazonaws.com"))
            .unwrap();
    assert_eq!(
        (config.index.as_str(), config.signing_service.as_str()),
        ("users", "es")
    );
    assert!(SearchWarmConfig::from_env(&env("http://127.0.0.1:9200")).is_ok());
    let err = SearchWarmConfig::from_env(&env("http://search.internal:9200")).unwrap_err();
    assert!(
        err.to_string().contains("SEARCH_ENDPOINT") && err.to_string().contains("loopback"),
        "{err}"
    );
    let err = SearchWarmConfig::from_env(&Env::from_pairs([
        ("DLQ_URL", "x"),
        ("LEDGER_TABLE", "IdempotencyLedger"),
    ]))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing environment variable SEARCH_ENDPOINT"
    );

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_search-warm"))
        .env_clear()
        .env("DLQ_URL", "http://127.0.0.1:1/q")
        .env("USERS_TABLE", "Users")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("SEARCH_ENDPOINT"));
}

/// On Kinesis: the batch holds u-1001's v3 before its v2, and v2 twice. Core runs v2 then v3
/// and v2's repeat not at all; across batches the external version drops the older change.
#[tokio::test]
async fn kinesis_out_of_order_and_duplicated_changes_leave_the_newest_document() {
    let setup = Setup::new().await;
    let report = setup
        .deliver("kinesis-out-of-order-and-duplicate.json")
        .await;
    assert_eq!(report.results, vec![DONE, DONE, DONE, DUPLICATE]);
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(setup.version_of("u-1001"), Some(3));
    assert_eq!(setup.version_of("u-1002"), Some(1));

    // v2 delivered again in a later batch, after v3 was applied: dropped by the index.
    let late = setup.deliver("kinesis-user-upgrade-free-to-pro.json").await;
    assert_eq!(late.results, vec![DUPLICATE]);
    assert_eq!(setup.version_of("u-1001"), Some(3));
}

/// The records of `fixture`, one JSON value each.
fn records_of(fixture: &str) -> Vec<serde_json::Value> {
    let event: serde_json::Value = serde_json::from_str(&fixture_text(fixture)).unwrap();
    event["Records"].as_array().unwrap().clone()
}

/// Every order of `items`.
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            all.push(tail);
        }
    }
    all
}

impl Setup {
    async fn deliver_records(&self, records: &[serde_json::Value]) -> BatchReport {
        self.processor
            .run_value(
                json!({ "Records": records }),
                std::time::SystemTime::now() + Duration::from_secs(60),
                Arc::clone(&self.handler),
            )
            .await
            .unwrap()
    }
}

/// u-3003 upgraded to pro at version 2, deleted, and created again at version 1 (free): on
/// Kinesis, in every order, each record its own batch or all in one, and each delivered
/// twice, the index ends holding the re-created user, as the table does.
#[tokio::test]
async fn kinesis_a_user_created_again_is_indexed_whatever_order_and_repeats_its_changes_come_in() {
    let history = records_of("kinesis-user-created-again-before-its-delete.json");
    for order in permutations(&history) {
        let separately = Setup::new().await;
        for record in order.iter().chain(order.iter()) {
            let report = separately
                .deliver_records(std::slice::from_ref(record))
                .await;
            assert!(
                report.response.batch_item_failures.is_empty(),
                "{:?}",
                report.results
            );
        }
        let together = Setup::new().await;
        let doubled: Vec<_> = order.iter().chain(order.iter()).cloned().collect();
        let report = together.deliver_records(&doubled).await;
        assert!(
            report.response.batch_item_failures.is_empty(),
            "{:?}",
            report.results
        );
        for setup in [&separately, &together] {
            let doc = setup.search.document(INDEX, "u-3003").unwrap();
            let source = doc.source.expect("the re-created user is in the index");
            assert_eq!(
                (source["version"].as_u64(), source["plan"].as_str()),
                (Some(1), Some("free")),
                "order {:?}",
                order
                    .iter()
                    .map(|r| r["kinesis"]["sequenceNumber"].clone())
                    .collect::<Vec<_>>()
            );
            assert!(setup.resources.parked().await.is_empty());
        }
    }
}

/// The same history in its true order, but the re-creation's changes lost before the deletion
/// arrives: the deletion is newer than what the index holds, so the user is gone; a late
/// insert of the old incarnation after the deletion is a no-op (OpenSearch remembers a
/// deletion even of a document it never held).
#[tokio::test]
async fn kinesis_a_late_change_of_a_deleted_user_does_not_bring_it_back() {
    let history = records_of("kinesis-user-created-again-before-its-delete.json");
    let (modify, remove) = (&history[2], &history[1]);
    let setup = Setup::new().await;
    let report = setup.deliver_records(std::slice::from_ref(remove)).await;
    assert_eq!(
        report.results,
        vec![DONE],
        "a deletion of an unindexed user is done"
    );
    let report = setup.deliver_records(std::slice::from_ref(modify)).await;
    assert_eq!(report.results, vec![DUPLICATE]);
    assert_eq!(setup.version_of("u-3003"), None);
}

/// A DynamoDB stream record of `fixture` made `seconds_later` than the fixture's time.
fn stream_record_at(fixture: &str, seconds_later: i64) -> serde_json::Value {
    let mut record = records_of(fixture).remove(0);
    let at = record["dynamodb"]["ApproximateCreationDateTime"]
        .as_i64()
        .unwrap();
    record["dynamodb"]["ApproximateCreationDateTime"] = json!(at + seconds_later);
    record
}

/// DynamoDB Streams, in order: inserted at 1, deleted, created again at 1 (restarted) or at 2
/// (continued), in later seconds; each change delivered in order and the whole history
/// delivered again (a redelivery from an earlier failure). The index ends as the table.
#[tokio::test]
async fn stream_a_user_deleted_and_created_again_in_a_later_second_is_indexed_at_once() {
    for created_again_at in [1, 2] {
        let setup = Setup::new().await;
        let mut again = stream_record_at("user-insert-enterprise.json", 2);
        again["dynamodb"]["NewImage"]["version"] = json!({"N": created_again_at.to_string()});
        again["dynamodb"]["NewImage"]["plan"] = json!({"S": "pro"});
        let history = vec![
            stream_record_at("user-insert-enterprise.json", 0),
            stream_record_at("user-remove.json", 1),
            again,
        ];
        let began = std::time::Instant::now();
        for record in &history {
            let report = setup.deliver_records(std::slice::from_ref(record)).await;
            assert_eq!(report.results, vec![DONE]);
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "no wait for a tombstone: the re-creation is newer by time"
        );
        let report = setup.deliver_records(&history).await;
        assert!(
            report.response.batch_item_failures.is_empty(),
            "{:?}",
            report.results
        );
        assert_eq!(setup.version_of("u-2002"), Some(created_again_at));
        let doc = setup.search.document(INDEX, "u-2002").unwrap();
        assert_eq!(doc.source.unwrap()["plan"], "pro");
    }
}

#[tokio::test]
async fn reconcile_check_compares_the_items_version_with_the_documents() {
    use fanout_core::{EffectCheck, EffectState, User};
    let setup = Setup::new().await;
    let check = search_warm::SearchCheck::new(
        SearchIndex::local(setup.search.endpoint().parse().unwrap(), INDEX).unwrap(),
    );
    let user = |version: u64| -> User {
        serde_json::from_value(json!({"userId": "u-1001", "email": "u-1001@example.com",
            "plan": "pro", "version": version, "updatedAt": "2026-11-23T10:02:00Z"}))
        .unwrap()
    };
    assert!(matches!(
        check.check(&user(2)).await.unwrap(),
        EffectState::Missing { .. }
    ));
    setup.deliver("user-upgrade-free-to-pro.json").await;
    assert_eq!(check.check(&user(2)).await.unwrap(), EffectState::Made);
    // Created again at version 1 while the index holds the earlier incarnation's version 2.
    assert_eq!(
        check.check(&user(1)).await.unwrap(),
        EffectState::Behind { have: 2, want: 1 }
    );
}
