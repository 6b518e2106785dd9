//! `fanout-local e2e` (`make e2e`): the real CDK app deployed into a local AWS and proven.
//!
//! 1. ministack as the whole local AWS on a free loopback port, in its own process group.
//! 2. The prerequisites a team makes before a first deploy, through AWS APIs: the SES
//!    identity, the CRM event bus (plus a rule and queue of the test's own to read events
//!    back); and the OpenSearch stand-in that SearchWarm is pointed at by context.
//! 3. `cdk bootstrap` and `cdk deploy --all` with bundling on (cargo-lambda builds the
//!    functions; the build is timed apart, run just before with the same flags).
//!    The local AWS's CloudFormation ignores a table's Kinesis streaming destination and
//!    refuses enhanced fan-out consumers, so the streaming destination is enabled through the
//!    DynamoDB API and a Kinesis consumer's mapping reads the stream ARN
//!    (`fanout:kinesisMappingOnStream`); each mapping's source is checked against the registry.
//! 4. The demo scenario written to the deployed `Users` table; each consumer's effects awaited
//!    and checked, with every name looked up (SSM, stack outputs), never hard-coded.
//! 5. The team flow: `make diff` and `make deploy STACK=CrmSync` with a changed registry
//!    entry; only CrmSync changes, the others keep their update time and code, and the fan-out
//!    still delivers.
//! 6. A consumer stack deployed where `FanoutTables` is not fails naming the SSM parameter.
//! 7. Everything stopped, also on failure; no process of the local AWS may be left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fanout_registry::{self as registry, ConsumerEntry, Decodes};
use fanout_testkit::queues::peek_queue;
use fanout_testkit::resources::{create_bus_to_queue, create_queue, queue_arn};
use fanout_testkit::search_standin::SearchStandIn;

use crate::demo::deployed::{Deployment, parameter, run_deployed};
use crate::demo::run::parked_user_id;
use crate::demo::{DemoError, Scenario};
use crate::servers::{LOCAL_AWS_ACCOUNT, LocalAws, tools_dir};
use fanout_registry::names::{Parameter, Stage, TABLES_STACK};

/// How `make e2e` runs.
#[derive(Debug, Clone)]
pub struct E2eOptions {
    /// The Cargo profile the bundled functions are built with (`dev` or `release`).
    pub build_profile: String,
    /// How long to wait for a phase's effects.
    pub wait: Duration,
    /// Where logs and the local AWS's state go.
    pub work_dir: PathBuf,
}

/// One line of the run's story.
#[derive(Debug, Clone)]
pub struct Step {
    pub what: String,
    pub passed: bool,
    pub detail: String,
    pub seconds: f64,
}

/// The whole run.
#[derive(Debug, Default)]
pub struct E2eReport {
    pub steps: Vec<Step>,
    pub build_seconds: f64,
    pub run_seconds: f64,
    /// Processes of the local AWS still alive after it was stopped.
    pub leftover_processes: Vec<u32>,
}

impl E2eReport {
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.passed) && self.leftover_processes.is_empty()
    }

    fn record(
        &mut self,
        what: impl Into<String>,
        passed: bool,
        detail: impl Into<String>,
        since: Instant,
    ) {
        let step = Step {
            what: what.into(),
            passed,
            detail: detail.into(),
            seconds: since.elapsed().as_secs_f64(),
        };
        let mark = if step.passed { "ok  " } else { "FAIL" };
        println!(
            "e2e {mark} {:>6.1}s  {}  {}",
            step.seconds, step.what, step.detail
        );
        self.steps.push(step);
    }
}

/// The sender and identity the app's cdk.json names (`fanout:fromAddress`, `fanout:sesIdentity`),
/// and the CRM bus (`fanout:crmEventBusName`): the prerequisites a team creates before deploying.
#[derive(Debug, Clone)]
struct Prerequisites {
    from_address: String,
    ses_identity: String,
    crm_bus: String,
}

fn cdk_json_context(root: &Path) -> Result<serde_json::Value, DemoError> {
    let text = std::fs::read_to_string(root.join("infra/cdk.json"))?;
    let parsed: serde_json::Value = serde_json::from_str(&text)?;
    Ok(parsed["context"].clone())
}

impl Prerequisites {
    fn from_cdk_json(root: &Path) -> Result<Self, DemoError> {
        let context = cdk_json_context(root)?;
        let get = |key: &str| {
            context[format!("fanout:{key}")]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("infra/cdk.json has no context fanout:{key}"))
        };
        Ok(Prerequisites {
            from_address: get("fromAddress")?,
            ses_identity: get("sesIdentity")?,
            crm_bus: get("crmEventBusName")?,
        })
    }
}

/// A command run for the e2e: its combined output goes to a log file; on failure the tail is
/// returned.
struct Run<'a> {
    root: &'a Path,
    env: Vec<(String, String)>,
    log_dir: &'a Path,
}

