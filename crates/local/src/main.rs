//! `fanout-local`: the local stack from the command line.
//!
//! - `with -- <command> [args…]`: start DynamoDB Local and ministack on free loopback ports,
//!   run the command with the standard `AWS_ENDPOINT_URL_*` variables pointing at them, stop
//!   them (also when the command fails), exit with the command's status. `make test` uses it.
//! - `up` / `down`: a detached stack with the CDK app's resources under local names; `up`
//!   writes `.tools/stack.env` to source.
//! - `replay <queue-url> [dir]`: turn the parked records in a DLQ into event files for
//!   `cargo lambda invoke --data-file` (run with `.tools/stack.env` sourced).

use std::process::{Command, ExitCode};

use fanout_local::devstack;
use fanout_local::stack::LocalStack;

const USAGE: &str =
    "usage: fanout-local with -- <command> [args...] | up | down | replay <queue-url> [dir]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((verb, rest)) if verb == "with" => {
            return with_stack(rest.strip_prefix(&["--".to_owned()]).unwrap_or(rest));
        }
        Some((verb, _)) if verb == "up" => devstack::up().map(|file| {
            println!(
                "local stack up; run `source {}` to use it, `fanout-local down` to stop it",
                file.display()
            );
        }),
        Some((verb, _)) if verb == "down" => {
            devstack::down().map(|()| println!("local stack stopped"))
        }
        Some((verb, rest)) if verb == "replay" => replay(rest),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fanout-local: {err}");
            ExitCode::FAILURE
        }
    }
}

fn replay(args: &[String]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Some(queue_url) = args.first() else {
        return Err(USAGE.into());
    };
    let out_dir = std::path::PathBuf::from(args.get(1).map_or("target/replay", String::as_str));
    let runtime = tokio::runtime::Runtime::new()?;
    let messages = runtime.block_on(async {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        fanout_local::inspect::peek_queue(&aws_sdk_sqs::Client::new(&aws), queue_url).await
    })?;
    for file in devstack::replay(&messages, &out_dir)? {
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
