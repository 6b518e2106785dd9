//! Runs a [`Scenario`] on the local stack: the resources the CDK app creates, every registered
//! consumer's real binary behind a Runtime API host, and a local event source mapping per
//! consumer with its deployed settings. Then reads back from the services what happened.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_esm::{Invoke, InvokeError, LocalMapping, MappingSettings, RuntimeApiHost};
use fanout_registry::ConsumerEntry;
use fanout_testkit::queues::drain_queue;
use fanout_testkit::resources::create_queue;
use fanout_testkit::search_standin::SearchStandIn;
use fanout_testkit::{local_sdk_config, ministack_url};
use serde_json::Value;

use super::scenario::{Scenario, UserWrite};
use crate::observe::{Described, EffectPlaces, Effects, scan};
use crate::wiring::{
    LocalTargets, function_config, on_failure_bucket, on_failure_objects, record_shape,
};

/// Why the demo could not run (as opposed to ran and found something wrong).
pub type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// Where the demo finds the consumer binaries and puts their logs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The directory holding one binary per consumer crate (`cargo build` output).
    pub functions_dir: PathBuf,
    /// Where each function's stdout/stderr is written.
    pub log_dir: PathBuf,
}

impl Default for DemoOptions {
    /// `target/debug` of this workspace (or `$CARGO_TARGET_DIR/debug`), logs under
    /// `target/demo-logs`.
    fn default() -> Self {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| fanout_testkit::workspace_root().join("target"));
        DemoOptions {
            functions_dir: target.join("debug"),
            log_dir: target.join("demo-logs"),
        }
    }
}

/// One check of an expectation against what the services hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    pub passed: bool,
    /// Expected and found, when the check failed.
    pub detail: String,
}

/// What one consumer's DLQ held at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqContents {
    /// `(userId, error)` of each parked record.
    pub parked: Vec<(String, String)>,
    /// Batches the mapping gave up on: OnFailure records in the DLQ (batch metadata only), or
    /// objects in the consumer's on-failure bucket (the whole batch).
    pub on_failure: usize,
}

/// Everything the demo read back.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Each consumer's effects, one line each, as its descriptor says they read.
    pub effects: Effects,
    /// By consumer crate name.
    pub dlqs: BTreeMap<String, DlqContents>,
    /// `(key, status)` of every ledger entry.
    pub ledger: Vec<(String, String)>,
}

/// Where the consumers' effects land, to be read back.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The SES sender the welcome emails come from.
    pub sender: String,
    /// A queue behind the CRM bus (a rule sends every `fanout.users` event to it).
    pub crm_queue: String,
    pub audit_table: String,
    pub ledger_table: String,
    /// Each consumer's DLQ, by crate name.
    pub dlqs: BTreeMap<String, String>,
    /// The on-failure bucket of each consumer that has one, by crate name.
    pub on_failure_buckets: BTreeMap<String, String>,
}

/// A redelivered batch: its size and how many records the function reported failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redelivery {
    pub consumer: String,
    pub records: usize,
    pub failed: usize,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub phases: Vec<String>,
    /// The consumers it ran, each with its descriptor, in registry order.
    pub consumers: Vec<Described>,
    /// Consumers registered with `source: kinesis`: their records arrive as Kinesis records.
    pub kinesis_readers: Vec<String>,
    pub observed: Observed,
    pub redeliveries: Vec<Redelivery>,
    pub checks: Vec<Check>,
    pub invocations: usize,
    pub filtered_out: usize,
    pub elapsed: Duration,
}

impl DemoReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }
}

/// The user a parked record is about. A Kinesis consumer parks the Kinesis record, whose change
/// is in its base64 `data`.
pub fn parked_user_id(record: &Value) -> Option<String> {
    fanout_core::source::read_record(record).change["dynamodb"]["Keys"]["userId"]["S"]
        .as_str()
        .map(str::to_owned)
}

/// The consumers whose records arrive as Kinesis records, for the report.
pub(super) fn kinesis_readers<'a>(
    entries: impl IntoIterator<Item = &'a ConsumerEntry>,
) -> Vec<String> {
    entries
        .into_iter()
        .filter(|e| e.reads_kinesis())
        .map(|e| e.crate_name.clone())
        .collect()
}

/// A consumer's function as its mapping sees it, remembering each event it was given so a
/// batch can be delivered again.
struct Recorded {
    host: RuntimeApiHost,
    delivered: Mutex<Vec<Value>>,
}

impl Invoke for Recorded {
    async fn invoke(&self, event: Value) -> Result<Value, InvokeError> {
        if let Ok(mut delivered) = self.delivered.lock() {
            delivered.push(event.clone());
        }
        self.host.invoke(event).await
    }
}

struct Wired {
    entry: ConsumerEntry,
    function: Arc<Recorded>,
    mapping: LocalMapping<Arc<Recorded>>,
}

