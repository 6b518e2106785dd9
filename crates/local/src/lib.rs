//! fanout-local: the local stack fanout runs its tests and demo on.
//!
//! - [`stack`]: starts DynamoDB Local (`-sharedDb -inMemory`) and ministack on free loopback
//!   ports, and stops them again (also when the process running them is interrupted).
//! - [`resources`]: the local copies of what the CDK app creates: tables and queues.
//! - [`devstack`]: `up`, `down` and `replay` for a long-running development stack.
//! - [`esm`], [`filter`]: a local event source mapping with Lambda's DynamoDB Streams semantics.
//! - [`invoke_api`]: the real consumer binaries behind `cargo lambda watch`'s Invoke API.
//! - [`inspect`]: reading back what the local services received (sent mail, queues).
//! - [`search_standin`]: the OpenSearch external-version document API, as a stand-in.
//! - [`testing`]: what integration tests share: SDK config that refuses any non-loopback
//!   endpoint, unique resource names, fixtures from `events/`.

pub mod devstack;
pub mod esm;
pub mod filter;
pub mod inspect;
pub mod invoke_api;
pub mod resources;
pub mod search_standin;
pub mod stack;
pub mod testing;

/// Region the local stack uses. DynamoDB Local with `-sharedDb` ignores it.
pub const LOCAL_REGION: &str = "us-east-1";
