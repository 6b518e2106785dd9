//! The side-by-side table and the budget.

use std::fmt::Write;

use crate::cost::{self, BatchProfile, MillionRecords, Prices};
use crate::measure::{Latency, RunResult};

/// Every pass of one implementation.
#[derive(Debug, Clone)]
pub struct Measured {
    pub label: &'static str,
    pub loopback: RunResult,
    pub latency: RunResult,
    /// Median batch wall time at service latencies under the CPU share of a memory size:
    /// (size MB, ms). Empty where the machine gives no CPU cgroup.
    pub under_quota: Vec<(u32, f64)>,
}

impl Measured {
    /// The latency pass as the cost model sees it; memory and logs from whichever pass used more.
    pub fn profile(&self) -> BatchProfile {
        BatchProfile {
            records: crate::workload::BATCH_RECORDS as f64,
            wall_ms: self.latency.warm_median_ms(),
            cpu_ms: self.latency.cpu_ms_per_batch(),
            peak_rss_mib: self.loopback.peak_rss_mib.max(self.latency.peak_rss_mib),
            writes_per_record: self.loopback.writes_per_record(),
            log_bytes_per_record: self.loopback.log_bytes_per_record(),
        }
    }

    /// The cost at each size measured under its CPU share (where the function fits).
    pub fn measured_costs(&self, prices: &Prices) -> Vec<MillionRecords> {
        let profile = self.profile();
        self.under_quota
            .iter()
            .filter(|(size, _)| cost::fits(&profile, *size))
            .map(|(size, wall)| cost::at_billed(&profile, *size, *wall, prices))
            .collect()
    }

    /// The cheapest size by compute: among the measured sizes if any were, else the model's.
    pub fn cheapest(&self, prices: &Prices) -> Option<MillionRecords> {
        let measured = self.measured_costs(prices);
        if measured.is_empty() {
            return cost::sweep(&self.profile(), prices).1;
        }
        measured
            .into_iter()
            .min_by(|a, b| a.compute_usd.total_cmp(&b.compute_usd))
    }
}

/// Sizes of the deployment zips, bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZipSizes {
    pub x86_64: Option<u64>,
    pub arm64: Option<u64>,
}

/// One budget line.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetLine {
    pub what: String,
    pub limit: String,
    pub measured: String,
    pub met: bool,
}

const MB: f64 = 1_000_000.0;

/// The budget fanout's welcome-email must meet against the peer of the same run.
pub fn budget(
    fanout: &Measured,
    peer: &Measured,
    zips: ZipSizes,
    prices: &Prices,
) -> Vec<BudgetLine> {
    let mut lines = Vec::new();
    let mut line = |what: &str, limit: String, measured: String, met: bool| {
        lines.push(BudgetLine {
            what: what.to_owned(),
            limit,
            measured,
            met,
        });
    };
    let (ours, theirs) = (
        fanout.loopback.cpu_us_per_record(),
        peer.loopback.cpu_us_per_record(),
    );
    line(
        "CPU per record",
        format!("<= 1/15 of the peer's ({:.0} us)", theirs / 15.0),
        format!(
            "{ours:.0} us (1/{:.1})",
            theirs / ours.max(f64::MIN_POSITIVE)
        ),
        ours * 15.0 <= theirs,
    );
    let (ours, theirs) = (
        fanout
            .cheapest(prices)
            .map_or(f64::INFINITY, |c| c.compute_usd),
        peer.cheapest(prices).map_or(0.0, |c| c.compute_usd),
    );
    line(
        "Compute cost per million records",
        format!("<= 1/10 of the peer's (${:.4})", theirs / 10.0),
        format!("${ours:.4} (1/{:.1})", theirs / ours.max(f64::MIN_POSITIVE)),
        ours * 10.0 <= theirs,
    );
    let bytes = fanout.loopback.log_bytes_per_record();
    line(
        "Log bytes per successful record at INFO",
        "<= 100".into(),
        format!("{bytes:.1}"),
        bytes <= 100.0,
    );
    let init = fanout.loopback.init_ms;
    line(
        "Init",
        "<= 15 ms".into(),
        format!("{init:.1} ms"),
        init <= 15.0,
    );
    let rss = fanout.profile().peak_rss_mib;
    line(
        "Peak RSS, 100-record batches",
        "<= 16 MiB".into(),
        format!("{rss:.1} MiB"),
        rss <= 16.0,
    );
    match zips.x86_64 {
        Some(size) => line(
            "x86_64 zip",
            "<= 3.5 MB".into(),
            format!("{:.2} MB", size as f64 / MB),
            size as f64 <= 3.5 * MB,
        ),
        None => line("x86_64 zip", "<= 3.5 MB".into(), "not built".into(), false),
    }
    let per_new = fanout.loopback.writes_per_new_effect.unwrap_or(f64::NAN);
    let per_duplicate = fanout.loopback.writes_per_duplicate.unwrap_or(f64::NAN);
    let reads = fanout.loopback.reads + fanout.latency.reads;
    line(
        "DynamoDB requests",
        "2 writes per new effect, 1 per duplicate, 0 reads".into(),
        format!("{per_new:.2} per new effect, {per_duplicate:.2} per duplicate, {reads} reads"),
        per_new == 2.0 && per_duplicate == 1.0 && reads == 0,
    );
    lines
}

