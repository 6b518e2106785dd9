//! `fanout-ops redrive <consumer>`: send what the consumer's DLQ holds back through its
//! deployed function.
//!
//! - A parked record (core's [`ParkedRecord`]) is invoked as `{"Records": [record]}`, its
//!   `eventSource` naming the redrive ([`RecordOrigin::Redrive`]): if it still fails, the
//!   function reports it failed instead of parking it again.
//! - An OnFailure message (`DDBStreamBatchInfo`, or `KinesisBatchInfo` for a consumer reading
//!   the Kinesis stream) only points at a shard and a sequence range: the records are read
//!   again from that stream (`AT_SEQUENCE_NUMBER`, then `GetRecords` through the end), kept to
//!   the mapping's filters, and invoked in stream order, in batches no larger than the
//!   mapping's. A range the stream has trimmed (a DynamoDB stream's older than 24 h,
//!   `TrimmedDataAccessException`, or a Kinesis shard whose first record is past the range's
//!   start) is reported and kept: `reconcile` finds what it missed.
//!
//! - An object in the consumer's on-failure bucket (`onFailure.destination: bucket`): Lambda's
//!   record of a batch it gave up on, with the whole batch in `payload`. Its records are
//!   invoked as they are, in batches no larger than the mapping's: no stream is read, so a
//!   batch given up on outlives the stream's retention for as long as the object is kept.
//!
//! A message (or object) is deleted only when every record in it succeeded. Every other
//! message is made visible again at the end. The ledger (or the target) makes a second
//! redrive a no-op.

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_sqs::types::Message;
use fanout_core::source::read_record;
use fanout_core::{ParkedRecord, RecordOrigin};
use fanout_registry::ConsumerEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::deployed::Deployed;
use crate::error::OpsError;
use crate::invoke::Function;
use crate::progress::Progress;

/// DynamoDB Streams keeps a record this long; a range older than this cannot be read again.
pub const STREAM_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Empty `GetRecords` pages read from an open shard before the range counts as read.
const EMPTY_PAGES: u32 = 3;

/// What a DLQ message is.
#[derive(Debug, Clone, PartialEq)]
pub enum DlqMessage {
    /// A record core parked: the full record and why.
    Parked(ParkedRecord),
    /// The mapping's OnFailure record: a range of the stream.
    OnFailure(StreamRange),
    /// Neither: kept, and named in the report.
    Unrecognised(String),
}

/// Which stream an OnFailure record points into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RangeSource {
    /// `DDBStreamBatchInfo`: the table's DynamoDB stream.
    #[default]
    DynamoDbStream,
    /// `KinesisBatchInfo`: the table's Kinesis data stream.
    Kinesis,
}

/// `DDBStreamBatchInfo` or `KinesisBatchInfo` (the same fields): where the records of a failed
/// batch are in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRange {
    #[serde(skip)]
    pub source: RangeSource,
    pub stream_arn: String,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    #[serde(default)]
    pub batch_size: Option<u64>,
    #[serde(default)]
    pub approximate_arrival_of_first_record: Option<String>,
}

impl DlqMessage {
    /// Reads a message body.
    pub fn parse(body: &str) -> Self {
        let Ok(value) = serde_json::from_str::<Value>(body) else {
            return DlqMessage::Unrecognised("the body is not JSON".to_owned());
        };
        for (field, source) in [
            ("DDBStreamBatchInfo", RangeSource::DynamoDbStream),
            ("KinesisBatchInfo", RangeSource::Kinesis),
        ] {
            if let Some(info) = value.get(field) {
                return match serde_json::from_value::<StreamRange>(info.clone()) {
                    Ok(range) => DlqMessage::OnFailure(StreamRange { source, ..range }),
                    Err(err) => DlqMessage::Unrecognised(format!("a {field} without {err}")),
                };
            }
        }
        match serde_json::from_value::<ParkedRecord>(value) {
            Ok(parked) if parked.record.is_object() => DlqMessage::Parked(parked),
            Ok(_) => DlqMessage::Unrecognised("a parked record whose record is not an object".to_owned()),
            Err(_) => DlqMessage::Unrecognised(
                "neither a parked record (consumer, error, record) nor an OnFailure record (DDBStreamBatchInfo, KinesisBatchInfo)".to_owned(),
            ),
        }
    }

