//! The contracts of core's ports, each case run against the adapter for AWS (on the local
//! stack: `tests/adapters.rs`) and the in-memory one (hermetic: `tests/ports.rs`).

#![allow(dead_code)]

pub(crate) mod dlq;
pub(crate) mod ledger;
