//! `make demo`'s scenario as a test: every registered consumer's real binary behind a Runtime
//! API host and its own local event source mapping, against the local stack. Fails on any
//! check the demo prints. The binaries come from `cargo build` (make test builds them first).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fanout_devstack::demo::{self, DemoOptions, Scenario};

#[tokio::test]
async fn the_demo_scenario_passes_every_check() {
    let scenario = Scenario::load(&Scenario::default_path()).unwrap();
    let report = demo::run(&scenario, &DemoOptions::default())
        .await
        .expect("the demo runs");
    assert!(report.passed(), "{report}");
    assert!(
        report.invocations > 0 && !report.redeliveries.is_empty(),
        "{report}"
    );
}
