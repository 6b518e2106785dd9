//! The batch engine's invariants, without a server: per-key order, a failure stopping only
//! its key, the partial batch response, the record budget, panic isolation, parking once,
//! Kinesis order and duplicates, foreign tables. Every case goes through `run_value`, the
//! path `process` (production) takes, over the in-memory ledger and queue (whose adapters
//! for AWS keep the same contract: `tests/adapters.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lambda_events::dynamodb::{Event, EventRecord};
use fanout_core::dlq::InMemoryQueue;
use fanout_core::ledger::InMemoryLedger;
use fanout_core::{
    BatchError, BatchProcessor, Change, DeadLetterQueue, HandlerFn, Lease, Ledger, ParkedRecord,
    RecordError, RecordInput, RecordOutcome, RecordResult, User,
};
use fanout_testkit::fixture_text;
use serde_json::json;

/// The table the processor under test reads, and its stream's ARN as Lambda delivers it.
const USERS: &str = "Users";
const USERS_STREAM: &str =
    "arn:aws:dynamodb:eu-west-1:123456789012:table/Users/stream/2026-11-01T00:00:00.000";

fn record(seq: u64, user: &str, version: u64) -> EventRecord {
    serde_json::from_value(json!({
        "eventID": format!("event-{seq}"),
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": USERS_STREAM,
        "awsRegion": "eu-west-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1763892000,
            "Keys": {"userId": {"S": user}},
            "NewImage": {
                "userId": {"S": user}, "email": {"S": format!("{user}@example.com")},
                "plan": {"S": "pro"}, "version": {"N": version.to_string()},
                "updatedAt": {"S": "2026-11-23T10:00:00Z"}
            },
            "SequenceNumber": format!("{seq:021}"),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    }))
    .unwrap()
}

/// The invocation's event as Lambda sends it: JSON, read by the production path.
fn event(records: Vec<EventRecord>) -> serde_json::Value {
    json!({ "Records": records })
}

fn seq(record: &EventRecord) -> String {
    record.change.sequence_number.clone().unwrap()
}

fn deadline() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

/// The engine over in-memory ports: what it parks, and its ledger.
struct Setup {
    queue: Arc<InMemoryQueue>,
    ledger: Ledger,
}

impl Setup {
    async fn new() -> Self {
        Setup {
            queue: Arc::new(InMemoryQueue::default()),
            ledger: Ledger::with_store(Arc::new(InMemoryLedger::default())),
        }
    }

    fn processor(&self) -> BatchProcessor {
        BatchProcessor::new(
            "test-consumer",
            USERS,
            DeadLetterQueue::with_queue(self.queue.clone()),
            self.ledger.clone(),
        )
    }

    async fn parked(&self) -> Vec<ParkedRecord> {
        self.queue.parked()
    }
}

/// Decodes the record as a User, like a real consumer does.
async fn decode_user(input: RecordInput) -> Result<RecordOutcome, RecordError> {
    Change::<User>::from_record(&input.record)?;
    Ok(RecordOutcome::Done)
}

#[tokio::test]
async fn poison_record_is_parked_with_full_record_and_does_not_block_later_records() {
    let setup = Setup::new().await;
    let poison: Event =
        serde_json::from_str(&fixture_text("poison-undecodable-image.json")).unwrap();
    let poison = poison.records[0].clone();
    let mut poison_same_key_follow_up = record(90, "u-5005", 3);
    poison_same_key_follow_up.event_id = "after-poison".into();
    let records = vec![
        record(1, "u-a", 1),
        poison.clone(),
        poison_same_key_follow_up,
        record(91, "u-b", 1),
    ];
    let report = setup
        .processor()
        .run_value(event(records), deadline(), Arc::new(HandlerFn(decode_user)))
        .await
        .unwrap();

    assert_eq!(
        report.results,
        vec![
            RecordResult::Succeeded(RecordOutcome::Done),
            RecordResult::Parked,
            // Parked counts as done, so the same key carries on.
            RecordResult::Succeeded(RecordOutcome::Done),
            RecordResult::Succeeded(RecordOutcome::Done),
        ]
    );
    assert!(
        report.response.batch_item_failures.is_empty(),
        "parking is not a retry"
    );
    assert_eq!((report.metrics.parked, report.metrics.processed), (1, 3));

    let parked = setup.parked().await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].consumer, "test-consumer");
    assert_eq!(
        parked[0].record,
        serde_json::to_value(&poison).unwrap(),
        "the full record, exactly as delivered"
    );
    assert!(parked[0].error.contains("`version`"), "{}", parked[0].error);
}

