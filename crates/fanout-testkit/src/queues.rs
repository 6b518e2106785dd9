//! Reading back what reached an SQS queue: a consumer's DLQ, or the queue a test puts behind
//! the CRM bus.

/// A queue could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading queue {url}: {message}")]
pub struct QueueError {
    pub url: String,
    pub message: String,
}

/// Reads the messages currently in an SQS queue without deleting them (they become visible
/// again after a short visibility timeout).
pub async fn peek_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Vec<String>, QueueError> {
    let output = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(1)
        .wait_time_seconds(1)
        .send()
        .await
        .map_err(|e| QueueError {
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
) -> Result<Vec<String>, QueueError> {
    let fail = |message: String| QueueError {
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
