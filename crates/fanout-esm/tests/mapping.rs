//! The local event source mapping against DynamoDB Local's stream, driving a scripted test
//! function: every documented semantic has a test here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_esm::{
    InvocationOutcome, Invoke, InvokeError, LocalMapping, MappingSettings, StartingPosition,
};
use fanout_testkit::queues::drain_queue;
use fanout_testkit::resources::{create_queue, create_users_table};
use fanout_testkit::{local_sdk_config, put_user, unique_name};
use serde_json::{Value, json};

/// What the scripted function does with one batch (its user ids, in order) on the n-th call.
/// `{"failUsers": [...]}` reports those users' records as failed; `{"failIndex": i}` the
/// record at position `i`.
type Script = dyn Fn(usize, &[String]) -> Result<Value, InvokeError> + Send + Sync;

struct Scripted {
    calls: Mutex<Vec<Vec<String>>>,
    script: Box<Script>,
}

impl Scripted {
    fn new(
        script: impl Fn(usize, &[String]) -> Result<Value, InvokeError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Scripted {
            calls: Mutex::new(Vec::new()),
            script: Box::new(script),
        })
    }

    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
}

/// The user ids and sequence numbers of an event.
fn users_and_sequences(event: &Value) -> (Vec<String>, Vec<String>) {
    let records = event["Records"].as_array().unwrap();
    let id = |r: &Value| {
        r["dynamodb"]["Keys"]["userId"]["S"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let seq = |r: &Value| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned();
    (
        records.iter().map(id).collect(),
        records.iter().map(seq).collect(),
    )
}

impl Invoke for Scripted {
    async fn invoke(&self, event: Value) -> Result<Value, InvokeError> {
        let (users, sequences) = users_and_sequences(&event);
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(users.clone());
            calls.len()
        };
        (self.script)(n, &users).map(|response| {
            match (response.get("failUsers"), response.get("failIndex")) {
                (_, Some(Value::Number(index))) => {
                    let index = usize::try_from(index.as_u64().unwrap()).unwrap();
                    json!({"batchItemFailures": [{"itemIdentifier": sequences[index]}]})
                }
                (Some(Value::Array(failed)), _) => {
                    json!({"batchItemFailures": users.iter().zip(&sequences)
                .filter(|(u, _)| failed.iter().any(|f| f == *u))
                .map(|(_, s)| json!({"itemIdentifier": s})).collect::<Vec<_>>()})
                }
                _ => response,
            }
        })
    }
}

fn ok() -> Result<Value, InvokeError> {
    Ok(json!({"batchItemFailures": []}))
}

struct Setup {
    aws: aws_config::SdkConfig,
    table: String,
    stream_arn: String,
    dlq_url: String,
}

impl Setup {
    async fn new() -> Self {
        let aws = local_sdk_config().await;
        let table = unique_name("Users");
        let stream_arn = create_users_table(&aws_sdk_dynamodb::Client::new(&aws), &table)
            .await
            .unwrap();
        let dlq_url = create_queue(&aws_sdk_sqs::Client::new(&aws), &unique_name("esm-dlq"))
            .await
            .unwrap();
        Setup {
            aws,
            table,
            stream_arn,
            dlq_url,
        }
    }

    async fn put(&self, user: &str, plan: &str, version: u64) {
        put_user(
            &aws_sdk_dynamodb::Client::new(&self.aws),
            &self.table,
            user,
            plan,
            version,
        )
        .await;
    }

    async fn delete(&self, user: &str) {
        aws_sdk_dynamodb::Client::new(&self.aws)
            .delete_item()
            .table_name(&self.table)
            .key("userId", AttributeValue::S(user.into()))
            .send()
            .await
            .unwrap();
    }

    fn mapping(
        &self,
        settings: MappingSettings,
        function: Arc<Scripted>,
    ) -> LocalMapping<Arc<Scripted>> {
        LocalMapping::new(
            &self.aws,
            &self.stream_arn,
            "test-function",
            &self.dlq_url,
            settings,
            function,
        )
    }

    async fn on_failure_records(&self) -> Vec<Value> {
        drain_queue(&aws_sdk_sqs::Client::new(&self.aws), &self.dlq_url)
            .await
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }
}

fn settings() -> MappingSettings {
    MappingSettings {
        starting_position: StartingPosition::TrimHorizon,
        batch_size: 10,
        max_batching_window: Duration::ZERO,
        parallelization_factor: 1,
        bisect_batch_on_function_error: true,
        maximum_retry_attempts: 2,
        maximum_record_age: Duration::from_secs(3600),
        report_batch_item_failures: true,
        filters: Vec::new(),
    }
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i}")).collect()
}

