//! The real consumer binaries, served by `cargo lambda watch`, driven through the Lambda Invoke
//! API by the local event source mapping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fanout_devstack::watch::WatchedFunction;
use fanout_esm::{InvocationOutcome, LocalMapping, MappingSettings};
use fanout_testkit::resources::{create_audit_table, create_queue, create_users_table};
use fanout_testkit::{local_sdk_config, put_user, registry, unique_name};

#[tokio::test]
async fn audit_log_binary_through_the_invoke_api_writes_one_row_per_record() {
    let aws = local_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let users = unique_name("Users");
    let audit = unique_name("UserAudit");
    let stream_arn = create_users_table(&dynamodb, &users).await.unwrap();
    create_audit_table(&dynamodb, &audit).await.unwrap();
    let dlq = create_queue(&aws_sdk_sqs::Client::new(&aws), &unique_name("audit-dlq"))
        .await
        .unwrap();

    let function = WatchedFunction::start(
        "audit-log",
        &[
            ("AUDIT_TABLE".to_owned(), audit.clone()),
            ("DLQ_URL".to_owned(), dlq.clone()),
        ],
    )
    .unwrap();

    for (user, version) in [("a", 1), ("b", 1), ("a", 2)] {
        put_user(&dynamodb, &users, user, "free", version).await;
    }
    let settings = MappingSettings {
        max_batching_window: Duration::ZERO,
        ..MappingSettings::from_json(
            registry::consumer("audit-log")
                .unwrap()
                .event_source_mapping(),
        )
        .unwrap()
    };
    let mut mapping = LocalMapping::new(
        &aws,
        &stream_arn,
        "audit-log",
        &dlq,
        settings,
        function.invoker(),
    );
    let report = mapping.poll().await.unwrap();
    assert_eq!(report.invocations.len(), 1, "{:?}", report.invocations);
    assert_eq!(report.invocations[0].outcome, InvocationOutcome::Succeeded);

    let rows = dynamodb
        .scan()
        .table_name(&audit)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(rows.count(), 3);
}
