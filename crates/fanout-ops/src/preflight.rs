//! `fanout-ops preflight <stack>`: what must exist before a stack is deployed, checked through
//! AWS APIs, each missing thing named. `make deploy` runs it first, so a missing prerequisite
//! stops the deploy early instead of failing records at run time.
//!
//! - every stack: the CDK bootstrap (its version parameter);
//! - a consumer stack: the SSM parameters `FanoutTables` publishes (tables, stream);
//! - each of the consumer's `prerequisites` (registry): a verified SES identity and a sender
//!   it covers, the CRM event bus, a reachable search endpoint. The SES sandbox is a warning.

use std::time::Duration;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use fanout_registry::ConsumerEntry;
use serde::Serialize;

use crate::context::CdkContext;

/// The stack every consumer stack reads its tables from.
pub const TABLES_STACK: &str = "FanoutTables";

/// The SSM parameters `FanoutTables` writes (`infra/lib/tables-stack.ts`, `PARAMETERS`).
pub const TABLE_PARAMETERS: [&str; 5] = [
    "/fanout/tables/users/name",
    "/fanout/tables/users/stream-arn",
    "/fanout/tables/users/stream-view-type",
    "/fanout/tables/ledger/name",
    "/fanout/tables/audit/name",
];

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
}

impl Clients {
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        Clients {
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
        return report;
    };
    for name in TABLE_PARAMETERS {
        match parameter_exists(&clients.ssm, name).await {
            Ok(true) => report.push("table parameter", Verdict::Ok, name),
            Ok(false) => report.push(
                "table parameter",
                Verdict::Fail,
                format!("SSM parameter {name} does not exist: deploy {TABLES_STACK} first"),
            ),
            Err(err) => report.push("table parameter", Verdict::Fail, err),
        }
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
                 es:ESHttpPut/es:ESHttpDelete on the index (README \"Deploy\")"
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
