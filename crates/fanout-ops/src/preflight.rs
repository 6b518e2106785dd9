//! `fanout-ops preflight <stack>`: what must exist before a stack is deployed, checked through
//! AWS APIs, each missing thing named. `make deploy` runs it first, so a missing prerequisite
//! stops the deploy early instead of failing records at run time.
//!
//! - every stack (`FanoutPipelineRoles` needs nothing more): the CDK bootstrap (its version
//!   parameter);
//! - `FanoutTables` attaching to an existing Users table (`fanout:usersTableName`): the table
//!   exists, is keyed by `userId` (S), has a NEW_AND_OLD_IMAGES stream, and that stream is
//!   `fanout:usersStreamArn`; each miss names the command that fixes it (fanout never changes a
//!   table it did not create);
//! - a consumer stack: the SSM parameters `FanoutTables` publishes (tables, stream, and for a
//!   Kinesis consumer the Kinesis stream), and for a Kinesis consumer that the Users table's
//!   Kinesis streaming destination is that stream, active, to the microsecond;
//! - each of the consumer's `prerequisites` (registry): a verified SES identity and a sender
//!   it covers, the CRM event bus, a reachable search endpoint. The SES sandbox is a warning.
//!
//! Names follow the deployment's stage ([`Stage`]).

use std::time::Duration;

use aws_sdk_dynamodb::types::{DestinationStatus, KeyType, ScalarAttributeType, StreamViewType};
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use fanout_registry::ConsumerEntry;
use fanout_registry::names::{Parameter, Stage, TABLES_STACK};
use serde::Serialize;

use crate::context::CdkContext;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Not a reason to stop the deploy, but something to know.
    Warn,
    Fail,
}

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// Every finding for one stack.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PreflightReport {
    pub stack: String,
    pub findings: Vec<Finding>,
}

impl PreflightReport {
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.verdict != Verdict::Fail)
    }

    fn push(&mut self, check: impl Into<String>, verdict: Verdict, detail: impl Into<String>) {
        self.findings.push(Finding {
            check: check.into(),
            verdict,
            detail: detail.into(),
        });
    }
}

/// The clients preflight talks to.
#[derive(Debug, Clone)]
pub struct Clients {
    pub ssm: aws_sdk_ssm::Client,
    pub ses: aws_sdk_sesv2::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Clients {
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(aws),
            ssm: aws_sdk_ssm::Client::new(aws),
            ses: aws_sdk_sesv2::Client::new(aws),
            events: aws_sdk_eventbridge::Client::new(aws),
        }
    }
}