/// Runs `scenario` and reports what each consumer did. Run it inside `fanout-local with`.
pub async fn run(scenario: &Scenario, options: &DemoOptions) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    let aws = local_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let named = |name: &str| format!("{name}-{run}");

    // The resources the CDK app creates, under names unique to this run.
    let local = LocalTargets::create(&aws, &run).await?;
    let values = local.values(local.search.endpoint());

    std::fs::create_dir_all(&options.log_dir)?;
    let mut consumers = Vec::new();
    let mut dlqs = BTreeMap::new();
    let mut on_failure_buckets = BTreeMap::new();
    let described = Described::all()?;
    for Described { entry, .. } in described.clone() {
        let dlq_url = create_queue(&sqs, &named(&format!("{}-dlq", entry.crate_name))).await?;
        let log = options
            .log_dir
            .join(format!("{}-{run}.log", entry.crate_name));
        let host = RuntimeApiHost::start(function_config(
            &entry,
            &options.functions_dir,
            values.env_for(&entry, &dlq_url)?,
            Some(log),
        ))
        .await?;
        let function = Arc::new(Recorded {
            host,
            delivered: Mutex::new(Vec::new()),
        });
        let settings = MappingSettings::from_json(entry.event_source_mapping())?;
        let mut mapping = LocalMapping::new(
            &aws,
            &local.stream_arn,
            &entry.crate_name,
            &dlq_url,
            settings,
            Arc::clone(&function),
        )
        .with_record_shape(record_shape(&entry));
        if let Some(bucket) = on_failure_bucket(&aws, &entry, &run).await? {
            mapping = mapping.with_on_failure_bucket(&bucket);
            on_failure_buckets.insert(entry.crate_name.clone(), bucket);
        }
        dlqs.insert(entry.crate_name.clone(), dlq_url);
        consumers.push(Wired {
            entry,
            function,
            mapping,
        });
    }

    let mut report = DemoReport {
        phases: Vec::new(),
        consumers: described,
        kinesis_readers: kinesis_readers(consumers.iter().map(|w| &w.entry)),
        observed: Observed::default(),
        redeliveries: Vec::new(),
        checks: Vec::new(),
        invocations: 0,
        filtered_out: 0,
        elapsed: Duration::ZERO,
    };
    for phase in &scenario.phases {
        report.phases.push(phase.say.clone());
        for write in &phase.writes {
            apply(&dynamodb, &local.users_table, write).await?;
        }
        for wired in &mut consumers {
            let polled = wired.mapping.poll_until_idle().await?;
            report.invocations += polled.invocations.len();
            report.filtered_out += polled.filtered_out;
        }
        if phase.redeliver_first_batch {
            for wired in &consumers {
                report.redeliveries.push(redeliver(wired).await?);
            }
        }
    }

    let targets = Targets {
        sender: local.sender.clone(),
        crm_queue: local.crm_queue.clone(),
        audit_table: local.audit_table.clone(),
        ledger_table: local.ledger_table.clone(),
        dlqs,
        on_failure_buckets,
    };
    report
        .observe_and_check(&aws, &local.search, &targets)
        .await?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Makes one write of the scenario to the `Users` table, as the API would.
pub async fn apply(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    write: &UserWrite,
) -> Result<(), DemoError> {
    match write {
        UserWrite::Put(row) => {
            let version = match &row.version {
                Value::Number(n) => AttributeValue::N(n.to_string()),
                // The poison record: a version no consumer can decode.
                other => AttributeValue::S(other.as_str().unwrap_or_default().to_owned()),
            };
            dynamodb
                .put_item()
                .table_name(table)
                .item("userId", AttributeValue::S(row.user_id.clone()))
                .item(
                    "email",
                    AttributeValue::S(format!("{}@example.com", row.user_id)),
                )
                .item("name", AttributeValue::S(row.name.clone()))
                .item("plan", AttributeValue::S(row.plan.clone()))
                .item("version", version)
                .item(
                    "updatedAt",
                    AttributeValue::S(
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    ),
                )
                .send()
                .await?;
        }
        UserWrite::Delete(user) => {
            dynamodb
                .delete_item()
                .table_name(table)
                .key("userId", AttributeValue::S(user.clone()))
                .send()
                .await?;
        }
    }
    Ok(())
}

/// Delivers the consumer's first batch again, as Lambda may after a lost response.
async fn redeliver(wired: &Wired) -> Result<Redelivery, DemoError> {
    let first = wired
        .function
        .delivered
        .lock()
        .ok()
        .and_then(|d| d.first().cloned());
    let Some(event) = first else {
        return Ok(Redelivery {
            consumer: wired.entry.crate_name.clone(),
            records: 0,
            failed: 0,
        });
    };
    let records = event["Records"].as_array().map_or(0, Vec::len);
    let response = wired.function.invoke(event).await?;
    Ok(Redelivery {
        consumer: wired.entry.crate_name.clone(),
        records,
        failed: response["batchItemFailures"].as_array().map_or(0, Vec::len),
    })
}