    fn kind(&self) -> MessageKind {
        match self {
            DlqMessage::Parked(_) => MessageKind::Parked,
            DlqMessage::OnFailure(_) => MessageKind::OnFailure,
            DlqMessage::Unrecognised(_) => MessageKind::Unrecognised,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    Parked,
    OnFailure,
    /// An object of the on-failure bucket: a batch given up on, whole.
    OnFailureObject,
    Unrecognised,
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageOutcome {
    /// Every record succeeded; the message was deleted.
    Redriven,
    /// A record failed (or the function did); the message stays.
    Kept,
    /// The stream no longer holds the range; the message stays. Run reconcile.
    Trimmed,
    /// Not a message redrive understands; it stays.
    Unrecognised,
    /// `--dry-run`: what would have been invoked.
    DryRun,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageReport {
    pub message_id: String,
    pub kind: MessageKind,
    pub outcome: MessageOutcome,
    /// Records that would go (or went) to the function.
    pub records: usize,
    /// Records of an OnFailure range that the mapping's filters keep from the function.
    pub filtered_out: usize,
    pub invocations: usize,
    /// The records' sequence numbers, in the order sent.
    pub sequence_numbers: Vec<String>,
    /// A parked record's time and why it was parked (its `error`, scrubbed of personal data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_reason: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveReport {
    pub consumer: String,
    pub function_name: String,
    pub dlq_url: String,
    pub dry_run: bool,
    /// The DLQ's messages, then the on-failure bucket's objects (`messageId` is the key).
    pub messages: Vec<MessageReport>,
}

impl RedriveReport {
    pub fn count(&self, outcome: MessageOutcome) -> usize {
        self.messages
            .iter()
            .filter(|m| m.outcome == outcome)
            .count()
    }

    /// Whether the queue holds nothing redrive left behind.
    pub fn all_redriven(&self) -> bool {
        self.messages
            .iter()
            .all(|m| matches!(m.outcome, MessageOutcome::Redriven | MessageOutcome::DryRun))
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let mut lines = Vec::new();
        for m in &self.messages {
            lines.push(format!(
                "  {} {:?} -> {:?}: {} record(s), {} invocation(s); {}",
                m.message_id, m.kind, m.outcome, m.records, m.invocations, m.detail
            ));
            if let Some(reason) = &m.parked_reason {
                lines.push(format!("      {reason}"));
            }
        }
        lines.push(format!(
            "redrive {}: {} message(s) and on-failure object(s): {} redriven, {} kept, {} trimmed, {} unrecognised{}",
            self.consumer,
            self.messages.len(),
            self.count(MessageOutcome::Redriven),
            self.count(MessageOutcome::Kept),
            self.count(MessageOutcome::Trimmed),
            self.count(MessageOutcome::Unrecognised),
            if self.dry_run {
                " (dry run: nothing invoked or deleted)"
            } else {
                ""
            },
        ));
        if self.count(MessageOutcome::Trimmed) > 0 {
            lines.push(format!(
                "the stream no longer holds the trimmed ranges: run `fanout-ops reconcile {} --repair` to make what they missed",
                self.consumer
            ));
        }
        lines.join("\n")
    }
}

/// How redrive runs.
#[derive(Debug, Clone)]
pub struct RedriveOptions {
    pub dry_run: bool,
    /// Stop after this many messages.
    pub max_messages: usize,
    /// How long received messages stay invisible to others while redrive works on them.
    pub visibility_timeout: Duration,
}

/// Redrives `deployed`'s DLQ.
pub async fn redrive(
    aws: &aws_config::SdkConfig,
    entry: &ConsumerEntry,
    deployed: &Deployed,
    options: &RedriveOptions,
    progress: &Progress,
) -> Result<RedriveReport, OpsError> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let streams = StreamReaders::new(aws);
    let function = Function::new(aws, &deployed.function_name);
    let filters: Vec<Value> = entry.event_source_mapping()["filters"]
        .as_array()
        .cloned()
        .unwrap_or_default();

    let messages = receive_all(&sqs, deployed, options).await?;
    progress.start(messages.len() as u64, "messages");
    let mut reports = Vec::new();
    let mut keep = Vec::new();
    let mut failure = None;
    for message in &messages {
        let receipt = message.receipt_handle().unwrap_or_default().to_owned();
        let id = message.message_id().unwrap_or_default().to_owned();
        if failure.is_some() {
            keep.push(receipt);
            continue;
        }
        match handle(message, deployed, &function, &streams, &filters, options).await {
            Ok(report) => {
                if report.outcome == MessageOutcome::Redriven {
                    sqs.delete_message()
                        .queue_url(&deployed.dlq_url)
                        .receipt_handle(&receipt)
                        .send()
                        .await
                        .map_err(OpsError::aws(format!("SQS DeleteMessage {id}")))?;
                } else {
                    keep.push(receipt);
                }
                reports.push(report);
            }
            Err(err) => {
                keep.push(receipt);
                failure = Some(err);
            }
        }
        progress.inc();
    }
    progress.finish();
    release(&sqs, &deployed.dlq_url, keep).await;
    if let Some(err) = failure {
        return Err(err);
    }
    if let Some(bucket) = &deployed.on_failure_bucket {
        let room = options.max_messages.saturating_sub(reports.len());
        reports.extend(redrive_bucket(aws, bucket, deployed, &function, options, room).await?);
    }
    Ok(RedriveReport {
        consumer: deployed.consumer.clone(),
        function_name: deployed.function_name.clone(),
        dlq_url: deployed.dlq_url.clone(),
        dry_run: options.dry_run,
        messages: reports,
    })
}

/// Makes kept messages visible again at once: the next run, or an operator, sees them.
pub(crate) async fn release(sqs: &aws_sdk_sqs::Client, dlq_url: &str, receipts: Vec<String>) {
    for receipt in receipts {
        if let Err(err) = sqs
            .change_message_visibility()
            .queue_url(dlq_url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
        {
            // Not lost: it becomes visible again when the visibility timeout ends.
            tracing::warn!(error = %fanout_core::error_chain(&err),
                "a kept message stays hidden until its visibility timeout ends");
        }
    }
}

/// Receives messages until the queue answers empty (or `options.max_messages`), each held
/// invisible for `options.visibility_timeout`.
pub(crate) async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    deployed: &Deployed,
    options: &RedriveOptions,
) -> Result<Vec<Message>, OpsError> {
    let mut messages = Vec::new();
    while messages.len() < options.max_messages {
        let wanted = (options.max_messages - messages.len()).min(10);
        let received = sqs
            .receive_message()
            .queue_url(&deployed.dlq_url)
            .max_number_of_messages(i32::try_from(wanted).unwrap_or(10))
            .visibility_timeout(i32::try_from(options.visibility_timeout.as_secs()).unwrap_or(900))
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(OpsError::aws(format!(
                "SQS ReceiveMessage {}",
                deployed.dlq_url
            )))?;
        let batch = received.messages().to_vec();
        if batch.is_empty() {
            break;
        }
        messages.extend(batch);
    }
    Ok(messages)
}

async fn handle(
    message: &Message,
    deployed: &Deployed,
    function: &Function,
    streams: &StreamReaders,
    filters: &[Value],
    options: &RedriveOptions,
) -> Result<MessageReport, OpsError> {
    let parsed = DlqMessage::parse(message.body().unwrap_or_default());
    let mut report = MessageReport {
        message_id: message.message_id().unwrap_or_default().to_owned(),
        kind: parsed.kind(),
        outcome: MessageOutcome::Kept,
        records: 0,
        filtered_out: 0,
        invocations: 0,
        sequence_numbers: Vec::new(),
        parked_reason: None,
        detail: String::new(),
    };
    let records = match parsed {
        DlqMessage::Unrecognised(why) => {
            report.outcome = MessageOutcome::Unrecognised;
            report.detail = format!("{why}; left in the queue");
            return Ok(report);
        }
        DlqMessage::Parked(parked) if parked.consumer != deployed.consumer => {
            report.outcome = MessageOutcome::Unrecognised;
            report.detail = format!(
                "parked by {}, not {}: left in the queue",
                parked.consumer, deployed.consumer
            );
            return Ok(report);
        }
        DlqMessage::Parked(parked) => {
            report.parked_reason = Some(format!("parked {}: {}", parked.parked_at, parked.error));
            let mut record = parked.record;
            record["eventSource"] = Value::String(RecordOrigin::REDRIVE_EVENT_SOURCE.to_owned());
            vec![record]
        }
        DlqMessage::OnFailure(range) => {
            match read_range(streams, &range, SystemTime::now()).await {
                Ok(records) => {
                    // Filters match the change a record carries (a Kinesis record's `data`).
                    let (kept, dropped): (Vec<Value>, Vec<Value>) = records
                        .into_iter()
                        .partition(|r| fanout_esm::filter::passes(filters, &read_record(r).change));
                    report.filtered_out = dropped.len();
                    kept
                }
                Err(RangeError::Trimmed(why)) => {
                    report.outcome = MessageOutcome::Trimmed;
                    report.detail = format!(
                        "shard {} sequence {}..{}: {why}; left in the queue",
                        range.shard_id, range.start_sequence_number, range.end_sequence_number
                    );
                    return Ok(report);
                }
                Err(RangeError::Unread(why)) => {
                    report.detail = format!(
                        "shard {} sequence {}..{} could not be read: {why}; left in the queue",
                        range.shard_id, range.start_sequence_number, range.end_sequence_number
                    );
                    return Ok(report);
                }
            }
        }
    };
    if !send_records(&records, &mut report, deployed, function, options, "queue").await? {
        return Ok(report);
    }
    report.outcome = MessageOutcome::Redriven;
    report.detail = if records.is_empty() {
        "no record of the range passes the mapping's filters; deleted".to_owned()
    } else {
        "every record succeeded; deleted".to_owned()
    };
    Ok(report)
}

/// Sends `records` through `function` in batches of the mapping's size, filling `report`.
/// `Ok(true)` when every record succeeded; `false` in a dry run (nothing sent) or at the first
/// batch with a failure, which stays in its `place` (queue, bucket), named in the report.
async fn send_records(
    records: &[Value],
    report: &mut MessageReport,
    deployed: &Deployed,
    function: &Function,
    options: &RedriveOptions,
    place: &str,
) -> Result<bool, OpsError> {
    report.records = records.len();
    report.sequence_numbers = records
        .iter()
        .map(|r| {
            read_record(r)
                .item_identifier
                .unwrap_or_else(|| "?".to_owned())
        })
        .collect();
    if options.dry_run {
        report.outcome = MessageOutcome::DryRun;
        report.invocations = records.len().div_ceil(deployed.batch_size);
        report.detail = format!("would invoke {} with them", function.name());
        return Ok(false);
    }
    for chunk in records.chunks(deployed.batch_size) {
        report.invocations += 1;
        let answer = function.invoke(chunk).await?;
        if !answer.succeeded() {
            report.detail = format!("{}; left in the {place}", answer.describe());
            return Ok(false);
        }
    }
    Ok(true)
}

/// The prefix Lambda writes on-failure objects under (`aws/lambda/<mapping UUID>/...`).
const ON_FAILURE_PREFIX: &str = "aws/lambda/";

/// Redrives at most `limit` objects of the on-failure `bucket`, oldest key first.
async fn redrive_bucket(
    aws: &aws_config::SdkConfig,
    bucket: &str,
    deployed: &Deployed,
    function: &Function,
    options: &RedriveOptions,
    limit: usize,
) -> Result<Vec<MessageReport>, OpsError> {
    let s3 = fanout_esm::s3_client(aws);
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(ON_FAILURE_PREFIX)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(OpsError::aws(format!("S3 ListObjectsV2 {bucket}")))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() || keys.len() >= limit {
            break;
        }
    }
    keys.truncate(limit);
    let mut reports = Vec::new();
    for key in keys {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(OpsError::aws(format!("S3 GetObject {bucket}/{key}")))?
            .body
            .collect()
            .await
            .map_err(|e| OpsError::Aws {
                operation: format!("S3 GetObject {bucket}/{key}"),
                message: e.to_string(),
            })?
            .into_bytes();
        let mut report = MessageReport {
            message_id: key.clone(),
            kind: MessageKind::OnFailureObject,
            outcome: MessageOutcome::Kept,
            records: 0,
            filtered_out: 0,
            invocations: 0,
            sequence_numbers: Vec::new(),
            parked_reason: None,
            detail: String::new(),
        };
        let records = match on_failure_object_records(&body) {
            Ok(records) => records,
            Err(why) => {
                report.outcome = MessageOutcome::Unrecognised;
                report.detail = format!("{why}; left in the bucket");
                reports.push(report);
                continue;
            }
        };
        if send_records(&records, &mut report, deployed, function, options, "bucket").await? {
            s3.delete_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .map_err(OpsError::aws(format!("S3 DeleteObject {bucket}/{key}")))?;
            report.outcome = MessageOutcome::Redriven;
            report.detail = "every record succeeded; deleted".to_owned();
        }
        reports.push(report);
    }
    Ok(reports)
}

/// The records of an on-failure object: its `payload` (the invocation event, as a JSON string
/// or object) `Records`.
pub fn on_failure_object_records(body: &[u8]) -> Result<Vec<Value>, String> {
    let object: Value =
        serde_json::from_slice(body).map_err(|e| format!("the object is not JSON: {e}"))?;
    let payload = match &object["payload"] {
        Value::String(text) => serde_json::from_str::<Value>(text)
            .map_err(|e| format!("its payload is not JSON: {e}"))?,
        Value::Object(_) => object["payload"].clone(),
        _ => return Err("the object has no payload (the batch Lambda gave up on)".to_owned()),
    };
    payload["Records"]
        .as_array()
        .cloned()
        .ok_or_else(|| "its payload has no Records".to_owned())
}

/// Why a range was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeError {
    /// The stream no longer holds it.
    Trimmed(String),
    /// It could not be read now (try again).
    Unread(String),
}

/// The clients that read an OnFailure range again, one per kind of stream.
#[derive(Debug, Clone)]
pub struct StreamReaders {
    pub dynamodb_streams: aws_sdk_dynamodbstreams::Client,
    pub kinesis: aws_sdk_kinesis::Client,
}

impl StreamReaders {
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        StreamReaders {
            dynamodb_streams: aws_sdk_dynamodbstreams::Client::new(aws),
            kinesis: aws_sdk_kinesis::Client::new(aws),
        }
    }
}