impl Run<'_> {
    fn path_with_tools(&self) -> String {
        format!(
            "{}:{}",
            tools_dir().join("venv/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Runs `program args` at the root whatever its exit: its exit code and stdout (both
    /// streams go to the log).
    async fn output(
        &self,
        name: &str,
        program: &str,
        args: &[String],
    ) -> Result<(i32, String), String> {
        let output = tokio::process::Command::new(program)
            .args(args)
            .current_dir(self.root)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("could not run {program}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let _ = std::fs::write(
            self.log_dir.join(format!("{name}.log")),
            format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        );
        Ok((output.status.code().unwrap_or(-1), stdout))
    }

    /// Runs `program args` in `dir` (relative to the root); `Ok(output)` or `Err(output tail)`.
    async fn run(
        &self,
        name: &str,
        dir: &str,
        program: &str,
        args: &[String],
    ) -> Result<String, String> {
        let log = self.log_dir.join(format!("{name}.log"));
        let output = tokio::process::Command::new(program)
            .args(args)
            .current_dir(self.root.join(dir))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PATH", self.path_with_tools())
            // The CLI would ask before widening IAM; the e2e answers through --require-approval.
            .env("CI", "true")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("could not run {program}: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let _ = std::fs::write(&log, &text);
        if output.status.success() {
            Ok(text)
        } else {
            let tail: Vec<&str> = text.lines().rev().take(12).collect();
            Err(format!(
                "{program} {} failed ({}); log {}:\n{}",
                args.join(" "),
                output.status,
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        }
    }
}

/// Who the deployed stacks' alarms reach: addresses ministack's SNS accepts.
const E2E_PAGE_SUBSCRIBER: &str = "oncall@fanout.example";
const E2E_TICKET_SUBSCRIBER: &str = "tickets@fanout.example";

/// `cdk deploy --all`, without asking.
const DEPLOY_ALL: &[&str] = &["deploy", "--all", "--require-approval", "never"];

/// The arguments of `npx cdk <words> <context>`.
fn cdk(words: &[&str], context: &[String]) -> Vec<String> {
    std::iter::once("cdk")
        .chain(words.iter().copied())
        .map(str::to_owned)
        .chain(context.iter().cloned())
        .collect()
}

fn cdk_context_args(options: &E2eOptions, search_endpoint: &str, extra: &[String]) -> Vec<String> {
    let mut args = vec![
        "-c".to_owned(),
        "fanout:architecture=x86_64".to_owned(),
        "-c".to_owned(),
        format!("fanout:buildProfile={}", options.build_profile),
        "-c".to_owned(),
        format!("fanout:searchEndpoint={search_endpoint}"),
        // ministack refuses metric-math and Metrics Insights alarms: left out locally.
        "-c".to_owned(),
        "fanout:localAws=true".to_owned(),
        "-c".to_owned(),
        format!("fanout:pageSubscriptions={E2E_PAGE_SUBSCRIBER}"),
        "-c".to_owned(),
        format!("fanout:ticketSubscriptions={E2E_TICKET_SUBSCRIBER}"),
        // ministack refuses a mapping on an enhanced fan-out consumer ARN ("Invalid event
        // source ARN"): a Kinesis consumer's mapping reads the stream ARN locally.
        "-c".to_owned(),
        "fanout:kinesisMappingOnStream=true".to_owned(),
    ];
    args.extend_from_slice(extra);
    args
}

/// Runs the whole e2e. Returns the report; a step that could not even run is a failed step.
pub async fn run(options: &E2eOptions) -> E2eReport {
    let mut report = E2eReport::default();
    let started = Instant::now();
    let aws_server = match LocalAws::start(&options.work_dir) {
        Ok(server) => server,
        Err(err) => {
            report.record(
                "start the local AWS (ministack)",
                false,
                err.to_string(),
                started,
            );
            return report;
        }
    };
    report.record(
        "start the local AWS (ministack)",
        true,
        format!(
            "{} (log {})",
            aws_server.endpoint(),
            aws_server.log.display()
        ),
        started,
    );
    let outcome = steps(options, &aws_server, &mut report).await;
    if let Err(err) = outcome {
        report.record("the run stopped", false, err.to_string(), Instant::now());
    }
    report.run_seconds = started.elapsed().as_secs_f64() - report.build_seconds;
    let stopping = Instant::now();
    report.leftover_processes = aws_server.stop();
    let left = report.leftover_processes.clone();
    report.record(
        "stop the local AWS and every function process it started",
        left.is_empty(),
        if left.is_empty() {
            "no process left".to_owned()
        } else {
            format!("still alive: {left:?}")
        },
        stopping,
    );
    report
}

async fn steps(
    options: &E2eOptions,
    local: &LocalAws,
    report: &mut E2eReport,
) -> Result<(), DemoError> {
    let root = fanout_testkit::workspace_root();
    let log_dir = options.work_dir.clone();
    let env = local.env_vars();
    let aws = local.sdk_config().await;
    let consumers = registry::consumers()?;
    let prerequisites = Prerequisites::from_cdk_json(&root)?;
    let runner = Run {
        root: &root,
        env: env.clone(),
        log_dir: &log_dir,
    };

    // Prerequisites: what exists before a first deploy (docs/deploy.md).
    let step = Instant::now();
    let sesv2 = aws_sdk_sesv2::Client::new(&aws);
    for identity in [&prerequisites.ses_identity, &prerequisites.from_address] {
        sesv2
            .create_email_identity()
            .email_identity(identity.as_str())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "SES identity {identity}: {}",
                    aws_sdk_sesv2::error::DisplayErrorContext(&e)
                )
            })?;
    }
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let crm_queue = create_queue(&sqs, "e2e-crm-events").await?;
    create_bus_to_queue(
        &aws_sdk_eventbridge::Client::new(&aws),
        &prerequisites.crm_bus,
        &queue_arn(&sqs, &crm_queue).await?,
    )
    .await?;
    let search = SearchStandIn::start().await?;
    report.record(
        "prerequisites: SES identity, CRM bus (+ a rule and queue to read it), search stand-in",
        true,
        format!(
            "{} / {} / {}",
            prerequisites.ses_identity,
            prerequisites.crm_bus,
            search.endpoint()
        ),
        step,
    );

    // The build, apart: the same cargo-lambda command bundling runs, so bundling finds it built.
    let step = Instant::now();
    let mut build = vec![
        "lambda".to_owned(),
        "build".to_owned(),
        "--x86-64".to_owned(),
    ];
    if options.build_profile == "release" {
        build.push("--release".to_owned());
    } else {
        build.extend(["--profile".to_owned(), options.build_profile.clone()]);
    }
    for consumer in &consumers {
        build.extend(["--bin".to_owned(), consumer.crate_name.clone()]);
    }
    let built = runner.run("build", ".", "cargo", &build).await;
    report.build_seconds = step.elapsed().as_secs_f64();
    report.record(
        format!(
            "build the functions (cargo lambda build --x86-64, profile {})",
            options.build_profile
        ),
        built.is_ok(),
        built.err().unwrap_or_default(),
        step,
    );

    let context = cdk_context_args(options, &search.endpoint(), &[]);
    let step = Instant::now();
    // The CLI synthesizes the app to bootstrap, so the deployment's settings go along.
    let bootstrap = cdk(
        &[
            "bootstrap",
            &format!("aws://{LOCAL_AWS_ACCOUNT}/{}", fanout_testkit::LOCAL_REGION),
        ],
        &context,
    );
    let bootstrap = runner
        .run("cdk-bootstrap", "infra", "npx", &bootstrap)
        .await;
    report.record(
        "cdk bootstrap",
        bootstrap.is_ok(),
        bootstrap.err().unwrap_or_default(),
        step,
    );

    // The API team's own Users table, with items, that fanout attaches to.
    let attached = attach_to_api_table(&aws, &runner, report).await?;
    let context = [context, attached.clone()].concat();

    let step = Instant::now();
    let deploy = cdk(DEPLOY_ALL, &context);
    let deployed = runner.run("cdk-deploy-all", "infra", "npx", &deploy).await;
    let stacks = 1 + consumers.len();
    report.record(
        format!("cdk deploy --all ({stacks} stacks, bundling on)"),
        deployed.is_ok(),
        deployed.as_ref().err().cloned().unwrap_or_default(),
        step,
    );
    deployed?;

    let stage = Stage::default();
    let deployment = Deployment::discover(
        &aws,
        &stage,
        &consumers,
        &prerequisites.from_address,
        &crm_queue,
    )
    .await?;
    guards_deployed(&aws, &consumers, &deployment, report).await;
    if !deployment.kinesis_readers.is_empty() {
        kinesis_destination_named_then_enabled(&aws, &runner, &stage, &deployment, report).await?;
    }
    mappings_read_their_source(&aws, &consumers, &deployment, report).await;

    // The scenario, against what was deployed.
    let step = Instant::now();
    let scenario = Scenario::load(&Scenario::default_path())?;
    let demo = run_deployed(&scenario, &aws, &search, &deployment, options.wait).await?;
    let failures: Vec<String> = demo
        .failures()
        .map(|c| format!("{}: {}", c.what, c.detail))
        .collect();
    report.record(
        "the demo scenario on the deployed stacks: every effect once, the poison record parked",
        demo.passed(),
        if demo.passed() {
            format!(
                "effects: {}; parked: {}; read from Kinesis: {}",
                demo.observed
                    .effects
                    .0
                    .iter()
                    .map(|(c, e)| format!("{c}={}", e.len()))
                    .collect::<Vec<_>>()
                    .join(" "),
                demo.observed
                    .dlqs
                    .iter()
                    .map(|(c, d)| format!("{c}={}", d.parked.len()))
                    .collect::<Vec<_>>()
                    .join(" "),
                demo.kinesis_readers.join(", ")
            )
        } else {
            failures.join("; ")
        },
        step,
    );

    operated(&runner, &aws, &deployment, options.wait, report).await;

    team_flow(
        options,
        &aws,
        &runner,
        &consumers,
        &deployment,
        &context,
        report,
    )
    .await?;
    missing_prerequisite(&runner, report).await;
    consumer_before_tables(options, &runner, &search, report).await;

    let second = second_stage(
        options,
        &aws,
        &runner,
        &consumers,
        &search,
        (&prerequisites, &crm_queue),
        report,
    )
    .await?;
    stages_apart(&aws, &deployment, &second, options.wait, report).await?;
    destroyed_leaves_the_api_table(
        options,
        &aws,
        &runner,
        (&search, &consumers, &Stage::new(Some(SECOND_STAGE))?),
        &attached,
        report,
    )
    .await;
    Ok(())
}

/// The API team's table, made before fanout is deployed, as an adopting team has it.
const API_TABLE: &str = "ApiUsers";
/// Items already in it: three that keep the writer's contract, two that do not.
const API_ITEMS_KEPT: [&str; 3] = ["legacy-1", "legacy-2", "legacy-3"];
const API_ITEMS_BROKEN: [&str; 2] = ["legacy-no-email", "legacy-bad-version"];

/// The API's own Users table, created outside CDK with items in it and no stream yet:
/// `fanout-ops check-items` names the items the consumers would park; `fanout-ops preflight
/// FanoutTables` refuses it for its missing stream, naming the command; that command run (as
/// the API team would), preflight passes. Returns the context that attaches fanout to it.
async fn attach_to_api_table(
    aws: &aws_config::SdkConfig,
    runner: &Run<'_>,
    report: &mut E2eReport,
) -> Result<Vec<String>, DemoError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType, StreamSpecification, StreamViewType,
    };
    let step = Instant::now();
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    dynamodb
        .create_table()
        .table_name(API_TABLE)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("userId")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("userId")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await?;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    for user in API_ITEMS_KEPT {
        fanout_testkit::put_user(&dynamodb, API_TABLE, user, "free", 1).await;
    }
    for (user, email, version) in [
        (API_ITEMS_BROKEN[0], None, AttributeValue::N("1".to_owned())),
        (
            API_ITEMS_BROKEN[1],
            Some(format!("{}@example.com", API_ITEMS_BROKEN[1])),
            s("v2"),
        ),
    ] {
        let mut put = dynamodb
            .put_item()
            .table_name(API_TABLE)
            .item("userId", s(user))
            .item("plan", s("pro"))
            .item("version", version)
            .item("updatedAt", s("2026-11-30T09:00:00Z"));
        if let Some(email) = email {
            put = put.item("email", s(&email));
        }
        put.send().await?;
    }
    let ops = runner
        .root
        .join("target/debug/fanout-ops")
        .to_string_lossy()
        .into_owned();
    let args = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let (code, stdout) = runner
        .output(
            "ops-check-items",
            &ops,
            // Before fanout is deployed, the consumers are the app's registry.
            &args(&[
                "--registry",
                "infra/consumers",
                "check-items",
                "--users-table",
                API_TABLE,
                "--json",
            ]),
        )
        .await?;
    let checked: serde_json::Value = serde_json::from_str(&stdout)
        .map_err(|e| format!("check-items: no JSON report ({e}): {stdout}"))?;
    let mut named: Vec<&str> = checked["findings"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["key"].as_str()).collect())
        .unwrap_or_default();
    named.sort_unstable();
    let want: Vec<String> = API_ITEMS_BROKEN
        .iter()
        .map(|u| format!("userId={u}"))
        .collect();
    let mut want_sorted: Vec<&str> = want.iter().map(String::as_str).collect();
    want_sorted.sort_unstable();
    let items_judged = code == 1 && named == want_sorted && checked["checked"] == 5;
    report.record(
        format!("fanout-ops check-items over {API_TABLE}, made outside CDK with 5 items: names the 2 the consumers would park, and why"),
        items_judged,
        format!("exit {code}; would park: {}", checked["wouldPark"]),
        step,
    );

    let step = Instant::now();
    let region = fanout_testkit::LOCAL_REGION;
    let guessed =
        format!("arn:aws:dynamodb:{region}:{LOCAL_AWS_ACCOUNT}:table/{API_TABLE}/stream/none");
    let preflight = |stream: &str| {
        args(&[
            "preflight",
            TABLES_STACK,
            "-c",
            &format!("fanout:usersTableName={API_TABLE}"),
            "-c",
            &format!("fanout:usersStreamArn={stream}"),
        ])
    };
    let (code, stdout) = runner
        .output("ops-preflight-no-stream", &ops, &preflight(&guessed))
        .await?;
    let fix = format!(
        "aws dynamodb update-table --table-name {API_TABLE} --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"
    );
    let named_fix = stdout
        .lines()
        .find(|l| l.contains("has no stream") && l.contains(&fix))
        .map(str::to_owned);
    // The command preflight named, run as the API team would run it.
    let updated = dynamodb
        .update_table()
        .table_name(API_TABLE)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()?,
        )
        .send()
        .await?;
    let stream_arn = updated
        .table_description()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_owned)
        .ok_or("the table reports no stream after update-table")?;
    let (after, after_stdout) = runner
        .output("ops-preflight-attached", &ops, &preflight(&stream_arn))
        .await?;
    report.record(
        format!(
            "preflight refuses {API_TABLE} without a stream, naming the command; after it, passes"
        ),
        code == 1 && named_fix.is_some() && after == 0,
        format!(
            "{}; after: exit {after}{}",
            named_fix.unwrap_or_else(|| format!("exit {code}, no line naming `{fix}`: {stdout}")),
            if after == 0 {
                String::new()
            } else {
                format!(": {after_stdout}")
            }
        ),
        step,
    );
    Ok(vec![
        "-c".to_owned(),
        format!("fanout:usersTableName={API_TABLE}"),
        "-c".to_owned(),
        format!("fanout:usersStreamArn={stream_arn}"),
    ])
}

