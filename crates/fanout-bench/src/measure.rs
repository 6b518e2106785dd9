//! One run of one implementation, hosted the way Lambda hosts it: its own Runtime API
//! endpoint (`fanout_esm::RuntimeApiHost`), the function a local process, its DynamoDB and
//! SES calls through counting proxies (`fanout_testkit::fault_proxy`) that can add a fixed
//! latency per service. What the process used is read from `/proc/<pid>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fanout_esm::{FunctionConfig, Invoke, RuntimeApiHost};
use fanout_testkit::fault_proxy::{Calls, Fault, FaultProxy, Rule};
use fanout_testkit::resources::{
    create_id_keyed_table, create_ledger_table, create_queue, create_verified_sender,
};
use fanout_testkit::ses_outbox::sent_emails;
use serde_json::Value;

use crate::BenchError;
use crate::workload::{NEW_UPGRADES, REDELIVERIES, Workload, record_count};

/// What is measured.
#[derive(Debug, Clone)]
pub enum Implementation {
    /// fanout's welcome-email: a Lambda `bootstrap` binary.
    Fanout { binary: PathBuf },
    /// The Powertools peer (`bench/peer/welcome_email.py`) under the runtime interface client.
    Powertools { python: PathBuf, peer_dir: PathBuf },
}

impl Implementation {
    pub fn label(&self) -> &'static str {
        match self {
            Implementation::Fanout { .. } => "fanout (Rust)",
            Implementation::Powertools { .. } => "Powertools (Python)",
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Implementation::Fanout { .. } => "fanout",
            Implementation::Powertools { .. } => "powertools",
        }
    }
}

/// A fixed latency added to every call of a service, as the services answer in AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub dynamodb: Duration,
    pub ses: Duration,
}

/// The DynamoDB operations that write an item, and those that read one.
const WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];
const READS: &[&str] = &[
    "GetItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "TransactGetItems",
];

/// How one run goes.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Warm batches measured (after one cold batch).
    pub batches: usize,
    pub seed: u64,
    pub latency: Option<Latency>,
    /// Also measure requests per new effect and per duplicate, each with a batch of its own.
    pub calibrate: bool,
    /// Record the warm batches with `perf record --call-graph dwarf` into this file.
    pub perf: Option<PathBuf>,
    /// Run the warm batches under the CPU share Lambda gives this memory size (MB): a CFS
    /// quota of size/1769 of one core.
    pub cpu_of_memory_mb: Option<u32>,
    /// Where logs and scripts go.
    pub work_dir: PathBuf,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Spawn to the first `/next`.
    pub init_ms: f64,
    /// The cold batch, as the caller saw it (including init).
    pub cold_batch_ms: f64,
    /// Each warm batch's wall time.
    pub warm_batch_ms: Vec<f64>,
    pub warm_records: usize,
    /// CPU (user + system) over the warm batches.
    pub warm_cpu_ms: f64,
    pub peak_rss_mib: f64,
    pub warm_log_bytes: u64,
    pub warm_log_lines: u64,
    /// DynamoDB writes over the warm batches.
    pub warm_writes: u32,
    pub writes_per_new_effect: Option<f64>,
    pub writes_per_duplicate: Option<f64>,
    /// DynamoDB item reads over the whole run.
    pub reads: u32,
    /// Every operation the proxies saw over the whole run.
    pub operations: BTreeMap<String, u32>,
    pub emails_sent: usize,
    pub emails_expected: usize,
}

impl RunResult {
    pub fn cpu_us_per_record(&self) -> f64 {
        self.warm_cpu_ms * 1000.0 / self.warm_records.max(1) as f64
    }

    pub fn log_bytes_per_record(&self) -> f64 {
        self.warm_log_bytes as f64 / self.warm_records.max(1) as f64
    }

    pub fn log_lines_per_record(&self) -> f64 {
        self.warm_log_lines as f64 / self.warm_records.max(1) as f64
    }

    pub fn writes_per_record(&self) -> f64 {
        f64::from(self.warm_writes) / self.warm_records.max(1) as f64
    }

    pub fn warm_median_ms(&self) -> f64 {
        percentile(&self.warm_batch_ms, 0.5)
    }

    pub fn warm_p95_ms(&self) -> f64 {
        percentile(&self.warm_batch_ms, 0.95)
    }

    pub fn cpu_ms_per_batch(&self) -> f64 {
        self.warm_cpu_ms / self.warm_batch_ms.len().max(1) as f64
    }
}

