//! Reading back what the local services received, for tests and the demo.

use serde::Deserialize;

/// One email in ministack's SES outbox.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SentEmail {
    pub message_id: String,
    pub source: String,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body_text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("reading {what} from ministack at {url}: {message}")]
pub struct InspectError {
    pub what: &'static str,
    pub url: String,
    pub message: String,
}

/// Every email ministack's SES has accepted from `sender` (`GET /_ministack/ses/messages`).
pub async fn sent_emails(
    ministack_url: &str,
    sender: &str,
) -> Result<Vec<SentEmail>, InspectError> {
    #[derive(Deserialize)]
    struct Outbox {
        messages: std::collections::HashMap<String, Vec<SentEmail>>,
    }
    let url = format!(
        "{}/_ministack/ses/messages",
        ministack_url.trim_end_matches('/')
    );
    let fail = |message: String| InspectError {
        what: "SES outbox",
        url: url.clone(),
        message,
    };
    let outbox: Outbox = reqwest::get(&url)
        .await
        .map_err(|e| fail(e.to_string()))?
        .error_for_status()
        .map_err(|e| fail(e.to_string()))?
        .json()
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(outbox
        .messages
        .into_values()
        .flatten()
        .filter(|m| m.source == sender)
        .collect())
}

/// Reads the messages currently in an SQS queue without deleting them (they become visible
/// again after a short visibility timeout).
pub async fn peek_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Vec<String>, InspectError> {
    let output = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(1)
        .wait_time_seconds(1)
        .send()
        .await
        .map_err(|e| InspectError {
            what: "queue",
            url: queue_url.to_owned(),
            message: format!("{e:?}"),
        })?;
    Ok(output
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .collect())
}

/// Receives (and deletes) every message currently in an SQS queue; returns the bodies.
pub async fn drain_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Vec<String>, InspectError> {
    let fail = |message: String| InspectError {
        what: "queue",
        url: queue_url.to_owned(),
        message,
    };
    let mut bodies = Vec::new();
    loop {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| fail(format!("{e:?}")))?;
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(bodies);
        }
        for message in messages {
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| fail(format!("{e:?}")))?;
            }
            bodies.extend(message.body);
        }
    }
}
