//! A local event source mapping for the Users stream in DynamoDB Local, with AWS's documented
//! semantics for DynamoDB Streams:
//!
//! - shards read parents before children, from TRIM_HORIZON or the last checkpoint;
//! - filter criteria applied per record before batching (non-matching records are skipped and
//!   the checkpoint moves past them);
//! - batches of at most `batchSize`, waiting up to `maxBatchingWindowSeconds` for a full one;
//! - ReportBatchItemFailures: an empty list is success; otherwise the shard restarts at the
//!   lowest reported sequence number; a null, empty or unknown `itemIdentifier` fails the
//!   whole batch;
//! - BisectBatchOnFunctionError: a batch whose invocation fails is split in two and each half
//!   retried, without consuming retry attempts;
//! - MaximumRetryAttempts and MaximumRecordAgeInSeconds: then the batch is discarded and an
//!   on-failure record with `DDBStreamBatchInfo` (the shape Lambda sends) goes to the DLQ; when
//!   the destination refuses it (queue gone, key disabled, policy wrong), Lambda drops the
//!   records all the same and counts them in the mapping's `DroppedEventCount`
//!   ([`PollReport::dropped`]). With an S3 bucket as the destination
//!   ([`LocalMapping::with_on_failure_bucket`]) the object is the same record plus `payload`,
//!   the whole batch as the function was invoked with it, under
//!   `aws/lambda/<mapping UUID>/<shard ID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<UUID>`;
//! - one batch in flight per shard (parallelization factor 1), so per-key order holds.
//!
//! With [`RecordShape::Kinesis`] the same stream is delivered as a mapping on the table's
//! Kinesis streaming destination delivers it: each record carried in `kinesis.data`, failures
//! named by the Kinesis sequence number, an on-failure record with `KinesisBatchInfo`. Filters
//! are matched against the change either way (a Kinesis mapping's `data`).
//!
//! Not emulated: parallelization factors above 1, tumbling windows, the function's own
//! concurrency limits (one invocation at a time per mapping), and Kinesis's reordering and
//! duplicates (the fixtures in `events/` hold those).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_json::{Value, json};

use crate::filter;
use crate::invoke::Invoke;
use crate::record::{RecordShape, kinesis_record_json, record_json};
use crate::settings::{MappingSettings, StartingPosition};

/// The mapping could not read the stream or report a discarded batch.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("DynamoDB Streams {operation}: {message}")]
    Stream {
        operation: &'static str,
        message: String,
    },
}

/// What happened to one invocation, for tests and the demo's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub shard_id: String,
    pub sequence_numbers: Vec<String>,
    pub outcome: InvocationOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvocationOutcome {
    Succeeded,
    /// The response named these sequence numbers as failed.
    PartialFailure(Vec<String>),
    /// The response could not be read as a partial batch failure (null/empty/unknown id).
    InvalidResponse(String),
    FunctionError(String),
}

/// A batch the mapping gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discarded {
    pub condition: &'static str,
    pub sequence_numbers: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub invocations: Vec<Invocation>,
    pub filtered_out: usize,
    pub discarded: Vec<Discarded>,
    /// Records discarded whose on-failure record the destination refused: gone, as Lambda's
    /// `DroppedEventCount` counts them.
    pub dropped: usize,
}

#[derive(Debug, Clone)]
struct StreamItem {
    /// What the function receives in `Records[]`.
    json: Value,
    /// The change record filters are matched against.
    change: Value,
    sequence_number: String,
    arrival: SystemTime,
}

/// Where a mapping sends the record of a batch it gives up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnFailureDestination {
    /// An SQS queue: the record only (batch metadata).
    Queue { url: String },
    /// An S3 bucket: the record and the whole batch (`payload`).
    Bucket { name: String },
}

/// One consumer's mapping on one stream.
pub struct LocalMapping<I> {
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    /// This mapping's UUID, as Lambda gives each mapping one.
    uuid: String,
    stream_arn: String,
    function_name: String,
    on_failure: OnFailureDestination,
    settings: MappingSettings,
    shape: RecordShape,
    invoker: I,
    /// Last sequence number processed (or skipped) per shard.
    checkpoints: HashMap<String, String>,
    /// Closed shards read to their end.
    finished: HashSet<String>,
}

