//! core's adapters for AWS on the local stack: every contract case of the ledger against
//! DynamoDB Local and of the parking queue against SQS (ministack), as `tests/ports.rs` runs
//! them in memory; and what only the adapters have (one request per step, errors of a
//! missing table).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use contract::dlq::QueueUnderTest;
use fanout_core::{
    ClaimOutcome, DeadLetterQueue, EffectKey, Lease, Ledger, LedgerClaim, LedgerError,
};
use fanout_testkit::resources::{create_ledger_table, create_queue};
use fanout_testkit::{local_sdk_config, unique_name};

/// Records the DynamoDB operation of every HTTP request the client sends.
#[derive(Debug, Clone, Default)]
struct RequestLog(Arc<Mutex<Vec<String>>>);

impl RequestLog {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for RequestLog {
    fn name(&self) -> &'static str {
        "RequestLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?")
            .trim_start_matches("DynamoDB_20120810.")
            .to_owned();
        self.0.lock().unwrap().push(target);
        Ok(())
    }
}

struct Setup {
    client: aws_sdk_dynamodb::Client,
    table: String,
    requests: RequestLog,
}

impl Setup {
    async fn new() -> Self {
        let sdk = local_sdk_config().await;
        let requests = RequestLog::default();
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(requests.clone())
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let table = unique_name("EffectLedger");
        create_ledger_table(&client, &table).await.unwrap();
        requests.take();
        Setup {
            client,
            table,
            requests,
        }
    }

    fn ledger(&self) -> Ledger {
        Ledger::new(self.client.clone(), &self.table)
    }
}

fn lease() -> Lease {
    Lease::until(SystemTime::now() + Duration::from_secs(65))
}

fn claimed(outcome: ClaimOutcome) -> LedgerClaim {
    match outcome {
        ClaimOutcome::Claimed(claim) => claim,
        other => panic!("expected Claimed, got {other:?}"),
    }
}

async fn dynamodb_ledger() -> Ledger {
    Setup::new().await.ledger()
}

ledger_contract!(dynamodb_ledger());

/// An SQS queue of its own in ministack.
struct Sqs {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl QueueUnderTest for Sqs {
    fn dlq(&self) -> DeadLetterQueue {
        DeadLetterQueue::new(self.client.clone(), &self.url)
    }

    async fn bodies(&self) -> Vec<String> {
        fanout_testkit::queues::drain_queue(&self.client, &self.url)
            .await
            .unwrap()
    }

    async fn refusing(&self) -> DeadLetterQueue {
        let url = create_queue(&self.client, &unique_name("gone"))
            .await
            .unwrap();
        self.client
            .delete_queue()
            .queue_url(&url)
            .send()
            .await
            .unwrap();
        DeadLetterQueue::new(self.client.clone(), url)
    }
}

async fn sqs_queue() -> Sqs {
    let client = aws_sdk_sqs::Client::new(&local_sdk_config().await);
    let url = create_queue(&client, &unique_name("dlq")).await.unwrap();
    Sqs { client, url }
}

dlq_contract!(sqs_queue());

#[tokio::test]
async fn protocol_costs_one_request_per_step_and_duplicates_need_no_read() {
    let setup = Setup::new().await;
    let ledger = setup.ledger();
    let key = EffectKey::new("crm-sync", &["event-1"]);

    let claim = claimed(ledger.claim(&key, lease()).await.unwrap());
    assert_eq!(setup.requests.take(), vec!["PutItem"], "claim");
    ledger.complete(&claim).await.unwrap();
    assert_eq!(setup.requests.take(), vec!["UpdateItem"], "complete");

    assert_eq!(
        ledger.claim(&key, lease()).await.unwrap(),
        ClaimOutcome::AlreadyDone
    );
    assert_eq!(
        setup.requests.take(),
        vec!["PutItem"],
        "duplicate: one write, no read"
    );

    let other = EffectKey::new("crm-sync", &["event-2"]);
    let claim = claimed(ledger.claim(&other, lease()).await.unwrap());
    setup.requests.take();
    ledger.release(&claim).await.unwrap();
    assert_eq!(setup.requests.take(), vec!["DeleteItem"], "release");

    ledger.entry(&key).await.unwrap();
    assert_eq!(
        setup.requests.take(),
        vec!["GetItem"],
        "entry: one consistent read"
    );
}

#[tokio::test]
async fn unreachable_table_is_a_request_error_not_a_panic() {
    let setup = Setup::new().await;
    let ledger = Ledger::new(setup.client.clone(), unique_name("NoSuchTable"));
    let err = ledger
        .claim(&EffectKey::new("welcome-email", &["u-6"]), lease())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::Request {
                operation: "claim",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("ResourceNotFound") || err.to_string().contains("non-existent"),
        "{err}"
    );
}
