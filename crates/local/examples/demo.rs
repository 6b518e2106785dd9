//! `make demo`: the whole fan-out on the local stack, including the failure paths.
//!
//! Run inside `fanout-local with -- …` (the Makefile does), which starts DynamoDB Local and
//! ministack and points the standard `AWS_ENDPOINT_URL_*` variables at them. Each consumer's
//! real binary runs under `cargo lambda watch` (or, with `--in-process`, its library runs
//! in-process), behind its own local event source mapping with the settings of
//! `infra/consumers.json`; search-warm writes to the search stand-in (not OpenSearch).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit_log::AuditLog;
use aws_sdk_dynamodb::types::AttributeValue;
use crm_sync::CrmSync;
use fanout_core::{
    BatchProcessor, ConsumerConfig, Ledger, RecordHandler, RecordOutcome, RecordResult,
};
use fanout_local::esm::{Invoke, LocalMapping, MappingSettings};
use fanout_local::inspect::{drain_queue, sent_emails};
use fanout_local::invoke_api::{InvokeApi, WatchedFunction};
use fanout_local::resources::{
    create_audit_table, create_bus_to_queue, create_ledger_table, create_queue, create_users_table,
    create_verified_sender, queue_arn,
};
use fanout_local::search_standin::SearchStandIn;
use fanout_local::testing::{local_sdk_config, ministack_url};
use search_warm::{SearchIndex, SearchWarm};
use serde_json::Value;
use welcome_email::WelcomeEmail;

type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// How the demo runs the consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// The real binaries, each served by `cargo lambda watch` and invoked through the Lambda
    /// Invoke API (what `make demo` does).
    Binaries,
    /// The consumer libraries in-process, through the same batch processor the Lambda runtime
    /// calls (what the test does: faster, and it sees each record's outcome).
    InProcess,
}

/// One consumer as the mapping sees it, remembering every event it was given and, in-process,
/// each record's result, so a batch can be redelivered and judged.
struct Function<H> {
    target: Target<H>,
    delivered: Mutex<Vec<Value>>,
    results: Mutex<Vec<Vec<RecordResult>>>,
}

enum Target<H> {
    InProcess {
        processor: BatchProcessor,
        handler: Arc<H>,
    },
    // The watcher lives as long as the function: dropping it stops the binary.
    Binary {
        api: InvokeApi,
        _watch: WatchedFunction,
    },
}

impl<H: RecordHandler> Invoke for Function<H> {
    async fn invoke(&self, json: Value) -> Result<Value, String> {
        if let Ok(mut delivered) = self.delivered.lock() {
            delivered.push(json.clone());
        }
        match &self.target {
            Target::Binary { api, .. } => api.invoke(json).await,
            Target::InProcess { processor, handler } => {
                let report = processor
                    .run_json(
                        &json.to_string(),
                        Duration::from_secs(30),
                        Arc::clone(handler),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if let Ok(mut results) = self.results.lock() {
                    results.push(report.results.clone());
                }
                serde_json::to_value(report.response).map_err(|e| e.to_string())
            }
        }
    }
}

impl<H> Function<H> {
    fn first_event(&self) -> Option<Value> {
        self.delivered.lock().ok()?.first().cloned()
    }