/// The Users table's Kinesis streaming destination: `fanout-ops preflight` of a Kinesis
/// consumer names the command that enables it (an attached table is never changed by fanout,
/// and the local AWS's CloudFormation ignores a created table's `KinesisStreamSpecification`),
/// and the command is run, before anything is written.
async fn kinesis_destination_named_then_enabled(
    aws: &aws_config::SdkConfig,
    runner: &Run<'_>,
    stage: &Stage,
    deployment: &Deployment,
    report: &mut E2eReport,
) -> Result<(), DemoError> {
    let step = Instant::now();
    let ssm = aws_sdk_ssm::Client::new(aws);
    let stream_arn = parameter(&ssm, &stage.parameter(Parameter::UsersKinesisStreamArn)).await?;
    let reader = deployment
        .kinesis_readers
        .first()
        .cloned()
        .unwrap_or_default();
    let ops = runner
        .root
        .join("target/debug/fanout-ops")
        .to_string_lossy()
        .into_owned();
    let mut preflight = vec!["preflight".to_owned(), reader.clone()];
    if let Some(name) = stage.name() {
        preflight.extend(["--stage".to_owned(), name.to_owned()]);
    }
    let (code, stdout) = runner
        .output(
            &format!(
                "ops-preflight-kinesis-{}",
                stage.name().unwrap_or("default")
            ),
            &ops,
            &preflight,
        )
        .await?;
    let named = stdout
        .lines()
        .find(|l| {
            l.contains("aws dynamodb enable-kinesis-streaming-destination")
                && l.contains(&stream_arn)
        })
        .map(str::to_owned);
    report.record(
        format!("preflight {reader} names the Kinesis streaming destination Users lacks, with the command"),
        code == 1 && named.is_some(),
        named.unwrap_or_else(|| format!("exit {code}: {stdout}")),
        step,
    );
    let step = Instant::now();
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let enabled = dynamodb
        .enable_kinesis_streaming_destination()
        .table_name(&deployment.users_table)
        .stream_arn(&stream_arn)
        .send()
        .await
        .map_err(|e| {
            format!(
                "enable the Kinesis streaming destination: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        });
    let destinations = match &enabled {
        Ok(_) => dynamodb
            .describe_kinesis_streaming_destination()
            .table_name(&deployment.users_table)
            .send()
            .await
            .map(|o| {
                o.kinesis_data_stream_destinations()
                    .iter()
                    .filter(|d| d.stream_arn() == Some(stream_arn.as_str()))
                    .filter_map(|d| d.destination_status().map(|s| s.as_str().to_owned()))
                    .collect::<Vec<_>>()
            })
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()),
        Err(err) => Err(err.clone()),
    };
    let active = destinations
        .as_ref()
        .is_ok_and(|s| s.iter().any(|s| s == "ACTIVE" || s == "ENABLING"));
    report.record(
        "the command run: Users streams to the Kinesis stream (through the DynamoDB API)",
        active,
        match &destinations {
            Ok(statuses) => format!("{} -> {stream_arn}: {statuses:?}", deployment.users_table),
            Err(err) => err.clone(),
        },
        step,
    );
    enabled?;
    Ok(())
}

/// Each consumer's deployed mapping reads the source its registry entry names: the Users
/// Kinesis stream (locally its ARN; on AWS its enhanced fan-out consumer) or the DynamoDB stream.
async fn mappings_read_their_source(
    aws: &aws_config::SdkConfig,
    consumers: &[ConsumerEntry],
    deployment: &Deployment,
    report: &mut E2eReport,
) {
    let step = Instant::now();
    let lambda = aws_sdk_lambda::Client::new(aws);
    let kinesis_arn = parameter(
        &aws_sdk_ssm::Client::new(aws),
        &Stage::default().parameter(Parameter::UsersKinesisStreamArn),
    )
    .await
    .ok();
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for consumer in consumers {
        let Some(function) = deployment.functions.get(&consumer.crate_name) else {
            problems.push(format!("{}: no function deployed", consumer.crate_name));
            continue;
        };
        let sources: Vec<String> = match lambda
            .list_event_source_mappings()
            .function_name(function)
            .send()
            .await
        {
            Ok(output) => output
                .event_source_mappings()
                .iter()
                .filter_map(|m| m.event_source_arn().map(str::to_owned))
                .collect(),
            Err(err) => {
                problems.push(format!(
                    "{}: {}",
                    consumer.crate_name,
                    aws_sdk_lambda::error::DisplayErrorContext(&err)
                ));
                continue;
            }
        };
        let expected = |arn: &str| {
            if consumer.reads_kinesis() {
                kinesis_arn.as_deref() == Some(arn)
            } else {
                arn.starts_with("arn:aws:dynamodb:") && arn.contains("/stream/")
            }
        };
        let wanted = if consumer.reads_kinesis() {
            "kinesis"
        } else {
            "dynamodb-stream"
        };
        match sources.as_slice() {
            [arn] if expected(arn) => seen.push(format!("{} {wanted}", consumer.crate_name)),
            _ => problems.push(format!(
                "{}: source {wanted}, mappings on {sources:?}",
                consumer.crate_name
            )),
        }
    }
    report.record(
        "each consumer has one mapping, on the source its registry entry names",
        problems.is_empty(),
        if problems.is_empty() {
            seen.join(", ")
        } else {
            problems.join("; ")
        },
        step,
    );
}

/// What guards the data and wakes someone, as deployed: every alarm of each stack's
/// synthesized template (`infra/cdk.out`) is a resource of the deployed stack, each with ALARM
/// and OK actions on one of the stack's two topics (page, ticket), each topic with a
/// subscriber; per consumer stack a KMS key that encrypts its DLQ, a dashboard, and a mapping
/// whose metrics (`DroppedEventCount`) are on in the template. What the local AWS refuses
/// (metric-math and Metrics Insights alarms) is not synthesized under `fanout:localAws`.
async fn guards_deployed(
    aws: &aws_config::SdkConfig,
    consumers: &[ConsumerEntry],
    deployment: &Deployment,
    report: &mut E2eReport,
) {
    let step = Instant::now();
    let cloudformation = aws_sdk_cloudformation::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    let stacks = std::iter::once(TABLES_STACK).chain(consumers.iter().map(|c| c.name.as_str()));
    for stack in stacks {
        let template = match synthesized_template(stack) {
            Ok(template) => template,
            Err(err) => {
                problems.push(format!("{stack}: {err}"));
                continue;
            }
        };
        let resources = match cloudformation
            .describe_stack_resources()
            .stack_name(stack)
            .send()
            .await
        {
            Ok(output) => output.stack_resources().to_vec(),
            Err(err) => {
                problems.push(format!(
                    "{stack}: {}",
                    aws_sdk_cloudformation::error::DisplayErrorContext(&err)
                ));
                continue;
            }
        };
        let deployed = |kind: &str| -> std::collections::BTreeSet<String> {
            resources
                .iter()
                .filter(|r| r.resource_type() == Some(kind))
                .filter_map(|r| r.logical_resource_id().map(str::to_owned))
                .collect()
        };
        let synthesized = |kind: &str| -> BTreeMap<String, serde_json::Value> {
            template["Resources"]
                .as_object()
                .map(|all| {
                    all.iter()
                        .filter(|(_, r)| r["Type"] == kind)
                        .map(|(id, r)| (id.clone(), r.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let alarms = synthesized("AWS::CloudWatch::Alarm");
        let topics = synthesized("AWS::SNS::Topic");
        let wanted: std::collections::BTreeSet<String> = alarms.keys().cloned().collect();
        if deployed("AWS::CloudWatch::Alarm") != wanted {
            problems.push(format!(
                "{stack}: alarms deployed {:?}, synthesized {wanted:?}",
                deployed("AWS::CloudWatch::Alarm")
            ));
        }
        for (id, alarm) in &alarms {
            let on_a_topic = |actions: &serde_json::Value| {
                actions.as_array().is_some_and(|a| {
                    a.len() == 1 && topics.contains_key(a[0]["Ref"].as_str().unwrap_or_default())
                })
            };
            let properties = &alarm["Properties"];
            if !on_a_topic(&properties["AlarmActions"]) || !on_a_topic(&properties["OKActions"]) {
                problems.push(format!(
                    "{stack}: alarm {id} does not send ALARM and OK to one of its topics"
                ));
            }
        }
        let subscriptions = synthesized("AWS::SNS::Subscription");
        if topics.len() != 2
            || deployed("AWS::SNS::Topic").len() != 2
            || deployed("AWS::SNS::Subscription").len() != subscriptions.len()
            || subscriptions.len() < 2
        {
            problems.push(format!(
                "{stack}: {} topic(s) and {} subscription(s) deployed; want the page and ticket topics, each with its subscriber",
                deployed("AWS::SNS::Topic").len(),
                deployed("AWS::SNS::Subscription").len()
            ));
        }
        if let Some(consumer) = consumers.iter().find(|c| c.name == stack) {
            let mappings = synthesized("AWS::Lambda::EventSourceMapping");
            let counted = mappings.values().all(|m| {
                m["Properties"]["MetricsConfig"]["Metrics"] == serde_json::json!(["EventCount"])
            });
            if mappings.len() != 1 || !counted {
                problems.push(format!(
                    "{stack}: its mapping's metrics (EventCount) are not on"
                ));
            }
            let (keys, dashboards) = (
                deployed("AWS::KMS::Key").len(),
                deployed("AWS::CloudWatch::Dashboard").len(),
            );
            if (keys, dashboards) != (1, 1) {
                problems.push(format!(
                    "{stack}: {keys} key(s), {dashboards} dashboard(s); expected 1, 1"
                ));
            }
            let encrypted = match deployment.targets.dlqs.get(&consumer.crate_name) {
                Some(url) => sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::KmsMasterKeyId)
                    .send()
                    .await
                    .ok()
                    .and_then(|o| {
                        o.attributes()?
                            .get(&aws_sdk_sqs::types::QueueAttributeName::KmsMasterKeyId)
                            .cloned()
                    })
                    .is_some_and(|key| !key.is_empty()),
                None => false,
            };
            if !encrypted {
                problems.push(format!("{stack}: its DLQ has no KMS key"));
            }
        }
        seen.push(format!("{stack} {} alarms", alarms.len()));
    }
    report.record(
        "every stack: each synthesized alarm deployed, ALARM and OK to its page or ticket topic, each topic subscribed; per consumer its DLQ under its own KMS key, a dashboard, the mapping's metrics on (local gap: the local AWS keeps no MetricsConfig; metric-math and Metrics Insights alarms are AWS-only)",
        problems.is_empty(),
        if problems.is_empty() {
            seen.join(", ")
        } else {
            problems.join("; ")
        },
        step,
    );
}

/// A stack's template as `cdk deploy` synthesized it.
fn synthesized_template(stack: &str) -> Result<serde_json::Value, DemoError> {
    let path = fanout_testkit::workspace_root()
        .join("infra/cdk.out")
        .join(format!("{stack}.template.json"));
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Update times of every stack and the code hash and environment of every function.
async fn snapshot(
    aws: &aws_config::SdkConfig,
    consumers: &[ConsumerEntry],
    deployment: &Deployment,
) -> Result<BTreeMap<String, (String, String, BTreeMap<String, String>)>, DemoError> {
    let cloudformation = aws_sdk_cloudformation::Client::new(aws);
    let lambda = aws_sdk_lambda::Client::new(aws);
    let mut state = BTreeMap::new();
    let mut stacks: Vec<(String, Option<String>)> = vec![(TABLES_STACK.to_owned(), None)];
    for consumer in consumers {
        stacks.push((
            consumer.name.clone(),
            deployment.functions.get(&consumer.crate_name).cloned(),
        ));
    }
    for (stack, function) in stacks {
        let described = cloudformation
            .describe_stacks()
            .stack_name(&stack)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "stack {stack}: {}",
                    aws_sdk_cloudformation::error::DisplayErrorContext(&e)
                )
            })?;
        let updated = described
            .stacks()
            .first()
            .and_then(|s| s.last_updated_time().or(s.creation_time()))
            .map(|t| t.to_string())
            .unwrap_or_default();
        let (code, env) = match function {
            Some(name) => {
                let config = lambda
                    .get_function_configuration()
                    .function_name(&name)
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "function {name}: {}",
                            aws_sdk_lambda::error::DisplayErrorContext(&e)
                        )
                    })?;
                (
                    config.code_sha256().unwrap_or_default().to_owned(),
                    config
                        .environment()
                        .and_then(|e| e.variables())
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                )
            }
            None => (String::new(), BTreeMap::new()),
        };
        state.insert(stack, (updated, code, env));
    }
    Ok(state)
}

/// A team changes its own registry entry and redeploys its stack alone.
async fn team_flow(
    options: &E2eOptions,
    aws: &aws_config::SdkConfig,
    runner: &Run<'_>,
    consumers: &[ConsumerEntry],
    deployment: &Deployment,
    deployed_with: &[String],
    report: &mut E2eReport,
) -> Result<(), DemoError> {
    const TEAM: &str = "CrmSync";
    let team = consumers
        .iter()
        .find(|c| c.name == TEAM)
        .ok_or("the registry has no CrmSync")?;
    let before = snapshot(aws, consumers, deployment).await?;

    // The team's change: its registry entry, copied so the checked-in one stays as it is.
    let registry_copy = options.work_dir.join("registry");
    std::fs::create_dir_all(&registry_copy)?;
    for entry in std::fs::read_dir(registry::registry_dir())? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, registry_copy.join(name))?;
        }
    }
    let entry_path = registry_copy.join(format!("{}.json", team.crate_name));
    let mut entry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&entry_path)?)?;
    let old = entry["function"]["maxConcurrency"].as_u64().unwrap_or(8);
    let new = if old > 2 { old / 2 } else { old + 1 };
    entry["function"]["maxConcurrency"] = new.into();
    std::fs::write(&entry_path, serde_json::to_string_pretty(&entry)?)?;
    let mut context = deployed_with.to_vec();
    context.extend([
        "-c".to_owned(),
        format!("fanout:registryDir={}", registry_copy.display()),
    ]);
    let make_args = |verb: &str| {
        let mut args = vec![
            verb.to_owned(),
            format!("STACK={TEAM}"),
            "ARCH=x86_64".to_owned(),
            format!("CDK_ARGS={}", context.join(" ")),
        ];
        if verb == "deploy" {
            args.push("APPROVAL=broadening".to_owned());
        }
        args
    };

    // The team's pipeline, step by step as .github/workflows/ runs it (without GitHub): the
    // plan of its change, the pull request's diff, then the deploy as prod does it (a widening
    // would stop it).
    let step = Instant::now();
    let planned = runner
        .run(
            "make-pipeline-plan",
            ".",
            "make",
            &[
                "pipeline-plan".to_owned(),
                format!("FILES=infra/consumers/{}.json", team.crate_name),
            ],
        )
        .await;
    let (plan_ok, plan_detail) = match &planned {
        Ok(text) => pipeline_plan_names_only(text, &team.crate_name),
        Err(err) => (false, err.clone()),
    };
    report.record(
        format!(
            "make pipeline-plan of a change to infra/consumers/{}.json: test-consumer and deploy of {TEAM} alone",
            team.crate_name
        ),
        plan_ok,
        plan_detail,
        step,
    );

    let step = Instant::now();
    let diff = runner
        .run("make-diff", ".", "make", &make_args("diff"))
        .await;
    let (diff_ok, diff_detail) = match &diff {
        Ok(text) => {
            let others: Vec<&String> = consumers
                .iter()
                .map(|c| &c.name)
                .filter(|n| *n != TEAM && text.contains(&format!("Stack {n}")))
                .collect();
            let shows_change =
                text.contains("MAX_CONCURRENCY") && text.contains(&format!("Stack {TEAM}"));
            (
                others.is_empty() && !text.contains("Stack FanoutTables") && shows_change,
                format!(
                    "shows {TEAM}'s MAX_CONCURRENCY {old} -> {new}: {shows_change}; other stacks shown: {others:?}"
                ),
            )
        }
        Err(err) => (false, err.clone()),
    };
    report.record(
        format!("make diff STACK={TEAM}: only {TEAM}, with the change"),
        diff_ok,
        diff_detail,
        step,
    );

    let step = Instant::now();
    let deployed = runner
        .run("make-deploy-team", ".", "make", &make_args("deploy"))
        .await;
    report.record(
        format!("make deploy STACK={TEAM} APPROVAL=broadening, as prod deploys (its registry entry changed, no permission widened)"),
        deployed.is_ok(),
        deployed.as_ref().err().cloned().unwrap_or_default(),
        step,
    );
    deployed?;

    let step = Instant::now();
    let after = snapshot(aws, consumers, deployment).await?;
    let mut problems = Vec::new();
    for (stack, (updated, code, env)) in &after {
        let Some((was_updated, was_code, was_env)) = before.get(stack) else {
            problems.push(format!("{stack} appeared"));
            continue;
        };
        if stack == TEAM {
            if updated == was_updated {
                problems.push(format!("{TEAM} was not updated"));
            }
            if env.get("MAX_CONCURRENCY") != Some(&new.to_string()) {
                problems.push(format!(
                    "{TEAM}'s MAX_CONCURRENCY is {:?}, not {new}",
                    env.get("MAX_CONCURRENCY")
                ));
            }
        } else {
            if updated != was_updated {
                problems.push(format!("{stack} was updated ({was_updated} -> {updated})"));
            }
            if code != was_code || env != was_env {
                problems.push(format!("{stack}'s function changed"));
            }
        }
    }
    report.record(
        format!(
            "only {TEAM} changed: the other stacks kept their update time, code and environment"
        ),
        problems.is_empty(),
        problems.join("; "),
        step,
    );

    // The fan-out still delivers after the redeploy.
    let step = Instant::now();
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    fanout_testkit::put_user(&dynamodb, &deployment.users_table, "zoe", "pro", 1).await;
    let sqs = aws_sdk_sqs::Client::new(aws);
    let deadline = Instant::now() + options.wait;
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        for body in fanout_testkit::queues::drain_queue(&sqs, &deployment.targets.crm_queue).await?
        {
            let event: serde_json::Value = serde_json::from_str(&body)?;
            seen |= event["detail-type"] == "UserCreated" && event["detail"]["userId"] == "zoe";
        }
        if !seen {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    report.record(
        format!("after the redeploy the fan-out still delivers (a new user reaches the CRM bus through {TEAM})"),
        seen,
        if seen { String::new() } else { "no UserCreated(zoe) on the CRM bus".to_owned() },
        step,
    );
    Ok(())
}

