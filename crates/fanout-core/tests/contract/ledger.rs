//! The ledger's contract: what [`fanout_core::ledger::LedgerStore`] must keep, seen through
//! [`Ledger`] (the protocol every consumer calls). Each case takes a ledger over a store of
//! its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use fanout_core::ledger::{Clock, EntryStatus};
use fanout_core::{
    ClaimOutcome, EffectKey, Lease, Ledger, LedgerClaim, LedgerError, RecordError, RecordOutcome,
    TimeBudget,
};

/// Every case, by name, for the runners' macro.
#[macro_export]
macro_rules! ledger_contract {
    ($make:expr) => {
        $crate::ledger_contract!($make;
            concurrent_claims_of_one_key_give_exactly_one_claimed,
            a_completed_effect_is_already_done_and_a_released_one_is_gone,
            released_claim_can_be_claimed_again,
            live_lease_is_held_by_another,
            lapsed_lease_can_be_reclaimed_and_stale_owner_is_fenced,
            complete_is_idempotent_for_its_owner_so_a_lost_response_is_no_error,
            a_claim_left_by_a_crashed_holder_is_waited_for_and_taken_over_not_given_up,
            a_live_holder_that_completes_while_waited_for_makes_a_duplicate,
            a_held_claim_fails_as_retryable_when_this_invocations_time_runs_out_first,
            expired_completed_entry_is_claimable_before_ttl_runs,
            completed_is_only_an_unexpired_completed_entry,
            a_failed_effect_releases_its_claim_for_the_next_delivery);
    };
    ($make:expr; $($case:ident),+) => {
        mod ledger_contract {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    $crate::contract::ledger::$case($make.await).await;
                }
            )+
        }
    };
}

/// A clock running `offset` ahead of the real one: another invocation, later in time.
#[derive(Debug)]
struct AheadBy(Duration);

impl Clock for AheadBy {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.0
    }
}

fn ahead(ledger: &Ledger, by: Duration) -> Ledger {
    ledger.clone().with_clock(Arc::new(AheadBy(by)))
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

pub(crate) async fn concurrent_claims_of_one_key_give_exactly_one_claimed(ledger: Ledger) {
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

pub(crate) async fn a_completed_effect_is_already_done_and_a_released_one_is_gone(ledger: Ledger) {
    let key = EffectKey::new("crm-sync", &["event-1"]);
    let claim = claimed(ledger.claim(&key, lease()).await.unwrap());
    let entry = ledger.entry(&key).await.unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.owner.as_str()),
        (EntryStatus::InProgress, claim.owner.as_str())
    );
    assert!(entry.lease_until.is_some() && entry.expires_at.is_some());

    ledger.complete(&claim).await.unwrap();
    assert_eq!(
        ledger.claim(&key, lease()).await.unwrap(),
        ClaimOutcome::AlreadyDone
    );
    let entry = ledger.entry(&key).await.unwrap().unwrap();
    assert_eq!(entry.status, EntryStatus::Completed);
    assert_eq!(entry.lease_until, None, "a completed entry holds no lease");
    assert!(entry.expires_at.is_some());

    let other = EffectKey::new("crm-sync", &["event-2"]);
    let claim = claimed(ledger.claim(&other, lease()).await.unwrap());
    ledger.release(&claim).await.unwrap();
    assert_eq!(
        ledger.entry(&other).await.unwrap(),
        None,
        "released entry is gone"
    );
}

pub(crate) async fn released_claim_can_be_claimed_again(ledger: Ledger) {
    let key = EffectKey::new("welcome-email", &["u-2", "enterprise"]);
    let first = claimed(ledger.claim(&key, lease()).await.unwrap());
    ledger.release(&first).await.unwrap();
    let second = claimed(ledger.claim(&key, lease()).await.unwrap());
    assert_ne!(first.owner, second.owner);
    assert_eq!(second.took_over_from, None);
}

