//! What the ports at core's I/O boundaries (the ledger's store, the parking queue) answer
//! with. A leaf: it imports nothing from the rest of the crate.

use std::future::Future;
use std::pin::Pin;

/// The answer of a port's operation, boxed so a port is an object (`Arc<dyn LedgerStore>`):
/// the adapter for AWS and the in-memory one are chosen at run time, behind one type.
///
/// ```
/// use fanout_core::port::PortFuture;
/// fn answer<'a>(value: &'a str) -> PortFuture<'a, usize> {
///     Box::pin(async move { value.len() })
/// }
/// # let _ = answer("x");
/// ```
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