/// Whether `make pipeline-plan`'s output (make's own lines, then the plan's JSON) plans a
/// change of `crate` alone: its test job, its deploy, no full test, not the tables.
fn pipeline_plan_names_only(output: &str, crate_name: &str) -> (bool, String) {
    let json = output
        .find("{\n")
        .and_then(|start| output.rfind('}').map(|end| &output[start..=end]));
    let Some(plan) = json.and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()) else {
        return (false, "no plan JSON in its output".to_owned());
    };
    let crates = |key: &str| -> Vec<String> {
        plan[key]
            .as_str()
            .and_then(|list| serde_json::from_str::<Vec<serde_json::Value>>(list).ok())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p["crate"].as_str().map(str::to_owned))
            .collect()
    };
    let (tested, deployed) = (crates("test-consumers"), crates("deploy-consumers"));
    let ok = plan["full-test"] == "false"
        && plan["deploy-tables"] == "false"
        && tested == [crate_name]
        && deployed == [crate_name];
    (
        ok,
        format!(
            "full-test {}, deploy-tables {}, test-consumers {tested:?}, deploy-consumers {deployed:?}",
            plan["full-test"], plan["deploy-tables"]
        ),
    )
}

/// A prerequisite that does not exist stops `fanout-ops preflight`, named.
/// `fanout-ops` against the deployment, finding everything itself (stack outputs, SSM, the
/// function's configuration): a poison record parked by the deployed welcome-email, redriven
/// to it, fails again and stays in its DLQ; audit-log's reconcile finds every readable user's
/// row and names the poison items. (The scenario's reading of the DLQs drained them, so this
/// step parks a poison record of its own.)
async fn operated(
    runner: &Run<'_>,
    aws: &aws_config::SdkConfig,
    deployment: &Deployment,
    wait: Duration,
    report: &mut E2eReport,
) {
    let step = Instant::now();
    let parked = park_poison(aws, deployment, wait).await;
    let ops = runner.root.join("target/debug/fanout-ops");
    let ops = ops.to_string_lossy().into_owned();
    let json = |name: &'static str, args: &'static [&'static str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let ops = ops.clone();
        async move {
            let (code, stdout) = runner.output(name, &ops, &args).await?;
            let report: serde_json::Value = serde_json::from_str(&stdout)
                .map_err(|e| format!("{name}: no JSON report ({e}): {stdout}"))?;
            Ok::<_, String>((code, report))
        }
    };
    let checked = async {
        parked?;
        let (code, redrive) = json("ops-redrive", &["redrive", "welcome-email", "--json"]).await?;
        let outcomes: Vec<&str> = redrive["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["outcome"].as_str()).collect())
            .unwrap_or_default();
        if code != 1 || outcomes != ["kept"] {
            return Err(format!(
                "redrive: exit {code}, outcomes {outcomes:?}: {redrive}"
            ));
        }
        let (code, reconcile) = json(
            "ops-reconcile",
            &["reconcile", "audit-log", "--json", "--settle-seconds", "0"],
        )
        .await?;
        // The items the API table held before fanout attached have no audit row (their writes
        // were never in the stream): drift, which --repair would backfill. Every item written
        // since has its row.
        let mut drift: Vec<&str> = reconcile["drift"]
            .as_array()
            .map(|d| d.iter().filter_map(|d| d["userId"].as_str()).collect())
            .unwrap_or_default();
        drift.sort_unstable();
        let unreadable = &reconcile["unreadable"];
        let mut poison: Vec<&str> = unreadable
            .as_array()
            .map(|u| u.iter().filter_map(|id| id.as_str()).collect())
            .unwrap_or_default();
        poison.sort_unstable();
        let mut want_poison = vec!["mallory", POISON_USER];
        want_poison.extend(API_ITEMS_BROKEN);
        want_poison.sort_unstable();
        if code != 1 || drift != API_ITEMS_KEPT || poison != want_poison {
            return Err(format!("reconcile: exit {code}: {reconcile}"));
        }
        // check-items on the deployment: its consumers from the parameters their stacks
        // publish; every unreadable item is one the User-decoding consumers would park.
        let (code, items) = json("ops-check-items-deployed", &["check-items", "--json"]).await?;
        let would_park = &items["wouldPark"];
        let registered = registry::consumers().map_err(|e| e.to_string())?;
        let judged = would_park.as_object().map(|o| o.len()).unwrap_or_default();
        // Each registered consumer parks them all if it decodes users, none if it keeps raw images.
        let as_expected = registered.iter().all(|c| {
            let want = match c.decodes() {
                Some(Decodes::User) => want_poison.len() as u64,
                _ => 0,
            };
            would_park[&c.crate_name].as_u64() == Some(want)
        });
        if code != 1 || judged != registered.len() || !as_expected {
            return Err(format!("check-items: exit {code}: {items}"));
        }
        Ok(format!(
            "redrive welcome-email: {POISON_USER} kept (still poison); reconcile audit-log: {} made, drift only the items from before fanout attached {drift:?}, unreadable {unreadable}; check-items (consumers from SSM): would park {would_park}",
            reconcile["made"]
        ))
    };
    let (passed, detail) = match checked.await {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    report.record(
        "fanout-ops on the deployment (stack outputs, SSM, Lambda Invoke): redrive keeps what still fails, reconcile (checked by the function) finds only what predates the attachment, check-items judges for the consumers registered in SSM",
        passed,
        detail,
        step,
    );
}

/// The poison item `operated` writes: a paid plan (so welcome-email's filter passes it) and a
/// `version` that is not a number.
const POISON_USER: &str = "mallory-redrive";

/// Writes the poison item and waits, at most `wait`, until welcome-email has parked it.
async fn park_poison(
    aws: &aws_config::SdkConfig,
    deployment: &Deployment,
    wait: Duration,
) -> Result<(), String> {
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());
    aws_sdk_dynamodb::Client::new(aws)
        .put_item()
        .table_name(&deployment.users_table)
        .item("userId", s(POISON_USER))
        .item("plan", s("pro"))
        .item("version", s("eight"))
        .send()
        .await
        .map_err(|e| format!("writing {POISON_USER}: {}", fanout_core::error_chain(&e)))?;
    let dlq = deployment
        .targets
        .dlqs
        .get("welcome-email")
        .ok_or("no welcome-email DLQ in the deployment")?;
    let sqs = aws_sdk_sqs::Client::new(aws);
    let until = Instant::now() + wait;
    while Instant::now() < until {
        let bodies = peek_queue(&sqs, dlq).await.map_err(|e| e.to_string())?;
        let parked_poison = bodies.iter().any(|body| {
            serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|m| parked_user_id(m.get("record")?))
                .is_some_and(|user| user == POISON_USER)
        });
        if parked_poison {
            // Peeking hid it for a second; let it show again before redrive looks.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!(
        "welcome-email did not park {POISON_USER} within {wait:?}"
    ))
}

