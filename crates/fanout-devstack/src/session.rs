//! `fanout-local up` / `down` / `replay`: a long-running local stack for development, with
//! the resources of the CDK app under fixed local names, one DLQ per registered consumer.

use std::path::PathBuf;

use serde_json::Value;

use fanout_registry as registry;
use fanout_testkit::resources;

use crate::servers::{LocalStack, tools_dir};

/// The local names of the resources `up` creates.
pub const USERS_TABLE: &str = "Users";
pub const LEDGER_TABLE: &str = "EffectLedger";
pub const AUDIT_TABLE: &str = "UserAudit";
pub const CRM_BUS: &str = "crm";
pub const CRM_INSPECTION_QUEUE: &str = "crm-inspection";
pub const FROM_ADDRESS: &str = "welcome@fanout.example";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env_file() -> PathBuf {
    tools_dir().join("stack.env")
}

fn pid_file() -> PathBuf {
    tools_dir().join("stack.pids")
}

/// Starts the servers detached, creates the resources, and writes `.tools/stack.env` with the
/// variables to source. Returns that file's path.
pub fn up() -> Result<PathBuf, Error> {
    if pid_file().exists() {
        return Err(format!(
            "a local stack is already up ({}); run `fanout-local down` first",
            pid_file().display()
        )
        .into());
    }
    let stack = LocalStack::start()?;
    let vars = stack.env_vars();
    let runtime = tokio::runtime::Runtime::new()?;
    let created = runtime.block_on(create_resources(&vars));
    let (dynamodb, ministack) = stack.detach();
    std::fs::write(pid_file(), format!("{dynamodb}\n{ministack}\n"))?;
    let mut lines: Vec<String> = vars
        .iter()
        .map(|(k, v)| format!("export {k}={v}"))
        .collect();
    match created {
        Ok(extra) => lines.extend(extra.iter().map(|(k, v)| format!("export {k}={v}"))),
        Err(err) => {
            down()?;
            return Err(err);
        }
    }
    std::fs::write(env_file(), lines.join("\n") + "\n")?;
    Ok(env_file())
}

async fn create_resources(vars: &[(String, String)]) -> Result<Vec<(String, String)>, Error> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(fanout_testkit::LOCAL_REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "fanout-local",
        ));
    let endpoint = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    loader = loader.endpoint_url(endpoint("AWS_ENDPOINT_URL_SQS"));
    let ministack = loader.load().await;
    let dynamodb_config = aws_sdk_dynamodb::config::Builder::from(&ministack)
        .endpoint_url(endpoint("AWS_ENDPOINT_URL_DYNAMODB"))
        .build();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(dynamodb_config);
    let sqs = aws_sdk_sqs::Client::new(&ministack);

    let stream_arn = resources::create_users_table(&dynamodb, USERS_TABLE).await?;
    resources::create_ledger_table(&dynamodb, LEDGER_TABLE).await?;
    resources::create_audit_table(&dynamodb, AUDIT_TABLE).await?;
    let mut out = vec![
        ("USERS_STREAM_ARN".to_owned(), stream_arn),
        ("USERS_TABLE".to_owned(), USERS_TABLE.to_owned()),
        ("LEDGER_TABLE".to_owned(), LEDGER_TABLE.to_owned()),
        ("AUDIT_TABLE".to_owned(), AUDIT_TABLE.to_owned()),
        ("FROM_ADDRESS".to_owned(), FROM_ADDRESS.to_owned()),
        ("CRM_EVENT_BUS".to_owned(), CRM_BUS.to_owned()),
    ];
    for consumer in registry::consumers()? {
        let url = resources::create_queue(&sqs, &format!("{}-dlq", consumer.crate_name)).await?;
        out.push((consumer.dlq_env_name(), url));
    }
    let inspection = resources::create_queue(&sqs, CRM_INSPECTION_QUEUE).await?;
    let arn = resources::queue_arn(&sqs, &inspection).await?;
    resources::create_bus_to_queue(&aws_sdk_eventbridge::Client::new(&ministack), CRM_BUS, &arn)
        .await?;
    resources::create_verified_sender(&aws_sdk_sesv2::Client::new(&ministack), FROM_ADDRESS)
        .await?;
    out.push(("CRM_INSPECTION_QUEUE_URL".to_owned(), inspection));
    Ok(out)
}

/// Stops the servers `up` started.
pub fn down() -> Result<(), Error> {
    let pids = match std::fs::read_to_string(pid_file()) {
        Ok(text) => text,
        Err(_) => return Err("no local stack is up".into()),
    };
    for pid in pids.lines().filter(|l| !l.trim().is_empty()) {
        // `kill` from procps: no unsafe code or libc binding needed for one signal.
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    let _ = std::fs::remove_file(pid_file());
    let _ = std::fs::remove_file(env_file());
    Ok(())
}

/// Turns parked DLQ messages (their `record` field) into DynamoDB event files for
/// `cargo lambda invoke --data-file`. Returns the files written.
pub fn replay(messages: &[String], out_dir: &std::path::Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(out_dir)?;
    let mut written = Vec::new();
    for body in messages {
        let message: Value = serde_json::from_str(body)?;
        let Some(record) = message.get("record") else {
            // An OnFailure record holds batch metadata only: the records are still in the
            // stream for its retention and must be read from there.
            let batch_info = message
                .get("DDBStreamBatchInfo")
                .or_else(|| message.get("KinesisBatchInfo"))
                .unwrap_or(&Value::Null);
            eprintln!("skipping an on-failure record (batch metadata only): {batch_info}");
            continue;
        };
        let event_id = record["eventID"].as_str().unwrap_or("unknown");
        let path = out_dir.join(format!("replay-{event_id}.json"));
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&serde_json::json!({"Records": [record]}))? + "\n",
        )?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_writes_an_invokable_event_per_parked_record_and_skips_on_failure_records() {
        let record = serde_json::json!({"eventID": "e-1", "eventName": "MODIFY", "dynamodb": {"Keys": {"userId": {"S": "u"}}}});
        let parked = serde_json::json!({"consumer": "welcome-email", "error": "bad", "parkedAt": "2026-11-23T10:00:00Z", "record": record});
        let on_failure =
            serde_json::json!({"DDBStreamBatchInfo": {"shardId": "s", "batchSize": 1}});
        let dir =
            std::env::temp_dir().join(format!("fanout-replay-{}", uuid::Uuid::new_v4().simple()));
        let files = replay(&[parked.to_string(), on_failure.to_string()], &dir).unwrap();
        assert_eq!(files, vec![dir.join("replay-e-1.json")]);
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
        assert_eq!(event, serde_json::json!({"Records": [record]}));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