/// Reads the records of `range` from its stream, as Lambda delivers them, in order.
pub async fn read_range(
    streams: &StreamReaders,
    range: &StreamRange,
    now: SystemTime,
) -> Result<Vec<Value>, RangeError> {
    match range.source {
        RangeSource::DynamoDbStream => {
            read_dynamodb_range(&streams.dynamodb_streams, range, now).await
        }
        RangeSource::Kinesis => read_kinesis_range(&streams.kinesis, range).await,
    }
}

/// Classifies a failed read: a trimmed range is for reconcile, anything else for a retry.
fn trimmed_or_unread(
    operation: &str,
    err: &dyn std::error::Error,
    code: Option<&str>,
    trimmed_codes: &[&str],
) -> RangeError {
    let text = format!("{operation}: {}", fanout_core::error_chain(err));
    if code.is_some_and(|c| trimmed_codes.contains(&c)) {
        RangeError::Trimmed(text)
    } else {
        RangeError::Unread(text)
    }
}

/// A range of the table's Kinesis stream. Its retention is the stream's setting, so whether
/// the range was trimmed is read from the shard itself: its oldest record is past the start.
async fn read_kinesis_range(
    kinesis: &aws_sdk_kinesis::Client,
    range: &StreamRange,
) -> Result<Vec<Value>, RangeError> {
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    use aws_sdk_kinesis::types::ShardIteratorType as KinesisIteratorType;
    match oldest_kinesis_sequence(kinesis, range).await? {
        None => {
            return Err(RangeError::Trimmed(
                "the shard holds no record any more: the stream's retention has trimmed the range"
                    .to_owned(),
            ));
        }
        Some(oldest) if sequence_after(&oldest, &range.start_sequence_number) => {
            return Err(RangeError::Trimmed(format!(
                "the shard's oldest record is {oldest}, past the range's start: the stream's retention has trimmed it"
            )));
        }
        Some(_) => {}
    }
    let iterator = kinesis
        .get_shard_iterator()
        .stream_arn(&range.stream_arn)
        .shard_id(&range.shard_id)
        .shard_iterator_type(KinesisIteratorType::AtSequenceNumber)
        .starting_sequence_number(&range.start_sequence_number)
        .send()
        .await
        .map_err(|e| trimmed_or_unread("GetShardIterator", &e, e.code(), &[]))?;
    let mut next = iterator.shard_iterator().map(str::to_owned);
    let mut records = Vec::new();
    let mut empty_pages = 0;
    while let Some(iterator) = next.take() {
        let page = kinesis
            .get_records()
            .stream_arn(&range.stream_arn)
            .shard_iterator(iterator)
            .send()
            .await
            .map_err(|e| trimmed_or_unread("GetRecords", &e, e.code(), &[]))?;
        if page.records().is_empty() {
            empty_pages += 1;
            if empty_pages >= EMPTY_PAGES {
                break;
            }
        }
        for record in page.records() {
            let sequence = record.sequence_number();
            if sequence_after(&range.start_sequence_number, sequence) {
                continue;
            }
            if records.is_empty() && sequence != range.start_sequence_number {
                return Err(RangeError::Trimmed(format!(
                    "the shard's first record is {sequence}, past the range's start {}: the stream's retention has trimmed it",
                    range.start_sequence_number
                )));
            }
            if sequence_after(sequence, &range.end_sequence_number) {
                return Ok(records);
            }
            let arrival = record
                .approximate_arrival_timestamp()
                .map(|t| t.as_secs_f64())
                .unwrap_or_default();
            records.push(fanout_esm::record::kinesis_event_record(
                &fanout_esm::record::KinesisRecord {
                    data: record.data().as_ref(),
                    partition_key: record.partition_key().unwrap_or_default(),
                    sequence_number: sequence,
                    arrival_seconds: arrival,
                    shard_id: &range.shard_id,
                },
                &range.stream_arn,
            ));
            if sequence == range.end_sequence_number {
                return Ok(records);
            }
        }
        next = page.next_shard_iterator().map(str::to_owned);
    }
    Err(RangeError::Unread(format!(
        "the shard ended before sequence {} ({} record(s) read)",
        range.end_sequence_number,
        records.len()
    )))
}