    fn last_results(&self) -> Option<Vec<RecordResult>> {
        self.results.lock().ok()?.last().cloned()
    }
}

/// One consumer wired to its mapping.
struct Wired<H> {
    name: &'static str,
    mapping: LocalMapping<Arc<Function<H>>>,
    function: Arc<Function<H>>,
}

struct Consumer<H> {
    name: &'static str,
    settings_name: &'static str,
    dlq_url: String,
    /// The binary's configuration variables (besides the endpoints it inherits).
    env: Vec<(&'static str, String)>,
    handler: H,
}

fn wire<H: RecordHandler>(
    aws: &aws_config::SdkConfig,
    stream_arn: &str,
    runner: Runner,
    consumer: Consumer<H>,
) -> Result<Wired<H>, DemoError> {
    let settings = MappingSettings::for_consumer(consumer.settings_name)?;
    let target = match runner {
        Runner::InProcess => Target::InProcess {
            processor: ConsumerConfig {
                dlq_url: consumer.dlq_url.clone(),
                max_concurrency: fanout_core::batch::DEFAULT_MAX_CONCURRENCY,
            }
            .processor(consumer.name, aws),
            handler: Arc::new(consumer.handler),
        },
        Runner::Binaries => {
            let mut env: Vec<(String, String)> = consumer
                .env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            env.push(("DLQ_URL".to_owned(), consumer.dlq_url.clone()));
            let watch = WatchedFunction::start(consumer.name, &env)?;
            Target::Binary {
                api: watch.invoker(),
                _watch: watch,
            }
        }
    };
    let function = Arc::new(Function {
        target,
        delivered: Mutex::new(Vec::new()),
        results: Mutex::new(Vec::new()),
    });
    let mapping = LocalMapping::new(
        aws,
        stream_arn,
        consumer.name,
        &consumer.dlq_url,
        settings,
        Arc::clone(&function),
    );
    Ok(Wired {
        name: consumer.name,
        mapping,
        function,
    })
}

struct Writer {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Writer {
    async fn put(
        &self,
        user: &str,
        name: &str,
        plan: &str,
        version: &str,
    ) -> Result<(), DemoError> {
        let version = if version.parse::<u64>().is_ok() {
            AttributeValue::N(version.to_owned())
        } else {
            // The poison record: a version no consumer can decode.
            AttributeValue::S(version.to_owned())
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .item("userId", AttributeValue::S(user.into()))
            .item("email", AttributeValue::S(format!("{user}@example.com")))
            .item("name", AttributeValue::S(name.into()))
            .item("plan", AttributeValue::S(plan.into()))
            .item("version", version)
            .item(
                "updatedAt",
                AttributeValue::S(fanout_core::telemetry::rfc3339_now()),
            )
            .send()
            .await?;
        Ok(())
    }

    async fn delete(&self, user: &str) -> Result<(), DemoError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("userId", AttributeValue::S(user.into()))
            .send()
            .await?;
        Ok(())
    }
}

/// What the demo found, read back from the local services.
#[derive(Debug, Default)]
pub struct Summary {
    pub lines: Vec<String>,
    pub failures: Vec<String>,
}

impl Summary {
    fn say(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    fn expect(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }
}

/// Runs the scenario and reports what each consumer did.
pub async fn run_demo(runner: Runner) -> Result<Summary, DemoError> {
    let started = Instant::now();
    let aws = local_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let table = |name: &str| format!("{name}-{run}");

    // The resources the CDK app creates, locally.
    let stream_arn = create_users_table(&dynamodb, &table("Users")).await?;
    create_ledger_table(&dynamodb, &table("EffectLedger")).await?;
    create_audit_table(&dynamodb, &table("UserAudit")).await?;
    let mut dlqs = BTreeMap::new();
    for consumer in ["welcome-email", "crm-sync", "search-warm", "audit-log"] {
        dlqs.insert(
            consumer,
            create_queue(&sqs, &table(&format!("{consumer}-dlq"))).await?,
        );
    }
    let crm_queue = create_queue(&sqs, &table("crm-inspection")).await?;
    let bus = table("crm");
    create_bus_to_queue(
        &aws_sdk_eventbridge::Client::new(&aws),
        &bus,
        &queue_arn(&sqs, &crm_queue).await?,
    )
    .await?;
    let sender = format!("welcome-{run}@fanout.example");
    create_verified_sender(&aws_sdk_sesv2::Client::new(&aws), &sender).await?;
    let search = SearchStandIn::start().await?;

    let ledger = Ledger::new(dynamodb.clone(), table("EffectLedger"));
    let ledger_table = table("EffectLedger");
    let mut welcome = wire(
        &aws,
        &stream_arn,
        runner,
        Consumer {
            name: welcome_email::CONSUMER,
            settings_name: "WelcomeEmail",
            dlq_url: dlqs["welcome-email"].clone(),
            env: vec![
                ("LEDGER_TABLE", ledger_table.clone()),
                ("FROM_ADDRESS", sender.clone()),
            ],
            handler: WelcomeEmail::new(ledger.clone(), aws_sdk_sesv2::Client::new(&aws), &sender),
        },
    )?;
    let mut crm = wire(
        &aws,
        &stream_arn,
        runner,
        Consumer {
            name: crm_sync::CONSUMER,
            settings_name: "CrmSync",
            dlq_url: dlqs["crm-sync"].clone(),
            env: vec![
                ("LEDGER_TABLE", ledger_table.clone()),
                ("CRM_EVENT_BUS", bus.clone()),
            ],
            handler: CrmSync::new(ledger.clone(), aws_sdk_eventbridge::Client::new(&aws), &bus),
        },
    )?;
    let mut search_warm = wire(
        &aws,
        &stream_arn,
        runner,
        Consumer {
            name: search_warm::CONSUMER,
            settings_name: "SearchWarm",
            dlq_url: dlqs["search-warm"].clone(),
            env: vec![
                ("SEARCH_ENDPOINT", search.endpoint()),
                ("SEARCH_INDEX", "users".to_owned()),
            ],
            handler: SearchWarm::new(SearchIndex::local(search.endpoint().parse()?, "users")?),
        },
    )?;
    let mut audit = wire(
        &aws,
        &stream_arn,
        runner,
        Consumer {
            name: audit_log::CONSUMER,
            settings_name: "AuditLog",
            dlq_url: dlqs["audit-log"].clone(),
            env: vec![("AUDIT_TABLE", table("UserAudit"))],
            handler: AuditLog::new(dynamodb.clone(), table("UserAudit")),
        },
    )?;

    // The scenario, phase 1: what the API writes.
    let users = Writer {
        client: dynamodb.clone(),
        table: table("Users"),
    };
    users.put("ada", "Ada Lovelace", "free", "1").await?;
    users.put("grace", "Grace Hopper", "free", "1").await?;
    users.put("linus", "Linus T.", "free", "1").await?;
    users.put("ada", "Ada Lovelace", "pro", "2").await?; // upgrade free -> pro
    users.put("ada", "Ada Lovelace", "pro", "3").await?; // the same upgrade written again

    let mut summary = Summary::default();
    summary.say("scenario: 3 users created; ada free->pro; the same upgrade written again; that stream batch");
    summary.say(
        "          delivered twice; grace renamed; ada pro->free; linus deleted; a poison record",
    );
    summary.say("          (mallory, version \"seven\")");
    summary.say(match runner {
        Runner::Binaries => "consumers: the real binaries, served by cargo lambda watch, invoked through the Invoke API",
        Runner::InProcess => "consumers: the libraries in-process, through the Lambda batch entry point",
    });
    summary.say("");

    let mut invocations = 0;
    let mut filtered = 0;
    invocations += poll(&mut welcome, &mut filtered).await?;
    invocations += poll(&mut crm, &mut filtered).await?;
    invocations += poll(&mut search_warm, &mut filtered).await?;
    invocations += poll(&mut audit, &mut filtered).await?;

    // One stream batch delivered twice: every consumer gets its first batch again.
    let mut redelivered = BTreeMap::new();
    redelivered.insert(welcome.name, redeliver(&welcome).await?);
    redelivered.insert(crm.name, redeliver(&crm).await?);
    redelivered.insert(search_warm.name, redeliver(&search_warm).await?);
    redelivered.insert(audit.name, redeliver(&audit).await?);

    // Phase 2.
    users.put("grace", "Grace B. Hopper", "free", "2").await?; // a name change
    users.put("ada", "Ada Lovelace", "free", "4").await?; // a downgrade
    users.delete("linus").await?; // a delete
    users.put("mallory", "Mallory", "pro", "seven").await?; // poison: version is not a number
    invocations += poll(&mut welcome, &mut filtered).await?;
    invocations += poll(&mut crm, &mut filtered).await?;
    invocations += poll(&mut search_warm, &mut filtered).await?;
    invocations += poll(&mut audit, &mut filtered).await?;

    // welcome-email: the SES outbox.
    let emails = sent_emails(&ministack_url(), &sender).await?;
    summary.say(format!(
        "welcome-email  {} email(s) in the SES outbox",
        emails.len()
    ));
    for email in &emails {
        summary.say(format!(
            "               to {} | {}",
            email.to.join(","),
            email.subject
        ));
    }
    summary.expect(
        emails.len() == 1,
        format!("expected exactly 1 welcome email, found {}", emails.len()),
    );
    summary.expect(
        emails
            .first()
            .is_some_and(|e| e.to == ["ada@example.com"] && e.subject == "Welcome to Pro"),
        "the welcome email should go to ada for Pro",
    );

    // crm-sync: the events that reached the CRM queue.
    let events: Vec<Value> = drain_queue(&sqs, &crm_queue)
        .await?
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    let listed: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}({})",
                e["detail-type"].as_str().unwrap_or("?"),
                e["detail"]["userId"].as_str().unwrap_or("?")
            )
        })
        .collect();
    summary.say(format!(
        "crm-sync       {} event(s) on the CRM bus: {}",
        events.len(),
        listed.join(" ")
    ));
    summary.expect(
        events.len() == 8,
        format!("expected 8 CRM events, found {}", events.len()),
    );

