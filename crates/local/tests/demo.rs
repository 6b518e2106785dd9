//! `make demo`'s scenario as a test: the four real consumers, in-process, each behind its own
//! local event source mapping, against the local stack. Fails on any check the demo prints.

#[allow(dead_code)]
#[path = "../examples/demo.rs"]
mod demo;

#[tokio::test]
async fn the_demo_scenario_passes_every_check() {
    let summary = demo::run_demo(demo::Runner::InProcess)
        .await
        .expect("the demo runs");
    assert!(
        summary.failures.is_empty(),
        "{}\n\nfailed checks:\n{}",
        summary.lines.join("\n"),
        summary.failures.join("\n")
    );
}
