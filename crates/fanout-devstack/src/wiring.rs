//! Wiring a registered consumer's real binary the way its stack does: its environment from
//! its registry entry with local values, and its function settings.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use fanout_esm::{FunctionConfig, RecordShape};
use fanout_registry::ConsumerEntry;
use fanout_testkit::resources::{
    USERS_STREAM_VIEW, create_audit_table, create_bus_to_queue, create_ledger_table, create_queue,
    create_users_table, create_verified_sender, queue_arn,
};
use fanout_testkit::search_standin::SearchStandIn;

use crate::demo::DemoError;

/// What the CDK app creates, made locally under names unique to one run: the tables, the
/// CRM bus (with a queue behind it to read its events back), the SES sender and the search
/// stand-in.
#[derive(Debug)]
pub struct LocalTargets {
    pub users_table: String,
    pub stream_arn: String,
    pub ledger_table: String,
    pub audit_table: String,
    pub bus: String,
    /// A queue behind the CRM bus (a rule sends every `fanout.users` event to it).
    pub crm_queue: String,
    pub sender: String,
    pub search: SearchStandIn,
}

impl LocalTargets {
    /// Creates them, each name ending in `-{run}`.
    pub async fn create(aws: &aws_config::SdkConfig, run: &str) -> Result<Self, DemoError> {
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let named = |name: &str| format!("{name}-{run}");
        let users_table = named("Users");
        let ledger_table = named("EffectLedger");
        let audit_table = named("UserAudit");
        let stream_arn = create_users_table(&dynamodb, &users_table).await?;
        create_ledger_table(&dynamodb, &ledger_table).await?;
        create_audit_table(&dynamodb, &audit_table).await?;
        let crm_queue = create_queue(&sqs, &named("crm-inspection")).await?;
        let bus = named("crm");
        create_bus_to_queue(
            &aws_sdk_eventbridge::Client::new(aws),
            &bus,
            &queue_arn(&sqs, &crm_queue).await?,
        )
        .await?;
        let sender = format!("welcome-{run}@fanout.example");
        create_verified_sender(&aws_sdk_sesv2::Client::new(aws), &sender).await?;
        Ok(LocalTargets {
            users_table,
            stream_arn,
            ledger_table,
            audit_table,
            bus,
            crm_queue,
            sender,
            search: SearchStandIn::start().await?,
        })
    }

    /// The consumers' variables for these targets, with search reached at `search_endpoint`
    /// (the stand-in's own, or a proxy in front of it).
    pub fn values(&self, search_endpoint: String) -> LocalValues {
        LocalValues::new(HashMap::from([
            ("USERS_TABLE", self.users_table.clone()),
            ("LEDGER_TABLE", self.ledger_table.clone()),
            ("AUDIT_TABLE", self.audit_table.clone()),
            ("FROM_ADDRESS", self.sender.clone()),
            ("CRM_EVENT_BUS", self.bus.clone()),
            ("SEARCH_ENDPOINT", search_endpoint),
            ("SEARCH_INDEX", "users".to_owned()),
            ("STREAM_VIEW_TYPE", USERS_STREAM_VIEW.to_owned()),
        ]))
    }
}