    // search-warm: the stand-in's documents.
    let documents = search.documents("users");
    let listed: Vec<String> = documents
        .iter()
        .map(|(id, version, source)| {
            format!("{id} v{version} {}", source["plan"].as_str().unwrap_or("?"))
        })
        .collect();
    summary.say(format!(
        "search-warm    {} document(s) in the stand-in index: {}",
        documents.len(),
        listed.join(", ")
    ));
    summary.expect(
        listed == ["ada v4 free", "grace v2 free"],
        format!("expected ada v4 free and grace v2 free in search, found {listed:?}"),
    );

    // audit-log: the audit rows.
    let rows = dynamodb
        .scan()
        .table_name(table("UserAudit"))
        .send()
        .await?
        .items
        .unwrap_or_default();
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    for row in &rows {
        if let Some(AttributeValue::S(user)) = row.get("userId") {
            *per_user.entry(user.clone()).or_default() += 1;
        }
    }
    let listed: Vec<String> = per_user.iter().map(|(u, n)| format!("{u}:{n}")).collect();
    summary.say(format!(
        "audit-log      {} row(s) in UserAudit: {}",
        rows.len(),
        listed.join(" ")
    ));
    summary.expect(
        rows.len() == 9,
        format!(
            "expected 9 audit rows (one per stream record), found {}",
            rows.len()
        ),
    );

