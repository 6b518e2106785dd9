//! The fixed workload: DynamoDB Streams batches of 100 records, the mix a busy `Users` table
//! gives welcome-email: 60 new upgrades to a paid plan, 30 redeliveries of upgrades already
//! handled (the same records again, as a retried batch delivers them), 10 downgrades.

use serde_json::{Value, json};

/// Records in one batch, and the mix.
pub const BATCH_RECORDS: usize = 100;
pub const NEW_UPGRADES: usize = 60;
pub const REDELIVERIES: usize = 30;
pub const DOWNGRADES: usize = 10;

/// A reproducible sequence (splitmix64): the same seed gives the same batches.
#[derive(Debug, Clone)]
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Self {
        Seeded(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Generates batches for one run. `tag` makes every user id (and so every effect key) of the
/// run its own, so runs never share effects.
#[derive(Debug)]
pub struct Workload {
    tag: String,
    rng: Seeded,
    sequence: u64,
    batches: usize,
    /// Every upgrade record generated so far: what a redelivery repeats.
    upgrades: Vec<Value>,
}

impl Workload {
    pub fn new(tag: &str, seed: u64) -> Self {
        Workload {
            tag: tag.to_owned(),
            rng: Seeded::new(seed),
            sequence: 0,
            batches: 0,
            upgrades: Vec::new(),
        }
    }

    /// New effects made so far: one per upgrade generated.
    pub fn new_effects(&self) -> usize {
        self.upgrades.len()
    }

    /// One batch of the standard mix. The first batch of a run repeats its own upgrades;
    /// later ones repeat earlier batches' (a retried batch delivers the same records).
    pub fn mixed_batch(&mut self) -> Value {
        let batch = self.next_batch_number();
        let earlier = self.upgrades.len();
        let mut records: Vec<Value> = (0..NEW_UPGRADES).map(|i| self.upgrade(batch, i)).collect();
        let mut repeats = self.redeliveries(REDELIVERIES, earlier);
        let mut downgrades: Vec<Value> =
            (0..DOWNGRADES).map(|i| self.downgrade(batch, i)).collect();
        if earlier == 0 {
            // Repeats of this batch's own upgrades must come after them (one key's records
            // keep their stream order); the rest of the batch is shuffled.
            self.rng.shuffle(&mut records);
            records.append(&mut downgrades);
            records.append(&mut repeats);
        } else {
            records.append(&mut repeats);
            records.append(&mut downgrades);
            self.rng.shuffle(&mut records);
        }
        event(records)
    }

    /// A batch of `n` new upgrades only: what one new effect costs.
    pub fn new_only_batch(&mut self, n: usize) -> Value {
        let batch = self.next_batch_number();
        event((0..n).map(|i| self.upgrade(batch, i)).collect())
    }

    /// A batch of `n` redeliveries only: what one duplicate costs.
    pub fn duplicates_batch(&mut self, n: usize) -> Value {
        self.next_batch_number();
        let available = self.upgrades.len();
        event(self.redeliveries(n, available))
    }

    fn next_batch_number(&mut self) -> usize {
        self.batches += 1;
        self.batches - 1
    }

    /// `n` upgrades already generated, from the first `from` of them (all, when none are
    /// older than this batch), each at most once.
    fn redeliveries(&mut self, n: usize, from: usize) -> Vec<Value> {
        let pool = if from == 0 { self.upgrades.len() } else { from };
        let mut picks: Vec<usize> = (0..pool).collect();
        self.rng.shuffle(&mut picks);
        picks
            .into_iter()
            .take(n)
            .map(|i| self.upgrades[i].clone())
            .collect()
    }

    fn upgrade(&mut self, batch: usize, i: usize) -> Value {
        let user = format!("{}-b{batch}-u{i}", self.tag);
        let plan = if self.rng.below(4) == 0 {
            "enterprise"
        } else {
            "pro"
        };
        // One upgrade in five is a sign-up straight to a paid plan (an INSERT).
        let record = if self.rng.below(5) == 0 {
            self.record("INSERT", &user, None, Some((plan, 1)))
        } else {
            self.record("MODIFY", &user, Some(("free", 1)), Some((plan, 2)))
        };
        self.upgrades.push(record.clone());
        record
    }

    fn downgrade(&mut self, batch: usize, i: usize) -> Value {
        let user = format!("{}-b{batch}-d{i}", self.tag);
        self.record("MODIFY", &user, Some(("pro", 4)), Some(("free", 5)))
    }

    fn record(
        &mut self,
        event_name: &str,
        user: &str,
        old: Option<(&str, u64)>,
        new: Option<(&str, u64)>,
    ) -> Value {
        self.sequence += 1;
        let event_id = format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
        let image = |(plan, version): (&str, u64)| {
            json!({
                "userId": {"S": user},
                "email": {"S": format!("{user}@example.com")},
                "plan": {"S": plan},
                "version": {"N": version.to_string()},
                "updatedAt": {"S": "2026-12-01T09:00:00Z"},
                "name": {"S": "Ada Lovelace"},
            })
        };
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": 1_764_579_600u64 + self.sequence,
            "Keys": {"userId": {"S": user}},
            "SequenceNumber": format!("{}", 4_000_000_000_000_000_000_000u128 + u128::from(self.sequence)),
            "SizeBytes": 180,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(new) = new {
            dynamodb["NewImage"] = image(new);
        }
        if let Some(old) = old {
            dynamodb["OldImage"] = image(old);
        }
        json!({
            "eventID": event_id,
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": dynamodb,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/Users/stream/2026-12-01T00:00:00.000",
        })
    }
}

fn event(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// The number of records in an event.
pub fn record_count(event: &Value) -> usize {
    event["Records"].as_array().map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(event: &Value) -> Vec<String> {
        event["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["eventID"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    #[test]
    fn a_batch_has_the_stated_mix() {
        let mut workload = Workload::new("t", 7);
        workload.mixed_batch();
        let batch = workload.mixed_batch();
        let records = batch["Records"].as_array().cloned().unwrap_or_default();
        assert_eq!(records.len(), BATCH_RECORDS);
        let downgrades = records
            .iter()
            .filter(|r| r["dynamodb"]["NewImage"]["plan"]["S"] == "free")
            .count();
        assert_eq!(downgrades, DOWNGRADES);
        let repeated = records
            .iter()
            .filter(|r| {
                r["dynamodb"]["Keys"]["userId"]["S"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("t-b0-"))
            })
            .count();
        assert_eq!(repeated, REDELIVERIES);
        assert_eq!(workload.new_effects(), 2 * NEW_UPGRADES);
    }

    #[test]
    fn the_first_batch_repeats_its_own_upgrades_after_them() {
        let mut workload = Workload::new("t", 7);
        let batch = workload.mixed_batch();
        let ids = ids(&batch);
        for repeat in &ids[NEW_UPGRADES + DOWNGRADES..] {
            let first = ids.iter().position(|id| id == repeat);
            assert!(
                first.is_some_and(|p| p < NEW_UPGRADES),
                "{repeat} repeats no earlier record"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_batches() {
        let a = Workload::new("t", 42).mixed_batch();
        let b = Workload::new("t", 42).mixed_batch();
        let c = Workload::new("t", 43).mixed_batch();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