/// Pages of a shard read from `TRIM_HORIZON` before it counts as empty.
const HORIZON_PAGES: u32 = 10;

/// The sequence number of the oldest record `range`'s shard still holds (`None`: none).
async fn oldest_kinesis_sequence(
    kinesis: &aws_sdk_kinesis::Client,
    range: &StreamRange,
) -> Result<Option<String>, RangeError> {
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    let iterator = kinesis
        .get_shard_iterator()
        .stream_arn(&range.stream_arn)
        .shard_id(&range.shard_id)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map_err(|e| trimmed_or_unread("GetShardIterator", &e, e.code(), &[]))?;
    let mut next = iterator.shard_iterator().map(str::to_owned);
    // A page can be empty while records follow (Kinesis skips trimmed stretches page by page):
    // read on until a record, the tip of the shard, or a bounded number of pages.
    for _ in 0..HORIZON_PAGES {
        let Some(iterator) = next.take() else { break };
        let page = kinesis
            .get_records()
            .stream_arn(&range.stream_arn)
            .shard_iterator(iterator)
            .limit(1)
            .send()
            .await
            .map_err(|e| trimmed_or_unread("GetRecords", &e, e.code(), &[]))?;
        if let Some(first) = page.records().first() {
            return Ok(Some(first.sequence_number().to_owned()));
        }
        if page.millis_behind_latest() == Some(0) {
            return Ok(None);
        }
        next = page.next_shard_iterator().map(str::to_owned);
        if next.is_none() {
            return Ok(None);
        }
    }
    Err(RangeError::Unread(format!(
        "no record within {HORIZON_PAGES} pages from the shard's trim horizon, and not at its tip; try again"
    )))
}

