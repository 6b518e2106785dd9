//! The fault proxy between an SDK client and DynamoDB Local: each fault reaches the caller as
//! AWS's would, and "drop the response" lets the service act while the caller never hears.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use fanout_testkit::fault_proxy::{Calls, Fault, FaultProxy, Rule};
use fanout_testkit::resources::create_ledger_table;
use fanout_testkit::{local_sdk_config, unique_name};

struct Setup {
    proxy: FaultProxy,
    /// Through the proxy, with the SDK's retries off so each call is one request.
    client: Client,
    /// Straight to DynamoDB Local, to see what the service did.
    direct: Client,
    table: String,
}

impl Setup {
    async fn new() -> Self {
        let aws = local_sdk_config().await;
        let direct = Client::new(&aws);
        let table = unique_name("proxy");
        create_ledger_table(&direct, &table).await.unwrap();
        let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
        let proxy = FaultProxy::start(&upstream).await.unwrap();
        let config = aws_sdk_dynamodb::config::Builder::from(&aws)
            .endpoint_url(proxy.endpoint())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Setup {
            proxy,
            client: Client::from_conf(config),
            direct,
            table,
        }
    }

    async fn put(&self, client: &Client, pk: &str) -> Result<(), aws_sdk_dynamodb::Error> {
        client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk.to_owned()))
            .send()
            .await
            .map(|_| ())
            .map_err(Into::into)
    }

    async fn exists(&self, pk: &str) -> bool {
        self.direct
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .is_some()
    }
}

#[tokio::test]
async fn a_throttle_reaches_the_sdk_as_dynamodbs_own_and_the_item_is_not_written() {
    let setup = Setup::new().await;
    setup.proxy.add(Rule::new(
        "PutItem",
        Calls::Nth(1),
        Fault::dynamodb_throttle(),
    ));
    let err = setup.put(&setup.client, "a").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("ProvisionedThroughputExceededException"),
        "{err:?}"
    );
    assert!(!setup.exists("a").await);
    // Only the first call: the second goes through.
    setup.put(&setup.client, "a").await.unwrap();
    assert!(setup.exists("a").await);
    assert_eq!(setup.proxy.count("PutItem"), 2);
}

#[tokio::test]
async fn a_status_fault_answers_without_forwarding() {
    let setup = Setup::new().await;
    setup
        .proxy
        .add(Rule::new("PutItem", Calls::Every, Fault::Status(503)));
    let err = setup.put(&setup.client, "b").await.unwrap_err();
    assert_eq!(err.code(), Some("ServiceUnavailable"), "{err:?}");
    assert!(!setup.exists("b").await);
}

#[tokio::test]
async fn a_dropped_response_leaves_the_write_made_and_the_caller_failed() {
    let setup = Setup::new().await;
    setup
        .proxy
        .add(Rule::new("PutItem", Calls::Nth(1), Fault::DropResponse));
    assert!(setup.put(&setup.client, "c").await.is_err());
    assert!(
        setup.exists("c").await,
        "the service acted although the caller never heard"
    );
}

#[tokio::test]
async fn a_reset_forwards_nothing() {
    let setup = Setup::new().await;
    setup
        .proxy
        .add(Rule::new("PutItem", Calls::Nth(1), Fault::Reset));
    assert!(setup.put(&setup.client, "d").await.is_err());
    assert!(!setup.exists("d").await);
}

#[tokio::test]
async fn latency_delays_and_then_forwards() {
    let setup = Setup::new().await;
    setup.proxy.add(Rule::new(
        "PutItem",
        Calls::Nth(1),
        Fault::Latency(Duration::from_millis(700)),
    ));
    let started = Instant::now();
    setup.put(&setup.client, "e").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(setup.exists("e").await);
}

#[tokio::test]
async fn a_held_call_is_signalled_and_never_forwarded_even_after_its_caller_gives_up() {
    let setup = Setup::new().await;
    setup
        .proxy
        .add(Rule::new("PutItem", Calls::Nth(1), Fault::Hold));
    let held = setup.proxy.held();
    let call = setup.put(&setup.client, "f");
    tokio::select! {
        _ = held => {}
        _ = call => panic!("a held call must not return"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!setup.exists("f").await);
    let calls = setup.proxy.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].fault, Some(Fault::Hold));
}