    // Redelivery and parked records.
    summary.say("");
    for (name, outcome) in &redelivered {
        summary.say(format!("redelivered batch  {name:<13} {outcome}"));
        summary.expect(
            outcome.contains("no new effect"),
            format!("{name}: redelivery had an effect: {outcome}"),
        );
    }
    summary.say("");
    for (name, url) in &dlqs {
        let messages: Vec<Value> = drain_queue(&sqs, url)
            .await?
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect();
        let parked: Vec<&Value> = messages
            .iter()
            .filter(|m| m.get("record").is_some())
            .collect();
        let on_failure = messages.len() - parked.len();
        let what: Vec<String> = parked
            .iter()
            .map(|m| {
                // "record <eventID>: <why>": keep the why.
                let error = m["error"].as_str().unwrap_or("");
                let why = error.split_once(": ").map_or(error, |(_, why)| why);
                format!(
                    "{}: {}",
                    m["record"]["dynamodb"]["Keys"]["userId"]["S"]
                        .as_str()
                        .unwrap_or("?"),
                    why.chars().take(70).collect::<String>()
                )
            })
            .collect();
        summary.say(format!(
            "DLQ {name:<13} {} parked, {on_failure} on-failure record(s) {}",
            parked.len(),
            what.join("; ")
        ));
        let expected = if *name == "audit-log" { 0 } else { 1 };
        summary.expect(
            parked.len() == expected,
            format!(
                "{name}: expected {expected} parked record(s), found {}",
                parked.len()
            ),
        );
        summary.expect(on_failure == 0, format!("{name}: a batch was given up on"));
    }

