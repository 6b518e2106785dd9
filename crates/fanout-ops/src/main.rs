//! `fanout-ops`: operating fanout. Each command is a module of the library.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use clap::{Parser, Subcommand};
use fanout_ops::check_items;
use fanout_ops::deployed::{self, Deployed, DeployedOverrides};
use fanout_ops::discard::{self, DiscardOptions};
use fanout_ops::preflight::{self, Clients, Verdict};
use fanout_ops::progress::Progress;
use fanout_ops::reconcile::{self, ReconcileOptions};
use fanout_ops::redrive::{self, RedriveOptions};
use fanout_ops::{CdkContext, OpsError};
use fanout_registry::ConsumerEntry;
use fanout_registry::names::{PIPELINE_ROLES_STACK, Stage, TABLES_STACK};

#[derive(Debug, Parser)]
#[command(
    name = "fanout-ops",
    version,
    about = "Operating fanout against AWS or the local AWS (standard credentials and AWS_ENDPOINT_URL)"
)]
struct Cli {
    /// A registry folder (one <crate>.json per consumer) to read consumers from. Without it,
    /// redrive, reconcile and discard read a consumer's entry from the SSM parameter its stack
    /// publishes, and preflight reads infra/consumers of the current directory (the checkout
    /// whose app it checks).
    #[arg(long, global = true)]
    registry: Option<PathBuf>,
    /// The deployment's stage (fanout:stage), when it was deployed with one: its stacks are
    /// <Stack>-<stage> and its parameters /fanout/<stage>/...
    #[arg(long, global = true)]
    stage: Option<String>,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where a command finds the deployment: the registry folder, if given, and the stage.
struct Target {
    registry: Option<PathBuf>,
    stage: Stage,
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check what must exist before STACK is deployed (bootstrap, the tables' parameters, the
    /// consumer's prerequisites) and name what is missing. `make deploy` runs it first.
    Preflight {
        /// FanoutTables, or a consumer's stack (WelcomeEmail) or crate (welcome-email).
        stack: String,
        /// The CDK app's cdk.json, whose context the deploy uses.
        #[arg(long, default_value = "infra/cdk.json")]
        cdk_json: PathBuf,
        /// A CDK context override, as the CDK CLI takes it (`-c fanout:sesIdentity=example.com`).
        #[arg(short = 'c', long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
    },
    /// Send CONSUMER's DLQ back through its deployed function: parked records as they were,
    /// OnFailure ranges re-read from the stream. A message is deleted only when every record
    /// in it succeeded. Exit 0 when nothing is left, 1 when messages stay, 2 on an error.
    Redrive {
        /// The consumer: crate (crm-sync) or stack (CrmSync) name.
        consumer: String,
        #[command(flatten)]
        deployed: DeployedOverrides,
        /// Show what would be invoked; invoke and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Stop after this many messages.
        #[arg(long, default_value_t = 1000)]
        max_messages: usize,
        /// Seconds the messages being redriven stay invisible to others.
        #[arg(long, default_value_t = 900)]
        visibility_timeout: u64,
    },
    /// Compare every Users item with CONSUMER's durable record of its effect (ledger entry,
    /// search document, audit row) and report the drift; --repair makes the missing effects
    /// through the consumer's function. Exit 0 when clean, 1 with drift left, 2 on an error.
    Reconcile {
        /// The consumer: crate (crm-sync) or stack (CrmSync) name.
        consumer: String,
        #[command(flatten)]
        deployed: DeployedOverrides,
        /// The Users table, instead of the tables stack's SSM parameter.
        #[arg(long)]
        users_table: Option<String>,
        /// Parallel scan segments, at least 1.
        #[arg(long, default_value_t = 4, value_parser = at_least_one_segment)]
        segments: u32,
        /// Items judged per second at most, over all segments (0: unbounded).
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// Items written within this many seconds are not judged (their records may still be
        /// in the stream). Default: the consumer's iterator-age alarm threshold.
        #[arg(long)]
        settle_seconds: Option<u64>,
        /// Make the missing effects through the consumer's function, then check them again.
        #[arg(long)]
        repair: bool,
    },
    /// Take parked records that can never succeed out of CONSUMER's DLQ, naming each one (event
    /// ID, key, version, when and why it was parked). Which ones is explicit: --event-id, or
    /// --superseded. Exit 0 when every named record was found, 1 when one was not, 2 on an
    /// error.
    Discard {
        /// The consumer: crate (search-warm) or stack (SearchWarm) name.
        consumer: String,
        #[command(flatten)]
        deployed: DeployedOverrides,
        /// A parked record to discard, by its change's eventID (or its Kinesis record's).
        /// Repeat for more.
        #[arg(
            long = "event-id",
            value_name = "EVENT_ID",
            required_unless_present = "superseded"
        )]
        event_ids: Vec<String>,
        /// Discard every parked record whose item the Users table now holds at a higher
        /// version. Safe where the effect is the item's latest state (search-warm); for a
        /// per-change effect (email, CRM event, audit row) it gives that effect up.
        #[arg(long)]
        superseded: bool,
        /// The Users table for --superseded, instead of the tables stack's SSM parameter.
        #[arg(long)]
        users_table: Option<String>,
        /// Show what would be discarded; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Stop after this many messages.
        #[arg(long, default_value_t = 1000)]
        max_messages: usize,
    },
    /// Read items of the Users table as the consumers would read an insert of each, and report
    /// per consumer what it would park and why (and what bends the writer's contract). Invokes
    /// nothing, writes nothing. Exit 0 when nothing would be parked, 1 otherwise.
    CheckItems {
        /// The Users table, instead of the tables stack's SSM parameter.
        #[arg(long)]
        users_table: Option<String>,
        /// Check at most this many items.
        #[arg(long, default_value_t = 1000)]
        sample: usize,
    },
}

