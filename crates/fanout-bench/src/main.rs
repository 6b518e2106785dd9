//! `fanout-bench`: welcome-email beside its Powertools peer; `make bench` runs it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fanout_bench::measure::Latency;
use fanout_bench::report::ZipSizes;
use fanout_bench::{BenchPlan, bench, file_size};

#[derive(Debug, Parser)]
#[command(
    name = "fanout-bench",
    about = "welcome-email beside a Powertools-Python peer: CPU, memory, init, requests, logs and cost per million records, checked against the budget"
)]
struct Cli {
    /// fanout's welcome-email, as `cargo lambda build --release` builds it.
    #[arg(long, default_value = "target/lambda/x86_64/welcome-email/bootstrap")]
    fanout_binary: PathBuf,
    /// Python with the peer's requirements (bench/peer/requirements.txt).
    #[arg(long, default_value = ".tools/bench-peer/bin/python")]
    peer_python: PathBuf,
    #[arg(long, default_value = "bench/peer")]
    peer_dir: PathBuf,
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
    #[arg(long, default_value_t = 20_261_201)]
    seed: u64,
    #[arg(long, default_value_t = 30)]
    loopback_batches: usize,
    #[arg(long, default_value_t = 10)]
    latency_batches: usize,
    /// Latency added to every DynamoDB call, ms.
    #[arg(long, default_value_t = 6)]
    dynamodb_ms: u64,
    /// Latency added to every SES call, ms.
    #[arg(long, default_value_t = 40)]
    ses_ms: u64,
    /// Memory sizes (MB) whose CPU share each function also runs under, at service latencies
    /// (a CFS quota; needs a writable CPU cgroup).
    #[arg(long, value_delimiter = ',', default_value = "128,256,512,1024")]
    quota_sizes: Vec<u32>,
    #[arg(long, default_value_t = 3)]
    quota_batches: usize,
    #[arg(
        long,
        default_value = "target/lambda/x86_64/welcome-email/bootstrap.zip"
    )]
    x86_64_zip: PathBuf,
    #[arg(
        long,
        default_value = "target/lambda/arm64/welcome-email/bootstrap.zip"
    )]
    arm64_zip: PathBuf,
    /// Record fanout's warm batches with `perf record --call-graph dwarf` into OUT_DIR/perf.data.
    #[arg(long)]
    perf: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let plan = BenchPlan {
        fanout_binary: cli.fanout_binary,
        peer_python: cli.peer_python,
        peer_dir: cli.peer_dir,
        out_dir: cli.out_dir,
        seed: cli.seed,
        loopback_batches: cli.loopback_batches,
        latency_batches: cli.latency_batches,
        latency: Latency {
            dynamodb: Duration::from_millis(cli.dynamodb_ms),
            ses: Duration::from_millis(cli.ses_ms),
        },
        quota_sizes_mb: cli.quota_sizes,
        quota_batches: cli.quota_batches,
        zips: ZipSizes {
            x86_64: file_size(&cli.x86_64_zip),
            arm64: file_size(&cli.arm64_zip),
        },
        perf: cli.perf,
    };
    let outcome = match bench(&plan).await {
        Ok(outcome) => outcome,
        Err(err) => {
            eprintln!("fanout-bench: {err}");
            return ExitCode::from(2);
        }
    };
    println!("{}", outcome.report);
    match &outcome.chart {
        Ok(path) => println!("chart: {}", path.display()),
        Err(err) => eprintln!("fanout-bench: no chart: {err}"),
    }
    let missed: Vec<&str> = outcome
        .budget
        .iter()
        .filter(|l| !l.met)
        .map(|l| l.what.as_str())
        .collect();
    if missed.is_empty() {
        println!("budget: every line met");
        ExitCode::SUCCESS
    } else {
        eprintln!("budget missed: {}", missed.join("; "));
        ExitCode::from(1)
    }
}
