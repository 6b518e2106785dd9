//! core's ports in memory: every contract case, without a server (`make test-unit`). The
//! same cases run against DynamoDB Local and SQS in `tests/adapters.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract;

use std::sync::Arc;

use contract::dlq::QueueUnderTest;
use fanout_core::dlq::InMemoryQueue;
use fanout_core::ledger::InMemoryLedger;
use fanout_core::{DeadLetterQueue, Ledger};

async fn in_memory_ledger() -> Ledger {
    Ledger::with_store(Arc::new(InMemoryLedger::default()))
}

struct Memory(Arc<InMemoryQueue>);

impl QueueUnderTest for Memory {
    fn dlq(&self) -> DeadLetterQueue {
        DeadLetterQueue::with_queue(self.0.clone())
    }

    async fn bodies(&self) -> Vec<String> {
        self.0.bodies()
    }

    async fn refusing(&self) -> DeadLetterQueue {
        let refusing = Arc::new(InMemoryQueue::default());
        refusing.refuse(true);
        DeadLetterQueue::with_queue(refusing)
    }
}

async fn in_memory_queue() -> Memory {
    Memory(Arc::new(InMemoryQueue::default()))
}

ledger_contract!(in_memory_ledger());
dlq_contract!(in_memory_queue());