/// `--segments`: a scan has at least one segment.
fn at_least_one_segment(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(0) => {
            Err("a scan needs at least one segment (1 scans the table in one pass)".to_owned())
        }
        Ok(n) => Ok(n),
        Err(err) => Err(format!("{raw:?} is not a number of segments: {err}")),
    }
}

/// Set, fanout-ops parses its arguments and exits 0 without acting (the docs check).
const PARSE_ONLY: &str = "FANOUT_OPS_PARSE_ONLY";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The docs check runs every documented command line this far: its arguments parse.
    if std::env::var_os(PARSE_ONLY).is_some() {
        return ExitCode::SUCCESS;
    }
    let stage = match Stage::new(cli.stage.as_deref()) {
        Ok(stage) => stage,
        Err(err) => {
            eprintln!("fanout-ops: --stage: {err}");
            return ExitCode::from(2);
        }
    };
    let target = Target {
        registry: cli.registry,
        stage,
        json: cli.json,
    };
    let result = match cli.command {
        Command::Preflight {
            stack,
            cdk_json,
            context,
        } => run_preflight(&target, &stack, &cdk_json, &context).await,
        Command::Redrive {
            consumer,
            deployed,
            dry_run,
            max_messages,
            visibility_timeout,
        } => {
            let options = RedriveOptions {
                dry_run,
                max_messages,
                visibility_timeout: Duration::from_secs(visibility_timeout),
            };
            run_redrive(&target, &consumer, &deployed, &options).await
        }
        Command::Reconcile {
            consumer,
            deployed,
            users_table,
            segments,
            rate,
            settle_seconds,
            repair,
        } => {
            let run = ReconcileRun {
                users_table,
                segments,
                rate,
                settle_seconds,
                repair,
            };
            run_reconcile(&target, &consumer, &deployed, run).await
        }
        Command::Discard {
            consumer,
            deployed,
            event_ids,
            superseded,
            users_table,
            dry_run,
            max_messages,
        } => {
            let options = DiscardOptions {
                event_ids,
                superseded,
                users_table,
                dry_run,
                receive: RedriveOptions {
                    dry_run,
                    max_messages,
                    visibility_timeout: Duration::from_secs(60),
                },
            };
            run_discard(&target, &consumer, &deployed, options).await
        }
        Command::CheckItems {
            users_table,
            sample,
        } => run_check_items(&target, users_table.as_deref(), sample).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("fanout-ops: {err}");
            ExitCode::from(2)
        }
    }
}