async fn missing_prerequisite(runner: &Run<'_>, report: &mut E2eReport) {
    let step = Instant::now();
    let identity = "not-verified.example";
    // Built with the workspace (`make e2e` builds it first), as `make deploy` runs it.
    let ops = runner.root.join("target/debug/fanout-ops");
    let outcome = runner
        .run(
            "preflight-missing-identity",
            ".",
            &ops.to_string_lossy(),
            &[
                "preflight".to_owned(),
                "WelcomeEmail".to_owned(),
                "-c".to_owned(),
                format!("fanout:sesIdentity={identity}"),
                "-c".to_owned(),
                format!("fanout:fromAddress=welcome@{identity}"),
            ],
        )
        .await;
    let (passed, detail) = match outcome {
        Ok(_) => (
            false,
            format!("preflight passed with the SES identity {identity} missing"),
        ),
        Err(output) => match output
            .lines()
            .find(|l| l.contains("FAIL") && l.contains(identity))
        {
            Some(line) => (true, line.trim().to_owned()),
            None => (false, output),
        },
    };
    report.record(
        "preflight names a missing prerequisite (an SES identity that does not exist)",
        passed,
        detail,
        step,
    );
}

/// A consumer stack deployed where the tables stack is not: CloudFormation must refuse it,
/// naming the SSM parameter it could not resolve.
/// A consumer that reads the Users Kinesis stream, as registered.
const KINESIS_READER: &str = "WelcomeEmail";

