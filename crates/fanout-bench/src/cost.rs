//! What a million records cost, from one implementation's measurements.
//!
//! Lambda bills duration (rounded up to 1 ms) times configured memory, and gives CPU in
//! proportion to memory: one full vCPU at 1,769 MB, so a 128 MB function gets 128/1769 of a
//! core. The model takes a batch's measured wall time at realistic service latencies and its
//! measured CPU time (user + system, on a full core) and splits the wall time into CPU and
//! waiting. At a memory size it keeps the waiting and stretches the CPU by 1769/size:
//!
//! `billed(size) = ceil(max(wall - cpu, 0) + cpu * max(1, 1769 / size))` ms.
//!
//! Adding the stretched CPU to the waiting assumes none of the CPU overlaps a wait. That is
//! exact for a function that handles one record at a time (the Powertools BatchProcessor) and
//! pessimistic for one that handles records concurrently (fanout's), whose CPU partly hides
//! behind its waits. Where the machine lets the bench put the function under a CFS CPU quota
//! (what Lambda does), the billed duration is also measured at a few sizes, and the headline
//! uses the measurement. A size is usable when the measured peak RSS fits in it with a quarter
//! left over.

/// Prices (arm64, us-east-1, as published for 2026): Lambda duration per GB-second and per
/// request, DynamoDB on-demand writes, CloudWatch Logs ingestion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub usd_per_gb_second: f64,
    pub usd_per_million_invocations: f64,
    pub usd_per_million_writes: f64,
    pub usd_per_log_gb: f64,
}

pub const ARM64_PRICES: Prices = Prices {
    usd_per_gb_second: 0.000_013_333_4,
    usd_per_million_invocations: 0.20,
    usd_per_million_writes: 0.625,
    usd_per_log_gb: 0.50,
};

/// The memory sizes swept, MB.
pub const SIZES_MB: &[u32] = &[128, 192, 256, 384, 512, 768, 1024, 1280, 1536, 1769];

/// The memory size that gives one full vCPU.
pub const FULL_CPU_MB: f64 = 1769.0;

/// One implementation's measurements at realistic latencies, per batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchProfile {
    pub records: f64,
    /// Median wall time of a warm batch, ms.
    pub wall_ms: f64,
    /// CPU time of a warm batch (user + system), ms.
    pub cpu_ms: f64,
    pub peak_rss_mib: f64,
    /// DynamoDB writes per record.
    pub writes_per_record: f64,
    /// Log bytes per record.
    pub log_bytes_per_record: f64,
}

/// The cost of a million records at one memory size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MillionRecords {
    pub memory_mb: u32,
    pub billed_ms_per_batch: f64,
    pub gb_seconds: f64,
    /// Duration and invocation charges.
    pub compute_usd: f64,
    pub writes_usd: f64,
    pub logs_usd: f64,
}

impl MillionRecords {
    pub fn total_usd(&self) -> f64 {
        self.compute_usd + self.writes_usd + self.logs_usd
    }
}

/// Billed duration of one batch at `memory_mb`, ms (see the module docs).
pub fn billed_ms(profile: &BatchProfile, memory_mb: u32) -> f64 {
    let waiting = (profile.wall_ms - profile.cpu_ms).max(0.0);
    let stretch = (FULL_CPU_MB / f64::from(memory_mb)).max(1.0);
    (waiting + profile.cpu_ms * stretch).ceil()
}

/// Whether the function fits in `memory_mb` with a quarter of it left over.
pub fn fits(profile: &BatchProfile, memory_mb: u32) -> bool {
    profile.peak_rss_mib * 1.25 <= f64::from(memory_mb)
}

/// What a million records cost at `memory_mb`.
pub fn per_million(profile: &BatchProfile, memory_mb: u32, prices: &Prices) -> MillionRecords {
    at_billed(profile, memory_mb, billed_ms(profile, memory_mb), prices)
}

