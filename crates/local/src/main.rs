//! `fanout-local`: the local stack from the command line.
//!
//! `fanout-local with -- <command> [args…]` starts DynamoDB Local and ministack on free
//! loopback ports, runs the command with the standard `AWS_ENDPOINT_URL_*` variables pointing
//! at them, stops them (also when the command fails), and exits with the command's status.

use std::process::{Command, ExitCode};

use fanout_local::stack::LocalStack;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((verb, rest)) if verb == "with" => {
            let command = match rest.first().map(String::as_str) {
                Some("--") => &rest[1..],
                _ => rest,
            };
            with_stack(command)
        }
        _ => {
            eprintln!("usage: fanout-local with -- <command> [args...]");
            ExitCode::from(2)
        }
    }
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
