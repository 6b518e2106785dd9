//! A consumer as deployed: its function, DLQ, on-failure bucket (when its registry entry has
//! one) and mapping batch size, found from its stack's outputs (`FunctionName`, `DlqUrl`,
//! `OnFailureBucketName`), each overridable by a flag; the Users table from the tables stack's
//! SSM parameter.

use std::path::Path;

use fanout_registry::ConsumerEntry;
use fanout_registry::names::{Parameter, Stage};

use crate::error::OpsError;

/// The registry entry of `consumer` (crate or stack name): from `registry` (a folder of
/// `<crate>.json`) when given, else from the deployment itself, the SSM parameter its stack
/// publishes (`/fanout[/<stage>]/consumers/<crate>`), so an installed fanout-ops needs no
/// checkout.
pub async fn entry(
    aws: &aws_config::SdkConfig,
    registry: Option<&Path>,
    stage: &Stage,
    consumer: &str,
) -> Result<ConsumerEntry, OpsError> {
    if let Some(dir) = registry {
        let consumers = fanout_registry::consumers_in(dir)?;
        return Ok(fanout_registry::find_in(&consumers, consumer, dir)?.clone());
    }
    let parameter = stage.consumer_parameter(&crate_name(consumer));
    let missing = |message: String| OpsError::NoEntry {
        consumer: consumer.to_owned(),
        parameter: parameter.clone(),
        message,
    };
    let value = aws_sdk_ssm::Client::new(aws)
        .get_parameter()
        .name(&parameter)
        .send()
        .await
        .map_err(|e| missing(fanout_core::error_chain(&e)))?
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| missing("it has no value".to_owned()))?;
    let settings = serde_json::from_str(&value).map_err(|e| missing(e.to_string()))?;
    Ok(ConsumerEntry::from_json(settings, Path::new(&parameter))?)
}

/// Every consumer of the deployment: from the registry folder `registry` if given, else from
/// the parameters the consumer stacks publish below `/fanout[/<stage>]/consumers/`.
pub async fn entries(
    aws: &aws_config::SdkConfig,
    registry: Option<&Path>,
    stage: &Stage,
) -> Result<Vec<ConsumerEntry>, OpsError> {
    if let Some(dir) = registry {
        return Ok(fanout_registry::consumers_in(dir)?);
    }
    let path = stage.consumers_path();
    let failed = |message: String| OpsError::Lookup {
        what: format!("the consumers registered below {path}"),
        message,
    };
    let mut pages = aws_sdk_ssm::Client::new(aws)
        .get_parameters_by_path()
        .path(&path)
        .into_paginator()
        .send();
    let mut entries = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| failed(fanout_core::error_chain(&e)))?;
        for parameter in page.parameters() {
            let (Some(name), Some(value)) = (parameter.name(), parameter.value()) else {
                continue;
            };
            let settings =
                serde_json::from_str(value).map_err(|e| failed(format!("{name}: {e}")))?;
            entries.push(ConsumerEntry::from_json(settings, Path::new(name))?);
        }
    }
    entries.sort_by(|a, b| a.crate_name.cmp(&b.crate_name));
    Ok(entries)
}

/// A consumer's crate name from either of its names: `CrmSync` is `crm-sync`.
///
/// ```
/// assert_eq!(fanout_ops::deployed::crate_name("CrmSync"), "crm-sync");
/// assert_eq!(fanout_ops::deployed::crate_name("crm-sync"), "crm-sync");
/// ```
pub fn crate_name(consumer: &str) -> String {
    let mut out = String::new();
    for (i, c) in consumer.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// What a flag may give instead of a lookup.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DeployedOverrides {
    /// The consumer's stack, when deployed under another name than its registry entry's (and
    /// the stage's).
    #[arg(long)]
    pub stack_name: Option<String>,
    /// The function to invoke, instead of the stack's `FunctionName` output.
    #[arg(long)]
    pub function_name: Option<String>,
    /// The DLQ, instead of the stack's `DlqUrl` output.
    #[arg(long)]
    pub dlq_url: Option<String>,
    /// The on-failure bucket (a consumer whose registry entry says `onFailure.destination:
    /// bucket`), instead of the stack's `OnFailureBucketName` output.
    #[arg(long)]
    pub on_failure_bucket: Option<String>,
}