/// Checks `stack` (`FanoutTables` or a consumer's stack). `consumer` is its registry entry
/// (`None` for the tables stack).
pub async fn check(
    clients: &Clients,
    context: &CdkContext,
    stage: &Stage,
    stack: &str,
    consumer: Option<&ConsumerEntry>,
) -> PreflightReport {
    let mut report = PreflightReport {
        stack: stack.to_owned(),
        ..PreflightReport::default()
    };
    let qualifier = context
        .raw("@aws-cdk/core:bootstrapQualifier")
        .unwrap_or("hnb659fds")
        .to_owned();
    let bootstrap = format!("/cdk-bootstrap/{qualifier}/version");
    match parameter_exists(&clients.ssm, &bootstrap).await {
        Ok(true) => report.push("CDK bootstrap", Verdict::Ok, bootstrap),
        Ok(false) => report.push(
            "CDK bootstrap",
            Verdict::Fail,
            format!("SSM parameter {bootstrap} does not exist: run `cdk bootstrap aws://<account>/<region>`"),
        ),
        Err(err) => report.push("CDK bootstrap", Verdict::Fail, err),
    }
    let Some(consumer) = consumer else {
        let tables_stack = stack == TABLES_STACK || stack == stage.stack(TABLES_STACK);
        if let (true, Some(table), Some(stream)) = (
            tables_stack,
            context.fanout("usersTableName"),
            context.fanout("usersStreamArn"),
        ) {
            for (verdict, detail) in existing_table(&clients.dynamodb, table, stream).await {
                report.push("existing Users table", verdict, detail);
            }
        }
        return report;
    };
    let tables = stage.stack(TABLES_STACK);
    for parameter in Parameter::ALL {
        if parameter == Parameter::UsersKinesisStreamArn && !consumer.reads_kinesis() {
            continue;
        }
        let name = stage.parameter(parameter);
        match parameter_exists(&clients.ssm, &name).await {
            Ok(true) => report.push("table parameter", Verdict::Ok, name),
            Ok(false) => report.push(
                "table parameter",
                Verdict::Fail,
                format!("SSM parameter {name} does not exist: deploy {tables} first{}",
                    if parameter == Parameter::UsersKinesisStreamArn {
                        " (it publishes the Kinesis stream when a registry entry says source: kinesis)"
                    } else { "" }),
            ),
            Err(err) => report.push("table parameter", Verdict::Fail, err),
        }
    }
    if consumer.reads_kinesis() {
        let (verdict, detail) = kinesis_destination(clients, stage).await;
        report.push("Kinesis streaming destination", verdict, detail);
    }
    for key in consumer.prerequisites() {
        let Some(value) = context.fanout(&key) else {
            report.push(
                format!("fanout:{key}"),
                Verdict::Fail,
                format!("CDK context fanout:{key} is not set (cdk.json or -c fanout:{key}=...)"),
            );
            continue;
        };
        let (verdict, detail) = prerequisite(clients, context, &key, value).await;
        report.push(format!("fanout:{key}"), verdict, detail);
    }
    if consumer.prerequisites().iter().any(|k| k == "sesIdentity") {
        let (verdict, detail) = ses_sandbox(&clients.ses).await;
        report.push("SES account", verdict, detail);
    }
    report
}

/// What fanout needs of a table it attaches to, each miss with the command that fixes it.
async fn existing_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    stream_arn: &str,
) -> Vec<(Verdict, String)> {
    let described = match dynamodb.describe_table().table_name(table).send().await {
        Ok(output) => output.table,
        Err(err) => {
            let missing = err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception());
            return vec![(
                Verdict::Fail,
                if missing {
                    format!(
                        "table {table} does not exist in this account and region: fanout:usersTableName names the API's existing Users table (or unset it, with fanout:usersStreamArn, to have {TABLES_STACK} create one)"
                    )
                } else {
                    format!("table {table}: {}", sdk_message(&err))
                },
            )];
        }
    };
    let Some(described) = described else {
        return vec![(
            Verdict::Fail,
            format!("table {table}: DescribeTable said nothing"),
        )];
    };
    let mut found = Vec::new();
    let types: std::collections::HashMap<&str, &ScalarAttributeType> = described
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name(), a.attribute_type()))
        .collect();
    let schema: Vec<String> = described
        .key_schema()
        .iter()
        .map(|k| {
            format!(
                "{} ({}, {})",
                k.attribute_name(),
                types.get(k.attribute_name()).map_or("?", |t| t.as_str()),
                k.key_type().as_str()
            )
        })
        .collect();
    let keyed_by_user_id = matches!(described.key_schema(), [only]
        if only.attribute_name() == "userId"
            && *only.key_type() == KeyType::Hash
            && types.get("userId") == Some(&&ScalarAttributeType::S));
    found.push(if keyed_by_user_id {
        (Verdict::Ok, format!("table {table} is keyed by userId (S)"))
    } else {
        (
            Verdict::Fail,
            format!(
                "table {table} is keyed by {}; fanout needs userId (S) as its only key, and a table's key cannot change: point fanout:usersTableName at the table the API keys by userId",
                schema.join(", ")
            ),
        )
    });
    let spec = described.stream_specification();
    let enabled = spec.is_some_and(|s| s.stream_enabled());
    let view = spec.and_then(|s| s.stream_view_type());
    found.push(match (enabled, view) {
        (true, Some(StreamViewType::NewAndOldImages)) => (
            Verdict::Ok,
            format!("table {table} streams NEW_AND_OLD_IMAGES"),
        ),
        (false, _) | (true, None) => (
            Verdict::Fail,
            format!(
                "table {table} has no stream; the consumers need NEW_AND_OLD_IMAGES: aws dynamodb update-table --table-name {table} --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES (then set fanout:usersStreamArn to its Table.LatestStreamArn)"
            ),
        ),
        (true, Some(other)) => (
            Verdict::Fail,
            format!(
                "table {table} streams {}; the consumers need NEW_AND_OLD_IMAGES, and a stream's view cannot change in place: aws dynamodb update-table --table-name {table} --stream-specification StreamEnabled=false, then --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES (a new stream: set fanout:usersStreamArn to its ARN; readers of the old stream stop)",
                other.as_str()
            ),
        ),
    });
    if enabled {
        let latest = described.latest_stream_arn().unwrap_or_default();
        found.push(if latest == stream_arn {
            (Verdict::Ok, format!("fanout:usersStreamArn is table {table}'s stream"))
        } else {
            (
                Verdict::Fail,
                format!(
                    "fanout:usersStreamArn is {stream_arn}, but table {table}'s stream is {latest}: -c fanout:usersStreamArn={latest}"
                ),
            )
        });
    }
    found
}