impl<I> std::fmt::Debug for LocalMapping<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMapping")
            .field("stream_arn", &self.stream_arn)
            .field("function_name", &self.function_name)
            .field("checkpoints", &self.checkpoints)
            .finish_non_exhaustive()
    }
}

impl<I: Invoke> LocalMapping<I> {
    pub fn new(
        aws: &aws_config::SdkConfig,
        stream_arn: impl Into<String>,
        function_name: impl Into<String>,
        on_failure_queue_url: impl Into<String>,
        settings: MappingSettings,
        invoker: I,
    ) -> Self {
        LocalMapping {
            streams: aws_sdk_dynamodbstreams::Client::new(aws),
            sqs: aws_sdk_sqs::Client::new(aws),
            s3: s3_client(aws),
            uuid: uuid::Uuid::new_v4().to_string(),
            stream_arn: stream_arn.into(),
            function_name: function_name.into(),
            on_failure: OnFailureDestination::Queue {
                url: on_failure_queue_url.into(),
            },
            settings,
            shape: RecordShape::DynamoDbStream,
            invoker,
            checkpoints: HashMap::new(),
            finished: HashSet::new(),
        }
    }

    /// Delivers records in `shape`: as the table's stream mapping does (the default), or as a
    /// mapping on its Kinesis streaming destination.
    pub fn with_record_shape(mut self, shape: RecordShape) -> Self {
        self.shape = shape;
        self
    }

    /// Sends the record of a batch given up on, with the batch itself, to the S3 bucket `name`
    /// instead of the queue.
    pub fn with_on_failure_bucket(mut self, name: impl Into<String>) -> Self {
        self.on_failure = OnFailureDestination::Bucket { name: name.into() };
        self
    }

    pub fn invoker(&self) -> &I {
        &self.invoker
    }

    /// The mapping's UUID (the `<mapping UUID>` of its on-failure objects' keys).
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// Reads every record now in the stream past the checkpoints and drives the function over
    /// them, shard by shard (parents first), one batch in flight at a time.
    pub async fn poll(&mut self) -> Result<PollReport, MappingError> {
        let mut report = PollReport::default();
        for (shard_id, closed) in self.shards_in_order().await? {
            if self.finished.contains(&shard_id) {
                continue;
            }
            let (items, ended) = self.read_shard(&shard_id).await?;
            let last_read = items.last().map(|i| i.sequence_number.clone());
            let mut pending: VecDeque<StreamItem> = VecDeque::new();
            for item in items {
                if filter::passes(&self.settings.filters, &item.change) {
                    pending.push_back(item);
                } else {
                    report.filtered_out += 1;
                    if pending.is_empty() {
                        self.checkpoints
                            .insert(shard_id.clone(), item.sequence_number.clone());
                    }
                }
            }
            while !pending.is_empty() {
                let take = pending.len().min(self.settings.batch_size);
                let batch: Vec<StreamItem> = pending.drain(..take).collect();
                self.deliver(&shard_id, batch, &mut report).await?;
            }
            // Every record read is now delivered, discarded or filtered out: move past all of
            // them, including filtered records after the last batch.
            if let Some(last) = last_read {
                self.checkpoint(&shard_id, &last);
            }
            if closed && ended {
                self.finished.insert(shard_id);
            }
        }
        Ok(report)
    }

    /// Waits up to the batching window for a full batch: polls until nothing new arrives.
    pub async fn poll_until_idle(&mut self) -> Result<PollReport, MappingError> {
        let mut total = PollReport::default();
        loop {
            tokio::time::sleep(
                self.settings
                    .max_batching_window
                    .min(Duration::from_secs(1)),
            )
            .await;
            let report = self.poll().await?;
            let idle = report.invocations.is_empty() && report.filtered_out == 0;
            total.invocations.extend(report.invocations);
            total.filtered_out += report.filtered_out;
            total.discarded.extend(report.discarded);
            total.dropped += report.dropped;
            if idle {
                return Ok(total);
            }
        }
    }

