//! The ledger protocol against DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use fanout_core::ledger::Clock;
use fanout_core::{
    ClaimOutcome, EffectKey, Lease, Ledger, LedgerClaim, LedgerError, RecordError, RecordOutcome,
    TimeBudget,
};
use fanout_testkit::resources::create_ledger_table;
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

/// A clock running `offset` ahead of the real one: another invocation, later in time.
#[derive(Debug)]
struct AheadBy(Duration);

impl Clock for AheadBy {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.0
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

    fn ledger_ahead(&self, by: Duration) -> Ledger {
        self.ledger().with_clock(Arc::new(AheadBy(by)))
    }

    async fn item(
        &self,
        key: &EffectKey,
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.as_str().to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        self.requests.take();
        out.item
    }
}

fn lease() -> Lease {
    Lease::until(SystemTime::now() + Duration::from_secs(65))
}

/// An invocation's time: `secs` until its deadline, `budget_secs` per record.
fn time(secs: u64, budget_secs: u64) -> TimeBudget {
    TimeBudget::new(
        SystemTime::now() + Duration::from_secs(secs),
        Duration::from_secs(budget_secs),
    )
}

fn claimed(outcome: ClaimOutcome) -> LedgerClaim {
    match outcome {
        ClaimOutcome::Claimed(claim) => claim,
        other => panic!("expected Claimed, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_claims_of_one_key_give_exactly_one_claimed() {
    let setup = Setup::new().await;
    let ledger = setup.ledger();
    let key = EffectKey::new("welcome-email", &["u-1", "pro"]);
    let attempts = (0..12).map(|_| {
        let ledger = ledger.clone();
        let key = key.clone();
        tokio::spawn(async move { ledger.claim(&key, lease()).await.unwrap() })
    });
    let mut claimed = 0;
    let mut held = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            ClaimOutcome::Claimed(_) => claimed += 1,
            ClaimOutcome::HeldByAnother { lease_until } => {
                assert!(lease_until.is_some_and(|t| t > SystemTime::now()));
                held += 1;
            }
            ClaimOutcome::AlreadyDone => panic!("nothing was completed"),
        }
    }
    assert_eq!((claimed, held), (1, 11));
}

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

    let item = setup.item(&key).await.unwrap();
    assert_eq!(item["status"].as_s().unwrap(), "COMPLETED");
    assert!(item.contains_key("expiresAt"));
    assert!(!item.contains_key("leaseUntil"));
    assert!(setup.item(&other).await.is_none(), "released entry is gone");
}

#[tokio::test]
async fn released_claim_can_be_claimed_again() {
    let setup = Setup::new().await;
    let ledger = setup.ledger();
    let key = EffectKey::new("welcome-email", &["u-2", "enterprise"]);
    let first = claimed(ledger.claim(&key, lease()).await.unwrap());
    ledger.release(&first).await.unwrap();
    let second = claimed(ledger.claim(&key, lease()).await.unwrap());
    assert_ne!(first.owner, second.owner);
    assert_eq!(second.took_over_from, None);
}

#[tokio::test]
async fn live_lease_is_held_by_another() {
    let setup = Setup::new().await;
    let key = EffectKey::new("welcome-email", &["u-3", "pro"]);
    let first_lease = lease();
    claimed(setup.ledger().claim(&key, first_lease).await.unwrap());
    let outcome = setup.ledger().claim(&key, lease()).await.unwrap();
    let ClaimOutcome::HeldByAnother {
        lease_until: Some(until),
    } = outcome
    else {
        panic!("expected HeldByAnother with the lease, got {outcome:?}");
    };
    // Stored in milliseconds.
    let drift = first_lease
        .expires_at()
        .duration_since(until)
        .unwrap_or_else(|e| e.duration());
    assert!(drift < Duration::from_millis(1), "{drift:?}");
}

#[tokio::test]
async fn lapsed_lease_can_be_reclaimed_and_stale_owner_is_fenced() {
    let setup = Setup::new().await;
    let key = EffectKey::new("welcome-email", &["u-4", "pro"]);
    // The first invocation claims with a lease ending at its deadline, then stalls.
    let stale = claimed(setup.ledger().claim(&key, lease()).await.unwrap());
    // Ten minutes later (past the deadline) another invocation takes the entry over.
    let later = setup.ledger_ahead(Duration::from_secs(600));
    let fresh_lease = Lease::until(SystemTime::now() + Duration::from_secs(665));
    let fresh = claimed(later.claim(&key, fresh_lease).await.unwrap());
    assert_eq!(fresh.took_over_from.as_deref(), Some(stale.owner.as_str()));

    // The stale owner can neither complete nor release the entry it lost.
    let err = setup.ledger().complete(&stale).await.unwrap_err();
    assert!(matches!(err, LedgerError::Fenced { .. }), "{err}");
    let err = setup.ledger().release(&stale).await.unwrap_err();
    assert!(matches!(err, LedgerError::Fenced { .. }), "{err}");
    let item = setup.item(&key).await.expect("entry still there");
    assert_eq!(item["owner"].as_s().unwrap(), &fresh.owner);
    assert_eq!(item["status"].as_s().unwrap(), "IN_PROGRESS");

    // The new owner completes normally.
    later.complete(&fresh).await.unwrap();
    assert_eq!(
        setup.ledger().claim(&key, lease()).await.unwrap(),
        ClaimOutcome::AlreadyDone
    );
}

