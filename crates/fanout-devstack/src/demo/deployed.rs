//! The scenario against a deployed fanout: the `Users` table and the consumers the CDK app
//! created, found through AWS APIs only (SSM parameters and stack outputs), driven by the
//! deployed event source mappings. Used by `fanout-local e2e` against the local AWS.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fanout_registry::ConsumerEntry;
use fanout_registry::descriptor::ObservedIn;
use fanout_registry::names::{Parameter, Stage};
use fanout_testkit::search_standin::SearchStandIn;

use super::run::{DemoError, DemoReport, Observed, Targets, apply, kinesis_readers};
use super::scenario::Scenario;
use crate::observe::Described;

/// What a deployment exposes, looked up.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub users_table: String,
    pub targets: Targets,
    /// Each consumer's function name, by crate name (stack output `FunctionName`).
    pub functions: BTreeMap<String, String>,
    /// The consumers registered with `source: kinesis`.
    pub kinesis_readers: Vec<String>,
    /// The deployed consumers, each with its descriptor.
    pub consumers: Vec<Described>,
}

/// An SSM parameter's value.
pub async fn parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<String, DemoError> {
    let output = ssm.get_parameter().name(name).send().await.map_err(|e| {
        format!(
            "SSM parameter {name}: {}",
            aws_sdk_ssm::error::DisplayErrorContext(&e)
        )
    })?;
    output
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| format!("SSM parameter {name} has no value").into())
}

/// A stack's outputs, by output key.
pub async fn stack_outputs(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<BTreeMap<String, String>, DemoError> {
    let output = cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            format!(
                "stack {stack}: {}",
                aws_sdk_cloudformation::error::DisplayErrorContext(&e)
            )
        })?;
    let described = output
        .stacks()
        .first()
        .ok_or_else(|| format!("stack {stack} is not deployed"))?;
    Ok(described
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect())
}

impl Deployment {
    /// Looks the deployment of `stage` up: table names from SSM, each consumer's DLQ and
    /// function from its stack's outputs. `sender` and `crm_queue` are the prerequisites the
    /// caller made.
    pub async fn discover(
        aws: &aws_config::SdkConfig,
        stage: &Stage,
        consumers: &[ConsumerEntry],
        sender: &str,
        crm_queue: &str,
    ) -> Result<Self, DemoError> {
        let ssm = aws_sdk_ssm::Client::new(aws);
        let cloudformation = aws_sdk_cloudformation::Client::new(aws);
        let mut dlqs = BTreeMap::new();
        let mut on_failure_buckets = BTreeMap::new();
        let mut functions = BTreeMap::new();
        for consumer in consumers {
            let outputs = stack_outputs(&cloudformation, &stage.stack(&consumer.name)).await?;
            let get = |key: &str| {
                outputs
                    .get(key)
                    .cloned()
                    .ok_or_else(|| format!("stack {} has no output {key}", consumer.name))
            };
            dlqs.insert(consumer.crate_name.clone(), get("DlqUrl")?);
            if consumer.on_failure_to_bucket() {
                on_failure_buckets.insert(consumer.crate_name.clone(), get("OnFailureBucketName")?);
            }
            functions.insert(consumer.crate_name.clone(), get("FunctionName")?);
        }
        Ok(Deployment {
            users_table: parameter(&ssm, &stage.parameter(Parameter::UsersTableName)).await?,
            targets: Targets {
                sender: sender.to_owned(),
                crm_queue: crm_queue.to_owned(),
                audit_table: parameter(&ssm, &stage.parameter(Parameter::AuditTableName)).await?,
                ledger_table: parameter(&ssm, &stage.parameter(Parameter::LedgerTableName)).await?,
                dlqs,
                on_failure_buckets,
            },
            functions,
            kinesis_readers: kinesis_readers(consumers),
            consumers: consumers
                .iter()
                .cloned()
                .map(Described::new)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Writes the scenario to the deployed `Users` table and waits, at most `wait` per phase,
/// until the deployed consumers have made the expected effects. Between phases it waits until
/// the consumers observed in the audit table (a row per record) have caught up with the writes
/// so far. Once the
/// expectations hold it watches a few seconds more, so a late duplicate is still seen.
///
/// Redelivery of a batch (`redeliverFirstBatch`) is the local mapping's to emulate; here the
/// deployed mapping delivers, so it is not done.
pub async fn run_deployed(
    scenario: &Scenario,
    aws: &aws_config::SdkConfig,
    search: &SearchStandIn,
    deployment: &Deployment,
    wait: Duration,
) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let mut report = DemoReport {
        phases: Vec::new(),
        consumers: deployment.consumers.clone(),
        kinesis_readers: deployment.kinesis_readers.clone(),
        observed: Observed::default(),
        redeliveries: Vec::new(),
        checks: Vec::new(),
        invocations: 0,
        filtered_out: 0,
        elapsed: Duration::ZERO,
    };
    let mut writes = 0usize;
    for phase in &scenario.phases {
        report.phases.push(phase.say.clone());
        for write in &phase.writes {
            apply(&dynamodb, &deployment.users_table, write).await?;
            writes += 1;
        }
        let deadline = Instant::now() + wait;
        loop {
            report
                .observe_and_check(aws, search, &deployment.targets)
                .await?;
            let caught_up = report
                .consumers
                .iter()
                .filter(|c| c.descriptor.observed_in == ObservedIn::AuditTable)
                .all(|c| report.observed.effects.of(&c.entry.crate_name).len() >= writes);
            if caught_up || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let deadline = Instant::now() + wait;
    loop {
        report
            .observe_and_check(aws, search, &deployment.targets)
            .await?;
        if report.passed() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if report.passed() {
        tokio::time::sleep(Duration::from_secs(3)).await;
        report
            .observe_and_check(aws, search, &deployment.targets)
            .await?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
