//! The ledger's entries in memory, under the same contract as the table: for hermetic tests
//! of the batch engine and of a consumer's handler, and for local tools. Entries keep the
//! table's precisions (lease in milliseconds, expiry in seconds), so both adapters decide
//! alike at the edges.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::{
    ClaimOutcome, EffectKey, EntryStatus, LedgerClaim, LedgerEntry, LedgerError, LedgerStore,
    expired, lapsed,
};
use crate::port::PortFuture;

/// Entries in a map; every step is atomic under one lock, as each is one conditional
/// request on the table.
#[derive(Debug, Default)]
pub struct InMemoryLedger {
    entries: Mutex<HashMap<String, LedgerEntry>>,
}

impl InMemoryLedger {
    fn with_entries<T>(&self, step: impl FnOnce(&mut HashMap<String, LedgerEntry>) -> T) -> T {
        // A panic while holding the lock cannot leave an entry half-written: each step
        // replaces or removes a whole entry.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        step(&mut entries)
    }

    fn put_claim(
        &self,
        claim: &LedgerClaim,
        now: SystemTime,
        expires_at: SystemTime,
    ) -> ClaimOutcome {
        self.with_entries(|entries| {
            // In the table's order: its condition (absent, expired, a lapsed lease) first,
            // then what the refused write's old item says.
            let took_over_from = match entries.get(claim.key.as_str()) {
                None => None,
                Some(old)
                    if old.expires_at.is_some_and(|at| expired(at, now))
                        || (old.status == EntryStatus::InProgress
                            && old.lease_until.is_some_and(|until| lapsed(until, now))) =>
                {
                    (old.status == EntryStatus::InProgress).then(|| old.owner.clone())
                }
                Some(old) if old.status == EntryStatus::Completed => {
                    return ClaimOutcome::AlreadyDone;
                }
                Some(old) if old.owner == claim.owner => {
                    return ClaimOutcome::Claimed(claim.clone());
                }
                Some(old) => {
                    return ClaimOutcome::HeldByAnother {
                        lease_until: old.lease_until,
                    };
                }
            };
            entries.insert(
                claim.key.as_str().to_owned(),
                LedgerEntry {
                    status: EntryStatus::InProgress,
                    owner: claim.owner.clone(),
                    lease_until: Some(stored_millis(claim.lease.expires_at())),
                    expires_at: Some(stored_secs(expires_at)),
                },
            );
            ClaimOutcome::Claimed(LedgerClaim {
                took_over_from,
                ..claim.clone()
            })
        })
    }

    fn set_completed(&self, claim: &LedgerClaim) -> Result<(), LedgerError> {
        self.with_entries(|entries| match entries.get_mut(claim.key.as_str()) {
            Some(entry) if entry.owner == claim.owner => {
                entry.status = EntryStatus::Completed;
                entry.lease_until = None;
                Ok(())
            }
            _ => Err(LedgerError::Fenced {
                key: claim.key.to_string(),
            }),
        })
    }

    fn remove_claim(&self, claim: &LedgerClaim) -> Result<(), LedgerError> {
        self.with_entries(|entries| match entries.get(claim.key.as_str()) {
            Some(entry) if entry.owner == claim.owner => {
                entries.remove(claim.key.as_str());
                Ok(())
            }
            _ => Err(LedgerError::Fenced {
                key: claim.key.to_string(),
            }),
        })
    }
}

impl LedgerStore for InMemoryLedger {
    fn name(&self) -> &str {
        "in-memory ledger"
    }

    fn claim<'a>(
        &'a self,
        claim: &'a LedgerClaim,
        now: SystemTime,
        expires_at: SystemTime,
    ) -> PortFuture<'a, Result<ClaimOutcome, LedgerError>> {
        let outcome = self.put_claim(claim, now, expires_at);
        Box::pin(async move { Ok(outcome) })
    }

    fn complete<'a>(
        &'a self,
        claim: &'a LedgerClaim,
        _now: SystemTime,
    ) -> PortFuture<'a, Result<(), LedgerError>> {
        let result = self.set_completed(claim);
        Box::pin(async move { result })
    }

    fn release<'a>(&'a self, claim: &'a LedgerClaim) -> PortFuture<'a, Result<(), LedgerError>> {
        let result = self.remove_claim(claim);
        Box::pin(async move { result })
    }

    fn entry<'a>(
        &'a self,
        key: &'a EffectKey,
    ) -> PortFuture<'a, Result<Option<LedgerEntry>, LedgerError>> {
        let entry = self.with_entries(|entries| entries.get(key.as_str()).cloned());
        Box::pin(async move { Ok(entry) })
    }
}

/// `at` to the millisecond, as the table stores a lease.
fn stored_millis(at: SystemTime) -> SystemTime {
    let millis = crate::time::epoch_millis(at);
    SystemTime::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// `at` to the second, as the table stores an expiry.
fn stored_secs(at: SystemTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(crate::time::epoch_secs(at))
}