#[tokio::test]
async fn complete_is_idempotent_for_its_owner_so_a_lost_response_is_no_error() {
    let setup = Setup::new().await;
    let ledger = setup.ledger();
    let key = EffectKey::new("crm-sync", &["event-3"]);
    let claim = claimed(ledger.claim(&key, lease()).await.unwrap());
    ledger.complete(&claim).await.unwrap();
    setup.requests.take();
    // As when the first response was lost and the write is sent again.
    ledger.complete(&claim).await.unwrap();
    assert_eq!(
        setup.requests.take(),
        vec!["UpdateItem"],
        "one write, no read"
    );
    let item = setup.item(&key).await.unwrap();
    assert_eq!(item["status"].as_s().unwrap(), "COMPLETED");
}

#[tokio::test]
async fn a_claim_left_by_a_crashed_holder_is_waited_for_and_taken_over_not_given_up() {
    let setup = Setup::new().await;
    let key = EffectKey::new("welcome-email", &["u-crash", "pro"]);
    // The holder claimed and died; its lease lapses in two seconds.
    let dead = claimed(
        setup
            .ledger()
            .claim(
                &key,
                Lease::until(SystemTime::now() + Duration::from_secs(2)),
            )
            .await
            .unwrap(),
    );
    let effects = AtomicUsize::new(0);
    let outcome = setup
        .ledger()
        .perform_once(&key, &time(30, 5), || async {
            effects.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(outcome, RecordOutcome::Done);
    assert_eq!(effects.load(Ordering::SeqCst), 1);
    let item = setup.item(&key).await.unwrap();
    assert_eq!(item["status"].as_s().unwrap(), "COMPLETED");
    assert_ne!(item["owner"].as_s().unwrap(), &dead.owner);
}

#[tokio::test]
async fn a_live_holder_that_completes_while_waited_for_makes_a_duplicate() {
    let setup = Setup::new().await;
    let key = EffectKey::new("crm-sync", &["u-live", "1", "UserCreated"]);
    let holder = claimed(setup.ledger().claim(&key, lease()).await.unwrap());
    let ledger = setup.ledger();
    let finishing = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ledger.complete(&holder).await.unwrap();
    });
    let outcome = setup
        .ledger()
        .perform_once(&key, &time(30, 5), || async {
            panic!("the holder made the effect; it must not run again")
        })
        .await
        .unwrap();
    finishing.await.unwrap();
    assert_eq!(outcome, RecordOutcome::Duplicate);
}

#[tokio::test]
async fn a_held_claim_fails_as_retryable_when_this_invocations_time_runs_out_first() {
    let setup = Setup::new().await;
    let key = EffectKey::new("welcome-email", &["u-held", "pro"]);
    claimed(setup.ledger().claim(&key, lease()).await.unwrap());
    let started = std::time::Instant::now();
    let outcome = setup
        .ledger()
        .perform_once(&key, &time(3, 1), || async { panic!("not claimed") })
        .await;
    assert!(
        matches!(outcome, Err(RecordError::Retryable(ref why)) if why.contains("held by another")),
        "{outcome:?}"
    );
    // It waited until its own latest start (deadline - budget), not longer.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn expired_completed_entry_is_claimable_before_ttl_runs() {
    let setup = Setup::new().await;
    let key = EffectKey::new("welcome-email", &["u-5", "pro"]);
    let ledger = setup.ledger().with_retention(Duration::from_secs(3600));
    let claim = claimed(ledger.claim(&key, lease()).await.unwrap());
    ledger.complete(&claim).await.unwrap();

    // Within retention: a duplicate.
    let within = setup.ledger_ahead(Duration::from_secs(1800));
    assert_eq!(
        within.claim(&key, lease()).await.unwrap(),
        ClaimOutcome::AlreadyDone
    );

    // Past expiresAt, the entry is still in the table (TTL has not run), but the condition
    // treats it as absent.
    assert!(setup.item(&key).await.is_some());
    let after = setup.ledger_ahead(Duration::from_secs(7200));
    let again = claimed(after.claim(&key, lease()).await.unwrap());
    assert_eq!(
        again.took_over_from, None,
        "a completed entry is not a lapsed lease"
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