#[tokio::test]
async fn retryable_failure_stops_its_key_only_and_reports_the_right_sequence_numbers() {
    let setup = Setup::new().await;
    let records = vec![
        record(1, "u-a", 1),
        record(2, "u-b", 1),
        record(3, "u-a", 2), // fails
        record(4, "u-b", 2),
        record(5, "u-a", 3), // must not run
        record(6, "u-b", 3),
    ];
    let expected_failures = vec![seq(&records[2]), seq(&records[4])];
    let ran = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let ran = Arc::clone(&ran);
        HandlerFn(move |input: RecordInput| {
            let ran = Arc::clone(&ran);
            async move {
                ran.lock().unwrap().push(input.record.event_id.clone());
                if input.record.event_id == "event-3" {
                    return Err(RecordError::retryable("throttled"));
                }
                Ok(RecordOutcome::Done)
            }
        })
    };
    let report = setup
        .processor()
        .run_value(event(records), deadline(), Arc::new(handler))
        .await
        .unwrap();

    let failures: Vec<String> = report
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(failures, expected_failures);
    let ran = ran.lock().unwrap().clone();
    assert!(
        !ran.contains(&"event-5".to_owned()),
        "a later record of the failed key ran: {ran:?}"
    );
    for b in ["event-2", "event-4", "event-6"] {
        assert!(
            ran.contains(&b.to_owned()),
            "{b} of the healthy key did not run: {ran:?}"
        );
    }
    assert_eq!(report.results[4], RecordResult::NotRun);
    assert_eq!(report.metrics.retryable_failed, 2);
}

#[tokio::test]
async fn records_of_one_key_run_in_stream_order_while_keys_run_concurrently() {
    let setup = Setup::new().await;
    let keys = ["u-a", "u-b", "u-c", "u-d", "u-e", "u-f"];
    let mut records = Vec::new();
    for round in 0..8u64 {
        for (i, key) in keys.iter().enumerate() {
            records.push(record(round * 10 + i as u64, key, round + 1));
        }
    }
    let seen: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (seen, in_flight, max_in_flight) =
            (seen.clone(), in_flight.clone(), max_in_flight.clone());
        HandlerFn(move |input: RecordInput| {
            let (seen, in_flight, max_in_flight) =
                (seen.clone(), in_flight.clone(), max_in_flight.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_in_flight.fetch_max(now, Ordering::SeqCst);
                let change = Change::<User>::from_record(&input.record)?;
                let user = change.new_image().unwrap().clone();
                // Uneven work so a wrong scheduler would reorder.
                tokio::time::sleep(Duration::from_millis(1 + (user.version * 7 % 5))).await;
                seen.lock()
                    .unwrap()
                    .entry(user.user_id)
                    .or_default()
                    .push(user.version);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(RecordOutcome::Done)
            }
        })
    };
    let processor = setup
        .processor()
        .with_max_concurrency(NonZeroUsize::new(3).unwrap());
    let report = processor
        .run_value(event(records), deadline(), Arc::new(handler))
        .await
        .unwrap();
    assert!(report.response.batch_item_failures.is_empty());

    let seen = seen.lock().unwrap();
    for key in keys {
        assert_eq!(seen[key], (1..=8).collect::<Vec<_>>(), "order of {key}");
    }
    let max = max_in_flight.load(Ordering::SeqCst);
    assert!(max > 1, "keys never ran concurrently");
    assert!(max <= 3, "more than MAX_CONCURRENCY keys at once: {max}");
}