    /// Shards with parents before children; `true` when the shard is closed.
    async fn shards_in_order(&self) -> Result<Vec<(String, bool)>, MappingError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let output = self
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| stream_error("DescribeStream", &e))?;
            let Some(description) = output.stream_description else {
                break;
            };
            for shard in description.shards.unwrap_or_default() {
                let closed = shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some();
                shards.push((
                    shard.shard_id.unwrap_or_default(),
                    shard.parent_shard_id,
                    closed,
                ));
            }
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                break;
            }
        }
        // Parents first: a shard comes after its parent when the parent is listed.
        let known: HashSet<String> = shards.iter().map(|(id, _, _)| id.clone()).collect();
        let mut ordered = Vec::new();
        let mut placed: HashSet<String> = HashSet::new();
        while ordered.len() < shards.len() {
            let before = ordered.len();
            for (id, parent, closed) in &shards {
                let parent_ready = parent
                    .as_ref()
                    .is_none_or(|p| !known.contains(p) || placed.contains(p));
                if !placed.contains(id) && parent_ready {
                    placed.insert(id.clone());
                    ordered.push((id.clone(), *closed));
                }
            }
            if ordered.len() == before {
                break; // a cycle cannot happen in a real stream; do not spin
            }
        }
        Ok(ordered)
    }

    /// Every record of the shard past its checkpoint; `true` when the shard's end was read.
    async fn read_shard(&self, shard_id: &str) -> Result<(Vec<StreamItem>, bool), MappingError> {
        let mut request = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id);
        request = match self.checkpoints.get(shard_id) {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            None => match self.settings.starting_position {
                StartingPosition::TrimHorizon => {
                    request.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
                StartingPosition::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            },
        };
        let mut iterator = request
            .send()
            .await
            .map_err(|e| stream_error("GetShardIterator", &e))?
            .shard_iterator;
        let mut items = Vec::new();
        let mut ended = false;
        while let Some(current) = iterator {
            let output = self
                .streams
                .get_records()
                .shard_iterator(current)
                .limit(1000)
                .send()
                .await
                .map_err(|e| stream_error("GetRecords", &e))?;
            let records = output.records.unwrap_or_default();
            let empty = records.is_empty();
            for record in records {
                items.push(self.stream_item(record));
            }
            iterator = output.next_shard_iterator;
            if iterator.is_none() {
                ended = true;
            }
            if empty {
                break;
            }
        }
        Ok((items, ended))
    }

    fn stream_item(&self, record: Record) -> StreamItem {
        let change_json = record_json(&record, &self.stream_arn);
        let change = record.dynamodb.as_ref();
        let arrival = change
            .and_then(|c| c.approximate_creation_date_time())
            .map(|t| UNIX_EPOCH + Duration::from_secs_f64(t.as_secs_f64().max(0.0)))
            .unwrap_or_else(SystemTime::now);
        let sequence_number = change
            .and_then(|c| c.sequence_number())
            .unwrap_or_default()
            .to_owned();
        let json = match &self.shape {
            RecordShape::DynamoDbStream => change_json.clone(),
            RecordShape::Kinesis { stream_arn } => {
                kinesis_record_json(&change_json, &sequence_number, stream_arn)
            }
        };
        StreamItem {
            sequence_number,
            json,
            change: change_json,
            arrival,
        }
    }

    /// Delivers one batch until it succeeds or is discarded; moves the checkpoint.
    async fn deliver(
        &mut self,
        shard_id: &str,
        batch: Vec<StreamItem>,
        report: &mut PollReport,
    ) -> Result<(), MappingError> {
        // Bisected halves wait here; each carries its own attempt count.
        let mut work: VecDeque<(Vec<StreamItem>, u32)> = VecDeque::from([(batch, 0)]);
        while let Some((mut batch, mut attempts)) = work.pop_front() {
            loop {
                if batch.is_empty() {
                    break;
                }
                let age = SystemTime::now()
                    .duration_since(batch[0].arrival)
                    .unwrap_or_default();
                if age > self.settings.maximum_record_age {
                    self.discard(shard_id, &batch, "RecordAgeExceeded", attempts, report)
                        .await?;
                    break;
                }
                let sequence_numbers: Vec<String> =
                    batch.iter().map(|i| i.sequence_number.clone()).collect();
                let event =
                    json!({"Records": batch.iter().map(|i| i.json.clone()).collect::<Vec<_>>()});
                let outcome = match self.invoker.invoke(event).await {
                    Err(error) => InvocationOutcome::FunctionError(error.to_string()),
                    Ok(response) => read_response(
                        &response,
                        &sequence_numbers,
                        self.settings.report_batch_item_failures,
                    ),
                };
                report.invocations.push(Invocation {
                    shard_id: shard_id.to_owned(),
                    sequence_numbers: sequence_numbers.clone(),
                    outcome: outcome.clone(),
                });
                match outcome {
                    InvocationOutcome::Succeeded => {
                        self.checkpoint(shard_id, &batch[batch.len() - 1].sequence_number);
                        break;
                    }
                    InvocationOutcome::PartialFailure(failed) => {
                        // Restart at the lowest reported sequence number: everything before it
                        // is done.
                        let restart = sequence_numbers
                            .iter()
                            .position(|s| failed.contains(s))
                            .unwrap_or(0);
                        if restart > 0 {
                            self.checkpoint(shard_id, &batch[restart - 1].sequence_number);
                        }
                        batch.drain(..restart);
                        attempts += 1;
                    }
                    InvocationOutcome::InvalidResponse(_) | InvocationOutcome::FunctionError(_) => {
                        if self.settings.bisect_batch_on_function_error && batch.len() > 1 {
                            // Split without consuming a retry attempt.
                            let second = batch.split_off(batch.len() / 2);
                            work.push_front((second, attempts));
                            work.push_front((batch, attempts));
                            break;
                        }
                        attempts += 1;
                    }
                }
                if attempts > self.settings.maximum_retry_attempts {
                    self.discard(shard_id, &batch, "RetryAttemptsExhausted", attempts, report)
                        .await?;
                    break;
                }
            }
        }
        Ok(())
    }

    fn checkpoint(&mut self, shard_id: &str, sequence_number: &str) {
        self.checkpoints
            .insert(shard_id.to_owned(), sequence_number.to_owned());
    }

    /// Sends the on-failure record (batch metadata only, as Lambda does) and moves past the
    /// batch.
    async fn discard(
        &mut self,
        shard_id: &str,
        batch: &[StreamItem],
        condition: &'static str,
        attempts: u32,
        report: &mut PollReport,
    ) -> Result<(), MappingError> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        let mut body = on_failure_record(
            &self.function_name,
            &self.stream_arn,
            &self.shape,
            shard_id,
            condition,
            attempts,
            first,
            last,
            batch.len(),
        );
        let delivered = match &self.on_failure {
            OnFailureDestination::Queue { url } => self
                .sqs
                .send_message()
                .queue_url(url)
                .message_body(body.to_string())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("SQS SendMessage to {url}: {e:?}")),
            OnFailureDestination::Bucket { name } => {
                let payload =
                    json!({"Records": batch.iter().map(|i| i.json.clone()).collect::<Vec<_>>()});
                body["payload"] = Value::String(payload.to_string());
                let key = on_failure_object_key(&self.uuid, shard_id, SystemTime::now());
                self.s3
                    .put_object()
                    .bucket(name)
                    .key(&key)
                    .content_type("application/json")
                    .body(body.to_string().into_bytes().into())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("S3 PutObject {name}/{key}: {e:?}"))
            }
        };
        if let Err(error) = delivered {
            // Lambda moves on without the record: the batch is dropped, and counted.
            tracing::error!(%error, records = batch.len(),
                "the on-failure destination refused the record; the batch is dropped (DroppedEventCount)");
            report.dropped += batch.len();
        }
        self.checkpoint(shard_id, &last.sequence_number);
        report.discarded.push(Discarded {
            condition,
            sequence_numbers: batch.iter().map(|i| i.sequence_number.clone()).collect(),
        });
        Ok(())
    }
}

