//! How long `fanout-ops reconcile audit-log` takes over N users on the local stack (a bench
//! binary, not a test: `make reconcile-scale N=10000`). Seeds N users and one audit row each,
//! then runs the built `fanout-ops` binary as an operator would and prints its report line.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use fanout_devstack::demo::DemoOptions;
use fanout_devstack::observe::Described;
use fanout_devstack::wiring::{LocalTargets, function_config};
use fanout_esm::{LocalLambdaApi, RuntimeApiHost};
use fanout_registry::descriptor::ObservedIn;
use fanout_testkit::resources::create_queue;
use fanout_testkit::{local_sdk_config, unique_name};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let users: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);
    let aws = local_sdk_config().await;
    let run = unique_name("scale");
    let local = LocalTargets::create(&aws, &run).await?;
    let dlq = create_queue(&aws_sdk_sqs::Client::new(&aws), &format!("dlq-{run}")).await?;
    // The consumer whose effects are audit rows: its check reads them back, one Query a user.
    let audited = Described::all()?
        .into_iter()
        .find(|c| c.descriptor.observed_in == ObservedIn::AuditTable)
        .ok_or("no registered consumer writes the audit table")?;
    let entry = &audited.entry;
    let consumer = entry.crate_name.as_str();
    let env = local.values(local.search.endpoint()).env_for(entry, &dlq)?;
    let functions = DemoOptions::default().functions_dir;
    let host = RuntimeApiHost::start(function_config(entry, &functions, env, None)).await?;
    let lambda = LocalLambdaApi::start(vec![Arc::new(host)]).await?;

    let seeding = Instant::now();
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let now = fanout_core::time::rfc3339_now();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    for chunk in (0..users).collect::<Vec<_>>().chunks(25) {
        let mut user_puts = Vec::new();
        let mut audit_puts = Vec::new();
        for i in chunk {
            let id = format!("user-{i:06}");
            let user = HashMap::from([
                ("userId".to_owned(), s(&id)),
                ("email".to_owned(), s(&format!("{id}@example.com"))),
                ("plan".to_owned(), s("free")),
                ("version".to_owned(), AttributeValue::N("1".to_owned())),
                ("updatedAt".to_owned(), s(&now)),
            ]);
            let row = HashMap::from([
                ("userId".to_owned(), s(&id)),
                ("auditId".to_owned(), s(&format!("{i:040}#seed"))),
                ("version".to_owned(), AttributeValue::N("1".to_owned())),
            ]);
            for (puts, item) in [(&mut user_puts, user), (&mut audit_puts, row)] {
                puts.push(
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                        .build(),
                );
            }
        }
        for (table, puts) in [
            (&local.users_table, user_puts),
            (&local.audit_table, audit_puts),
        ] {
            let mut pending = HashMap::from([(table.clone(), puts)]);
            while !pending.is_empty() {
                let output = dynamodb
                    .batch_write_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await?;
                pending = output.unprocessed_items.unwrap_or_default();
                pending.retain(|_, v| !v.is_empty());
            }
        }
    }
    println!(
        "seeded {users} users and their audit rows in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    for segments in ["1", "4"] {
        let output = Command::new(functions.join("fanout-ops"))
            .arg("--registry")
            .arg(fanout_registry::workspace_root().join("infra/consumers"))
            .args([
                "reconcile",
                consumer,
                "--function-name",
                consumer,
                "--dlq-url",
                &dlq,
                "--users-table",
                &local.users_table,
                "--settle-seconds",
                "0",
                "--rate",
                "0",
                "--segments",
                segments,
            ])
            .env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint())
            .output()?;
        println!(
            "segments {segments}: {}",
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .last()
                .unwrap_or("no report")
        );
    }
    Ok(())
}