#[tokio::test]
async fn batches_respect_batch_size_and_stream_order() {
    let setup = Setup::new().await;
    for user in users(7) {
        setup.put(&user, "free", 1).await;
    }
    let function = Scripted::new(|_, _| ok());
    let mut mapping = setup.mapping(
        MappingSettings {
            batch_size: 3,
            ..settings()
        },
        function.clone(),
    );
    let report = mapping.poll().await.unwrap();
    let all = users(7);
    assert_eq!(
        function.calls(),
        vec![all[0..3].to_vec(), all[3..6].to_vec(), all[6..].to_vec()]
    );
    let sequences: Vec<u128> = report
        .invocations
        .iter()
        .flat_map(|i| {
            i.sequence_numbers
                .iter()
                .map(|s| s.parse::<u128>().unwrap())
        })
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "stream order");
    // Checkpointed: nothing is delivered twice.
    assert!(mapping.poll().await.unwrap().invocations.is_empty());
}

#[tokio::test]
async fn filter_criteria_skip_records_and_move_the_checkpoint() {
    let setup = Setup::new().await;
    setup.put("a", "free", 1).await; // INSERT free: filtered out
    setup.put("b", "pro", 1).await; // INSERT pro: delivered
    setup.put("a", "pro", 2).await; // MODIFY to pro: delivered
    setup.delete("b").await; // REMOVE: filtered out
    setup.put("c", "free", 1).await; // filtered out, last in the shard
    let welcome = MappingSettings::from_json(
        fanout_testkit::registry::consumer("welcome-email")
            .unwrap()
            .event_source_mapping(),
    )
    .unwrap();
    let function = Scripted::new(|_, _| ok());
    let mut mapping = setup.mapping(
        MappingSettings {
            max_batching_window: Duration::ZERO,
            ..welcome
        },
        function.clone(),
    );
    let report = mapping.poll().await.unwrap();
    assert_eq!(function.calls(), vec![vec!["b".to_owned(), "a".to_owned()]]);
    assert_eq!(report.filtered_out, 3);
    let again = mapping.poll().await.unwrap();
    assert_eq!(
        (again.invocations.len(), again.filtered_out),
        (0, 0),
        "the iterator moved past filtered records"
    );
}

#[tokio::test]
async fn partial_failure_restarts_at_the_lowest_reported_sequence_number() {
    let setup = Setup::new().await;
    for user in users(5) {
        setup.put(&user, "free", 1).await;
    }
    let function = Scripted::new(|n, _| {
        if n == 1 {
            Ok(json!({"failUsers": ["u4", "u2"]}))
        } else {
            ok()
        }
    });
    let mut mapping = setup.mapping(settings(), function.clone());
    let report = mapping.poll().await.unwrap();
    assert_eq!(function.calls(), vec![users(5), users(5)[2..].to_vec()]);
    assert!(
        matches!(&report.invocations[0].outcome, InvocationOutcome::PartialFailure(f) if f.len() == 2)
    );
    assert!(report.discarded.is_empty());
}

#[tokio::test]
async fn empty_or_null_item_identifier_fails_the_whole_batch() {
    for bad in [
        json!({"itemIdentifier": ""}),
        json!({"itemIdentifier": null}),
    ] {
        let setup = Setup::new().await;
        for user in users(3) {
            setup.put(&user, "free", 1).await;
        }
        let function = Scripted::new(move |n, _| {
            if n == 1 {
                Ok(json!({"batchItemFailures": [bad.clone()]}))
            } else {
                ok()
            }
        });
        let no_bisect = MappingSettings {
            bisect_batch_on_function_error: false,
            ..settings()
        };
        let mut mapping = setup.mapping(no_bisect, function.clone());
        let report = mapping.poll().await.unwrap();
        assert_eq!(
            function.calls(),
            vec![users(3), users(3)],
            "the whole batch again"
        );
        assert!(matches!(
            report.invocations[0].outcome,
            InvocationOutcome::InvalidResponse(_)
        ));
    }
}

