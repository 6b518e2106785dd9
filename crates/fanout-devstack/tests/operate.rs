//! `fanout-ops redrive` and `reconcile`, run as an operator runs them (the built binary, the
//! standard endpoint variables) against the local stack: the consumers' real binaries behind
//! a local Lambda API (Invoke, GetFunctionConfiguration), their DLQs in ministack, the stream
//! in DynamoDB Local, and the local event source mapping producing parked records and
//! OnFailure records as Lambda does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_devstack::demo::DemoOptions;
use fanout_devstack::wiring::{LocalTargets, function_config, on_failure_bucket, record_shape};
use fanout_esm::{LocalLambdaApi, LocalMapping, MappingSettings, RuntimeApiHost};
use fanout_registry::ConsumerEntry;
use fanout_testkit::fault_proxy::{Calls, Fault, FaultProxy, Rule};
use fanout_testkit::queues::{drain_queue, peek_queue};
use fanout_testkit::resources::create_queue;
use fanout_testkit::ses_outbox::sent_emails;
use fanout_testkit::{local_sdk_config, ministack_url, unique_name};
use serde_json::{Value, json};

/// One consumer wired as its stack wires it: its function (behind the shared Lambda API), its
/// DLQ, its on-failure bucket (when its registry entry has one) and its mapping on the Users
/// stream.
struct Wired {
    dlq_url: String,
    on_failure_bucket: Option<String>,
    mapping: LocalMapping<Arc<RuntimeApiHost>>,
}

/// Where a stage's mappings send a batch they give up on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GiveUpTo {
    /// As each consumer's registry entry says (its DLQ, or its bucket).
    Registry,
    /// The DLQ, whatever the registry says: to produce OnFailure ranges to read again.
    Dlq,
}

/// The local stack of one test: targets, consumers, a proxy in front of ministack's services
/// (to make SES or EventBridge refuse or fail) and the Lambda API `fanout-ops` calls.
struct Stage {
    aws: aws_config::SdkConfig,
    local: LocalTargets,
    services: FaultProxy,
    consumers: HashMap<String, Wired>,
    /// Held for the test's length: the Lambda recorder forwards to it.
    _lambda: LocalLambdaApi,
    /// What `fanout-ops` calls goes through these, recorded: DynamoDB Local, ministack and the
    /// Lambda API.
    recorders: Recorders,
}

/// The proxies `fanout-ops` is pointed at, to record every AWS call it makes.
struct Recorders {
    dynamodb: FaultProxy,
    ministack: FaultProxy,
    lambda: FaultProxy,
}

impl Recorders {
    async fn start(lambda: &LocalLambdaApi) -> Recorders {
        let dynamodb = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
        Recorders {
            dynamodb: FaultProxy::start(&dynamodb).await.unwrap(),
            ministack: FaultProxy::start(&ministack_url()).await.unwrap(),
            lambda: FaultProxy::start(&lambda.endpoint()).await.unwrap(),
        }
    }

    /// The endpoint variables that send each service through its recorder.
    fn env(&self) -> Vec<(&'static str, String)> {
        let (ddb, ms) = (self.dynamodb.endpoint(), self.ministack.endpoint());
        vec![
            ("AWS_ENDPOINT_URL_DYNAMODB", ddb.clone()),
            ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", ddb),
            ("AWS_ENDPOINT_URL_SQS", ms.clone()),
            ("AWS_ENDPOINT_URL_SSM", ms.clone()),
            ("AWS_ENDPOINT_URL_S3", ms.clone()),
            ("AWS_ENDPOINT_URL_KINESIS", ms.clone()),
            ("AWS_ENDPOINT_URL_SESV2", ms.clone()),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", ms.clone()),
            ("AWS_ENDPOINT_URL_CLOUDFORMATION", ms),
            ("AWS_ENDPOINT_URL_LAMBDA", self.lambda.endpoint()),
        ]
    }

    /// Every call recorded so far, as the IAM action it takes; a call no action names is
    /// `?<service> <operation>`.
    fn actions(&self) -> Vec<String> {
        let listed = operator_actions();
        let of = |proxy: &FaultProxy, service: &str| -> Vec<String> {
            proxy
                .calls()
                .into_iter()
                .map(|call| iam_action(service, &call.operation, &listed))
                .collect()
        };
        let mut all = of(&self.dynamodb, "dynamodb");
        all.extend(of(&self.ministack, "ministack"));
        all.extend(of(&self.lambda, "lambda"));
        all
    }
}