/// The `q` quantile (nearest rank) of `values`; 0 when empty.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs `implementation` through `plan` against the local stack `aws` points at.
pub async fn run(
    implementation: &Implementation,
    plan: &RunPlan,
    aws: &aws_config::SdkConfig,
    dynamodb_url: &str,
    ministack_url: &str,
) -> Result<RunResult, BenchError> {
    let pass = if plan.latency.is_some() {
        "latency"
    } else {
        "loopback"
    };
    let tag = format!("{}-{pass}-{}", implementation.slug(), plan.seed);
    let run = fanout_testkit::unique_name(&tag);
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sender = format!("bench-{run}@fanout.example");
    create_verified_sender(&aws_sdk_sesv2::Client::new(aws), &sender).await?;

    let dynamodb_proxy = FaultProxy::start(dynamodb_url).await?;
    let ses_proxy = FaultProxy::start(ministack_url).await?;
    if let Some(latency) = plan.latency {
        for operation in WRITES.iter().chain(READS) {
            dynamodb_proxy.add(Rule::new(
                operation,
                Calls::Every,
                Fault::Latency(latency.dynamodb),
            ));
        }
        ses_proxy.add(Rule::new(
            "SendEmail",
            Calls::Every,
            Fault::Latency(latency.ses),
        ));
    }

    let mut env = lambda_environment();
    env.push((
        "AWS_ENDPOINT_URL_DYNAMODB".into(),
        dynamodb_proxy.endpoint(),
    ));
    env.push(("AWS_ENDPOINT_URL_SESV2".into(), ses_proxy.endpoint()));
    env.push(("FROM_ADDRESS".into(), sender.clone()));
    let binary = match implementation {
        Implementation::Fanout { binary } => {
            let table = format!("EffectLedger-{run}");
            create_ledger_table(&dynamodb, &table).await?;
            let dlq = create_queue(&aws_sdk_sqs::Client::new(aws), &format!("dlq-{run}")).await?;
            env.extend(fanout_environment(&table, &dlq)?);
            binary.clone()
        }
        Implementation::Powertools { python, peer_dir } => {
            let table = format!("Idempotency-{run}");
            create_id_keyed_table(&dynamodb, &table).await?;
            env.extend(powertools_environment(&table, peer_dir));
            peer_bootstrap(&plan.work_dir, python, peer_dir)?
        }
    };
    let log = plan.work_dir.join(format!("{tag}.log"));
    let _ = std::fs::remove_file(&log);
    let host = RuntimeApiHost::start(FunctionConfig {
        name: "welcome-email".to_owned(),
        binary,
        env,
        timeout: Duration::from_secs(120),
        memory_mib: 1769,
        log: Some(log.clone()),
    })
    .await?;

    let mut workload = Workload::new(&run, plan.seed);
    let mut result = RunResult::default();

    // The cold batch: spawn, init, the first records.
    let started = Instant::now();
    invoke_clean(&host, workload.mixed_batch()).await?;
    result.cold_batch_ms = ms(started.elapsed());
    result.init_ms = host.stats().last_init.map_or(0.0, ms);
    let pid = host.pid().ok_or_else(|| {
        BenchError::Process("the function process is not running after its first batch".into())
    })?;

    let quota = match plan.cpu_of_memory_mb {
        Some(memory_mb) => Some(CpuQuota::apply(pid, memory_mb)?),
        None => None,
    };
    let before = ProcessReading::take(pid, &log)?;
    let calls_before = dynamodb_proxy.calls().len();
    let perf = match &plan.perf {
        Some(out) => Some(PerfRecording::start(pid, out)?),
        None => None,
    };
    for _ in 0..plan.batches {
        let event = workload.mixed_batch();
        result.warm_records += record_count(&event);
        let started = Instant::now();
        invoke_clean(&host, event).await?;
        result.warm_batch_ms.push(ms(started.elapsed()));
    }
    if let Some(perf) = perf {
        perf.stop().await?;
    }
    let after = ProcessReading::take(pid, &log)?;
    result.warm_cpu_ms =
        (after.cpu_ticks - before.cpu_ticks) as f64 * 1000.0 / clock_ticks_per_second();
    result.warm_log_bytes = after.log_bytes - before.log_bytes;
    result.warm_log_lines = after.log_lines - before.log_lines;
    result.warm_writes = count(&dynamodb_proxy.calls()[calls_before..], WRITES);

    if plan.calibrate {
        let mark = dynamodb_proxy.calls().len();
        invoke_clean(&host, workload.new_only_batch(NEW_UPGRADES)).await?;
        let writes = count(&dynamodb_proxy.calls()[mark..], WRITES);
        result.writes_per_new_effect = Some(f64::from(writes) / NEW_UPGRADES as f64);
        let mark = dynamodb_proxy.calls().len();
        invoke_clean(&host, workload.duplicates_batch(REDELIVERIES)).await?;
        let writes = count(&dynamodb_proxy.calls()[mark..], WRITES);
        result.writes_per_duplicate = Some(f64::from(writes) / REDELIVERIES as f64);
    }
    result.peak_rss_mib = peak_rss_kib(pid)? as f64 / 1024.0;
    drop(host);
    // After the process, which must leave the group before it can be removed.
    drop(quota);

    let calls: Vec<_> = dynamodb_proxy
        .calls()
        .into_iter()
        .chain(ses_proxy.calls())
        .collect();
    result.reads = count(&calls, READS);
    for call in &calls {
        *result.operations.entry(call.operation.clone()).or_default() += 1;
    }
    result.emails_sent = sent_emails(ministack_url, &sender).await?.len();
    result.emails_expected = workload.new_effects();
    if result.emails_sent != result.emails_expected {
        return Err(BenchError::Effects(format!(
            "{} sent {} emails for {} new upgrades: the run does not count",
            implementation.label(),
            result.emails_sent,
            result.emails_expected
        )));
    }
    Ok(result)
}

