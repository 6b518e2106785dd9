//! `fanout-local`: the local stack from the command line.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use fanout_devstack::demo::{self, DemoOptions, Scenario};
use fanout_devstack::scaffold::NewConsumer;
use fanout_devstack::servers::LocalStack;
use fanout_devstack::{e2e, session};

#[derive(Debug, Parser)]
#[command(
    name = "fanout-local",
    about = "The local stack fanout runs on: DynamoDB Local and ministack on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Start DynamoDB Local and ministack on free loopback ports, run COMMAND with the standard
    /// AWS_ENDPOINT_URL_* variables pointing at them, stop them (also when it fails), and
    /// exit with its status. `make test` runs the tests this way.
    With {
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Start a detached stack with the CDK app's resources under local names and write
    /// .tools/stack.env to source.
    Up,
    /// Stop the stack `up` started.
    Down,
    /// Turn the parked records in a DLQ into event files for `cargo lambda invoke
    /// --data-file` (with .tools/stack.env sourced). The messages stay in the queue.
    Replay {
        queue_url: String,
        #[arg(default_value = "target/replay")]
        out_dir: PathBuf,
    },
    /// Run the demo scenario: every registered consumer's binary (built by `cargo build`)
    /// behind its own local event source mapping. Run it inside `fanout-local with`.
    Demo {
        /// The scenario file.
        #[arg(long, default_value_os_t = Scenario::default_path())]
        scenario: PathBuf,
        /// Where the consumer binaries are.
        #[arg(long)]
        functions_dir: Option<PathBuf>,
    },
    /// Deploy the real CDK app into ministack as a local AWS (cdk bootstrap, cdk deploy --all
    /// with bundling), prove the fan-out on the deployed stacks, redeploy one team's stack
    /// alone, and tear everything down. `make e2e` runs it.
    E2e {
        /// Cargo profile of the bundled functions: dev (fast) or release (what AWS runs).
        #[arg(long, default_value = "dev", value_parser = ["dev", "release"])]
        build_profile: String,
        /// Seconds to wait for a phase's effects.
        #[arg(long, default_value_t = 90)]
        wait_seconds: u64,
    },
    /// Print the crate name of every registered consumer (infra/consumers/), one a line.
    Consumers,
    /// Write a new consumer: crates/NAME (lib, main, tests, descriptor), infra/consumers/NAME.json
    /// and its CODEOWNERS lines. `make new-consumer` runs it.
    NewConsumer {
        /// The crate name, lowercase words joined by '-' (plan-metrics).
        #[arg(long)]
        name: String,
        /// The owning team, as CODEOWNERS names it (@org/team).
        #[arg(long)]
        team: String,
        /// What its effect calls; `none`: the effect is yours to write.
        #[arg(long, default_value = "none")]
        target: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = match cli.command {
        Verb::With { command } => return with_stack(&command),
        Verb::Up => session::up().map(|file| {
            println!(
                "local stack up; run `source {}` to use it, `fanout-local down` to stop it",
                file.display()
            );
        }),
        Verb::Down => session::down().map(|()| println!("local stack stopped")),
        Verb::Replay { queue_url, out_dir } => replay(&queue_url, &out_dir),
        Verb::Demo {
            scenario,
            functions_dir,
        } => return run_demo(&scenario, functions_dir),
        Verb::E2e {
            build_profile,
            wait_seconds,
        } => return run_e2e(build_profile, wait_seconds),
        Verb::Consumers => fanout_registry::consumers()
            .map(|all| {
                for consumer in all {
                    println!("{}", consumer.crate_name);
                }
            })
            .map_err(Into::into),
        Verb::NewConsumer { name, team, target } => NewConsumer::new(&name, &team, &target)
            .and_then(|consumer| consumer.write(&fanout_registry::workspace_root()))
            .map(|written| {
                for path in written {
                    println!("wrote {}", path.display());
                }
            })
            .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fanout-local: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run_demo(scenario: &std::path::Path, functions_dir: Option<PathBuf>) -> ExitCode {
    let mut options = DemoOptions::default();
    if let Some(dir) = functions_dir {
        options.functions_dir = dir;
    }
    let outcome = Scenario::load(scenario)
        .map_err(Into::into)
        .and_then(|scenario| {
            tokio::runtime::Runtime::new()
                .map_err(Into::into)
                .and_then(|runtime| runtime.block_on(demo::run(&scenario, &options)))
        });
    match outcome {
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            println!("VERDICT: FAIL: the demo could not run: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run_e2e(build_profile: String, wait_seconds: u64) -> ExitCode {
    let work_dir = fanout_testkit::workspace_root()
        .join("target/e2e")
        .join(chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string());
    let options = e2e::E2eOptions {
        build_profile,
        wait: std::time::Duration::from_secs(wait_seconds),
        work_dir,
    };
    let report = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(e2e::run(&options)),
        Err(err) => {
            println!("E2E: FAIL: no async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let failed = report.steps.iter().filter(|s| !s.passed).count();
    if report.passed() {
        println!(
            "E2E: PASS: {} steps; build {:.0} s, deploy and checks {:.0} s; logs in {}",
            report.steps.len(),
            report.build_seconds,
            report.run_seconds,
            options.work_dir.display()
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "E2E: FAIL: {failed} of {} steps failed; logs in {}",
            report.steps.len(),
            options.work_dir.display()
        );
        ExitCode::FAILURE
    }
}

fn replay(
    queue_url: &str,
    out_dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let runtime = tokio::runtime::Runtime::new()?;
    let messages = runtime.block_on(async {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        fanout_testkit::queues::peek_queue(&aws_sdk_sqs::Client::new(&aws), queue_url).await
    })?;
    for file in session::replay(&messages, out_dir)? {
        println!("{}", file.display());
    }
    Ok(())
}

fn with_stack(command: &[String]) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        eprintln!("fanout-local with: no command given");
        return ExitCode::from(2);
    };
    let stack = match LocalStack::start() {
        Ok(stack) => stack,
        Err(err) => {
            eprintln!("fanout-local: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "fanout-local: DynamoDB Local on 127.0.0.1:{}, ministack on 127.0.0.1:{}",
        stack.dynamodb_port, stack.ministack_port
    );
    let status = Command::new(program)
        .args(args)
        .envs(stack.env_vars())
        .status();
    stack.stop();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("fanout-local: `{program}` exited with {status}");
            ExitCode::from(
                status
                    .code()
                    .and_then(|c| u8::try_from(c).ok())
                    .unwrap_or(1),
            )
        }
        Err(err) => {
            eprintln!("fanout-local: could not run `{program}`: {err}");
            ExitCode::FAILURE
        }
    }
}