/// `crates/fanout-ops/iam-actions.json`: what the operator policies grant.
fn operator_actions() -> Vec<String> {
    let path = fanout_testkit::workspace_root().join("crates/fanout-ops/iam-actions.json");
    let listed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    listed["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect()
}

/// The IAM action of a call recorded by the proxy of `service` (DynamoDB Local, ministack, or
/// the Lambda API): a JSON protocol's target operation, or a REST request's method and path.
fn iam_action(service: &str, operation: &str, listed: &[String]) -> String {
    let rest = |prefix: &str| operation.strip_prefix(prefix);
    let action = match service {
        "dynamodb" => Some(format!("dynamodb:{operation}")),
        "lambda" if operation.starts_with("POST ") && operation.ends_with("/invocations") => {
            Some("lambda:InvokeFunction".to_owned())
        }
        "lambda" if operation.starts_with("GET ") && operation.ends_with("/configuration") => {
            Some("lambda:GetFunctionConfiguration".to_owned())
        }
        "ministack" => match (rest("GET /v2/email/"), operation.split_once(' ')) {
            (Some(path), _) if path.starts_with("identities/") => {
                Some("ses:GetEmailIdentity".to_owned())
            }
            (Some("account"), _) => Some("ses:GetAccount".to_owned()),
            // S3, path-style: GET /<bucket> lists, GET and DELETE /<bucket>/<key> an object.
            (None, Some(("GET", path))) if path.trim_matches('/').contains('/') => {
                Some("s3:GetObject".to_owned())
            }
            (None, Some(("GET", _))) => Some("s3:ListBucket".to_owned()),
            (None, Some(("DELETE", _))) => Some("s3:DeleteObject".to_owned()),
            // A JSON protocol's target: the one listed action of that name outside DynamoDB
            // and Lambda (SQS, SSM, Kinesis, EventBridge).
            _ => listed
                .iter()
                .filter(|a| !a.starts_with("dynamodb:") && !a.starts_with("lambda:"))
                .find(|a| a.split_once(':').is_some_and(|(_, name)| name == operation))
                .cloned(),
        },
        _ => None,
    };
    action.unwrap_or_else(|| format!("?{service} {operation}"))
}

impl Stage {
    /// Wires `names`; `max_retries` overrides each mapping's retry attempts (fewer retries get
    /// a failing batch to its OnFailure record sooner).
    async fn new(names: &[&str], max_retries: Option<u32>) -> Stage {
        Self::giving_up_to(names, max_retries, GiveUpTo::Registry).await
    }

    async fn giving_up_to(names: &[&str], max_retries: Option<u32>, give_up: GiveUpTo) -> Stage {
        let aws = local_sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let run = unique_name("ops");
        let local = LocalTargets::create(&aws, &run).await.unwrap();
        let services = FaultProxy::start(&ministack_url()).await.unwrap();
        let functions_dir = DemoOptions::default().functions_dir;
        let log_dir = functions_dir.join("../operate-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let registry = fanout_testkit::registry::consumers().unwrap();
        let mut consumers = HashMap::new();
        let mut hosts = Vec::new();
        for name in names {
            let entry: &ConsumerEntry = registry.iter().find(|c| c.crate_name == *name).unwrap();
            let dlq_url = create_queue(&sqs, &format!("{name}-dlq-{run}"))
                .await
                .unwrap();
            let mut env = local
                .values(local.search.endpoint())
                .env_for(entry, &dlq_url)
                .unwrap();
            for variable in ["AWS_ENDPOINT_URL_SESV2", "AWS_ENDPOINT_URL_EVENTBRIDGE"] {
                env.push((variable.to_owned(), services.endpoint()));
            }
            let log = log_dir.join(format!("{name}-{run}.log"));
            let host = Arc::new(
                RuntimeApiHost::start(function_config(entry, &functions_dir, env, Some(log)))
                    .await
                    .unwrap(),
            );
            hosts.push(Arc::clone(&host));
            let mut settings = MappingSettings {
                max_batching_window: Duration::ZERO,
                ..MappingSettings::from_json(entry.event_source_mapping()).unwrap()
            };
            if let Some(retries) = max_retries {
                settings.maximum_retry_attempts = retries;
            }
            let mut mapping =
                LocalMapping::new(&aws, &local.stream_arn, *name, &dlq_url, settings, host)
                    .with_record_shape(record_shape(entry));
            let on_failure_bucket = on_failure_bucket(&aws, entry, &run).await.unwrap();
            if let (Some(bucket), GiveUpTo::Registry) = (&on_failure_bucket, give_up) {
                mapping = mapping.with_on_failure_bucket(bucket);
            }
            consumers.insert(
                (*name).to_owned(),
                Wired {
                    dlq_url,
                    on_failure_bucket,
                    mapping,
                },
            );
        }
        let lambda = LocalLambdaApi::start(hosts).await.unwrap();
        let recorders = Recorders::start(&lambda).await;
        Stage {
            aws,
            local,
            services,
            consumers,
            _lambda: lambda,
            recorders,
        }
    }

    /// Writes a user as the API does: every write bumps `version`, `updatedAt` is now.
    async fn put(&self, user: &str, plan: &str, version: u64) {
        aws_sdk_dynamodb::Client::new(&self.aws)
            .put_item()
            .table_name(&self.local.users_table)
            .item("userId", AttributeValue::S(user.to_owned()))
            .item("email", AttributeValue::S(format!("{user}@example.com")))
            .item("plan", AttributeValue::S(plan.to_owned()))
            .item("version", AttributeValue::N(version.to_string()))
            .item(
                "updatedAt",
                AttributeValue::S(fanout_core::time::rfc3339_now()),
            )
            .send()
            .await
            .unwrap();
    }

    /// Runs `name`'s mapping until the stream has nothing more for it.
    async fn deliver(&mut self, name: &str) {
        let wired = self.consumers.get_mut(name).unwrap();
        wired.mapping.poll_until_idle().await.unwrap();
        wired.mapping.poll_until_idle().await.unwrap();
    }

    fn dlq(&self, name: &str) -> &str {
        &self.consumers[name].dlq_url
    }

    async fn dlq_bodies(&self, name: &str) -> Vec<String> {
        // Peeked messages hide for a second: wait it out so the next read sees them.
        let bodies = peek_queue(&aws_sdk_sqs::Client::new(&self.aws), self.dlq(name))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        bodies
    }

    async fn send_to_dlq(&self, name: &str, body: &str) {
        aws_sdk_sqs::Client::new(&self.aws)
            .send_message()
            .queue_url(self.dlq(name))
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    async fn emails_to(&self, user: &str) -> usize {
        sent_emails(&ministack_url(), &self.local.sender)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.to.iter().any(|to| to == &format!("{user}@example.com")))
            .count()
    }

    /// The CRM events published since the last call: (userId, version, detail-type).
    async fn crm_events(&self) -> Vec<(String, u64, String)> {
        drain_queue(&aws_sdk_sqs::Client::new(&self.aws), &self.local.crm_queue)
            .await
            .unwrap()
            .iter()
            .map(|body| {
                let event: Value = serde_json::from_str(body).unwrap();
                (
                    event["detail"]["userId"].as_str().unwrap().to_owned(),
                    event["detail"]["version"].as_u64().unwrap(),
                    event["detail-type"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Runs the `fanout-ops` binary with the local endpoints; returns its exit code, stdout
    /// (JSON under `--json`) and stderr.
    fn ops(&self, args: &[&str]) -> (i32, String, String) {
        self.ops_with(args, &[])
    }

    fn ops_with(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let binary = DemoOptions::default().functions_dir.join("fanout-ops");
        assert!(
            binary.is_file(),
            "{} missing: `make test` builds it first",
            binary.display()
        );
        // No stack publishes the registry entries here: read them from the workspace's folder.
        let registry = fanout_testkit::workspace_root().join("infra/consumers");
        let output = Command::new(binary)
            .arg("--registry")
            .arg(registry)
            .args(args)
            .envs(self.recorders.env())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        // Every AWS call it made is one the operator policies grant.
        let listed = operator_actions();
        let unlisted: Vec<String> = self
            .recorders
            .actions()
            .into_iter()
            .filter(|a| !listed.contains(a))
            .collect();
        assert!(
            unlisted.is_empty(),
            "fanout-ops {args:?} called {unlisted:?}, which crates/fanout-ops/iam-actions.json (and so the operator policies) does not grant"
        );
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `fanout-ops <command> <name> --json` with the consumer's function and DLQ named by flag
    /// (there is no stack to look them up in), and its JSON report.
    fn report(&self, command: &str, name: &str, extra: &[&str]) -> (i32, Value) {
        let mut args = vec![
            command,
            name,
            "--json",
            "--function-name",
            name,
            "--dlq-url",
            self.dlq(name),
        ];
        if let Some(bucket) = &self.consumers[name].on_failure_bucket {
            args.extend(["--on-failure-bucket", bucket.as_str()]);
        }
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = self.ops(&args);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("{command} printed no JSON report ({e}): {stdout}\n{stderr}")
        });
        (code, report)
    }

    fn redrive(&self, name: &str, extra: &[&str]) -> (i32, Value) {
        self.report("redrive", name, extra)
    }

    /// Reconcile over this stage's table, judging every item at once (no settle time, no
    /// rate bound).
    fn reconcile(&self, name: &str, extra: &[&str]) -> (i32, Value) {
        let mut args = vec![
            "--users-table",
            &self.local.users_table,
            "--settle-seconds",
            "0",
            "--rate",
            "0",
        ];
        args.extend_from_slice(extra);
        self.report("reconcile", name, &args)
    }
}

fn outcomes(report: &Value) -> Vec<String> {
    report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parked_record_is_redriven_once_the_target_is_fixed_and_never_twice() {
    let mut stage = Stage::new(&["welcome-email"], None).await;
    // SES refuses the address: a permanent failure, parked with the full record.
    stage.services.add(Rule::new(
        "SendEmail",
        Calls::Every,
        Fault::Rejected {
            status: 400,
            code: "BadRequestException".to_owned(),
        },
    ));
    stage.put("ada", "free", 1).await;
    stage.put("ada", "pro", 2).await;
    stage.deliver("welcome-email").await;
    let parked = stage.dlq_bodies("welcome-email").await;
    assert_eq!(parked.len(), 1, "one parked record: {parked:?}");

    // --dry-run says what it would send and why it was parked, and sends nothing.
    let (code, report) = stage.redrive("welcome-email", &["--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(outcomes(&report), ["dry-run"]);
    assert_eq!(report["messages"][0]["records"], 1);
    let reason = report["messages"][0]["parkedReason"].as_str().unwrap();
    assert!(reason.contains("BadRequestException"), "{reason}");
    assert!(!reason.contains("ada@example.com"), "scrubbed: {reason}");
    let (code, text, _) = stage.ops(&[
        "redrive",
        "welcome-email",
        "--dry-run",
        "--function-name",
        "welcome-email",
        "--dlq-url",
        stage.dlq("welcome-email"),
    ]);
    assert_eq!(code, 0);
    assert!(
        text.contains("BadRequestException"),
        "the summary shows why: {text}"
    );
    assert_eq!(stage.emails_to("ada").await, 0);

    // Still refused: reported failed, kept, and not parked a second time.
    let (code, report) = stage.redrive("welcome-email", &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(outcomes(&report), ["kept"]);
    assert_eq!(stage.dlq_bodies("welcome-email").await.len(), 1);

    // The fix (SES accepts the address): processed once, message deleted.
    stage.services.clear();
    let (code, report) = stage.redrive("welcome-email", &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(outcomes(&report), ["redriven"]);
    assert_eq!(stage.emails_to("ada").await, 1);
    assert!(stage.dlq_bodies("welcome-email").await.is_empty());

    // Redriving again (the same message once more, as a second operator might): no new effect.
    let (code, report) = stage.redrive("welcome-email", &[]);
    assert_eq!((code, outcomes(&report).len()), (0, 0));
    stage.send_to_dlq("welcome-email", &parked[0]).await;
    let (code, report) = stage.redrive("welcome-email", &[]);
    assert_eq!((code, outcomes(&report)), (0, vec!["redriven".to_owned()]));
    assert_eq!(
        stage.emails_to("ada").await,
        1,
        "the ledger makes a second redrive a no-op"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_on_failure_range_is_read_again_from_the_stream_and_delivered_in_order() {
    let mut stage = Stage::giving_up_to(&["crm-sync"], Some(2), GiveUpTo::Dlq).await;
    // EventBridge down: every batch fails until the mapping gives up and sends its range.
    stage
        .services
        .add(Rule::new("PutEvents", Calls::Every, Fault::Status(500)));
    stage.put("bo", "free", 1).await;
    stage.put("bo", "pro", 2).await;
    stage.put("bo", "enterprise", 3).await;
    stage.deliver("crm-sync").await;
    let on_failure = stage.dlq_bodies("crm-sync").await;
    assert!(!on_failure.is_empty(), "the mapping sent OnFailure records");
    assert!(
        on_failure.iter().all(|b| b.contains("DDBStreamBatchInfo")),
        "{on_failure:?}"
    );
    assert!(stage.crm_events().await.is_empty());

    // A trimmed range, a message that is neither kind: reported, kept, pointed at reconcile.
    let mut trimmed: Value = serde_json::from_str(&on_failure[0]).unwrap();
    trimmed["DDBStreamBatchInfo"]["approximateArrivalOfFirstRecord"] = json!(
        fanout_core::time::rfc3339(std::time::SystemTime::now() - Duration::from_secs(25 * 3600))
    );
    stage.send_to_dlq("crm-sync", &trimmed.to_string()).await;
    stage.send_to_dlq("crm-sync", r#"{"hello":"world"}"#).await;

    stage.services.clear();
    let (code, report) = stage.redrive("crm-sync", &[]);
    assert_eq!(code, 1, "messages stay: {report}");
    let mut seen = outcomes(&report);
    seen.sort();
    let mut expected = vec!["redriven".to_owned(); on_failure.len()];
    expected.extend(["trimmed".to_owned(), "unrecognised".to_owned()]);
    expected.sort();
    assert_eq!(seen, expected, "{report}");
    let bucket = stage.consumers["crm-sync"]
        .on_failure_bucket
        .clone()
        .unwrap();
    let (_, human, _) = stage.ops(&[
        "redrive",
        "crm-sync",
        "--dry-run",
        "--function-name",
        "crm-sync",
        "--dlq-url",
        stage.dlq("crm-sync"),
        "--on-failure-bucket",
        &bucket,
    ]);
    assert!(human.contains("reconcile crm-sync --repair"), "{human}");

    // Each version's event, once, in stream order.
    let events = stage.crm_events().await;
    let versions: Vec<u64> = events.iter().map(|(_, v, _)| *v).collect();
    assert_eq!(versions, [1, 2, 3], "{events:?}");
    assert_eq!(
        stage.dlq_bodies("crm-sync").await.len(),
        2,
        "the trimmed and the unknown message stay"
    );

    // The same ranges again: read, delivered, deduplicated by the ledger.
    for body in &on_failure {
        stage.send_to_dlq("crm-sync", body).await;
    }
    let (_, report) = stage.redrive("crm-sync", &[]);
    assert_eq!(
        outcomes(&report)
            .iter()
            .filter(|o| *o == "redriven")
            .count(),
        on_failure.len()
    );
    assert!(
        stage.crm_events().await.is_empty(),
        "a second redrive publishes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_given_up_on_is_redriven_from_its_on_failure_object_after_the_stream_is_gone() {
    // crm-sync's registry entry sends what its mapping gives up on, whole, to a bucket.
    let mut stage = Stage::new(&["crm-sync"], Some(2)).await;
    let bucket = stage.consumers["crm-sync"]
        .on_failure_bucket
        .clone()
        .unwrap();
    stage
        .services
        .add(Rule::new("PutEvents", Calls::Every, Fault::Status(500)));
    stage.put("flo", "free", 1).await;
    stage.put("flo", "pro", 2).await;
    stage.deliver("crm-sync").await;
    assert!(stage.crm_events().await.is_empty());
    assert!(
        stage.dlq_bodies("crm-sync").await.is_empty(),
        "not the queue"
    );
    let s3 = fanout_esm::s3_client(&stage.aws);
    let keys = |s3: aws_sdk_s3::Client, bucket: String| async move {
        s3.list_objects_v2()
            .bucket(&bucket)
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let objects = keys(s3.clone(), bucket.clone()).await;
    assert!(
        !objects.is_empty(),
        "the mapping gave the batch up to its bucket"
    );
    let first = s3
        .get_object()
        .bucket(&bucket)
        .key(&objects[0])
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();

    // The stream is gone (the table deleted, as 24 h of trimming would leave the range): an
    // OnFailure record in a queue could no longer be redriven; the object holds the records.
    aws_sdk_dynamodb::Client::new(&stage.aws)
        .delete_table()
        .table_name(&stage.local.users_table)
        .send()
        .await
        .unwrap();
    stage.services.clear();
    let (code, report) = stage.redrive("crm-sync", &["--dry-run"]);
    assert_eq!(code, 0, "{report}");
    assert!(outcomes(&report).iter().all(|o| o == "dry-run"), "{report}");
    assert_eq!(report["messages"][0]["kind"], "on-failure-object");
    let (code, report) = stage.redrive("crm-sync", &[]);
    assert_eq!(code, 0, "{report}");
    assert!(
        outcomes(&report).iter().all(|o| o == "redriven"),
        "{report}"
    );
    let mut events = stage.crm_events().await;
    events.sort();
    assert_eq!(
        events,
        [
            ("flo".to_owned(), 1, "UserCreated".to_owned()),
            ("flo".to_owned(), 2, "UserPlanChanged".to_owned())
        ],
        "each effect once"
    );
    assert!(
        keys(s3.clone(), bucket.clone()).await.is_empty(),
        "redriven objects are deleted"
    );

    // The same object again (a second operator, a restored copy): nothing new.
    s3.put_object()
        .bucket(&bucket)
        .key(&objects[0])
        .body(first.into())
        .send()
        .await
        .unwrap();
    let (code, report) = stage.redrive("crm-sync", &[]);
    assert_eq!((code, outcomes(&report)), (0, vec!["redriven".to_owned()]));
    assert!(
        stage.crm_events().await.is_empty(),
        "the ledger makes it a no-op"
    );
}

/// The data DynamoDB puts on its Kinesis stream for one write of `user` in `table` (AWS's
/// documented shape), as `fanout_esm` builds it for the local mapping.
fn kinesis_change_data(table: &str, user: &str, plan: &str, version: u64) -> (Vec<u8>, String) {
    let image = |plan: &str, version: u64| {
        json!({"userId": {"S": user}, "email": {"S": format!("{user}@example.com")},
               "plan": {"S": plan}, "version": {"N": version.to_string()},
               "updatedAt": {"S": "2026-12-01T10:00:00Z"}})
    };
    let mut dynamodb = json!({"ApproximateCreationDateTime": 1_764_583_200 + version,
        "Keys": {"userId": {"S": user}}, "NewImage": image(plan, version), "SizeBytes": 120});
    if version > 1 {
        dynamodb["OldImage"] = image("free", version - 1);
    }
    let change = json!({
        "eventID": format!("{user}-{version}"),
        "eventName": if version == 1 { "INSERT" } else { "MODIFY" },
        "awsRegion": fanout_testkit::LOCAL_REGION,
        "eventSourceARN": format!("arn:aws:dynamodb:local:000000000000:table/{table}/stream/x"),
        "dynamodb": dynamodb,
    });
    let record =
        fanout_esm::record::kinesis_record_json(&change, "0", "arn:aws:kinesis:x:0:stream/s");
    let data = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        record["kinesis"]["data"].as_str().unwrap(),
    )
    .unwrap();
    (
        data,
        record["kinesis"]["partitionKey"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kinesis_on_failure_range_is_read_again_from_the_kinesis_stream() {
    let stage = Stage::new(&["search-warm"], None).await;
    let kinesis = aws_sdk_kinesis::Client::new(&stage.aws);
    let stream = unique_name("users-changes");
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let stream_arn = kinesis
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    let mut put = Vec::new();
    for (plan, version) in [("free", 1), ("pro", 2), ("enterprise", 3)] {
        let (data, partition_key) =
            kinesis_change_data(&stage.local.users_table, "kim", plan, version);
        let output = kinesis
            .put_record()
            .stream_arn(&stream_arn)
            .partition_key(partition_key)
            .data(aws_smithy_types::Blob::new(data))
            .send()
            .await
            .unwrap();
        put.push((output.shard_id, output.sequence_number));
    }
    let batch_info = |start: &str, end: &str| {
        json!({"requestContext": {"condition": "RetryAttemptsExhausted"},
               "KinesisBatchInfo": {"shardId": put[0].0, "startSequenceNumber": start,
                   "endSequenceNumber": end, "batchSize": 3, "streamArn": stream_arn,
                   "approximateArrivalOfFirstRecord": fanout_core::time::rfc3339_now(),
                   "approximateArrivalOfLastRecord": fanout_core::time::rfc3339_now()}})
        .to_string()
    };
    // The three writes as the mapping gave up on them; and a range whose start the stream no
    // longer holds (a sequence number before the shard's first record).
    stage
        .send_to_dlq("search-warm", &batch_info(&put[0].1, &put[2].1))
        .await;
    stage
        .send_to_dlq("search-warm", &batch_info("1", &put[2].1))
        .await;

    let (code, report) = stage.redrive("search-warm", &[]);
    assert_eq!(code, 1, "the trimmed range stays: {report}");
    let mut seen = outcomes(&report);
    seen.sort();
    assert_eq!(seen, ["redriven", "trimmed"], "{report}");
    let redriven = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["outcome"] == "redriven")
        .unwrap();
    let sent: Vec<&str> = redriven["sequenceNumbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = put.iter().map(|(_, seq)| seq.as_str()).collect();
    assert_eq!(
        sent, expected,
        "the range, in Kinesis order, by Kinesis sequence number"
    );
    let documents = stage.local.search.documents("users");
    let kim: Vec<_> = documents.iter().filter(|(id, _, _)| id == "kim").collect();
    assert_eq!(kim.len(), 1, "{documents:?}");
    assert_eq!(
        kim[0].2["version"], 3,
        "the index holds the last version: {documents:?}"
    );
    assert_eq!(kim[0].2["plan"], "enterprise");
    assert_eq!(
        stage.dlq_bodies("search-warm").await.len(),
        1,
        "only the trimmed range stays; no redriven record was parked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_named_and_deletes_nothing() {
    let stage = Stage::new(&["audit-log"], None).await;
    stage.send_to_dlq("audit-log", "not json at all").await;

    let (code, _, stderr) = stage.ops(&["redrive", "nobody"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no consumer nobody") && stderr.contains("crm-sync"),
        "{stderr}"
    );

    // The Lambda API unreachable: the stack outputs cannot even be asked without flags, and
    // with them the message is received, found unrecognisable, and kept.
    let (code, report) = stage.redrive("audit-log", &[]);
    assert_eq!(
        (code, outcomes(&report)),
        (1, vec!["unrecognised".to_owned()])
    );

    // An item to judge: its check is asked of the function, which cannot be reached.
    stage.put("ula", "pro", 1).await;
    let (code, _, stderr) = stage.ops_with(
        &[
            "reconcile",
            "audit-log",
            "--function-name",
            "audit-log",
            "--dlq-url",
            stage.dlq("audit-log"),
            "--users-table",
            &stage.local.users_table,
            "--settle-seconds",
            "0",
        ],
        &[("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9")],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("Lambda Invoke audit-log"), "{stderr}");
    let (code, _, stderr) = stage.ops_with(
        &[
            "redrive",
            "audit-log",
            "--function-name",
            "audit-log",
            "--dlq-url",
            stage.dlq("audit-log"),
        ],
        &[("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("ReceiveMessage"), "{stderr}");
    assert_eq!(
        stage.dlq_bodies("audit-log").await.len(),
        1,
        "nothing was deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discard_takes_out_only_the_parked_records_it_is_told_and_says_what_they_were() {
    let mut stage = Stage::new(&["search-warm"], None).await;
    // A strict index that does not know `name`: every document is refused (400), parked.
    reqwest::Client::new()
        .put(format!("{}/users", stage.local.search.endpoint()))
        .json(&json!({"mappings": {"dynamic": "strict", "properties": {
            "userId": {"type": "keyword"}}}}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    for (user, version) in [("ann", 1), ("bea", 1), ("cy", 1)] {
        stage.put(user, "free", version).await;
    }
    stage.deliver("search-warm").await;
    let parked = stage.dlq_bodies("search-warm").await;
    assert_eq!(parked.len(), 3, "{parked:?}");
    // Each parked record's change (the Kinesis record's data, decoded), by user.
    let changes: Vec<Value> = parked
        .iter()
        .map(|body| {
            let message: Value = serde_json::from_str(body).unwrap();
            fanout_core::read_record(&message["record"]).change
        })
        .collect();
    let ann = changes
        .iter()
        .find(|c| c["dynamodb"]["Keys"]["userId"]["S"] == "ann")
        .map(|c| c["eventID"].as_str().unwrap().to_owned())
        .unwrap();
    let discard = |extra: &[&str]| {
        let mut args = vec!["--users-table", stage.local.users_table.as_str()];
        args.extend_from_slice(extra);
        stage.report("discard", "search-warm", &args)
    };

    // Neither --event-id nor --superseded: refused, nothing touched.
    let (code, _, stderr) = stage.ops(&[
        "discard",
        "search-warm",
        "--dlq-url",
        stage.dlq("search-warm"),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--event-id"), "{stderr}");

    // --dry-run names the record and deletes nothing; an unknown id is exit 1.
    let (code, report) = discard(&["--event-id", &ann, "--event-id", "no-such-id", "--dry-run"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["notFound"], json!(["no-such-id"]));
    assert_eq!(report["discarded"][0]["key"], "userId=ann");
    assert_eq!(report["discarded"][0]["version"], 1);
    assert!(
        report["discarded"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("strict_dynamic_mapping_exception"),
        "{report}"
    );
    assert_eq!(stage.dlq_bodies("search-warm").await.len(), 3);

    // By event ID: exactly that one goes.
    let (code, report) = discard(&["--event-id", &ann]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["discarded"].as_array().unwrap().len(), 1);
    assert_eq!(stage.dlq_bodies("search-warm").await.len(), 2);

    // Superseded: bea is written again (version 2), cy is not; only bea's record goes.
    stage.put("bea", "pro", 2).await;
    let (code, report) = discard(&["--superseded"]);
    assert_eq!(code, 0, "{report}");
    let gone: Vec<&str> = report["discarded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(gone, ["userId=bea"], "{report}");
    assert!(
        report["discarded"][0]["why"]
            .as_str()
            .unwrap()
            .contains("version 2")
    );
    let left = stage.dlq_bodies("search-warm").await;
    assert_eq!(left.len(), 1);
    let message: Value = serde_json::from_str(&left[0]).unwrap();
    assert_eq!(
        fanout_core::read_record(&message["record"]).change["dynamodb"]["Keys"]["userId"]["S"],
        "cy"
    );
}

#[test]
fn reconcile_refuses_zero_segments_in_one_line() {
    let binary = DemoOptions::default().functions_dir.join("fanout-ops");
    let output = Command::new(binary)
        .args(["reconcile", "audit-log", "--segments", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least one segment"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_finds_exactly_the_drift_made_and_repairs_it_once() {
    let names = ["welcome-email", "crm-sync", "search-warm", "audit-log"];
    let mut stage = Stage::new(&names, None).await;
    stage.put("amy", "free", 1).await;
    stage.put("amy", "pro", 2).await;
    stage.put("ben", "pro", 1).await;
    stage.put("cal", "free", 1).await;
    for name in names {
        stage.deliver(name).await;
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(&stage.aws);
    let delete_ledger = |key: &str| {
        dynamodb
            .delete_item()
            .table_name(&stage.local.ledger_table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .send()
    };
    // The drift: a welcome and a CRM event whose ledger entries are gone, an audit row
    // missing, and a search document left behind by a write search-warm never saw.
    delete_ledger("welcome-email#ben#pro").await.unwrap();
    delete_ledger("crm-sync#amy#2#UserPlanChanged")
        .await
        .unwrap();
    let cal_rows = dynamodb
        .query()
        .table_name(&stage.local.audit_table)
        .key_condition_expression("userId = :u")
        .expression_attribute_values(":u", AttributeValue::S("cal".to_owned()))
        .send()
        .await
        .unwrap();
    let cal_row = &cal_rows.items()[0];
    dynamodb
        .delete_item()
        .table_name(&stage.local.audit_table)
        .key("userId", cal_row["userId"].clone())
        .key("auditId", cal_row["auditId"].clone())
        .send()
        .await
        .unwrap();
    stage.put("dan", "free", 1).await;
    stage.deliver("search-warm").await;
    stage.put("dan", "free", 2).await;
    for name in ["welcome-email", "crm-sync", "audit-log"] {
        stage.deliver(name).await;
    }
    stage.crm_events().await;
    let emails_before = stage.emails_to("ben").await;
    let audit_rows = |user: &'static str| {
        let dynamodb = dynamodb.clone();
        let table = stage.local.audit_table.clone();
        async move {
            dynamodb
                .query()
                .table_name(table)
                .key_condition_expression("userId = :u")
                .expression_attribute_values(":u", AttributeValue::S(user.to_owned()))
                .send()
                .await
                .unwrap()
                .count()
        }
    };

    let drift = |report: &Value| -> Vec<(String, u64)> {
        report["drift"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["userId"].as_str().unwrap().to_owned(),
                    d["version"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let expected = [
        ("welcome-email", ("ben", 1)),
        ("crm-sync", ("amy", 2)),
        ("audit-log", ("cal", 1)),
        ("search-warm", ("dan", 2)),
    ];
    for (name, (user, version)) in expected {
        let (code, report) = stage.reconcile(name, &[]);
        assert_eq!(code, 1, "{name}: drift is exit 1: {report}");
        assert_eq!(
            drift(&report),
            [(user.to_owned(), version)],
            "{name}: {report}"
        );
        assert_eq!(report["scanned"], 4, "{name}");

        let (code, report) = stage.reconcile(name, &["--repair"]);
        assert_eq!(code, 0, "{name}: repaired: {report}");
        assert_eq!(report["repair"]["repaired"], 1, "{name}: {report}");

        let (code, report) = stage.reconcile(name, &["--repair"]);
        assert_eq!(code, 0, "{name}: {report}");
        assert!(drift(&report).is_empty(), "{name}: nothing left: {report}");
        assert_eq!(report["repair"]["invocations"], 0, "{name}");
    }
    // Each repair made its effect once.
    assert_eq!(stage.emails_to("ben").await, emails_before + 1);
    let crm = stage.crm_events().await;
    assert_eq!(
        crm,
        [("amy".to_owned(), 2, "UserCreated".to_owned())],
        "{crm:?}"
    );
    assert_eq!(audit_rows("cal").await, 1);
    assert_eq!(
        stage
            .local
            .search
            .document("users", "dan")
            .unwrap()
            .source
            .unwrap()["version"],
        2
    );
}