/// Whether the Users table streams its changes to the Kinesis stream `FanoutTables`
/// published, active and to the microsecond (what a Kinesis consumer reads).
async fn kinesis_destination(clients: &Clients, stage: &Stage) -> (Verdict, String) {
    let value = |parameter: Parameter| async move {
        clients
            .ssm
            .get_parameter()
            .name(stage.parameter(parameter))
            .send()
            .await
            .ok()
            .and_then(|o| o.parameter)
            .and_then(|p| p.value)
    };
    let (Some(table), Some(stream)) = (
        value(Parameter::UsersTableName).await,
        value(Parameter::UsersKinesisStreamArn).await,
    ) else {
        return (
            Verdict::Fail,
            "the Users table or its Kinesis stream is not published (see the parameters above)"
                .to_owned(),
        );
    };
    let enable = format!(
        "aws dynamodb enable-kinesis-streaming-destination --table-name {table} --stream-arn {stream} --enable-kinesis-streaming-configuration ApproximateCreationDateTimePrecision=MICROSECOND"
    );
    match clients
        .dynamodb
        .describe_kinesis_streaming_destination()
        .table_name(&table)
        .send()
        .await
    {
        Ok(output) => {
            let ours = output
                .kinesis_data_stream_destinations()
                .iter()
                .find(|d| d.stream_arn() == Some(stream.as_str()));
            match ours {
                Some(d) if d.destination_status() == Some(&DestinationStatus::Active) => {
                    let precision = d
                        .approximate_creation_date_time_precision()
                        .map(|p| p.as_str().to_owned());
                    if precision.as_deref() == Some("MICROSECOND") {
                        (
                            Verdict::Ok,
                            format!("table {table} streams to {stream}, to the microsecond"),
                        )
                    } else {
                        (
                            Verdict::Warn,
                            format!(
                                "table {table} streams to {stream} at {} precision; Kinesis consumers order a user's changes by creation time: aws dynamodb update-kinesis-streaming-destination --table-name {table} --stream-arn {stream} --update-kinesis-streaming-configuration ApproximateCreationDateTimePrecision=MICROSECOND",
                                precision.unwrap_or_else(|| "the default (millisecond)".to_owned())
                            ),
                        )
                    }
                }
                Some(d) => (
                    Verdict::Fail,
                    format!(
                        "table {table}'s Kinesis destination {stream} is {}: {enable}",
                        d.destination_status().map_or("unknown", |s| s.as_str())
                    ),
                ),
                None => (
                    Verdict::Fail,
                    format!("table {table} does not stream to {stream}: {enable}"),
                ),
            }
        }
        Err(err) => (
            Verdict::Fail,
            format!(
                "table {table}'s Kinesis destinations: {}",
                sdk_message(&err)
            ),
        ),
    }
}