async fn consumer_before_tables(
    options: &E2eOptions,
    runner: &Run<'_>,
    search: &SearchStandIn,
    report: &mut E2eReport,
) {
    const OTHER_REGION: &str = "us-west-2";
    let step = Instant::now();
    let mut env = runner.env.clone();
    for (key, value) in &mut env {
        if key == "AWS_REGION" || key == "AWS_DEFAULT_REGION" {
            *value = OTHER_REGION.to_owned();
        }
    }
    let elsewhere = Run {
        root: runner.root,
        env,
        log_dir: runner.log_dir,
    };
    let context = cdk_context_args(options, &search.endpoint(), &[]);
    let bootstrap = cdk(
        &[
            "bootstrap",
            &format!("aws://{LOCAL_AWS_ACCOUNT}/{OTHER_REGION}"),
        ],
        &context,
    );
    let bootstrapped = elsewhere
        .run("cdk-bootstrap-other-region", "infra", "npx", &bootstrap)
        .await;
    let attempt = match bootstrapped {
        Ok(_) => {
            elsewhere
                .run(
                    "make-deploy-before-tables",
                    ".",
                    "make",
                    &[
                        "deploy".to_owned(),
                        format!("STACK={KINESIS_READER}"),
                        "ARCH=x86_64".to_owned(),
                        format!("CDK_ARGS={}", context.join(" ")),
                    ],
                )
                .await
        }
        Err(err) => Err(err),
    };
    let named = |output: &str| {
        output
            .lines()
            .find(|l| l.contains("/fanout/tables/"))
            .map(|l| l.trim().to_owned())
    };
    let kinesis_parameter = Stage::default().parameter(Parameter::UsersKinesisStreamArn);
    let (mut passed, mut detail) = match attempt {
        Ok(_) => (
            false,
            format!("make deploy put {KINESIS_READER} in {OTHER_REGION} without FanoutTables"),
        ),
        Err(output) => {
            let kinesis = output.lines().find(|l| l.contains(&kinesis_parameter));
            match (named(&output), kinesis) {
                (Some(line), Some(kinesis)) => {
                    (true, format!("preflight: {line}; and {}", kinesis.trim()))
                }
                _ => (
                    false,
                    format!(
                        "make deploy failed without naming the table and Kinesis parameters: {output}"
                    ),
                ),
            }
        }
    };
    // And without preflight, CloudFormation itself refuses it by the parameter's name.
    let direct = cdk(
        &[
            "deploy",
            "--exclusively",
            KINESIS_READER,
            "--require-approval",
            "never",
        ],
        &context,
    );
    match elsewhere
        .run("cdk-deploy-before-tables", "infra", "npx", &direct)
        .await
    {
        Ok(_) => {
            passed = false;
            detail.push_str("; cdk deploy without preflight succeeded");
        }
        Err(output) => match named(&output) {
            Some(line) => detail.push_str(&format!("; CloudFormation: {line}")),
            None => {
                passed = false;
                detail.push_str(&format!(
                    "; cdk deploy failed without naming the parameter: {output}"
                ));
            }
        },
    }
    report.record(
        format!("a Kinesis consumer's stack deployed before FanoutTables ({OTHER_REGION}) fails naming the missing SSM parameters, the Kinesis stream's among them"),
        passed,
        detail,
        step,
    );
}