#[tokio::test]
async fn bisect_isolates_a_failing_record_and_its_on_failure_record_reaches_the_dlq() {
    let setup = Setup::new().await;
    for user in ["u0", "u1", "u2", "poison", "u4", "u5"] {
        setup.put(user, "free", 1).await;
    }
    let function = Scripted::new(|_, users| {
        if users.iter().any(|u| u == "poison") {
            Err(InvokeError::Function {
                error_type: "Unhandled".into(),
                message: "cannot process".into(),
            })
        } else {
            ok()
        }
    });
    let mut mapping = setup.mapping(settings(), function.clone());
    let report = mapping.poll().await.unwrap();

    let calls = function.calls();
    let alone = calls.iter().filter(|c| c.as_slice() == ["poison"]).count();
    assert_eq!(
        alone, 3,
        "first try plus 2 retries once isolated: {calls:?}"
    );
    for user in ["u0", "u1", "u2", "u4", "u5"] {
        assert!(
            calls
                .iter()
                .any(|c| c.contains(&user.to_owned()) && !c.contains(&"poison".to_owned())),
            "{user} was never delivered without the poison record: {calls:?}"
        );
    }
    assert_eq!(report.discarded.len(), 1);
    assert_eq!(report.discarded[0].condition, "RetryAttemptsExhausted");

    let on_failure = setup.on_failure_records().await;
    assert_eq!(on_failure.len(), 1);
    let info = &on_failure[0]["DDBStreamBatchInfo"];
    let poison_seq = &report.discarded[0].sequence_numbers[0];
    assert_eq!(info["startSequenceNumber"], poison_seq.as_str());
    assert_eq!(info["endSequenceNumber"], poison_seq.as_str());
    assert_eq!(info["batchSize"], 1);
    assert_eq!(info["streamArn"], setup.stream_arn.as_str());
    assert!(info["shardId"].as_str().unwrap().starts_with("shardId-"));
    assert!(
        info["approximateArrivalOfFirstRecord"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(
        on_failure[0]["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(on_failure[0]["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(on_failure[0]["version"], "1.0");
    // And the shard moved on.
    assert!(mapping.poll().await.unwrap().invocations.is_empty());
}

#[tokio::test]
async fn retry_attempts_are_bounded_without_bisect() {
    let setup = Setup::new().await;
    for user in users(4) {
        setup.put(&user, "free", 1).await;
    }
    let function = Scripted::new(|_, _| {
        Err(InvokeError::Function {
            error_type: "Unhandled".into(),
            message: "always down".into(),
        })
    });
    let no_bisect = MappingSettings {
        bisect_batch_on_function_error: false,
        maximum_retry_attempts: 2,
        ..settings()
    };
    let mut mapping = setup.mapping(no_bisect, function.clone());
    let report = mapping.poll().await.unwrap();
    assert_eq!(function.calls(), vec![users(4); 3]);
    assert_eq!(report.discarded.len(), 1);
    let on_failure = setup.on_failure_records().await;
    assert_eq!(on_failure[0]["DDBStreamBatchInfo"]["batchSize"], 4);
}

#[tokio::test]
async fn a_batch_whose_on_failure_record_is_refused_is_dropped_and_counted() {
    let setup = Setup::new().await;
    for user in users(3) {
        setup.put(&user, "free", 1).await;
    }
    // The destination queue is gone: Lambda drops the batch and counts DroppedEventCount.
    aws_sdk_sqs::Client::new(&setup.aws)
        .delete_queue()
        .queue_url(&setup.dlq_url)
        .send()
        .await
        .unwrap();
    let function = Scripted::new(|_, _| {
        Err(InvokeError::Function {
            error_type: "Unhandled".into(),
            message: "always down".into(),
        })
    });
    let no_bisect = MappingSettings {
        bisect_batch_on_function_error: false,
        maximum_retry_attempts: 1,
        ..settings()
    };
    let mut mapping = setup.mapping(no_bisect, function.clone());
    let report = mapping.poll().await.unwrap();
    assert_eq!(report.discarded.len(), 1);
    assert_eq!(report.dropped, 3);
    assert_eq!(function.calls().len(), 2);
    // The shard moved on past the dropped batch.
    assert!(mapping.poll().await.unwrap().invocations.is_empty());
}

#[tokio::test]
async fn a_batch_given_up_on_goes_whole_to_an_on_failure_bucket() {
    let setup = Setup::new().await;
    for user in users(2) {
        setup.put(&user, "free", 1).await;
    }
    let s3 = fanout_esm::s3_client(&setup.aws);
    let bucket = unique_name("on-failure").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let function = Scripted::new(|_, _| {
        Err(InvokeError::Function {
            error_type: "Unhandled".into(),
            message: "always down".into(),
        })
    });
    let no_bisect = MappingSettings {
        bisect_batch_on_function_error: false,
        maximum_retry_attempts: 1,
        ..settings()
    };
    let mut mapping = setup
        .mapping(no_bisect, function)
        .with_on_failure_bucket(&bucket);
    let report = mapping.poll().await.unwrap();
    assert_eq!((report.discarded.len(), report.dropped), (1, 0));
    assert!(setup.on_failure_records().await.is_empty(), "not the queue");

    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let prefix = format!("aws/lambda/{}/shardId-", mapping.uuid());
    assert!(
        keys[0].starts_with(&prefix),
        "{} not under {prefix}",
        keys[0]
    );
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key(&keys[0])
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let record: Value = serde_json::from_slice(&object).unwrap();
    assert_eq!(
        record["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(record["DDBStreamBatchInfo"]["batchSize"], 2);
    let payload: Value = serde_json::from_str(record["payload"].as_str().unwrap()).unwrap();
    let (payload_users, _) = users_and_sequences(&payload);
    assert_eq!(
        payload_users,
        users(2),
        "the whole batch, as the function got it"
    );
}

#[tokio::test]
async fn records_older_than_the_maximum_age_are_discarded_undelivered() {
    let setup = Setup::new().await;
    setup.put("old", "free", 1).await;
    // DynamoDB Local rounds ApproximateCreationDateTime; wait past any rounding of a second.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let function = Scripted::new(|_, _| ok());
    let mut mapping = setup.mapping(
        MappingSettings {
            maximum_record_age: Duration::from_secs(1),
            ..settings()
        },
        function.clone(),
    );
    let report = mapping.poll().await.unwrap();
    assert!(function.calls().is_empty(), "{:?}", function.calls());
    assert_eq!(report.discarded[0].condition, "RecordAgeExceeded");
    let on_failure = setup.on_failure_records().await;
    assert_eq!(
        on_failure[0]["requestContext"]["condition"],
        "RecordAgeExceeded"
    );
}

#[tokio::test]
async fn a_failed_record_is_never_overtaken_by_later_records_of_its_key() {
    let setup = Setup::new().await;
    for version in 1..=6 {
        setup.put("same", "free", version).await;
    }
    // The first delivery reports its second record (version 2) as failed.
    let function = Scripted::new(|n, _| {
        if n == 1 {
            Ok(json!({"failIndex": 1}))
        } else {
            ok()
        }
    });
    let mut mapping = setup.mapping(
        MappingSettings {
            batch_size: 2,
            ..settings()
        },
        function.clone(),
    );
    let report = mapping.poll().await.unwrap();
    let batches: Vec<Vec<u128>> = report
        .invocations
        .iter()
        .map(|i| {
            i.sequence_numbers
                .iter()
                .map(|s| s.parse().unwrap())
                .collect()
        })
        .collect();
    // [v1 v2] fails at v2 -> [v2 v3] -> [v4 v5] -> [v6]: one batch in flight, restarting at
    // the failed record, so version 3 never runs before version 2 has succeeded.
    assert_eq!(batches.len(), 4, "{batches:?}");
    assert_eq!(batches[1][0], batches[0][1], "restart at the failed record");
    let firsts: Vec<u128> = batches.iter().map(|b| b[0]).collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");
}
