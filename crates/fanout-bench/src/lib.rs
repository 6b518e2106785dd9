//! `make bench`: fanout's welcome-email beside the same job written with Powertools for AWS
//! Lambda (Python), both hosted as Lambda hosts them, on one DynamoDB Local and ministack.
//!
//! Two passes per implementation: on loopback (CPU, memory, init, requests, logs), and with a
//! fixed latency per service call (what a batch takes, and so what it costs, in AWS). The
//! report is a Markdown table and a chart under `target/bench/`, and the budget lines, met or
//! missed.

pub mod chart;
pub mod cost;
pub mod measure;
pub mod report;
pub mod workload;

use std::path::Path;

/// A run that could not be made or does not count.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Process(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The implementation did not do the job: its numbers mean nothing.
    #[error("{0}")]
    Effects(String),
    #[error(transparent)]
    Resource(#[from] fanout_testkit::resources::ResourceError),
    #[error(transparent)]
    Proxy(#[from] fanout_testkit::fault_proxy::ProxyError),
    #[error(transparent)]
    Host(#[from] fanout_esm::HostError),
    #[error(transparent)]
    Outbox(#[from] fanout_testkit::ses_outbox::OutboxError),
    /// The machine gives no CPU cgroup to put the function in.
    #[error("no CPU quota: {0}")]
    CpuQuota(String),
    #[error("drawing the chart: {0}")]
    Chart(String),
}

impl BenchError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        BenchError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

use std::path::PathBuf;

use crate::cost::ARM64_PRICES;
use crate::measure::{Implementation, Latency, RunPlan};
use crate::report::{BudgetLine, Measured, ZipSizes};

/// What `make bench` runs.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    pub fanout_binary: PathBuf,
    pub peer_python: PathBuf,
    pub peer_dir: PathBuf,
    pub out_dir: PathBuf,
    pub seed: u64,
    /// Warm batches on loopback, and at service latencies.
    pub loopback_batches: usize,
    pub latency_batches: usize,
    pub latency: Latency,
    /// Memory sizes whose CPU share the function is run under (at service latencies), and
    /// the warm batches of each.
    pub quota_sizes_mb: Vec<u32>,
    pub quota_batches: usize,
    pub zips: ZipSizes,
    /// Record fanout's loopback warm batches with `perf record --call-graph dwarf`.
    pub perf: bool,
}

/// What a bench run found.
#[derive(Debug, Clone)]
pub struct BenchOutcome {
    pub report: String,
    pub budget: Vec<BudgetLine>,
    pub chart: Result<PathBuf, String>,
}

/// Runs both implementations through both passes and writes the report and chart.
pub async fn bench(plan: &BenchPlan) -> Result<BenchOutcome, BenchError> {
    for name in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"] {
        if std::env::var(name).is_err() {
            return Err(BenchError::Process(format!(
                "{name} is not set: run the bench inside the local stack (`make bench`, or `fanout-local with -- fanout-bench`)"
            )));
        }
    }
    for (what, path) in [
        ("fanout's welcome-email binary", &plan.fanout_binary),
        ("the peer's Python", &plan.peer_python),
    ] {
        if !path.is_file() {
            return Err(BenchError::Process(format!(
                "{what} is not at {}: `make bench` builds and installs it",
                path.display()
            )));
        }
    }
    std::fs::create_dir_all(&plan.out_dir).map_err(|e| BenchError::io(&plan.out_dir, e))?;
    // The peer's bootstrap changes directory before it starts Python.
    let absolute = |path: &Path| std::path::absolute(path).map_err(|e| BenchError::io(path, e));
    let aws = fanout_testkit::local_sdk_config().await;
    let dynamodb_url = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
    let ministack_url = fanout_testkit::ministack_url();
    let fanout = Implementation::Fanout {
        binary: absolute(&plan.fanout_binary)?,
    };
    let peer = Implementation::Powertools {
        python: absolute(&plan.peer_python)?,
        peer_dir: absolute(&plan.peer_dir)?,
    };
    let mut measured = Vec::new();
    for implementation in [&fanout, &peer] {
        let perf = matches!(implementation, Implementation::Fanout { .. }) && plan.perf;
        let loopback = RunPlan {
            batches: plan.loopback_batches,
            seed: plan.seed,
            latency: None,
            calibrate: true,
            perf: perf.then(|| plan.out_dir.join("perf.data")),
            cpu_of_memory_mb: None,
            work_dir: plan.out_dir.clone(),
        };
        eprintln!(
            "bench: {} on loopback ({} warm batches)",
            implementation.label(),
            plan.loopback_batches
        );
        let loopback = measure::run(
            implementation,
            &loopback,
            &aws,
            &dynamodb_url,
            &ministack_url,
        )
        .await?;
        let latency = RunPlan {
            batches: plan.latency_batches,
            latency: Some(plan.latency),
            calibrate: false,
            perf: None,
            ..loopback_plan(plan)
        };
        eprintln!(
            "bench: {} at service latencies ({} warm batches)",
            implementation.label(),
            plan.latency_batches
        );
        let latency = measure::run(
            implementation,
            &latency,
            &aws,
            &dynamodb_url,
            &ministack_url,
        )
        .await?;
        let mut under_quota = Vec::new();
        for memory_mb in &plan.quota_sizes_mb {
            let quota = RunPlan {
                batches: plan.quota_batches,
                latency: Some(plan.latency),
                cpu_of_memory_mb: Some(*memory_mb),
                ..loopback_plan(plan)
            };
            eprintln!(
                "bench: {} at service latencies with the CPU of {memory_mb} MB ({} warm batches)",
                implementation.label(),
                plan.quota_batches
            );
            match measure::run(implementation, &quota, &aws, &dynamodb_url, &ministack_url).await {
                Ok(run) => under_quota.push((*memory_mb, run.warm_median_ms())),
                Err(BenchError::CpuQuota(why)) => {
                    eprintln!("bench: billed duration modelled only: {why}");
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        measured.push(Measured {
            label: implementation.label(),
            loopback,
            latency,
            under_quota,
        });
    }
    let (ours, theirs) = match measured.as_slice() {
        [ours, theirs] => (ours, theirs),
        _ => return Err(BenchError::Process("expected two implementations".into())),
    };
    let budget = report::budget(ours, theirs, plan.zips, &ARM64_PRICES);
    let header = format!(
        "welcome-email, fanout beside Powertools for AWS Lambda (Python): seed {}, batches of {} records \
         ({} new upgrades, {} redeliveries, {} downgrades), {} warm batches on loopback and {} at service latencies, \
         on this machine's x86_64 ({} cores).",
        plan.seed,
        workload::BATCH_RECORDS,
        workload::NEW_UPGRADES,
        workload::REDELIVERIES,
        workload::DOWNGRADES,
        plan.loopback_batches,
        plan.latency_batches,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let report = report::markdown(
        ours,
        theirs,
        plan.zips,
        plan.latency,
        &ARM64_PRICES,
        &budget,
        &header,
    );
    let report_path = plan.out_dir.join("report.md");
    std::fs::write(&report_path, &report).map_err(|e| BenchError::io(&report_path, e))?;
    let chart_path = plan.out_dir.join("cost-by-memory.png");
    let series = [ours, theirs].map(|m| {
        (
            m.label,
            cost::sweep(&m.profile(), &ARM64_PRICES).0,
            m.measured_costs(&ARM64_PRICES),
        )
    });
    let chart = chart::draw(&chart_path, &series)
        .map(|()| chart_path)
        .map_err(|e| e.to_string());
    Ok(BenchOutcome {
        report,
        budget,
        chart,
    })
}

fn loopback_plan(plan: &BenchPlan) -> RunPlan {
    RunPlan {
        batches: plan.loopback_batches,
        seed: plan.seed,
        latency: None,
        calibrate: false,
        perf: None,
        cpu_of_memory_mb: None,
        work_dir: plan.out_dir.clone(),
    }
}

/// The size of a file, if it exists.
pub fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}