#[tokio::test]
async fn panic_fails_only_its_record() {
    let setup = Setup::new().await;
    let records = vec![
        record(1, "u-a", 1),
        record(2, "u-b", 1),
        record(3, "u-a", 2),
    ];
    let expected = vec![seq(&records[0]), seq(&records[2])];
    let handler = HandlerFn(|input: RecordInput| async move {
        if input.record.event_id == "event-1" {
            panic!("bug in record work");
        }
        Ok(RecordOutcome::Done)
    });
    let report = setup
        .processor()
        .run_value(event(records), deadline(), Arc::new(handler))
        .await
        .unwrap();
    assert!(
        matches!(&report.results[0], RecordResult::Failed(reason) if reason.contains("bug in record work"))
    );
    assert_eq!(
        report.results[1],
        RecordResult::Succeeded(RecordOutcome::Done)
    );
    assert_eq!(
        report.results[2],
        RecordResult::NotRun,
        "same key, after the panic"
    );
    let failures: Vec<_> = report
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(failures, expected);
}

#[tokio::test]
async fn success_is_an_empty_list_and_duplicates_are_counted() {
    let setup = Setup::new().await;
    let handler = HandlerFn(|input: RecordInput| async move {
        Ok(if input.record.event_id == "event-2" {
            RecordOutcome::Duplicate
        } else {
            RecordOutcome::Done
        })
    });
    let response = setup
        .processor()
        .run_value(
            event(vec![record(1, "u-a", 1), record(2, "u-b", 1)]),
            deadline(),
            Arc::new(handler),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&response.response).unwrap(),
        json!({"batchItemFailures": []})
    );
    assert_eq!(
        (response.metrics.processed, response.metrics.duplicate),
        (1, 1)
    );
    let emf = response.metrics.to_emf("test-consumer", 1);
    assert_eq!(emf["Duplicate"], 1);
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "fanout");
}

#[tokio::test]
async fn failed_record_without_sequence_number_fails_the_batch_instead_of_an_empty_identifier() {
    let setup = Setup::new().await;
    let mut broken = record(1, "u-a", 1);
    broken.change.sequence_number = None;
    let handler = HandlerFn(|_: RecordInput| async { Err(RecordError::retryable("down")) });
    let err = setup
        .processor()
        .run_value(event(vec![broken]), deadline(), Arc::new(handler))
        .await
        .unwrap_err();
    assert!(matches!(err, BatchError::Unreportable { .. }));
}

#[tokio::test]
async fn permanent_failure_that_cannot_be_parked_is_retried_not_dropped() {
    let setup = Setup::new().await;
    setup.queue.refuse(true);
    let processor = setup.processor();
    let records = vec![record(1, "u-a", 1)];
    let expected = seq(&records[0]);
    let handler = HandlerFn(|_: RecordInput| async { Err(RecordError::permanent("bad mapping")) });
    let report = processor
        .run_value(event(records), deadline(), Arc::new(handler))
        .await
        .unwrap();
    assert!(
        matches!(&report.results[0], RecordResult::Failed(reason) if reason.contains("parking failed"))
    );
    assert_eq!(
        report.response.batch_item_failures[0]
            .item_identifier
            .as_deref(),
        Some(expected.as_str())
    );
}

#[tokio::test]
async fn lease_is_derived_from_the_invocation_deadline() {
    let setup = Setup::new().await;
    let deadline = SystemTime::now() + Duration::from_secs(42);
    let leases = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let leases = leases.clone();
        HandlerFn(move |input: RecordInput| {
            let leases = leases.clone();
            async move {
                leases.lock().unwrap().push(Lease::of(&input.time));
                Ok(RecordOutcome::Done)
            }
        })
    };
    setup
        .processor()
        .run_value(
            event(vec![record(1, "u-a", 1)]),
            deadline,
            Arc::new(handler),
        )
        .await
        .unwrap();
    let lease = leases.lock().unwrap()[0];
    assert_eq!(lease.expires_at(), deadline + fanout_core::time::CLOCK_SKEW);
}