/// One table row: what, fanout's, the peer's, the peer-over-fanout ratio.
type Row = [String; 4];

/// How many times `theirs` is `ours`, or `-` when `ours` is not positive.
fn ratio(ours: f64, theirs: f64) -> String {
    if ours > 0.0 {
        format!("{:.1}x", theirs / ours)
    } else {
        "-".to_owned()
    }
}

/// The report: the settings, the table, the memory sweep and the budget.
pub fn markdown(
    fanout: &Measured,
    peer: &Measured,
    zips: ZipSizes,
    latency: Latency,
    prices: &Prices,
    budget: &[BudgetLine],
    header: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    let mut rows: Vec<Row> = Vec::new();
    // One number of each implementation, shown alike, with the peer-over-fanout ratio.
    let compare = |what: &str, of: &dyn Fn(&Measured) -> f64, shown: &dyn Fn(f64) -> String| {
        let (ours, theirs) = (of(fanout), of(peer));
        [
            what.to_owned(),
            shown(ours),
            shown(theirs),
            ratio(ours, theirs),
        ]
    };
    // Text of each implementation, without a ratio.
    let describe = |what: &str, of: &dyn Fn(&Measured) -> String| {
        [what.to_owned(), of(fanout), of(peer), String::new()]
    };
    let cheapest = |m: &Measured, of: fn(&MillionRecords) -> f64| {
        m.cheapest(prices).as_ref().map_or(f64::NAN, of)
    };
    let usd = |v: f64| format!("${v:.4}");
    let ms0 = |v: f64| format!("{v:.0} ms");
    let ms1 = |v: f64| format!("{v:.1} ms");

    let [what, ours, theirs, times] = compare(
        if fanout.under_quota.is_empty() {
            "**Compute per million records** (cheapest size, arm64, modelled)"
        } else {
            "**Compute per million records** (cheapest size, arm64, measured under its CPU share)"
        },
        &|m| cheapest(m, |c| c.compute_usd),
        &usd,
    );
    rows.push([
        what,
        format!("**{ours}**"),
        format!("**{theirs}**"),
        format!("**{times}**"),
    ]);
    rows.push(describe("Cheapest memory size", &|m| {
        m.cheapest(prices)
            .map_or("-".to_owned(), |c| format!("{} MB", c.memory_mb))
    }));
    rows.push(compare(
        "Billed duration per batch at that size",
        &|m| cheapest(m, |c| c.billed_ms_per_batch),
        &ms0,
    ));
    rows.push(compare(
        "GB-seconds per million records",
        &|m| cheapest(m, |c| c.gb_seconds),
        &|v| format!("{v:.1}"),
    ));
    rows.push(compare(
        "Log ingestion per million records",
        &|m| cheapest(m, |c| c.logs_usd),
        &usd,
    ));
    rows.push(compare(
        "DynamoDB writes per million records",
        &|m| cheapest(m, |c| c.writes_usd),
        &usd,
    ));
    rows.push(compare(
        "Total per million records (compute + logs + writes)",
        &|m| cheapest(m, MillionRecords::total_usd),
        &usd,
    ));
    rows.push(compare(
        "Batch wall time at service latencies, median",
        &|m| m.latency.warm_median_ms(),
        &ms0,
    ));
    rows.push(compare(
        "Batch wall time at service latencies, p95",
        &|m| m.latency.warm_p95_ms(),
        &ms0,
    ));
    // The first batch a new process serves, its init taken out: connections and lazily built
    // state are paid for here.
    let [what, ours, theirs, _] = compare(
        "First batch after init over the warm median, at latencies",
        &|m| {
            (m.latency.cold_batch_ms - m.latency.init_ms)
                / m.latency.warm_median_ms().max(f64::MIN_POSITIVE)
        },
        &|v| format!("{v:.2}"),
    );
    rows.push([what, ours, theirs, String::new()]);
    rows.push(compare(
        "CPU per record (user + sys, warm)",
        &|m| m.loopback.cpu_us_per_record(),
        &|v| format!("{v:.0} us"),
    ));
    rows.push(compare(
        "Init (spawn to first /next)",
        &|m| m.loopback.init_ms,
        &ms1,
    ));
    rows.push(compare(
        "Cold batch, loopback (init included)",
        &|m| m.loopback.cold_batch_ms,
        &ms1,
    ));
    rows.push(compare(
        "Warm batch, loopback, median",
        &|m| m.loopback.warm_median_ms(),
        &ms1,
    ));
    rows.push(compare(
        "Warm batch, loopback, p95",
        &|m| m.loopback.warm_p95_ms(),
        &ms1,
    ));
    rows.push(compare("Peak RSS", &|m| m.profile().peak_rss_mib, &|v| {
        format!("{v:.1} MiB")
    }));
    rows.push(compare(
        "Log bytes per record at INFO",
        &|m| m.loopback.log_bytes_per_record(),
        &|v| format!("{v:.1}"),
    ));
    rows.push(describe("Log lines per record at INFO", &|m| {
        format!("{:.2}", m.loopback.log_lines_per_record())
    }));
    rows.push(describe(
        "DynamoDB writes per new effect / per duplicate / reads",
        &|m| {
            format!(
                "{:.2} / {:.2} / {}",
                m.loopback.writes_per_new_effect.unwrap_or(f64::NAN),
                m.loopback.writes_per_duplicate.unwrap_or(f64::NAN),
                m.loopback.reads + m.latency.reads
            )
        },
    ));
    rows.push(describe("Emails sent, of new upgrades", &|m| {
        format!(
            "{} of {}",
            m.loopback.emails_sent + m.latency.emails_sent,
            m.loopback.emails_expected + m.latency.emails_expected
        )
    }));
    let zip = |size: Option<u64>| {
        size.map_or("not built".to_owned(), |s| {
            format!("{:.2} MB", s as f64 / MB)
        })
    };
    rows.push([
        "Zip, x86_64 / arm64".to_owned(),
        format!("{} / {}", zip(zips.x86_64), zip(zips.arm64)),
        "-".into(),
        String::new(),
    ]);

    let _ = writeln!(
        out,
        "| | {} | {} | peer / fanout |",
        fanout.label, peer.label
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for [what, ours, theirs, ratio] in rows {
        let _ = writeln!(out, "| {what} | {ours} | {theirs} | {ratio} |");
    }
    let _ = writeln!(
        out,
        "\nService latency added per call: DynamoDB {} ms, SES {} ms. Prices: ${} per GB-second, \
         ${} per million invocations (arm64), ${} per million DynamoDB writes, ${} per GB of logs.\n",
        latency.dynamodb.as_millis(),
        latency.ses.as_millis(),
        prices.usd_per_gb_second,
        prices.usd_per_million_invocations,
        prices.usd_per_million_writes,
        prices.usd_per_log_gb
    );
    let _ = writeln!(
        out,
        "Compute per million records by memory size: billed ms per batch and USD, from the \
         cost model and, where run, measured under the size's CPU share:\n"
    );
    let _ = writeln!(
        out,
        "| Memory | {0} model | {0} measured | {1} model | {1} measured |",
        fanout.label, peer.label
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
    let (f_measured, p_measured) = (fanout.measured_costs(prices), peer.measured_costs(prices));
    let (f_all, p_all) = (
        cost::sweep(&fanout.profile(), prices).0,
        cost::sweep(&peer.profile(), prices).0,
    );
    for size in cost::SIZES_MB {
        let cell = |all: &[MillionRecords], missing: &str| {
            all.iter()
                .find(|c| c.memory_mb == *size)
                .map_or(missing.to_owned(), |c| {
                    format!("{:.0} ms, ${:.4}", c.billed_ms_per_batch, c.compute_usd)
                })
        };
        let _ = writeln!(
            out,
            "| {size} MB | {} | {} | {} | {} |",
            cell(&f_all, "too small"),
            cell(&f_measured, "-"),
            cell(&p_all, "too small"),
            cell(&p_measured, "-")
        );
    }
    let _ = writeln!(out, "\nBudget:\n");
    let _ = writeln!(out, "| Budget line | Limit | Measured | |");
    let _ = writeln!(out, "|---|---|---|---|");
    for line in budget {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            line.what,
            line.limit,
            line.measured,
            if line.met { "met" } else { "**missed**" }
        );
    }
    out
}
