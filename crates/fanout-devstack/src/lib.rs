//! fanout-devstack: the local stack fanout runs its tests and demo on, and the `fanout-local`
//! command.
//!
//! - [`servers`]: starts DynamoDB Local (`-sharedDb -inMemory -disableTelemetry`) and
//!   ministack on free loopback ports, and stops them again (also on failure).
//! - [`session`]: `up`, `down` and `replay` for a long-running development stack.
//! - [`wiring`]: a registered consumer's binary configured the way its stack does.
//! - [`observe`]: each consumer's effects read back where its descriptor says they land.
//! - [`demo`]: `make demo`'s scenario (data), its runner and its report; also run against a
//!   deployed fanout.
//! - [`scaffold`]: `make new-consumer`: a consumer's folder, registry file and CODEOWNERS lines.
//! - [`e2e`]: `make e2e`: the CDK app deployed into ministack as a local AWS, and proven.
//!
//! **Architecture invariant:** no Lambda binary links this crate, and it links no consumer:
//! it runs the consumers' real binaries as processes (through [`fanout_esm::RuntimeApiHost`]),
//! and learns which consumers exist from `infra/consumers/`.

pub mod demo;
pub mod e2e;
pub mod observe;
pub mod reliability;
pub mod scaffold;
pub mod servers;
pub mod session;
pub mod wiring;