#[tokio::test]
async fn a_poison_record_delivered_twice_is_parked_once() {
    let setup = Setup::new().await;
    let handler = Arc::new(HandlerFn(|_: RecordInput| async {
        Err(RecordError::permanent("can never succeed"))
    }));
    for _ in 0..2 {
        let report = setup
            .processor()
            .run_value(
                event(vec![record(7, "u-poison", 1)]),
                deadline(),
                Arc::clone(&handler),
            )
            .await
            .unwrap();
        assert_eq!(report.results, vec![RecordResult::Parked]);
        assert!(report.response.batch_item_failures.is_empty());
    }
    assert_eq!(
        setup.parked().await.len(),
        1,
        "the redelivery found it parked already"
    );
}

#[tokio::test]
async fn no_record_starts_once_the_time_left_is_below_its_budget() {
    let setup = Setup::new().await;
    let started = Arc::new(AtomicUsize::new(0));
    let handler = {
        let started = started.clone();
        HandlerFn(move |_: RecordInput| {
            let started = started.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1200)).await;
                Ok(RecordOutcome::Done)
            }
        })
    };
    // One key, three records of 1.2 s each; 3 s left and a 1 s budget: two start, one not.
    let records = vec![
        record(1, "u-a", 1),
        record(2, "u-a", 2),
        record(3, "u-a", 3),
    ];
    let third = seq(&records[2]);
    let report = setup
        .processor()
        .with_record_budget(Duration::from_secs(1))
        .run_value(
            event(records),
            SystemTime::now() + Duration::from_secs(3),
            Arc::new(handler),
        )
        .await
        .unwrap();
    assert_eq!(started.load(Ordering::SeqCst), 2);
    assert_eq!(report.results[2], RecordResult::NotRun);
    let reported: Vec<_> = report
        .response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(reported, vec![third]);
}

#[tokio::test]
async fn work_that_would_outlive_the_deadline_is_cut_off_and_the_invocation_still_answers() {
    let setup = Setup::new().await;
    let handler = HandlerFn(|_: RecordInput| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(RecordOutcome::Done)
    });
    let began = std::time::Instant::now();
    let report = setup
        .processor()
        .with_record_budget(Duration::from_millis(100))
        .run_value(
            event(vec![record(1, "u-slow", 1)]),
            SystemTime::now() + Duration::from_secs(2),
            Arc::new(handler),
        )
        .await
        .unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "answered before the deadline"
    );
    assert!(matches!(&report.results[0], RecordResult::Failed(why) if why.contains("cut off")));
    assert_eq!(report.response.batch_item_failures.len(), 1);
}

/// The (userId, version) each record ran with, in run order.
fn version_of(input: &RecordInput) -> (String, u64) {
    let user = Change::<User>::from_record(&input.record)
        .unwrap()
        .new_image()
        .cloned()
        .unwrap();
    (user.user_id, user.version)
}