/// A range of the table's DynamoDB stream, which keeps records 24 hours.
async fn read_dynamodb_range(
    streams: &aws_sdk_dynamodbstreams::Client,
    range: &StreamRange,
    now: SystemTime,
) -> Result<Vec<Value>, RangeError> {
    if let Some(first) = range
        .approximate_arrival_of_first_record
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        && SystemTime::from(first) + STREAM_RETENTION < now
    {
        return Err(RangeError::Trimmed(format!(
            "its first record arrived at {first}, beyond the stream's 24 h retention"
        )));
    }
    const TRIMMED: &[&str] = &["TrimmedDataAccessException"];
    use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
    let iterator = streams
        .get_shard_iterator()
        .stream_arn(&range.stream_arn)
        .shard_id(&range.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&range.start_sequence_number)
        .send()
        .await
        .map_err(|e| trimmed_or_unread("GetShardIterator", &e, e.code(), TRIMMED))?;
    let mut next = iterator.shard_iterator().map(str::to_owned);
    let mut records = Vec::new();
    let mut empty_pages = 0;
    while let Some(iterator) = next.take() {
        let page = streams
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .map_err(|e| trimmed_or_unread("GetRecords", &e, e.code(), TRIMMED))?;
        if page.records().is_empty() {
            empty_pages += 1;
            if empty_pages >= EMPTY_PAGES {
                break;
            }
        }
        for record in page.records() {
            let sequence = record
                .dynamodb()
                .and_then(|d| d.sequence_number())
                .unwrap_or_default();
            if sequence_after(sequence, &range.end_sequence_number) {
                return Ok(records);
            }
            records.push(fanout_esm::record::record_json(record, &range.stream_arn));
            if sequence == range.end_sequence_number {
                return Ok(records);
            }
        }
        next = page.next_shard_iterator().map(str::to_owned);
    }
    Err(RangeError::Unread(format!(
        "the shard ended before sequence {} ({} record(s) read)",
        range.end_sequence_number,
        records.len()
    )))
}