async fn parameter_exists(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<bool, String> {
    match ssm.get_parameter().name(name).send().await {
        Ok(_) => Ok(true),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_parameter_not_found()) =>
        {
            Ok(false)
        }
        Err(err) => Err(format!(
            "reading SSM parameter {name}: {}",
            sdk_message(&err)
        )),
    }
}

async fn prerequisite(
    clients: &Clients,
    context: &CdkContext,
    key: &str,
    value: &str,
) -> (Verdict, String) {
    match key {
        "sesIdentity" => ses_identity(&clients.ses, value).await,
        "fromAddress" => {
            let identity = context.fanout("sesIdentity").unwrap_or_default();
            let covered = value == identity
                || value
                    .rsplit_once('@')
                    .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(identity));
            if covered {
                (
                    Verdict::Ok,
                    format!("{value} is covered by the SES identity {identity}"),
                )
            } else {
                (
                    Verdict::Fail,
                    format!(
                        "{value} is not the SES identity {identity} nor an address of that domain"
                    ),
                )
            }
        }
        "crmEventBusName" => match clients.events.describe_event_bus().name(value).send().await {
            Ok(_) => (Verdict::Ok, format!("event bus {value} exists")),
            Err(err) => (
                Verdict::Fail,
                format!("event bus {value}: {}", sdk_message(&err)),
            ),
        },
        "searchEndpoint" => search_endpoint(value).await,
        // The domain's existence and access policy are not readable without the OpenSearch
        // API; the endpoint check above proves it answers.
        "searchDomainName" => (
            Verdict::Warn,
            format!(
                "domain {value}: check by hand that its access policy lets the SearchWarm role \
                 es:ESHttpPut/es:ESHttpDelete on the index (docs/deploy.md)"
            ),
        ),
        other => (
            Verdict::Fail,
            format!(
                "preflight does not know how to check fanout:{other}; teach crates/fanout-ops/src/preflight.rs"
            ),
        ),
    }
}

async fn ses_identity(ses: &aws_sdk_sesv2::Client, identity: &str) -> (Verdict, String) {
    match ses
        .get_email_identity()
        .email_identity(identity)
        .send()
        .await
    {
        Ok(found) if found.verified_for_sending_status() => (
            Verdict::Ok,
            format!("SES identity {identity} is verified for sending"),
        ),
        Ok(_) => (
            Verdict::Fail,
            format!("SES identity {identity} exists but is not verified for sending yet"),
        ),
        Err(err) => (
            Verdict::Fail,
            format!("SES identity {identity}: {}", sdk_message(&err)),
        ),
    }
}

async fn ses_sandbox(ses: &aws_sdk_sesv2::Client) -> (Verdict, String) {
    match ses.get_account().send().await {
        Ok(account) if account.production_access_enabled() => {
            (Verdict::Ok, "production access: mail goes to any recipient".to_owned())
        }
        Ok(_) => (
            Verdict::Warn,
            "the account is in the SES sandbox: mail only reaches verified addresses; request production access".to_owned(),
        ),
        Err(err) => (
            Verdict::Warn,
            format!("could not read the SES account: {}", sdk_message(&err)),
        ),
    }
}

/// An SDK error as its service code and message, or the transport error's own text.
fn sdk_message<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => fanout_core::error_chain(err),
    }
}

async fn search_endpoint(endpoint: &str) -> (Verdict, String) {
    let url = match url::Url::parse(endpoint) {
        Ok(url) => url,
        Err(err) => return (Verdict::Fail, format!("{endpoint:?} is not a URL: {err}")),
    };
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return (
            Verdict::Fail,
            format!("{endpoint} must be https (SigV4); plain http only for a loopback stand-in"),
        );
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(err) => return (Verdict::Fail, err.to_string()),
    };
    // Unsigned: any HTTP answer (403 included) proves the endpoint resolves and accepts
    // connections; only the function's signed requests can prove its permissions.
    match client.get(url).send().await {
        Ok(response) => (
            Verdict::Ok,
            format!("{endpoint} answers ({})", response.status()),
        ),
        Err(err) => (Verdict::Fail, format!("{endpoint} does not answer: {err}")),
    }
}
