//! Reading ministack's SES outbox (`GET /_ministack/ses/messages`): what was really sent.

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
pub struct OutboxError {
    pub what: &'static str,
    pub url: String,
    pub message: String,
}

/// Every email ministack's SES has accepted from `sender` (`GET /_ministack/ses/messages`).
pub async fn sent_emails(ministack_url: &str, sender: &str) -> Result<Vec<SentEmail>, OutboxError> {
    #[derive(Deserialize)]
    struct Outbox {
        messages: std::collections::HashMap<String, Vec<SentEmail>>,
    }
    let url = format!(
        "{}/_ministack/ses/messages",
        ministack_url.trim_end_matches('/')
    );
    let fail = |message: String| OutboxError {
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