/// An S3 client for on-failure buckets: path-style requests, which any endpoint answers (AWS,
/// or a local one on a loopback port).
pub fn s3_client(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(true)
            .build(),
    )
}

/// The key Lambda gives an on-failure object:
/// `aws/lambda/<mapping UUID>/<shard ID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>`.
pub fn on_failure_object_key(mapping_uuid: &str, shard_id: &str, at: SystemTime) -> String {
    let at = chrono::DateTime::<chrono::Utc>::from(at);
    format!(
        "aws/lambda/{mapping_uuid}/{shard_id}/{}/{}-{}",
        at.format("%Y/%m/%d"),
        at.format("%Y-%m-%dT%H.%M.%S"),
        uuid::Uuid::new_v4()
    )
}

fn stream_error(operation: &'static str, err: &dyn std::fmt::Debug) -> MappingError {
    MappingError::Stream {
        operation,
        message: format!("{err:?}"),
    }
}

/// Reads a function response under ReportBatchItemFailures.
fn read_response(response: &Value, batch: &[String], report_failures: bool) -> InvocationOutcome {
    if !report_failures {
        return InvocationOutcome::Succeeded;
    }
    let failures = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return InvocationOutcome::Succeeded,
        Some(Value::Array(failures)) => failures,
        Some(other) => {
            return InvocationOutcome::InvalidResponse(format!("batchItemFailures is {other}"));
        }
    };
    if failures.is_empty() {
        return InvocationOutcome::Succeeded;
    }
    let mut failed = Vec::new();
    for failure in failures {
        match failure.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if !id.is_empty() && batch.iter().any(|s| s == id) => {
                failed.push(id.to_owned())
            }
            // Null, empty or unknown identifiers make Lambda treat the whole batch as failed.
            other => {
                return InvocationOutcome::InvalidResponse(format!("itemIdentifier {other:?}"));
            }
        }
    }
    InvocationOutcome::PartialFailure(failed)
}