pub(crate) async fn live_lease_is_held_by_another(ledger: Ledger) {
    let key = EffectKey::new("welcome-email", &["u-3", "pro"]);
    let first_lease = lease();
    claimed(ledger.claim(&key, first_lease).await.unwrap());
    let outcome = ledger.claim(&key, lease()).await.unwrap();
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

pub(crate) async fn lapsed_lease_can_be_reclaimed_and_stale_owner_is_fenced(ledger: Ledger) {
    let key = EffectKey::new("welcome-email", &["u-4", "pro"]);
    // The first invocation claims with a lease ending at its deadline, then stalls.
    let stale = claimed(ledger.claim(&key, lease()).await.unwrap());
    // Ten minutes later (past the deadline) another invocation takes the entry over.
    let later = ahead(&ledger, Duration::from_secs(600));
    let fresh_lease = Lease::until(SystemTime::now() + Duration::from_secs(665));
    let fresh = claimed(later.claim(&key, fresh_lease).await.unwrap());
    assert_eq!(fresh.took_over_from.as_deref(), Some(stale.owner.as_str()));

    // The stale owner can neither complete nor release the entry it lost.
    let err = ledger.complete(&stale).await.unwrap_err();
    assert!(matches!(err, LedgerError::Fenced { .. }), "{err}");
    let err = ledger.release(&stale).await.unwrap_err();
    assert!(matches!(err, LedgerError::Fenced { .. }), "{err}");
    let entry = ledger
        .entry(&key)
        .await
        .unwrap()
        .expect("entry still there");
    assert_eq!(entry.owner, fresh.owner);
    assert_eq!(entry.status, EntryStatus::InProgress);

    // The new owner completes normally.
    later.complete(&fresh).await.unwrap();
    assert_eq!(
        ledger.claim(&key, lease()).await.unwrap(),
        ClaimOutcome::AlreadyDone
    );
}

pub(crate) async fn complete_is_idempotent_for_its_owner_so_a_lost_response_is_no_error(
    ledger: Ledger,
) {
    let key = EffectKey::new("crm-sync", &["event-3"]);
    let claim = claimed(ledger.claim(&key, lease()).await.unwrap());
    ledger.complete(&claim).await.unwrap();
    // As when the first response was lost and the write is sent again.
    ledger.complete(&claim).await.unwrap();
    let entry = ledger.entry(&key).await.unwrap().unwrap();
    assert_eq!(entry.status, EntryStatus::Completed);
    // Nobody else's claim completes it, nor releases it.
    let stranger = LedgerClaim {
        owner: "someone-else".to_owned(),
        ..claim
    };
    assert!(matches!(
        ledger.complete(&stranger).await,
        Err(LedgerError::Fenced { .. })
    ));
    assert!(matches!(
        ledger.release(&stranger).await,
        Err(LedgerError::Fenced { .. })
    ));
}

pub(crate) async fn a_claim_left_by_a_crashed_holder_is_waited_for_and_taken_over_not_given_up(
    ledger: Ledger,
) {
    let key = EffectKey::new("welcome-email", &["u-crash", "pro"]);
    // The holder claimed and died; its lease lapses in two seconds.
    let dead = claimed(
        ledger
            .claim(
                &key,
                Lease::until(SystemTime::now() + Duration::from_secs(2)),
            )
            .await
            .unwrap(),
    );
    let effects = AtomicUsize::new(0);
    let outcome = ledger
        .perform_once(&key, &time(30, 5), || async {
            effects.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(outcome, RecordOutcome::Done);
    assert_eq!(effects.load(Ordering::SeqCst), 1);
    let entry = ledger.entry(&key).await.unwrap().unwrap();
    assert_eq!(entry.status, EntryStatus::Completed);
    assert_ne!(entry.owner, dead.owner);
}

pub(crate) async fn a_live_holder_that_completes_while_waited_for_makes_a_duplicate(
    ledger: Ledger,
) {
    let key = EffectKey::new("crm-sync", &["u-live", "1", "UserCreated"]);
    let holder = claimed(ledger.claim(&key, lease()).await.unwrap());
    let finishing = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            ledger.complete(&holder).await.unwrap();
        })
    };
    let outcome = ledger
        .perform_once(&key, &time(30, 5), || async {
            panic!("the holder made the effect; it must not run again")
        })
        .await
        .unwrap();
    finishing.await.unwrap();
    assert_eq!(outcome, RecordOutcome::Duplicate);
}

pub(crate) async fn a_held_claim_fails_as_retryable_when_this_invocations_time_runs_out_first(
    ledger: Ledger,
) {
    let key = EffectKey::new("welcome-email", &["u-held", "pro"]);
    claimed(ledger.claim(&key, lease()).await.unwrap());
    let started = std::time::Instant::now();
    let outcome = ledger
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

pub(crate) async fn expired_completed_entry_is_claimable_before_ttl_runs(ledger: Ledger) {
    let key = EffectKey::new("welcome-email", &["u-5", "pro"]);
    let ledger = ledger.with_retention(Duration::from_secs(3600));
    let claim = claimed(ledger.claim(&key, lease()).await.unwrap());
    ledger.complete(&claim).await.unwrap();

    // Within retention: a duplicate.
    let within = ahead(&ledger, Duration::from_secs(1800));
    assert_eq!(
        within.claim(&key, lease()).await.unwrap(),
        ClaimOutcome::AlreadyDone
    );

    // Past expiresAt, the entry is still stored (TTL has not run), but a claim treats it as
    // absent.
    assert!(ledger.entry(&key).await.unwrap().is_some());
    let after = ahead(&ledger, Duration::from_secs(7200));
    let again = claimed(after.claim(&key, lease()).await.unwrap());
    assert_eq!(
        again.took_over_from, None,
        "a completed entry is not a lapsed lease"
    );
}

pub(crate) async fn completed_is_only_an_unexpired_completed_entry(ledger: Ledger) {
    let ledger = ledger.with_retention(Duration::from_secs(3600));
    let key = EffectKey::new("crm-sync", &["u-7", "3", "UserUpdated"]);
    assert!(!ledger.completed(&key).await.unwrap(), "no entry");
    let claim = claimed(ledger.claim(&key, lease()).await.unwrap());
    assert!(!ledger.completed(&key).await.unwrap(), "in progress");
    ledger.complete(&claim).await.unwrap();
    assert!(ledger.completed(&key).await.unwrap());
    assert!(
        !ahead(&ledger, Duration::from_secs(7200))
            .completed(&key)
            .await
            .unwrap(),
        "expired"
    );
}

pub(crate) async fn a_failed_effect_releases_its_claim_for_the_next_delivery(ledger: Ledger) {
    let key = EffectKey::new("welcome-email", &["u-8", "pro"]);
    let failed = ledger
        .perform_once(&key, &time(30, 5), || async {
            Err(RecordError::Retryable("SES throttled".to_owned()))
        })
        .await;
    assert!(
        matches!(failed, Err(RecordError::Retryable(_))),
        "{failed:?}"
    );
    assert_eq!(ledger.entry(&key).await.unwrap(), None, "released");
    let outcome = ledger
        .perform_once(&key, &time(30, 5), || async { Ok(()) })
        .await
        .unwrap();
    assert_eq!(outcome, RecordOutcome::Done);
}