/// The second deployment's stage, beside the first (which has none).
const SECOND_STAGE: &str = "blue";

/// A second deployment of the whole app in the same local AWS, under `fanout:stage`: its own
/// stacks, parameters, dashboards, tables (it creates its own Users), queues and functions.
async fn second_stage(
    options: &E2eOptions,
    aws: &aws_config::SdkConfig,
    runner: &Run<'_>,
    consumers: &[ConsumerEntry],
    search: &SearchStandIn,
    (prerequisites, crm_queue): (&Prerequisites, &str),
    report: &mut E2eReport,
) -> Result<Deployment, DemoError> {
    let stage = Stage::new(Some(SECOND_STAGE))?;
    let step = Instant::now();
    let context = cdk_context_args(
        options,
        &search.endpoint(),
        &["-c".to_owned(), format!("fanout:stage={SECOND_STAGE}")],
    );
    let deploy = cdk(DEPLOY_ALL, &context);
    let deployed = runner
        .run("cdk-deploy-all-second-stage", "infra", "npx", &deploy)
        .await;
    let stacks: Vec<String> = std::iter::once(TABLES_STACK)
        .chain(consumers.iter().map(|c| c.name.as_str()))
        .map(|s| stage.stack(s))
        .collect();
    report.record(
        format!(
            "a second stage beside the first: cdk deploy --all -c fanout:stage={SECOND_STAGE} ({})",
            stacks.join(", ")
        ),
        deployed.is_ok(),
        deployed.as_ref().err().cloned().unwrap_or_default(),
        step,
    );
    deployed?;
    let deployment = Deployment::discover(
        aws,
        &stage,
        consumers,
        &prerequisites.from_address,
        crm_queue,
    )
    .await?;
    if !deployment.kinesis_readers.is_empty() {
        kinesis_destination_named_then_enabled(aws, runner, &stage, &deployment, report).await?;
    }
    Ok(deployment)
}