#[tokio::test]
async fn a_kinesis_batch_runs_each_key_in_change_order_once_and_reports_kinesis_sequence_numbers() {
    let setup = Setup::new().await;
    let fixture = fixture_text("kinesis-out-of-order-and-duplicate.json");
    let kinesis_seq = |i: usize| {
        let event: serde_json::Value = serde_json::from_str(&fixture).unwrap();
        event["Records"][i]["kinesis"]["sequenceNumber"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Delivered: u-1001 v3, u-1002 v1, u-1001 v2, u-1001 v2 again (same eventID).
    let ran = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&ran);
    let handler = HandlerFn(move |input: RecordInput| {
        let log = Arc::clone(&log);
        async move {
            log.lock().unwrap().push(version_of(&input));
            Ok(RecordOutcome::Done)
        }
    });
    let report = setup
        .processor()
        .run_json(&fixture, Duration::from_secs(60), Arc::new(handler))
        .await
        .unwrap();
    let ran_for = |user: &str| -> Vec<u64> {
        ran.lock()
            .unwrap()
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(ran_for("u-1001"), vec![2, 3], "v2 before v3, v2 once");
    assert_eq!(ran_for("u-1002"), vec![1]);
    assert_eq!(
        report.results,
        vec![
            RecordResult::Succeeded(RecordOutcome::Done),
            RecordResult::Succeeded(RecordOutcome::Done),
            RecordResult::Succeeded(RecordOutcome::Done),
            RecordResult::Succeeded(RecordOutcome::Duplicate),
        ]
    );
    assert!(report.response.batch_item_failures.is_empty());

    // v2 fails: v3 (after it in change order, before it in the batch) is not run, and the
    // response names Kinesis sequence numbers, the lowest of which restarts the shard.
    let handler = HandlerFn(|input: RecordInput| async move {
        match version_of(&input) {
            (user, 2) if user == "u-1001" => Err(RecordError::retryable("throttled")),
            _ => Ok(RecordOutcome::Done),
        }
    });
    let report = setup
        .processor()
        .run_json(&fixture, Duration::from_secs(60), Arc::new(handler))
        .await
        .unwrap();
    assert_eq!(
        report.results,
        vec![
            RecordResult::NotRun,
            RecordResult::Succeeded(RecordOutcome::Done),
            RecordResult::Failed("throttled".into()),
            RecordResult::NotRun,
        ]
    );
    let mut failed: Vec<String> = report
        .response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    assert_eq!(failed, vec![kinesis_seq(0), kinesis_seq(2), kinesis_seq(3)]);
}

#[tokio::test]
async fn a_kinesis_record_whose_data_is_not_a_change_is_parked_as_delivered() {
    let setup = Setup::new().await;
    let good: serde_json::Value =
        serde_json::from_str(&fixture_text("kinesis-user-upgrade-free-to-pro.json")).unwrap();
    let mut bad = good["Records"][0].clone();
    bad["kinesis"]["data"] = json!("bm90IGpzb24=");
    bad["kinesis"]["sequenceNumber"] = json!("1");
    let event = json!({"Records": [bad.clone(), good["Records"][0].clone()]});
    let report = setup
        .processor()
        .run_value(event, deadline(), Arc::new(HandlerFn(decode_user)))
        .await
        .unwrap();
    assert_eq!(
        report.results,
        vec![
            RecordResult::Parked,
            RecordResult::Succeeded(RecordOutcome::Done)
        ]
    );
    let parked = setup.parked().await;
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].record, bad,
        "the Kinesis record, exactly as delivered"
    );
    assert!(parked[0].error.contains("not JSON"), "{}", parked[0].error);
}