/// Whether stream sequence number `a` comes after `b` (decimal strings of any length).
fn sequence_after(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) > (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_on_failure_object_gives_its_batch_whether_the_payload_is_text_or_json() {
        let batch = serde_json::json!({"Records": [{"eventID": "e-1"}, {"eventID": "e-2"}]});
        let as_text = serde_json::json!({"requestContext": {"condition": "RetryAttemptsExhausted"},
            "timestamp": "2026-12-03T14:00:00.000Z", "payload": batch.to_string()});
        let as_json = serde_json::json!({"payload": batch.clone()});
        for object in [as_text, as_json] {
            let records =
                on_failure_object_records(object.to_string().as_bytes()).unwrap_or_default();
            assert_eq!(
                records,
                batch["Records"].as_array().cloned().unwrap_or_default()
            );
        }
        for (body, why) in [
            ("not json", "not JSON"),
            ("{\"requestContext\": {}}", "no payload"),
            ("{\"payload\": \"{}\"}", "no Records"),
        ] {
            let err = on_failure_object_records(body.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn messages_are_told_apart() {
        let on_failure = fanout_testkit_free_on_failure();
        assert!(
            matches!(DlqMessage::parse(&on_failure), DlqMessage::OnFailure(r) if r.end_sequence_number == "300")
        );
        let parked = r#"{"consumer":"crm-sync","error":"x","parkedAt":"2026-01-01T00:00:00Z","record":{"eventID":"e"}}"#;
        assert!(
            matches!(DlqMessage::parse(parked), DlqMessage::Parked(p) if p.consumer == "crm-sync")
        );
        assert!(matches!(
            DlqMessage::parse("{\"hello\":1}"),
            DlqMessage::Unrecognised(_)
        ));
        assert!(matches!(
            DlqMessage::parse("not json"),
            DlqMessage::Unrecognised(_)
        ));
        assert!(matches!(
            DlqMessage::parse(r#"{"DDBStreamBatchInfo":{"shardId":"s"}}"#),
            DlqMessage::Unrecognised(_)
        ));
        let kinesis =
            fanout_testkit_free_on_failure().replace("DDBStreamBatchInfo", "KinesisBatchInfo");
        assert!(
            matches!(DlqMessage::parse(&kinesis), DlqMessage::OnFailure(r) if r.source == RangeSource::Kinesis)
        );
        assert!(
            matches!(DlqMessage::parse(&on_failure), DlqMessage::OnFailure(r) if r.source == RangeSource::DynamoDbStream)
        );
    }

    fn fanout_testkit_free_on_failure() -> String {
        serde_json::json!({"requestContext": {"condition": "RetryAttemptsExhausted"},
            "DDBStreamBatchInfo": {"shardId": "shardId-1", "startSequenceNumber": "100",
                "endSequenceNumber": "300", "batchSize": 3, "streamArn": "arn:aws:dynamodb:us-east-1:0:table/Users/stream/x",
                "approximateArrivalOfFirstRecord": "2026-01-01T00:00:00Z"}})
        .to_string()
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_after("1000", "999"));
        assert!(!sequence_after("999", "1000"));
        assert!(!sequence_after("500", "500"));
        assert!(sequence_after("000000000000000000301", "300"));
    }

    #[tokio::test]
    async fn a_range_older_than_the_stream_keeps_is_trimmed_without_a_call() {
        let aws = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let streams = StreamReaders::new(&aws);
        let DlqMessage::OnFailure(range) = DlqMessage::parse(&fanout_testkit_free_on_failure())
        else {
            panic!("an OnFailure record");
        };
        let later =
            SystemTime::from(chrono::DateTime::parse_from_rfc3339("2026-01-02T00:00:01Z").unwrap());
        assert!(matches!(
            read_range(&streams, &range, later).await,
            Err(RangeError::Trimmed(_))
        ));
    }
}