/// The function's ARN in the stream's region and account (the mapping and its stream share
/// both).
fn function_arn(stream_arn: &str, function_name: &str) -> String {
    let mut parts = stream_arn.split(':').skip(3);
    let region = parts.next().unwrap_or("us-east-1");
    let account = parts.next().unwrap_or("000000000000");
    format!("arn:aws:lambda:{region}:{account}:function:{function_name}")
}

#[allow(clippy::too_many_arguments)]
fn on_failure_record(
    function_name: &str,
    stream_arn: &str,
    shape: &RecordShape,
    shard_id: &str,
    condition: &str,
    invoke_count: u32,
    first: &StreamItem,
    last: &StreamItem,
    batch_size: usize,
) -> Value {
    let time = |t: SystemTime| {
        Value::String(
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
    };
    let (info, source_arn) = match shape {
        RecordShape::DynamoDbStream => ("DDBStreamBatchInfo", stream_arn),
        RecordShape::Kinesis { stream_arn } => ("KinesisBatchInfo", stream_arn.as_str()),
    };
    let mut record = json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": function_arn(stream_arn, function_name),
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": time(SystemTime::now()),
    });
    record[info] = json!({
        "shardId": shard_id,
        "startSequenceNumber": first.sequence_number,
        "endSequenceNumber": last.sequence_number,
        "approximateArrivalOfFirstRecord": time(first.arrival),
        "approximateArrivalOfLastRecord": time(last.arrival),
        "batchSize": batch_size,
        "streamArn": source_arn,
    });
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_rules() {
        let batch = vec!["1".to_owned(), "2".to_owned(), "3".to_owned()];
        assert_eq!(
            read_response(&json!({"batchItemFailures": []}), &batch, true),
            InvocationOutcome::Succeeded
        );
        assert_eq!(
            read_response(&json!({}), &batch, true),
            InvocationOutcome::Succeeded
        );
        assert_eq!(
            read_response(
                &json!({"batchItemFailures": [{"itemIdentifier": "2"}, {"itemIdentifier": "3"}]}),
                &batch,
                true
            ),
            InvocationOutcome::PartialFailure(vec!["2".into(), "3".into()])
        );
        for bad in [
            json!({"itemIdentifier": ""}),
            json!({"itemIdentifier": null}),
            json!({}),
            json!({"itemIdentifier": "9"}),
        ] {
            assert!(matches!(
                read_response(&json!({"batchItemFailures": [bad]}), &batch, true),
                InvocationOutcome::InvalidResponse(_)
            ));
        }
    }

    #[test]
    fn the_function_arn_shares_the_stream_region_and_account() {
        assert_eq!(
            function_arn(
                "arn:aws:dynamodb:ddblocal:000000000000:table/Users/stream/2026",
                "audit-log"
            ),
            "arn:aws:lambda:ddblocal:000000000000:function:audit-log"
        );
    }
}
