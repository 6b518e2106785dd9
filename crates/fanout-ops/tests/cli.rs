//! fanout-ops as an installed tool: what it says before it reaches any AWS API. No server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

/// The binary with an environment that holds no credentials anywhere: no variables, a home
/// without `~/.aws`, instance metadata off.
fn run_without_credentials(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join(format!("fanout-ops-cli-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    Command::new(env!("CARGO_BIN_EXE_fanout-ops"))
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(&home)
        .output()
        .unwrap()
}

#[test]
fn without_credentials_it_says_so_once_and_how_to_provide_them() {
    for args in [
        &["redrive", "crm-sync", "--dry-run"][..],
        &["check-items", "--users-table", "Users"][..],
        &["--registry", ".", "reconcile", "audit-log"][..],
    ] {
        let output = run_without_credentials(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr.matches("no AWS credentials").count(),
            1,
            "{args:?}: said once: {stderr}"
        );
        assert!(
            stderr.contains("AWS_PROFILE=<profile>") && stderr.contains("aws sso login"),
            "{args:?}: names how to provide them: {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "{args:?}: no report without a call"
        );
    }
}

#[test]
fn help_names_no_path_of_the_build_machine() {
    let workspace = env!("CARGO_MANIFEST_DIR");
    for args in [
        &["--help"][..],
        &["preflight", "--help"],
        &["redrive", "--help"],
    ] {
        let output = run_without_credentials(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(
            stdout.contains("--registry") && !stdout.contains(workspace),
            "{args:?}: {stdout}"
        );
    }
}

#[test]
fn a_stage_that_could_not_name_a_deployment_is_refused_in_one_line() {
    let output = run_without_credentials(&["--stage", "Blue_1", "redrive", "crm-sync"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Blue_1"), "{stderr}");
}