/// What a million records cost at `memory_mb` when a batch is billed `billed` ms: measured
/// under a CPU quota, or from the model.
pub fn at_billed(
    profile: &BatchProfile,
    memory_mb: u32,
    billed: f64,
    prices: &Prices,
) -> MillionRecords {
    let billed = billed.ceil();
    let invocations = 1e6 / profile.records.max(1.0);
    let gb_seconds = invocations * billed / 1000.0 * f64::from(memory_mb) / 1024.0;
    MillionRecords {
        memory_mb,
        billed_ms_per_batch: billed,
        gb_seconds,
        compute_usd: gb_seconds * prices.usd_per_gb_second
            + invocations / 1e6 * prices.usd_per_million_invocations,
        writes_usd: profile.writes_per_record * prices.usd_per_million_writes,
        logs_usd: profile.log_bytes_per_record * 1e6 / f64::from(1u32 << 30)
            * prices.usd_per_log_gb,
    }
}

/// Every usable size's cost, and the cheapest by compute.
pub fn sweep(
    profile: &BatchProfile,
    prices: &Prices,
) -> (Vec<MillionRecords>, Option<MillionRecords>) {
    let all: Vec<MillionRecords> = SIZES_MB
        .iter()
        .filter(|size| fits(profile, **size))
        .map(|size| per_million(profile, *size, prices))
        .collect();
    let cheapest = all
        .iter()
        .copied()
        .min_by(|a, b| a.compute_usd.total_cmp(&b.compute_usd));
    (all, cheapest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: BatchProfile = BatchProfile {
        records: 100.0,
        wall_ms: 100.0,
        cpu_ms: 20.0,
        peak_rss_mib: 60.0,
        writes_per_record: 1.5,
        log_bytes_per_record: 100.0,
    };

    #[test]
    fn cpu_stretches_below_a_full_vcpu_and_waiting_does_not() {
        assert_eq!(billed_ms(&PROFILE, 1769), 100.0);
        assert_eq!(billed_ms(&PROFILE, 3538), 100.0);
        // 80 ms waiting + 20 ms of CPU at 128/1769 of a core.
        assert_eq!(
            billed_ms(&PROFILE, 128),
            (80.0 + 20.0 * 1769.0 / 128.0_f64).ceil()
        );
    }

    #[test]
    fn a_million_records_is_ten_thousand_batches_of_a_hundred() {
        let cost = per_million(&PROFILE, 1769, &ARM64_PRICES);
        // 10,000 invocations x 0.1 s (a full vCPU: nothing stretched) x 1769/1024 GB.
        let gb_seconds = 10_000.0 * 0.1 * 1769.0 / 1024.0;
        assert!((cost.gb_seconds - gb_seconds).abs() < 1e-9);
        let expected = gb_seconds * ARM64_PRICES.usd_per_gb_second + 0.01 * 0.20;
        assert!((cost.compute_usd - expected).abs() < 1e-12);
        assert!((cost.writes_usd - 1.5 * 0.625).abs() < 1e-12);
        // 100 MB of logs.
        assert!((cost.logs_usd - 1e8 / f64::from(1u32 << 30) * 0.5).abs() < 1e-12);
    }

    #[test]
    fn the_sweep_skips_sizes_the_function_does_not_fit() {
        let (all, cheapest) = sweep(&PROFILE, &ARM64_PRICES);
        assert!(all.iter().all(|c| c.memory_mb >= 75));
        assert_eq!(all.len(), SIZES_MB.len());
        let big = BatchProfile {
            peak_rss_mib: 300.0,
            ..PROFILE
        };
        let (all, _) = sweep(&big, &ARM64_PRICES);
        assert_eq!(all.first().map(|c| c.memory_mb), Some(384));
        let cheapest = cheapest.map(|c| c.compute_usd).unwrap_or(f64::NAN);
        let min = all_min(&sweep(&PROFILE, &ARM64_PRICES).0);
        assert_eq!(cheapest, min);
    }

    #[test]
    fn a_measured_duration_is_billed_rounded_up_to_the_millisecond() {
        let measured = at_billed(&PROFILE, 128, 99.2, &ARM64_PRICES);
        assert_eq!(measured.billed_ms_per_batch, 100.0);
        let gb_seconds = 10_000.0 * 0.1 * 128.0 / 1024.0;
        assert!((measured.gb_seconds - gb_seconds).abs() < 1e-9);
        // The model at the same size bills the stretched CPU on top of the wait.
        assert!(per_million(&PROFILE, 128, &ARM64_PRICES).billed_ms_per_batch > 100.0);
    }

    fn all_min(all: &[MillionRecords]) -> f64 {
        all.iter()
            .map(|c| c.compute_usd)
            .fold(f64::INFINITY, f64::min)
    }
}