impl DemoReport {
    /// Reads what the consumers have done so far into `observed` and judges it again.
    pub async fn observe_and_check(
        &mut self,
        aws: &aws_config::SdkConfig,
        search: &SearchStandIn,
        targets: &Targets,
    ) -> Result<(), DemoError> {
        observe(aws, search, targets, &self.consumers, &mut self.observed).await?;
        self.checks = check(self);
        Ok(())
    }
}

/// Reads back what the services hold into `observed`. Queues are drained, so what they held
/// is added to what earlier calls found; the rest is read anew.
pub async fn observe(
    aws: &aws_config::SdkConfig,
    search: &SearchStandIn,
    targets: &Targets,
    consumers: &[Described],
    observed: &mut Observed,
) -> Result<(), DemoError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let ministack = ministack_url_for(aws);
    let places = EffectPlaces {
        ministack: &ministack,
        sender: &targets.sender,
        crm_queue: &targets.crm_queue,
        audit_table: &targets.audit_table,
        ledger_table: &targets.ledger_table,
        search,
    };
    observed.effects.read(consumers, aws, &places).await?;
    for (consumer, url) in &targets.dlqs {
        let contents = observed.dlqs.entry(consumer.clone()).or_default();
        for body in drain_queue(&sqs, url).await? {
            let message: Value = serde_json::from_str(&body)?;
            match message.get("record") {
                Some(record) => contents.parked.push((
                    parked_user_id(record).unwrap_or_else(|| "?".to_owned()),
                    message["error"].as_str().unwrap_or("").to_owned(),
                )),
                None => contents.on_failure += 1,
            }
        }
    }
    for (consumer, bucket) in &targets.on_failure_buckets {
        let contents = observed.dlqs.entry(consumer.clone()).or_default();
        contents.on_failure += on_failure_objects(aws, bucket).await?;
    }
    observed.ledger.clear();
    for entry in scan(&dynamodb, &targets.ledger_table).await? {
        let text = |name: &str| {
            entry
                .get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        observed.ledger.push((text("pk"), text("status")));
    }
    observed.ledger.sort();
    Ok(())
}

/// ministack's base URL: the SQS endpoint of the local stack, or the one endpoint of a local
/// AWS (`AWS_ENDPOINT_URL`).
fn ministack_url_for(aws: &aws_config::SdkConfig) -> String {
    let url = ministack_url();
    if !url.is_empty() {
        return url;
    }
    aws.endpoint_url().unwrap_or_default().to_owned()
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

/// Each consumer's expectations of the demo (its descriptor's) against what a run found.
pub fn check(report: &DemoReport) -> Vec<Check> {
    let observed = &report.observed;
    let mut checks = Vec::new();
    let mut compare = |what: String, expected: String, found: String| {
        let passed = expected == found;
        checks.push(Check {
            what,
            passed,
            detail: if passed {
                String::new()
            } else {
                format!("expected {expected}, found {found}")
            },
        });
    };
    let parked_expected = |consumer: &str| {
        report
            .consumers
            .iter()
            .find(|c| c.entry.crate_name == consumer)
            .map(|c| c.descriptor.effects.demo_parked.clone())
            .unwrap_or_default()
    };
    for consumer in &report.consumers {
        let name = &consumer.entry.crate_name;
        compare(
            format!(
                "{name}: exactly the expected effects ({}), each as often as expected",
                consumer.descriptor.observed_in.describe()
            ),
            format!("{:?}", sorted(consumer.descriptor.effects.demo.clone())),
            format!("{:?}", sorted(observed.effects.of(name).to_vec())),
        );
    }
    for (consumer, contents) in &observed.dlqs {
        let expected = sorted(parked_expected(consumer));
        let found = sorted(
            contents
                .parked
                .iter()
                .map(|(user, _)| user.clone())
                .collect(),
        );
        compare(
            format!("{consumer}: parked exactly the poison records"),
            format!("{expected:?}"),
            format!("{found:?}"),
        );
        compare(
            format!("{consumer}: no batch given up on (no OnFailure record)"),
            "0".to_owned(),
            contents.on_failure.to_string(),
        );
    }
    for redelivery in &report.redeliveries {
        compare(
            format!(
                "{}: the redelivered batch succeeded (its effects are counted above)",
                redelivery.consumer
            ),
            "0 failed".to_owned(),
            format!("{} failed", redelivery.failed),
        );
    }
    let open: Vec<&String> = observed
        .ledger
        .iter()
        .filter(|(_, status)| status != "COMPLETED")
        .map(|(key, _)| key)
        .collect();
    compare(
        "ledger: every claimed effect is COMPLETED".to_owned(),
        "[]".to_owned(),
        format!("{open:?}"),
    );
    checks
}
