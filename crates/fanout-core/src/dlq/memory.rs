//! Parked records in memory: for hermetic tests of the batch engine and of a handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{ParkedRecord, ParkingQueue};
use crate::port::PortFuture;

/// A queue in memory. [`InMemoryQueue::refuse`] makes it refuse every message, as a deleted
/// queue or a disabled key does, to test that nothing is lost when parking fails.
#[derive(Debug, Default)]
pub struct InMemoryQueue {
    bodies: Mutex<Vec<String>>,
    refusing: AtomicBool,
}

impl InMemoryQueue {
    /// Whether every message from now on is refused.
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Every message body taken, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every message taken, read as a parked record (a body that is not one is skipped).
    pub fn parked(&self) -> Vec<ParkedRecord> {
        self.bodies()
            .iter()
            .filter_map(|body| serde_json::from_str(body).ok())
            .collect()
    }
}

impl ParkingQueue for InMemoryQueue {
    fn name(&self) -> &str {
        "in-memory queue"
    }

    fn send(&self, body: String) -> PortFuture<'_, Result<(), String>> {
        let taken = if self.refusing.load(Ordering::SeqCst) {
            Err("the queue refuses every message (InMemoryQueue::refuse)".to_owned())
        } else {
            self.bodies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(body);
            Ok(())
        };
        Box::pin(async move { taken })
    }
}