async fn run_preflight(
    target: &Target,
    stack: &str,
    cdk_json: &std::path::Path,
    overrides: &[String],
) -> Result<ExitCode, OpsError> {
    let context = CdkContext::load(cdk_json, overrides)?;
    // The stage the deploy uses: -c fanout:stage (the Makefile passes it), or --stage.
    let stage = match (context.fanout("stage"), target.stage.name()) {
        (Some(a), Some(b)) if a != b => {
            return Err(OpsError::Context(format!(
                "--stage {b} and fanout:stage={a} name different deployments"
            )));
        }
        (Some(from_context), _) => Stage::new(Some(from_context))?,
        (None, _) => target.stage.clone(),
    };
    // A deploy from another registry (-c fanout:registryDir=...) is checked against it.
    let registry = context
        .fanout("registryDir")
        .map(PathBuf::from)
        .or_else(|| target.registry.clone())
        .unwrap_or_else(|| PathBuf::from("infra/consumers"));
    let consumers = fanout_registry::consumers_in(&registry)?;
    let platform = [TABLES_STACK, PIPELINE_ROLES_STACK];
    let consumer = if platform
        .iter()
        .any(|s| stack == *s || stack == stage.stack(s))
    {
        None
    } else {
        Some(
            consumers
                .iter()
                .find(|c| c.name == stack || c.crate_name == stack || stage.stack(&c.name) == stack)
                .ok_or_else(|| OpsError::UnknownStack {
                    stack: stack.to_owned(),
                    known: consumers
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?,
        )
    };
    let aws = fanout_ops::aws::sdk_config().await?;
    let json = target.json;
    let report = preflight::check(&Clients::new(&aws), &context, &stage, stack, consumer).await;
    if json {
        print(&report, true, String::new);
    } else {
        for finding in &report.findings {
            let mark = match finding.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            println!(
                "preflight {stack}: {mark} {}: {}",
                finding.check, finding.detail
            );
        }
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        eprintln!("preflight {stack}: missing prerequisites (FAIL above); nothing was deployed");
        ExitCode::FAILURE
    })
}

/// Prints `report` as JSON, or its human summary.
fn print<T: serde::Serialize>(report: &T, json: bool, summary: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        println!("{}", summary());
    }
}

async fn run_redrive(
    target: &Target,
    consumer: &str,
    overrides: &DeployedOverrides,
    options: &RedriveOptions,
) -> Result<ExitCode, OpsError> {
    let (entry, aws, deployed) = locate(target, consumer, overrides).await?;
    let progress = Progress::new(target.json);
    let report = redrive::redrive(&aws, &entry, &deployed, options, &progress).await?;
    print(&report, target.json, || report.summary());
    Ok(done_if(report.all_redriven()))
}

async fn run_discard(
    target: &Target,
    consumer: &str,
    overrides: &DeployedOverrides,
    mut options: DiscardOptions,
) -> Result<ExitCode, OpsError> {
    let (_, aws, deployed) = locate(target, consumer, overrides).await?;
    if options.superseded {
        let table =
            deployed::users_table(&aws, options.users_table.as_deref(), &target.stage).await?;
        options.users_table = Some(table);
    }
    let report = discard::discard(&aws, &deployed, &options).await?;
    print(&report, target.json, || report.summary());
    Ok(done_if(report.complete()))
}

async fn run_check_items(
    target: &Target,
    users_table: Option<&str>,
    sample: usize,
) -> Result<ExitCode, OpsError> {
    let aws = fanout_ops::aws::sdk_config().await?;
    let table = deployed::users_table(&aws, users_table, &target.stage).await?;
    let entries = deployed::entries(&aws, target.registry.as_deref(), &target.stage).await?;
    let judges = check_items::Judge::of(&entries)?;
    let report = check_items::check_items(&aws, &table, sample, &judges).await?;
    print(&report, target.json, || report.summary());
    Ok(done_if(report.clean()))
}

/// The registry entry of `consumer`, the SDK config, and the consumer as deployed.
async fn locate(
    target: &Target,
    consumer: &str,
    overrides: &DeployedOverrides,
) -> Result<(ConsumerEntry, aws_config::SdkConfig, Deployed), OpsError> {
    let aws = fanout_ops::aws::sdk_config().await?;
    let entry = deployed::entry(&aws, target.registry.as_deref(), &target.stage, consumer).await?;
    let deployed = Deployed::find(&aws, &entry, overrides, &target.stage).await?;
    Ok((entry, aws, deployed))
}

/// Exit 0 when the work left nothing behind, 1 when it did (2 is an error that stopped it).
fn done_if(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Reconcile's flags, before the table and settle time are resolved.
struct ReconcileRun {
    users_table: Option<String>,
    segments: u32,
    rate: u32,
    settle_seconds: Option<u64>,
    repair: bool,
}

async fn run_reconcile(
    target: &Target,
    consumer: &str,
    overrides: &DeployedOverrides,
    run: ReconcileRun,
) -> Result<ExitCode, OpsError> {
    let json = target.json;
    let (entry, aws, deployed) = locate(target, consumer, overrides).await?;
    // Past the iterator-age alarm's threshold a record still in the stream would have alarmed.
    let settle = run
        .settle_seconds
        .or_else(|| entry.settings["alarms"]["iteratorAgeMaxSeconds"].as_u64())
        .unwrap_or(900);
    let options = ReconcileOptions {
        users_table: deployed::users_table(&aws, run.users_table.as_deref(), &target.stage).await?,
        segments: run.segments,
        rate: run.rate,
        settle: Duration::from_secs(settle),
        repair: run.repair,
    };
    let report = reconcile::reconcile(&aws, &deployed, &options, &Progress::new(json)).await?;
    print(&report, json, || report.summary());
    Ok(done_if(report.clean()))
}