/// A consumer's deployed resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub consumer: String,
    pub function_name: String,
    pub dlq_url: String,
    /// Where the mapping puts whole batches it gives up on, when it has such a bucket.
    pub on_failure_bucket: Option<String>,
    /// The mapping's batch size (the registry's): no redrive invocation carries more.
    pub batch_size: usize,
}

impl Deployed {
    /// Looks up what `overrides` does not give in the stack's outputs.
    pub async fn find(
        aws: &aws_config::SdkConfig,
        entry: &ConsumerEntry,
        overrides: &DeployedOverrides,
        stage: &Stage,
    ) -> Result<Self, OpsError> {
        let batch_size = entry.event_source_mapping()["batchSize"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                OpsError::Context(format!(
                    "{}: eventSourceMapping.batchSize must be a positive number",
                    entry.crate_name
                ))
            })?;
        let needs_bucket = entry.on_failure_to_bucket() && overrides.on_failure_bucket.is_none();
        let staged = stage.stack(&entry.name);
        let stack = overrides.stack_name.as_deref().unwrap_or(&staged);
        let outputs =
            if overrides.function_name.is_some() && overrides.dlq_url.is_some() && !needs_bucket {
                Vec::new()
            } else {
                stack_outputs(aws, stack).await?
            };
        let output = |key: &str| {
            outputs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| OpsError::Lookup {
                    what: format!("output {key} of stack {stack}"),
                    message: "the stack has no such output; deploy it from this version of the app, or pass the value as a flag".to_owned(),
                })
        };
        let function_name = match &overrides.function_name {
            Some(f) => f.clone(),
            None => output("FunctionName")?,
        };
        let dlq_url = match &overrides.dlq_url {
            Some(d) => d.clone(),
            None => output("DlqUrl")?,
        };
        let on_failure_bucket = match &overrides.on_failure_bucket {
            Some(bucket) => Some(bucket.clone()),
            None if entry.on_failure_to_bucket() => Some(output("OnFailureBucketName")?),
            None => None,
        };
        Ok(Deployed {
            consumer: entry.crate_name.clone(),
            function_name,
            dlq_url,
            on_failure_bucket,
            batch_size,
        })
    }
}

async fn stack_outputs(
    aws: &aws_config::SdkConfig,
    stack: &str,
) -> Result<Vec<(String, String)>, OpsError> {
    let described = aws_sdk_cloudformation::Client::new(aws)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| OpsError::Lookup {
            what: format!("stack {stack}"),
            message: fanout_core::error_chain(&e),
        })?;
    Ok(described
        .stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

/// The Users table: `flag`, or the tables stack's SSM parameter of `stage`.
pub async fn users_table(
    aws: &aws_config::SdkConfig,
    flag: Option<&str>,
    stage: &Stage,
) -> Result<String, OpsError> {
    if let Some(name) = flag {
        return Ok(name.to_owned());
    }
    let parameter = stage.parameter(Parameter::UsersTableName);
    aws_sdk_ssm::Client::new(aws)
        .get_parameter()
        .name(&parameter)
        .send()
        .await
        .map_err(|e| OpsError::Lookup {
            what: format!("SSM parameter {parameter}"),
            message: fanout_core::error_chain(&e),
        })?
        .parameter()
        .and_then(|p| p.value())
        .map(str::to_owned)
        .ok_or_else(|| OpsError::Lookup {
            what: format!("SSM parameter {parameter}"),
            message: "it has no value".to_owned(),
        })
}
