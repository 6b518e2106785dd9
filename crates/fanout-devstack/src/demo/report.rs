//! Printing a [`DemoReport`]: what each consumer did, then a one-line verdict.

use std::fmt;

use super::run::DemoReport;

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, phase) in self.phases.iter().enumerate() {
            writeln!(f, "phase {}: {phase}", n + 1)?;
        }
        writeln!(
            f,
            "consumers: the real binaries, each behind a Runtime API host and its own local event source mapping"
        )?;
        if !self.kinesis_readers.is_empty() {
            writeln!(
                f,
                "source:    {} read(s) the Kinesis stream (changes as base64 Kinesis records); the rest the DynamoDB stream",
                self.kinesis_readers.join(", ")
            )?;
        }
        writeln!(f)?;
        let o = &self.observed;
        for consumer in &self.consumers {
            let name = &consumer.entry.crate_name;
            let effects = o.effects.of(name);
            writeln!(
                f,
                "{name:<14} {} {}: {}",
                effects.len(),
                consumer.descriptor.observed_in.describe(),
                effects.join(", ")
            )?;
        }
        writeln!(f)?;
        for redelivery in &self.redeliveries {
            writeln!(
                f,
                "redelivered batch  {:<13} {} record(s), {} failed: no new effect if the counts above hold",
                redelivery.consumer, redelivery.records, redelivery.failed
            )?;
        }
        writeln!(f)?;
        for (consumer, dlq) in &o.dlqs {
            let parked: Vec<String> = dlq
                .parked
                .iter()
                .map(|(user, error)| {
                    // "record <eventID>: <why>": keep the why.
                    let why = error
                        .split_once(": ")
                        .map_or(error.as_str(), |(_, why)| why);
                    format!("{user}: {}", why.chars().take(70).collect::<String>())
                })
                .collect();
            writeln!(
                f,
                "DLQ {consumer:<13} {} parked, {} on-failure record(s) {}",
                dlq.parked.len(),
                dlq.on_failure,
                parked.join("; ")
            )?;
        }
        let ledger: Vec<String> = o.ledger.iter().map(|(k, s)| format!("{k} {s}")).collect();
        writeln!(
            f,
            "ledger         {} entr(ies): {}",
            ledger.len(),
            ledger.join(", ")
        )?;
        writeln!(
            f,
            "mappings       {} invocation(s), {} record(s) filtered out before invoking",
            self.invocations, self.filtered_out
        )?;
        writeln!(f, "elapsed        {:.1} s", self.elapsed.as_secs_f64())?;
        writeln!(f)?;
        if self.passed() {
            write!(
                f,
                "VERDICT: PASS: each effect happened exactly once, the poison record was parked, no shard got stuck"
            )
        } else {
            for failure in self.failures() {
                writeln!(f, "  - {}: {}", failure.what, failure.detail)?;
            }
            write!(
                f,
                "VERDICT: FAIL: {} check(s) failed",
                self.failures().count()
            )
        }
    }
}
