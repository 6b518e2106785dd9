//! Lambda entry point: configuration and clients once at cold start, then serve batches (and
//! `fanout-ops reconcile`'s checks).

use fanout_core::{Env, lambda, telemetry};
use welcome_email::{CONSUMER, WelcomeCheck, WelcomeEmail, WelcomeEmailConfig};

#[global_allocator]
static ALLOCATOR: lambda::Allocator = lambda::Allocator;

// One thread, as fanout_core::lambda::serve explains.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda::Error> {
    telemetry::init_tracing();
    let config = WelcomeEmailConfig::from_env(&Env::from_process())
        .map_err(|err| lambda::cold_start_failure(CONSUMER, err))?;
    let aws = lambda::aws_config().await;
    let (processor, handler) = WelcomeEmail::from_config(&aws, &config);
    let check = WelcomeCheck::from_config(&aws, &config);
    lambda::serve(processor, handler, check).await
}
