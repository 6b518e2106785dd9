//! Parked records in the consumer's SQS queue.

use aws_sdk_sqs::Client;

use super::ParkingQueue;
use crate::failure::error_chain;
use crate::port::PortFuture;

/// An SQS queue as a [`ParkingQueue`]: one `SendMessage` per parked record.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl ParkingQueue for SqsQueue {
    fn name(&self) -> &str {
        &self.queue_url
    }

    fn send(&self, body: String) -> PortFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .send()
                .await
                .map(drop)
                .map_err(|e| error_chain(&e))
        })
    }
}