/// What Lambda puts in every function's environment that the clients read.
fn lambda_environment() -> Vec<(String, String)> {
    [
        ("AWS_REGION", fanout_testkit::LOCAL_REGION),
        ("AWS_DEFAULT_REGION", fanout_testkit::LOCAL_REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_SESSION_TOKEN", "test"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// welcome-email's variables, its function settings from its registry entry.
fn fanout_environment(
    ledger_table: &str,
    dlq_url: &str,
) -> Result<Vec<(String, String)>, BenchError> {
    let entry = fanout_registry::consumer("welcome-email")
        .map_err(|e| BenchError::Process(e.to_string()))?;
    let function = &entry.settings["function"];
    let mut env = vec![
        // The table the workload's records name.
        ("USERS_TABLE".to_owned(), "Users".to_owned()),
        ("LEDGER_TABLE".to_owned(), ledger_table.to_owned()),
        ("DLQ_URL".to_owned(), dlq_url.to_owned()),
        (
            "STREAM_VIEW_TYPE".to_owned(),
            "NEW_AND_OLD_IMAGES".to_owned(),
        ),
        // The level Lambda's log-level setting gives, whatever the caller's RUST_LOG says.
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ];
    for (variable, value) in [
        ("MAX_CONCURRENCY", function["maxConcurrency"].as_u64()),
        (
            "RECORD_BUDGET_SECONDS",
            function["recordBudgetSeconds"].as_u64(),
        ),
        (
            "LEDGER_RETENTION_HOURS",
            entry.settings["ledger"]["retentionDays"]
                .as_u64()
                .map(|d| d * 24),
        ),
    ] {
        if let Some(value) = value {
            env.push((variable.to_owned(), value.to_string()));
        }
    }
    Ok(env)
}

fn powertools_environment(table: &str, peer_dir: &Path) -> Vec<(String, String)> {
    [
        ("IDEMPOTENCY_TABLE", table.to_owned()),
        ("POWERTOOLS_SERVICE_NAME", "welcome-email".to_owned()),
        ("POWERTOOLS_METRICS_NAMESPACE", "fanout".to_owned()),
        ("POWERTOOLS_LOG_LEVEL", "INFO".to_owned()),
        ("PYTHONPATH", peer_dir.display().to_string()),
        ("LAMBDA_TASK_ROOT", peer_dir.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The peer's `bootstrap`: the runtime interface client with the peer's handler, as a
/// container image or custom runtime starts it. `exec`, so the measured process is Python's.
fn peer_bootstrap(work_dir: &Path, python: &Path, peer_dir: &Path) -> Result<PathBuf, BenchError> {
    let path = work_dir.join("powertools-bootstrap");
    let script = format!(
        "#!/bin/sh\ncd '{}'\nexec '{}' -m awslambdaric welcome_email.handler\n",
        peer_dir.display(),
        python.display()
    );
    std::fs::write(&path, script).map_err(|e| BenchError::io(&path, e))?;
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status();
    if !chmod.is_ok_and(|s| s.success()) {
        return Err(BenchError::Process(format!("chmod +x {}", path.display())));
    }
    Ok(path)
}

/// Invokes and insists on a clean batch: a benchmark of failing records measures nothing.
async fn invoke_clean(host: &RuntimeApiHost, event: Value) -> Result<(), BenchError> {
    let response = host
        .invoke(event)
        .await
        .map_err(|e| BenchError::Effects(format!("invocation failed: {e}")))?;
    match response["batchItemFailures"].as_array() {
        Some(failures) if failures.is_empty() => Ok(()),
        _ => Err(BenchError::Effects(format!(
            "the function reported failed records: {response}; see its log under target/bench/"
        ))),
    }
}

fn count(calls: &[fanout_testkit::fault_proxy::Call], operations: &[&str]) -> u32 {
    calls
        .iter()
        .filter(|c| operations.contains(&c.operation.as_str()))
        .count() as u32
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// CPU used so far and log written so far.
struct ProcessReading {
    cpu_ticks: u64,
    log_bytes: u64,
    log_lines: u64,
}

impl ProcessReading {
    fn take(pid: u32, log: &Path) -> Result<Self, BenchError> {
        let stat_path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&stat_path)
            .map_err(|e| BenchError::io(Path::new(&stat_path), e))?;
        // Fields after the command name (which may hold spaces): state is the first, utime
        // the 12th and stime the 13th (fields 14 and 15 of proc(5)).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let (Some(utime), Some(stime)) = (tick(11), tick(12)) else {
            return Err(BenchError::Process(format!(
                "unreadable {stat_path}: {stat}"
            )));
        };
        let text = std::fs::read(log).map_err(|e| BenchError::io(log, e))?;
        Ok(ProcessReading {
            cpu_ticks: utime + stime,
            log_bytes: text.len() as u64,
            log_lines: text.iter().filter(|b| **b == b'\n').count() as u64,
        })
    }
}

/// The process's peak resident set (`VmHWM`), KiB.
fn peak_rss_kib(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| BenchError::io(Path::new(&path), e))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| BenchError::Process(format!("no VmHWM in {path}")))
}

/// `getconf CLK_TCK`: the unit of the CPU times in `/proc/<pid>/stat`.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `perf record --call-graph dwarf` attached to the function process.
struct PerfRecording {
    child: tokio::process::Child,
}

impl PerfRecording {
    fn start(pid: u32, out: &Path) -> Result<Self, BenchError> {
        let child = tokio::process::Command::new("perf")
            .args([
                "record",
                "-F",
                "499",
                "--call-graph",
                "dwarf,16384",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(out)
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| BenchError::Process(format!("starting perf record: {e}")))?;
        Ok(PerfRecording { child })
    }

    async fn stop(mut self) -> Result<(), BenchError> {
        if let Some(id) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &id.to_string()])
                .status();
        }
        self.child
            .wait()
            .await
            .map_err(|e| BenchError::Process(format!("waiting for perf record: {e}")))?;
        Ok(())
    }
}

/// A CPU cgroup holding the function process, its CFS quota the share of one core Lambda
/// gives a memory size. Removed when dropped.
#[derive(Debug)]
struct CpuQuota {
    dir: PathBuf,
}

/// cgroup v1's CPU controller, and cgroup v2's root.
const CGROUP_V1_CPU: &str = "/sys/fs/cgroup/cpu";
const CGROUP_V2: &str = "/sys/fs/cgroup";

impl CpuQuota {
    fn apply(pid: u32, memory_mb: u32) -> Result<Self, BenchError> {
        const PERIOD_US: u64 = 100_000;
        let quota_us = (PERIOD_US * u64::from(memory_mb) / 1769).clamp(1_000, PERIOD_US);
        let v2 = Path::new(CGROUP_V2).join("cgroup.controllers").is_file();
        let root = if v2 { CGROUP_V2 } else { CGROUP_V1_CPU };
        let dir = Path::new(root).join(format!("fanout-bench-{pid}"));
        let unavailable = |what: &str, e: std::io::Error| {
            BenchError::CpuQuota(format!("{what} {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(&dir).map_err(|e| unavailable("creating", e))?;
        let quota = CpuQuota { dir: dir.clone() };
        let writes = if v2 {
            vec![("cpu.max", format!("{quota_us} {PERIOD_US}"))]
        } else {
            vec![
                ("cpu.cfs_period_us", PERIOD_US.to_string()),
                ("cpu.cfs_quota_us", quota_us.to_string()),
            ]
        };
        for (file, value) in writes {
            std::fs::write(dir.join(file), value).map_err(|e| unavailable(file, e))?;
        }
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
            .map_err(|e| unavailable("moving the function into", e))?;
        Ok(quota)
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // The killed process may take a moment to leave the group.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("fanout-bench: could not remove {}", self.dir.display());
    }
}
