//! fanout-testkit: what the tests of every crate share, and nothing product code may use
//! (it is only ever a dev-dependency).
//!
//! - [`local`]: SDK config that refuses any endpoint not on loopback, unique names.
//! - [`fixtures`]: the stream events in `events/`.
//! - [`registry`]: the consumers of `infra/consumers/`.
//! - [`resources`]: local copies of the tables and queues the CDK app creates.
//! - [`consumer`]: a consumer test's own ledger and DLQ; a `Users` row writer.
//! - [`queues`]: reading back a DLQ or an inspection queue.
//! - [`logs`]: an in-memory sink for what a consumer logs.
//! - with the `services` feature: [`ses_outbox`] (mail ministack accepted),
//!   [`search_standin`] (the OpenSearch document API stand-in) and [`fault_proxy`] (faults
//!   between a function and a service, per operation and call).
//!
//! **Architecture invariant:** testkit depends on no crate of the workspace but the registry
//! reader, so every crate, core included, can use it for tests without a cycle.

pub mod consumer;
#[cfg(feature = "services")]
pub mod fault_proxy;
pub mod fixtures;
pub mod local;
pub mod logs;
pub mod queues;
pub mod resources;
#[cfg(feature = "services")]
pub mod search_standin;
#[cfg(feature = "services")]
pub mod ses_outbox;

pub use consumer::{ConsumerResources, put_user};
/// The consumer registry, re-exported so tests read it the one way there is.
pub use fanout_registry as registry;
pub use fixtures::{fixture_batch, fixture_path, fixture_text, workspace_root};
pub use local::{LOCAL_REGION, local_sdk_config, ministack_url, unique_name};
