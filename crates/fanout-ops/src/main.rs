//! `fanout-ops`: operating fanout. Each command is a module of the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fanout_ops::preflight::{self, Clients, TABLES_STACK, Verdict};
use fanout_ops::{CdkContext, OpsError};

#[derive(Debug, Parser)]
#[command(
    name = "fanout-ops",
    about = "Operating fanout against AWS or the local AWS (standard credentials and AWS_ENDPOINT_URL)"
)]
struct Cli {
    /// The consumer registry (one <crate>.json per consumer).
    #[arg(long, global = true, default_value_os_t = fanout_registry::registry_dir())]
    registry: PathBuf,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check what must exist before STACK is deployed (bootstrap, the tables' parameters, the
    /// consumer's prerequisites) and name what is missing. `make deploy` runs it first.
    Preflight {
        /// FanoutTables, or a consumer's stack (WelcomeEmail) or crate (welcome-email).
        stack: String,
        /// The CDK app's cdk.json, whose context the deploy uses.
        #[arg(long, default_value_os_t = fanout_registry::workspace_root().join("infra/cdk.json"))]
        cdk_json: PathBuf,
        /// A CDK context override, as the CDK CLI takes it (`-c fanout:sesIdentity=example.com`).
        #[arg(short = 'c', long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Preflight {
            stack,
            cdk_json,
            context,
        } => run_preflight(&cli.registry, &stack, &cdk_json, &context, cli.json).await,
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
    registry: &std::path::Path,
    stack: &str,
    cdk_json: &std::path::Path,
    overrides: &[String],
    json: bool,
) -> Result<ExitCode, OpsError> {
    let context = CdkContext::load(cdk_json, overrides)?;
    // A deploy from another registry (-c fanout:registryDir=...) is checked against it.
    let registry = context
        .fanout("registryDir")
        .map(PathBuf::from)
        .unwrap_or_else(|| registry.to_owned());
    let consumers = fanout_registry::consumers_in(&registry)?;
    let consumer = if stack == TABLES_STACK {
        None
    } else {
        Some(
            consumers
                .iter()
                .find(|c| c.name == stack || c.crate_name == stack)
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
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let report = preflight::check(&Clients::new(&aws), &context, stack, consumer).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
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