/// A write to each stage's Users table reaches only that stage's consumers: its audit row is in
/// its own stage's UserAudit and its welcome-email and crm-sync ledger entries in its own
/// EffectLedger, and none of them in the other stage's.
async fn stages_apart(
    aws: &aws_config::SdkConfig,
    first: &Deployment,
    second: &Deployment,
    wait: Duration,
    report: &mut E2eReport,
) -> Result<(), DemoError> {
    let step = Instant::now();
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let users = [("only-first", first), ("only-second", second)];
    for (user, deployment) in users {
        fanout_testkit::put_user(&dynamodb, &deployment.users_table, user, "pro", 1).await;
    }
    // Who holds what: (user, stage index) -> audit rows and ledger entries naming the user.
    let holdings = |deployment: &Deployment, user: &'static str| {
        let dynamodb = dynamodb.clone();
        let (audit, ledger) = (
            deployment.targets.audit_table.clone(),
            deployment.targets.ledger_table.clone(),
        );
        async move {
            let rows = crate::observe::scan(&dynamodb, &audit)
                .await?
                .into_iter()
                .filter(|r| {
                    r.get("userId")
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|u| u == user)
                })
                .count();
            let entries = crate::observe::scan(&dynamodb, &ledger)
                .await?
                .into_iter()
                .filter(|e| {
                    e.get("pk")
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|pk| pk.contains(&format!("#{user}#")))
                })
                .count();
            Ok::<_, DemoError>((rows, entries))
        }
    };
    let deadline = Instant::now() + wait;
    let mut last = String::new();
    let mut apart = false;
    while !apart && Instant::now() < deadline {
        let mut seen = Vec::new();
        for (user, own) in users {
            let other = if std::ptr::eq(own, first) {
                second
            } else {
                first
            };
            seen.push((holdings(own, user).await?, holdings(other, user).await?));
        }
        // Own: an audit row and two ledger entries (welcome-email, crm-sync); other: nothing.
        apart = seen
            .iter()
            .all(|((rows, entries), (other_rows, other_entries))| {
                *rows == 1 && *entries >= 2 && *other_rows == 0 && *other_entries == 0
            });
        last = format!("{seen:?}");
        if !apart {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    report.record(
        "a write to each stage's Users table reaches only that stage's consumers (audit rows and ledger entries, own vs other)",
        apart,
        format!("((own rows, own ledger entries), (other's rows, other's entries)) per write: {last}"),
        step,
    );
    Ok(())
}

/// `cdk destroy --all` of the first deployment: every fanout stack gone, the API's Users table
/// and its items still there.
async fn destroyed_leaves_the_api_table(
    options: &E2eOptions,
    aws: &aws_config::SdkConfig,
    runner: &Run<'_>,
    (search, consumers, other_stage): (&SearchStandIn, &[ConsumerEntry], &Stage),
    attached: &[String],
    report: &mut E2eReport,
) {
    let step = Instant::now();
    let destroy = cdk(
        &["destroy", "--all", "--force"],
        &cdk_context_args(options, &search.endpoint(), attached),
    );
    let destroyed = runner
        .run("cdk-destroy-first-stage", "infra", "npx", &destroy)
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let table = dynamodb.describe_table().table_name(API_TABLE).send().await;
    let items = crate::observe::scan(&dynamodb, API_TABLE).await;
    let cloudformation = aws_sdk_cloudformation::Client::new(aws);
    let status = |stack: String| {
        let cloudformation = cloudformation.clone();
        async move {
            let described = cloudformation
                .describe_stacks()
                .stack_name(&stack)
                .send()
                .await;
            // A deleted stack is either not found by name or DELETE_COMPLETE.
            let status = described.ok().and_then(|o| {
                o.stacks()
                    .first()
                    .and_then(|s| s.stack_status().map(|st| st.as_str().to_owned()))
            });
            (
                stack,
                status.unwrap_or_else(|| "DELETE_COMPLETE".to_owned()),
            )
        }
    };
    let first = Stage::default();
    let mut left = Vec::new();
    for base in std::iter::once(TABLES_STACK).chain(consumers.iter().map(|c| c.name.as_str())) {
        let (stack, st) = status(first.stack(base)).await;
        if st != "DELETE_COMPLETE" {
            left.push(format!("{stack} {st}"));
        }
    }
    let (other, other_status) = status(other_stage.stack(TABLES_STACK)).await;
    let other_kept = other_status.ends_with("_COMPLETE") && other_status != "DELETE_COMPLETE";
    let kept = table.is_ok()
        && items
            .as_ref()
            .is_ok_and(|i| i.len() >= API_ITEMS_KEPT.len() + API_ITEMS_BROKEN.len());
    report.record(
        format!(
            "cdk destroy --all of the first deployment: its {} stacks gone, {API_TABLE} and its items kept, the other stage untouched",
            1 + consumers.len()
        ),
        destroyed.is_ok() && left.is_empty() && kept && other_kept,
        match (&destroyed, &items) {
            (Err(err), _) => err.clone(),
            (Ok(_), Ok(items)) => format!(
                "left: {left:?}; {API_TABLE}: {} item(s); {other}: {other_status}",
                items.len()
            ),
            (Ok(_), Err(err)) => format!("{API_TABLE} is gone: {err}"),
        },
        step,
    );
}
