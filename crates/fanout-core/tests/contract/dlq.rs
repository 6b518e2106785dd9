//! The parking queue's contract: what [`fanout_core::dlq::ParkingQueue`] must keep, seen
//! through [`DeadLetterQueue`].

use fanout_core::{DeadLetterQueue, ParkedRecord};
use serde_json::json;

/// A queue under test: its dead-letter queue, what it holds, and one that refuses.
pub(crate) trait QueueUnderTest {
    fn dlq(&self) -> DeadLetterQueue;
    /// Every message body the queue holds, in the order sent.
    async fn bodies(&self) -> Vec<String>;
    /// A queue that takes no message (deleted, its key disabled).
    async fn refusing(&self) -> DeadLetterQueue;
}

/// Every case, by name, for the runners' macro.
#[macro_export]
macro_rules! dlq_contract {
    ($make:expr) => {
        mod dlq_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::dlq_contract!(@cases $make;
                a_parked_record_is_one_message_holding_the_record_whole_and_why,
                records_parked_in_turn_are_each_there_once,
                a_refused_message_is_an_error_naming_the_record_and_the_queue);
        }
    };
    (@cases $make:expr; $($case:ident),+) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::contract::dlq::$case(&$make.await).await;
            }
        )+
    };
}

fn record(event_id: &str) -> serde_json::Value {
    json!({
        "eventID": event_id,
        "eventName": "MODIFY",
        "dynamodb": {"Keys": {"userId": {"S": "u-1"}}, "NewImage": {"version": {"S": "seven"}}}
    })
}

fn parked(bodies: &[String]) -> Vec<ParkedRecord> {
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).expect("a parked record"))
        .collect()
}

pub(crate) async fn a_parked_record_is_one_message_holding_the_record_whole_and_why(
    queue: &impl QueueUnderTest,
) {
    queue
        .dlq()
        .park(
            "welcome-email",
            "e-1",
            &record("e-1"),
            "NewImage: version is not a number",
        )
        .await
        .unwrap();
    let parked = parked(&queue.bodies().await);
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].consumer, "welcome-email");
    assert_eq!(parked[0].error, "NewImage: version is not a number");
    assert_eq!(
        parked[0].record,
        record("e-1"),
        "the record exactly as delivered"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(&parked[0].parked_at).is_ok(),
        "{}",
        parked[0].parked_at
    );
}

pub(crate) async fn records_parked_in_turn_are_each_there_once(queue: &impl QueueUnderTest) {
    let dlq = queue.dlq();
    for id in ["e-1", "e-2", "e-3"] {
        dlq.park("crm-sync", id, &record(id), "refused")
            .await
            .unwrap();
    }
    let mut ids: Vec<String> = parked(&queue.bodies().await)
        .iter()
        .map(|p| p.record["eventID"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["e-1", "e-2", "e-3"]);
}

pub(crate) async fn a_refused_message_is_an_error_naming_the_record_and_the_queue(
    queue: &impl QueueUnderTest,
) {
    let dlq = queue.refusing().await;
    let err = dlq
        .park("search-warm", "e-9", &record("e-9"), "refused")
        .await
        .unwrap_err();
    assert_eq!(err.event_id, "e-9");
    assert_eq!(err.queue_url, dlq.queue_url());
    assert!(!err.message.is_empty());
    assert!(queue.bodies().await.is_empty(), "nothing taken elsewhere");
}