    // The ledger.
    let entries = dynamodb
        .scan()
        .table_name(table("EffectLedger"))
        .send()
        .await?
        .items
        .unwrap_or_default();
    let mut keys: Vec<String> = entries
        .iter()
        .map(|e| {
            let key = e
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            let status = e
                .get("status")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            format!("{key} {status}")
        })
        .collect();
    keys.sort();
    summary.say(format!(
        "ledger         {} entr(ies): {}",
        keys.len(),
        keys.join(", ")
    ));
    summary.expect(
        keys.iter().all(|k| k.ends_with("COMPLETED")),
        "every ledger entry should be COMPLETED",
    );

    summary.say(format!("mappings       {invocations} invocation(s), {filtered} record(s) filtered out before invoking"));
    summary.say(format!(
        "elapsed        {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(summary)
}

/// Polls one mapping until the stream is idle; returns the number of invocations.
async fn poll<H: RecordHandler>(
    wired: &mut Wired<H>,
    filtered: &mut usize,
) -> Result<usize, DemoError> {
    let report = wired.mapping.poll_until_idle().await?;
    *filtered += report.filtered_out;
    Ok(report.invocations.len())
}

/// Delivers the consumer's first batch again and says what its records did this time.
async fn redeliver<H: RecordHandler>(wired: &Wired<H>) -> Result<String, DemoError> {
    let Some(event) = wired.function.first_event() else {
        return Ok("no batch to redeliver".to_owned());
    };
    let records = event["Records"].as_array().map_or(0, Vec::len);
    let response = wired.function.invoke(event).await?;
    let failed = response["batchItemFailures"].as_array().map_or(0, Vec::len);
    let Some(results) = wired.function.last_results() else {
        // A binary reports only failures; the effects are counted at the services above.
        let verdict = if failed == 0 {
            "no new effect (counted at the services above)"
        } else {
            "FAILED"
        };
        return Ok(format!("{records} record(s): {failed} failed: {verdict}"));
    };
    let count = |outcome: RecordOutcome| {
        results
            .iter()
            .filter(|r| **r == RecordResult::Succeeded(outcome))
            .count()
    };
    let (done, duplicate, ignored) = (
        count(RecordOutcome::Done),
        count(RecordOutcome::Duplicate),
        count(RecordOutcome::Ignored),
    );
    let verdict = if done == 0 && failed == 0 {
        "no new effect"
    } else {
        "NEW EFFECTS"
    };
    Ok(format!(
        "{records} record(s): {duplicate} duplicate, {ignored} needing nothing, {done} done, {failed} failed: {verdict}"
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let runner = if std::env::args().any(|a| a == "--in-process") {
        Runner::InProcess
    } else {
        Runner::Binaries
    };
    match run_demo(runner).await {
        Ok(summary) => {
            for line in &summary.lines {
                println!("{line}");
            }
            println!();
            if summary.failures.is_empty() {
                println!(
                    "VERDICT: PASS: each effect happened exactly once, the poison record was parked, no shard got stuck"
                );
                std::process::ExitCode::SUCCESS
            } else {
                for failure in &summary.failures {
                    println!("  - {failure}");
                }
                println!("VERDICT: FAIL: {} check(s) failed", summary.failures.len());
                std::process::ExitCode::FAILURE
            }
        }
        Err(err) => {
            println!("VERDICT: FAIL: the demo could not run: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