/// A Kinesis record of `kinesis-user-upgrade-free-to-pro.json` whose change names `table`
/// (or no table at all), with its own sequence number and eventID.
fn kinesis_change_of_table(table: Option<&str>, seq: &str) -> serde_json::Value {
    use base64::Engine;
    let fixture: serde_json::Value =
        serde_json::from_str(&fixture_text("kinesis-user-upgrade-free-to-pro.json")).unwrap();
    let mut record = fixture["Records"][0].clone();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut change: serde_json::Value = serde_json::from_slice(
        &b64.decode(record["kinesis"]["data"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    match table {
        Some(name) => change["tableName"] = json!(name),
        None => {
            change.as_object_mut().unwrap().remove("tableName");
        }
    }
    change["eventID"] = json!(format!("change-{seq}"));
    record["kinesis"]["data"] = json!(b64.encode(change.to_string()));
    record["kinesis"]["sequenceNumber"] = json!(seq);
    record
}

#[tokio::test]
async fn a_change_of_another_table_or_of_none_is_parked_and_never_reaches_the_handler() {
    let setup = Setup::new().await;
    let ran = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let ran = Arc::clone(&ran);
        HandlerFn(move |input: RecordInput| {
            let ran = Arc::clone(&ran);
            async move {
                ran.lock().unwrap().push(input.record.event_id.clone());
                Ok(RecordOutcome::Done)
            }
        })
    };
    // DynamoDB Streams: a record from the stream of UsersArchive, beside one of Users.
    let mut archived = serde_json::to_value(record(2, "u-arch", 1)).unwrap();
    archived["eventSourceARN"] = json!(
        "arn:aws:dynamodb:eu-west-1:123456789012:table/UsersArchive/stream/2026-11-01T00:00:00.000"
    );
    let streams =
        json!({"Records": [serde_json::to_value(record(1, "u-a", 1)).unwrap(), archived]});
    let report = setup
        .processor()
        .run_value(streams, deadline(), Arc::new(handler.clone()))
        .await
        .unwrap();
    assert_eq!(
        report.results,
        vec![
            RecordResult::Succeeded(RecordOutcome::Done),
            RecordResult::Parked
        ]
    );

    // Kinesis (one stream may carry several tables' changes): UsersArchive's, and a change
    // that names no table, parked; the Users change beside them runs.
    let kinesis = json!({"Records": [
        kinesis_change_of_table(Some("UsersArchive"), "10"),
        kinesis_change_of_table(None, "11"),
        kinesis_change_of_table(Some("Users"), "12"),
    ]});
    let report = setup
        .processor()
        .run_value(kinesis, deadline(), Arc::new(handler))
        .await
        .unwrap();
    assert_eq!(
        report.results,
        vec![
            RecordResult::Parked,
            RecordResult::Parked,
            RecordResult::Succeeded(RecordOutcome::Done)
        ]
    );
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(*ran.lock().unwrap(), vec!["event-1", "change-12"]);

    let mut reasons: Vec<String> = setup.parked().await.into_iter().map(|p| p.error).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .filter(|r| r.contains("\"UsersArchive\""))
            .count()
            == 2,
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("names no table")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().all(|r| r.contains("acts only on \"Users\"")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_budget_larger_than_the_invocation_is_one_error_and_nothing_is_acted_on() {
    let setup = Setup::new().await;
    let logs = fanout_testkit::logs::LogSink::default();
    let writer = logs.clone();
    let subscriber = fanout_core::telemetry::json_subscriber(
        "info"
            .parse::<tracing_subscriber::filter::Targets>()
            .unwrap(),
        move || writer.clone(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let started = Arc::new(AtomicUsize::new(0));
    let handler = {
        let started = started.clone();
        HandlerFn(move |_: RecordInput| {
            let started = started.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                Ok(RecordOutcome::Done)
            }
        })
    };
    // A 10 s budget in an invocation given 10 s: no record can start, on any delivery.
    let processor = setup
        .processor()
        .with_record_budget(Duration::from_secs(10));
    for _ in 0..3 {
        let records = vec![
            record(1, "u-a", 1),
            record(2, "u-b", 1),
            record(3, "u-a", 2),
        ];
        let all: Vec<String> = records.iter().map(seq).collect();
        let report = processor
            .run_value(
                event(records),
                SystemTime::now() + Duration::from_secs(10),
                Arc::new(handler.clone()),
            )
            .await
            .unwrap();
        assert!(report.results.iter().all(|r| *r == RecordResult::NotRun));
        let reported: Vec<String> = report
            .response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(reported, all, "the whole batch is reported, in order");
        assert_eq!(report.metrics.retryable_failed, 3);
    }
    assert_eq!(started.load(Ordering::SeqCst), 0, "nothing was acted on");
    let text = logs.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let errors: Vec<&serde_json::Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert_eq!(errors[0]["budget_ms"], 10_000);
    assert!(errors[0]["remaining_ms"].as_u64().unwrap() <= 10_000);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("RECORD_BUDGET_SECONDS (10000 ms)"),
        "{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l["level"] == "WARN").count(),
        2,
        "later invocations say it once each, not once per record: {text}"
    );
}