/// The local values of the configuration variables consumers read (besides `DLQ_URL`, which
/// is each consumer's own). A consumer needing a variable not named here fails the demo with
/// a message saying so.
#[derive(Debug, Clone)]
pub struct LocalValues(HashMap<&'static str, String>);

impl LocalValues {
    pub fn new(values: HashMap<&'static str, String>) -> Self {
        LocalValues(values)
    }

    /// Sets or replaces one value.
    pub fn set(&mut self, name: &'static str, value: impl Into<String>) {
        self.0.insert(name, value.into());
    }

    /// The function's environment: its registry entry's required and optional variables
    /// (with these values; `DLQ_URL` is its own queue) and the function knobs the stack turns
    /// into variables.
    pub fn env_for(
        &self,
        entry: &ConsumerEntry,
        dlq_url: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let environment = &entry.settings["environment"];
        let names = |list: &str| -> Vec<String> {
            environment[list]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut env = Vec::new();
        for name in names("required") {
            let value = match name.as_str() {
                "DLQ_URL" => dlq_url.to_owned(),
                other => self.0.get(other).cloned().ok_or_else(|| {
                    format!(
                        "the local stack has no value for {other}, which {} requires: add one \
                         where the LocalValues are made (crates/fanout-devstack/src)",
                        entry.crate_name
                    )
                })?,
            };
            env.push((name, value));
        }
        for name in names("optional") {
            if let Some(value) = self.0.get(name.as_str()) {
                env.push((name, value.clone()));
            }
        }
        // The function settings the stack turns into variables.
        for (variable, knob) in [
            ("MAX_CONCURRENCY", "maxConcurrency"),
            ("RECORD_BUDGET_SECONDS", "recordBudgetSeconds"),
        ] {
            if let Some(value) = entry.settings["function"][knob].as_u64() {
                env.retain(|(k, _)| k != variable);
                env.push((variable.to_owned(), value.to_string()));
            }
        }
        if let Some(days) = entry.settings["ledger"]["retentionDays"].as_u64() {
            env.retain(|(k, _)| k != "LEDGER_RETENTION_HOURS");
            env.push(("LEDGER_RETENTION_HOURS".to_owned(), (days * 24).to_string()));
        }
        Ok(env)
    }
}

/// A Runtime API host's configuration for `entry`'s binary in `functions_dir`, with its
/// registry timeout and memory.
pub fn function_config(
    entry: &ConsumerEntry,
    functions_dir: &Path,
    env: Vec<(String, String)>,
    log: Option<std::path::PathBuf>,
) -> FunctionConfig {
    let function = &entry.settings["function"];
    FunctionConfig {
        name: entry.crate_name.clone(),
        binary: functions_dir.join(&entry.crate_name),
        env,
        timeout: Duration::from_secs(function["timeoutSeconds"].as_u64().unwrap_or(30)),
        memory_mib: function["memoryMiB"]
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(256),
        log,
    }
}

/// Where `entry`'s local mapping sends a batch it gives up on, as its stack does: its DLQ, or
/// for `onFailure.destination: bucket` a bucket made now (named for the consumer and `run`),
/// whose name is returned.
pub async fn on_failure_bucket(
    aws: &aws_config::SdkConfig,
    entry: &ConsumerEntry,
    run: &str,
) -> Result<Option<String>, DemoError> {
    if !entry.on_failure_to_bucket() {
        return Ok(None);
    }
    let name = format!("on-failure-{}-{run}", entry.crate_name).to_lowercase();
    fanout_esm::s3_client(aws)
        .create_bucket()
        .bucket(&name)
        .send()
        .await?;
    Ok(Some(name))
}

/// How many on-failure objects (batches given up on) `bucket` holds.
pub async fn on_failure_objects(
    aws: &aws_config::SdkConfig,
    bucket: &str,
) -> Result<usize, DemoError> {
    let listed = fanout_esm::s3_client(aws)
        .list_objects_v2()
        .bucket(bucket)
        .prefix("aws/lambda/")
        .send()
        .await?;
    Ok(listed.contents().len())
}

/// How `entry`'s local mapping delivers the Users stream: as its deployed mapping would, from
/// the DynamoDB stream or (`source: kinesis`) as Kinesis records carrying each change.
pub fn record_shape(entry: &ConsumerEntry) -> RecordShape {
    if entry.reads_kinesis() {
        RecordShape::Kinesis {
            stream_arn: format!(
                "arn:aws:kinesis:{}:{}:stream/fanout-users-changes",
                fanout_testkit::LOCAL_REGION,
                crate::servers::LOCAL_AWS_ACCOUNT
            ),
        }
    } else {
        RecordShape::DynamoDbStream
    }
}
