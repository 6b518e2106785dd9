//! The reliability scenarios: faults tried against the real consumer binaries, and what each
//! did to the effects, as a table (docs/reliability.md).
//!
//! Each row is one scenario for one consumer, on a rig of its own: fresh tables and queues,
//! the consumer's binary behind a Runtime API host (as Lambda runs it), its services behind
//! fault proxies (`AWS_ENDPOINT_URL_*`), and its local event source mapping with the
//! settings its stack deploys (retries, bisection), redelivering as Lambda does. Malformed
//! input is invoked directly. At the end the effects are counted at the services: emails in
//! the SES outbox, events behind the CRM bus, documents in the search stand-in, audit rows,
//! and the DLQ. `lost` is an expected effect never made; `doubled` an effect made more than
//! once.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_esm::{Invoke, InvokeError, LocalMapping, MappingSettings, RuntimeApiHost};
use fanout_registry::Decodes;
use fanout_registry::descriptor::{ObservedIn, fill};
use fanout_testkit::fault_proxy::{Calls, Fault, FaultProxy, Rule};
use fanout_testkit::queues::drain_queue;
use fanout_testkit::resources::create_queue;
use fanout_testkit::{local_sdk_config, ministack_url, unique_name};
use serde_json::{Value, json};

use crate::demo::DemoError;
use crate::observe::{Described, EffectPlaces};

use crate::wiring::{
    LocalTargets, function_config, on_failure_bucket, on_failure_objects, record_shape,
};

pub use fanout_registry::descriptor::Upstream;

/// How a scenario drives the consumer.
#[derive(Debug, Clone, PartialEq)]
pub enum Drive {
    /// The standard writes (u1 created free, then upgraded to pro), delivered by the mapping.
    Writes,
    /// The standard writes; when the held call arrives, the process is killed (SIGKILL); the
    /// mapping redelivers at once to a fresh process.
    KillWhenHeld,
    /// The standard writes; afterwards, once every lease has lapsed and the faults are
    /// cleared, each delivered batch is delivered once more.
    RedeliverAfterLease,
    /// The standard writes and a poison record; afterwards every batch is delivered again.
    PoisonRedelivered,
    /// A poison record only.
    Poison,
    /// Every batch goes to two processes of the consumer at once.
    Overlapping,
    /// The events are invoked directly (not through the mapping), one after another. Their
    /// records are of the table the fixtures name (`Users`), which the function reads.
    Invoke(Vec<Value>),
    /// The standard writes, given up on by the mapping (into its on-failure bucket); then the
    /// faults are cleared, the Users table and its stream deleted (as a trim would leave the
    /// range), and `fanout-ops redrive` run as an operator runs it.
    RedriveFromBucket,
}

/// The function's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// The registry's timeout and record budget.
    Registry,
    /// A 6 s timeout and a 2 s record budget.
    Short,
    /// A 6 s timeout and a 10 s record budget: no record can ever start (a hand deploy, or a
    /// timeout lowered after the budget was set).
    BudgetOverTimeout,
}

/// Where the mapping sends the record of a batch it gives up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// As deployed: the consumer's DLQ, or its on-failure bucket when its registry entry has one.
    Registry,
    /// A bucket of the consumer's own, whatever the registry says: the whole batch.
    Bucket,
    /// A destination that refuses it (its queue deleted): Lambda drops the batch.
    Refused,
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    /// The consumers it applies to, by what their registry entries and descriptors say.
    pub consumers: Applies,
    /// Faults, in front of a service.
    pub faults: Vec<(Upstream, RuleFor)>,
    pub drive: Drive,
    pub timing: Timing,
    pub on_failure: OnFailure,
    /// The effects it should make.
    pub expect: Expect,
    /// Users whose records must not be acted on: any effect naming one is counted.
    pub untouched: &'static [&'static str],
}

/// Which consumers a scenario applies to, by what they are, never by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    All,
    /// Those whose effects the ledger guards (`ledgerEffects`).
    LedgerEffects,
    /// Those that decode the writer's contract (`decodes: user`): they can be given poison.
    DecodingUsers,
    /// Those whose effect is this call (descriptor `effect-call.operation`).
    Calling(&'static str),
    /// Those whose effects land here (descriptor `observed-in`).
    ObservedIn(ObservedIn),
}

impl Applies {
    fn includes(self, consumer: &Described) -> bool {
        match self {
            Applies::All => true,
            Applies::LedgerEffects => consumer.entry.settings["ledgerEffects"] == true,
            Applies::DecodingUsers => consumer.entry.decodes() == Some(Decodes::User),
            Applies::Calling(operation) => consumer
                .descriptor
                .effect_call
                .as_ref()
                .is_some_and(|call| call.operation == operation),
            Applies::ObservedIn(place) => consumer.descriptor.observed_in == place,
        }
    }
}

/// Which consumers cannot judge a record, so park it and make nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unjudgeable {
    /// Every consumer can.
    ByNone,
    /// A record without images: those that decode the writer's contract.
    ByUserDecoders,
    /// A modify without its old image: those that need it (descriptor `needs-old-image`).
    ByOldImageReaders,
}

impl Unjudgeable {
    fn includes(self, consumer: &Described) -> bool {
        match self {
            Unjudgeable::ByNone => false,
            Unjudgeable::ByUserDecoders => consumer.entry.decodes() == Some(Decodes::User),
            Unjudgeable::ByOldImageReaders => consumer.descriptor.needs_old_image,
        }
    }
}

impl Scenario {
    /// Whether it is a row for `consumer`: its kind matches, and a fault on the effect call
    /// needs a consumer with one.
    pub fn applies_to(&self, consumer: &Described) -> bool {
        let breaks_effect_call = self
            .faults
            .iter()
            .any(|(_, rule)| matches!(rule, RuleFor::Effect(..) | RuleFor::EffectRefused(..)));
        self.consumers.includes(consumer)
            && (!breaks_effect_call || consumer.descriptor.effect_call.is_some())
    }

    fn with_on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    fn with_untouched(mut self, users: &'static [&'static str]) -> Self {
        self.untouched = users;
        self
    }
}

/// The effects a scenario should make, in the lines each consumer's descriptor names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Those of the standard writes: u1 created free (version 1), then upgraded to pro (2):
    /// the descriptor's `created-then-upgraded`.
    Standard,
    /// None.
    Nothing,
    /// Those of one upgrade to pro at version 2 of `user` (mail to `email`): the descriptor's
    /// `upgraded`; except from the consumers that cannot judge the record: they park it and
    /// make nothing.
    Upgrade {
        user: &'static str,
        email: &'static str,
        unjudgeable: Unjudgeable,
    },
    /// Only these effects, for the consumers whose effects land in the place named.
    Listed(&'static [(ObservedIn, &'static str)]),
}

impl Expect {
    /// The effects for `consumer`, as its descriptor's place reads them.
    pub fn effects(&self, consumer: &Described) -> BTreeSet<String> {
        let effects = &consumer.descriptor.effects;
        match self {
            Expect::Nothing => BTreeSet::new(),
            Expect::Standard => effects
                .created_then_upgraded
                .iter()
                .map(|t| fill(t, "u1", "u1@example.com"))
                .collect(),
            Expect::Listed(listed) => listed
                .iter()
                .filter(|(place, _)| *place == consumer.descriptor.observed_in)
                .map(|(_, effect)| (*effect).to_owned())
                .collect(),
            Expect::Upgrade {
                user,
                email,
                unjudgeable,
            } => {
                if unjudgeable.includes(consumer) {
                    return BTreeSet::new();
                }
                effects
                    .upgraded
                    .iter()
                    .map(|t| fill(t, user, email))
                    .collect()
            }
        }
    }
}

/// A fault rule whose operation depends on the consumer (its effect's operation).
#[derive(Debug, Clone)]
pub enum RuleFor {
    /// The consumer's effect call (SendEmail, PutEvents, PUT _doc, PutItem).
    Effect(Calls, Fault),
    /// A named operation.
    Operation(&'static str, Calls, Fault),
    /// The consumer's effect call refused as its service refuses a request it can never take
    /// (400 with the code the consumer parks on), the message quoting the request.
    EffectRefused(Calls),
}

/// The name every user the rig writes carries: personal data, like the address.
const USER_NAME: &str = "Ada Lovelace";

/// How often personal data appears in `text`: users' addresses (the rig's and the fixtures'
/// are all `@example.com`; the sender is `@fanout.example`) and their names.
fn personal_data_in(text: &str) -> usize {
    ["@example.com", USER_NAME, "Zoë Ñúñez"]
        .iter()
        .map(|needle| text.matches(needle).count())
        .sum()
}

/// The outcome of one scenario for one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub scenario: String,
    pub consumer: String,
    pub expected: usize,
    pub made: usize,
    /// Expected, not made, but its record is in the DLQ (parked, or an OnFailure range).
    pub in_dlq: usize,
    pub lost: usize,
    pub doubled: usize,
    /// Effects made for a user whose records must not be acted on ([`Scenario::untouched`]).
    pub unexpected: usize,
    pub parked: usize,
    pub on_failure: usize,
    /// Records the mapping dropped (its on-failure destination refused them).
    pub dropped: usize,
    /// The alarms the run's signals raise: how an operator hears of what happened.
    pub alarms: Vec<&'static str>,
    /// ERROR lines the function processes logged.
    pub logged_errors: usize,
    pub progressed: bool,
    /// Invocations that failed as a whole (crash, timeout, unreadable event).
    pub function_errors: usize,
    /// Times a user's address or name appeared in the function's logs or a parked message's
    /// `error` text.
    pub personal_data: usize,
}

const LEDGER_OPS: Applies = Applies::LedgerEffects;
const POISONABLE: Applies = Applies::DecodingUsers;
const ALL: Applies = Applies::All;

fn fixture(name: &str) -> Value {
    serde_json::from_str(&fanout_testkit::fixture_text(name)).unwrap_or(Value::Null)
}

/// A record of `user-upgrade-free-to-pro.json` whose images carry an attribute of `bytes`.
fn large_item(bytes: usize) -> Value {
    let mut event = fixture("user-upgrade-free-to-pro.json");
    for image in ["NewImage", "OldImage"] {
        event["Records"][0]["dynamodb"][image]["bio"] = json!({"S": "x".repeat(bytes)});
    }
    event
}

/// Every scenario, in table order.
pub fn scenarios() -> Vec<Scenario> {
    use Drive::*;
    use Expect::*;
    let s = |name, consumers, faults, drive, timing, expect| Scenario {
        name,
        consumers,
        faults,
        drive,
        timing,
        on_failure: OnFailure::Registry,
        expect,
        untouched: &[],
    };
    let effect = |calls, fault| RuleFor::Effect(calls, fault);
    let op = |name, calls, fault| RuleFor::Operation(name, calls, fault);
    let upgrade = |user, email, unjudgeable| Upgrade {
        user,
        email,
        unjudgeable,
    };
    let u1001 = |unjudgeable| upgrade("u-1001", "u-1001@example.com", unjudgeable);
    let slow = Fault::Latency(Duration::from_secs(8));
    let overlap = Fault::Latency(Duration::from_secs(2));
    vec![
        s("no fault", ALL, vec![], Writes, Timing::Registry, Standard),
        s(
            "ledger claim throttled beyond the SDK's retries",
            LEDGER_OPS,
            vec![(
                Upstream::Dynamodb,
                op("PutItem", Calls::First(4), Fault::dynamodb_throttle()),
            )],
            Writes,
            Timing::Registry,
            Standard,
        ),
        s(
            "effect answers 500 once, then succeeds",
            ALL,
            vec![(
                Upstream::Services,
                effect(Calls::Nth(1), Fault::Status(500)),
            )],
            Writes,
            Timing::Registry,
            Standard,
        ),
        s(
            "effect's response dropped once",
            ALL,
            vec![(
                Upstream::Services,
                effect(Calls::Nth(1), Fault::DropResponse),
            )],
            Writes,
            Timing::Registry,
            Standard,
        ),
        s(
            "effect's response always dropped",
            ALL,
            vec![(
                Upstream::Services,
                effect(Calls::Every, Fault::DropResponse),
            )],
            Writes,
            Timing::Registry,
            Standard,
        ),
        s(
            "the target refuses, quoting the user's address and name",
            ALL,
            vec![(Upstream::Services, RuleFor::EffectRefused(Calls::Nth(1)))],
            Writes,
            Timing::Registry,
            Standard,
        ),
        s(
            "an EventBridge entry refused, quoting the event",
            Applies::Calling("PutEvents"),
            vec![(
                Upstream::Services,
                op(
                    "PutEvents",
                    Calls::Nth(1),
                    Fault::EntryRefused {
                        code: "MalformedDetail".to_owned(),
                    },
                ),
            )],
            Writes,
            Timing::Registry,
            Standard,
        ),
        s(
            "complete fails once",
            LEDGER_OPS,
            vec![(
                Upstream::Dynamodb,
                op("UpdateItem", Calls::Nth(1), Fault::Status(500)),
            )],
            Writes,
            Timing::Registry,
            Standard,
        ),
        s(
            "complete fails every time; the batch redelivered after the lease",
            LEDGER_OPS,
            vec![(
                Upstream::Dynamodb,
                op("UpdateItem", Calls::Every, Fault::Status(500)),
            )],
            RedeliverAfterLease,
            Timing::Short,
            Standard,
        ),
        s(
            "SIGKILL after the claim, before the effect",
            LEDGER_OPS,
            vec![(Upstream::Services, effect(Calls::Nth(1), Fault::Hold))],
            KillWhenHeld,
            Timing::Registry,
            Standard,
        ),
        s(
            "SIGKILL after the effect, before complete",
            LEDGER_OPS,
            vec![(
                Upstream::Dynamodb,
                op("UpdateItem", Calls::Nth(1), Fault::Hold),
            )],
            KillWhenHeld,
            Timing::Registry,
            Standard,
        ),
        s(
            "release fails after a failed effect",
            LEDGER_OPS,
            vec![
                (
                    Upstream::Services,
                    effect(Calls::Nth(1), Fault::Status(500)),
                ),
                (
                    Upstream::Dynamodb,
                    op("DeleteItem", Calls::First(3), Fault::Status(500)),
                ),
            ],
            Writes,
            Timing::Short,
            Standard,
        ),
        s(
            "DLQ unavailable while a poison record must be parked",
            POISONABLE,
            vec![(
                Upstream::Services,
                op("SendMessage", Calls::First(3), Fault::Status(503)),
            )],
            Poison,
            Timing::Registry,
            Nothing,
        ),
        s(
            "effect slower than the deadline",
            ALL,
            vec![(Upstream::Services, effect(Calls::Nth(1), slow))],
            Writes,
            Timing::Short,
            Standard,
        ),
        s(
            "two processes given overlapping batches while the effect is slow",
            ALL,
            vec![(Upstream::Services, effect(Calls::First(2), overlap))],
            Overlapping,
            Timing::Registry,
            Standard,
        ),
        s(
            "a batch with a poison record, delivered twice",
            POISONABLE,
            vec![],
            PoisonRedelivered,
            Timing::Registry,
            Standard,
        ),
        s(
            "not a DynamoDB event",
            ALL,
            vec![],
            Invoke(vec![fixture("malformed/not-a-dynamodb-event.json")]),
            Timing::Registry,
            Nothing,
        ),
        s(
            "a record without `dynamodb` beside a good one",
            ALL,
            vec![],
            Invoke(vec![fixture("malformed/record-without-dynamodb.json")]),
            Timing::Registry,
            upgrade("u-1002", "u-1002@example.com", Unjudgeable::ByNone),
        ),
        s(
            "a record without SequenceNumber",
            ALL,
            vec![],
            Invoke(vec![fixture(
                "malformed/record-without-sequence-number.json",
            )]),
            Timing::Registry,
            u1001(Unjudgeable::ByNone),
        ),
        s(
            "a KEYS_ONLY record",
            ALL,
            vec![],
            Invoke(vec![fixture("user-upgrade-keys-only.json")]),
            Timing::Registry,
            u1001(Unjudgeable::ByUserDecoders),
        ),
        s(
            "a NEW_IMAGE-only record",
            ALL,
            vec![],
            Invoke(vec![fixture("user-upgrade-new-image-only.json")]),
            Timing::Registry,
            u1001(Unjudgeable::ByOldImageReaders),
        ),
        s(
            "a 390 KB item",
            ALL,
            vec![],
            Invoke(vec![large_item(390 * 1024)]),
            Timing::Registry,
            u1001(Unjudgeable::ByNone),
        ),
        s(
            "unicode and emoji in every string field",
            ALL,
            vec![],
            Invoke(vec![fixture("user-upgrade-unicode.json")]),
            Timing::Registry,
            upgrade(
                "ü-1001-用户-🦀",
                "zoe.nunez@example.com",
                Unjudgeable::ByNone,
            ),
        ),
        s(
            "a user created again, delivered before its delete and its older upgrade (Kinesis), each twice",
            Applies::ObservedIn(ObservedIn::SearchIndex),
            vec![],
            Invoke(each_record_twice(
                "kinesis-user-created-again-before-its-delete.json",
            )),
            Timing::Registry,
            Listed(&[(ObservedIn::SearchIndex, "u-3003 v1 free")]),
        ),
        s(
            "changes of another table (Kinesis and stream) beside one of Users",
            ALL,
            vec![],
            Invoke(vec![foreign_beside_users()]),
            Timing::Registry,
            u1001(Unjudgeable::ByNone),
        )
        .with_untouched(&["u-9008", "u-9009"]),
        s(
            "a record budget larger than the invocation's time",
            ALL,
            vec![],
            Writes,
            Timing::BudgetOverTimeout,
            Standard,
        ),
        s(
            "the OnFailure destination refuses a batch given up on",
            ALL,
            vec![],
            Writes,
            Timing::BudgetOverTimeout,
            Standard,
        )
        .with_on_failure(OnFailure::Refused),
        s(
            "a batch given up on, redriven from its on-failure object after its stream is gone",
            ALL,
            vec![(Upstream::Services, effect(Calls::Every, Fault::Status(500)))],
            RedriveFromBucket,
            Timing::Registry,
            Standard,
        )
        .with_on_failure(OnFailure::Bucket),
    ]
}

/// Each record of `fixture` as an event of its own, in the fixture's order, and then all of
/// them again: every delivery Kinesis may make of them, twice.
fn each_record_twice(fixture_name: &str) -> Vec<Value> {
    let records = fixture(fixture_name)["Records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let once = records.into_iter().map(|r| json!({ "Records": [r] }));
    once.clone().chain(once).collect()
}

/// One batch: `foreign-table-upgrades.json`'s changes of UsersArchive (a Kinesis record and a
/// stream record), then `user-upgrade-free-to-pro.json`'s upgrade of u-1001 in Users.
fn foreign_beside_users() -> Value {
    let mut records = fixture("foreign-table-upgrades.json")["Records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    records.extend(
        fixture("user-upgrade-free-to-pro.json")["Records"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    json!({ "Records": records })
}

/// One consumer's rig for one scenario.
struct Rig {
    consumer: Described,
    aws: aws_config::SdkConfig,
    local: LocalTargets,
    dlq_url: String,
    proxies: HashMap<&'static str, FaultProxy>,
    hosts: Vec<Arc<RuntimeApiHost>>,
    mapping: LocalMapping<Arc<Recording>>,
    recording: Arc<Recording>,
    function_timeout: Duration,
    /// The function processes' log files.
    logs: Vec<std::path::PathBuf>,
    /// Records the mapping dropped so far.
    dropped: usize,
    /// Where the mapping puts whole batches it gives up on, when it does.
    on_failure_bucket: Option<String>,
}

/// The invoker the mapping drives: one process, or two at once; remembers every batch.
struct Recording {
    hosts: Vec<Arc<RuntimeApiHost>>,
    delivered: Mutex<Vec<Value>>,
    function_errors: Mutex<usize>,
}

impl Invoke for Recording {
    async fn invoke(&self, event: Value) -> Result<Value, InvokeError> {
        if let Ok(mut delivered) = self.delivered.lock() {
            delivered.push(event.clone());
        }
        let first = match self.hosts.as_slice() {
            [one] => one.invoke(event).await,
            [one, two, ..] => tokio::join!(one.invoke(event.clone()), two.invoke(event)).0,
            [] => Err(InvokeError::Transport("no function process".to_owned())),
        };
        if first.is_err()
            && let Ok(mut errors) = self.function_errors.lock()
        {
            *errors += 1;
        }
        first
    }
}

impl Rig {
    async fn new(
        consumer: Described,
        scenario: &Scenario,
        functions_dir: &Path,
        log_dir: &Path,
    ) -> Result<Rig, DemoError> {
        let aws = local_sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let run = unique_name("r");
        let local = LocalTargets::create(&aws, &run).await?;
        let dlq_url = create_queue(&sqs, &format!("dlq-{run}")).await?;

        let mut proxies = HashMap::new();
        let dynamodb_url = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
        proxies.insert("dynamodb", FaultProxy::start(&dynamodb_url).await?);
        proxies.insert("services", FaultProxy::start(&ministack_url()).await?);
        proxies.insert("search", FaultProxy::start(&local.search.endpoint()).await?);
        let proxy_of = |upstream: Upstream| match upstream {
            Upstream::Dynamodb => "dynamodb",
            Upstream::Services => "services",
            Upstream::Search => "search",
        };
        let entry = &consumer.entry;
        let effect_call = consumer.descriptor.effect_call.as_ref().ok_or_else(|| {
            format!(
                "{} has no effect call for this scenario to break",
                entry.crate_name
            )
        });
        for (upstream, rule) in &scenario.faults {
            let (upstream, rule) = match rule {
                RuleFor::Effect(calls, fault) => {
                    let call = effect_call.clone()?;
                    let rule = Rule::new(&call.operation, *calls, fault.clone());
                    (call.upstream, rule)
                }
                RuleFor::Operation(operation, calls, fault) => {
                    (*upstream, Rule::new(operation, *calls, fault.clone()))
                }
                RuleFor::EffectRefused(calls) => {
                    let call = effect_call.clone()?;
                    let refused = Fault::Rejected {
                        status: 400,
                        code: consumer.descriptor.refusal_code.clone(),
                    };
                    (call.upstream, Rule::new(&call.operation, *calls, refused))
                }
            };
            if let Some(proxy) = proxies.get(proxy_of(upstream)) {
                proxy.add(rule);
            }
        }

        let mut values = local.values(proxies["search"].endpoint());
        if matches!(scenario.drive, Drive::Invoke(_)) {
            // The invoked fixtures' records are of `Users`, not of this rig's table.
            values.set("USERS_TABLE", fanout_testkit::fixtures::FIXTURE_USERS_TABLE);
        }
        let mut env = values.env_for(entry, &dlq_url)?;
        let (timeout, budget) = match scenario.timing {
            Timing::Registry => (None, None),
            Timing::Short => (Some(6), Some(2)),
            Timing::BudgetOverTimeout => (Some(6), Some(10)),
        };
        if let Some(budget) = budget {
            env.retain(|(k, _)| k != "RECORD_BUDGET_SECONDS");
            env.push(("RECORD_BUDGET_SECONDS".to_owned(), budget.to_string()));
        }
        let services = proxies["services"].endpoint();
        for (variable, value) in [
            ("AWS_ENDPOINT_URL_DYNAMODB", proxies["dynamodb"].endpoint()),
            ("AWS_ENDPOINT_URL_SQS", services.clone()),
            ("AWS_ENDPOINT_URL_SESV2", services.clone()),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", services),
        ] {
            env.push((variable.to_owned(), value));
        }
        let copies = if scenario.drive == Drive::Overlapping {
            2
        } else {
            1
        };
        let mut hosts = Vec::new();
        let mut logs = Vec::new();
        let mut function_timeout = Duration::ZERO;
        for copy in 0..copies {
            let log = log_dir.join(format!("{}-{run}-{copy}.log", entry.crate_name));
            logs.push(log.clone());
            let mut config = function_config(entry, functions_dir, env.clone(), Some(log));
            if let Some(timeout) = timeout {
                config.timeout = Duration::from_secs(timeout);
            }
            function_timeout = config.timeout;
            hosts.push(Arc::new(RuntimeApiHost::start(config).await?));
        }
        let recording = Arc::new(Recording {
            hosts: hosts.clone(),
            delivered: Mutex::new(Vec::new()),
            function_errors: Mutex::new(0),
        });
        let settings = MappingSettings {
            max_batching_window: Duration::ZERO,
            ..MappingSettings::from_json(entry.event_source_mapping())?
        };
        let on_failure_url = match scenario.on_failure {
            OnFailure::Registry | OnFailure::Bucket => dlq_url.clone(),
            OnFailure::Refused => {
                // A queue that existed and is gone: SQS refuses every message sent to it.
                let gone = create_queue(&sqs, &format!("gone-{run}")).await?;
                sqs.delete_queue().queue_url(&gone).send().await?;
                gone
            }
        };
        let mut mapping = LocalMapping::new(
            &aws,
            &local.stream_arn,
            &entry.crate_name,
            &on_failure_url,
            settings,
            Arc::clone(&recording),
        )
        .with_record_shape(record_shape(entry));
        let on_failure_bucket = match scenario.on_failure {
            OnFailure::Registry => on_failure_bucket(&aws, entry, &run).await?,
            OnFailure::Bucket => {
                let name = format!("on-failure-{}-{run}", entry.crate_name).to_lowercase();
                fanout_esm::s3_client(&aws)
                    .create_bucket()
                    .bucket(&name)
                    .send()
                    .await?;
                Some(name)
            }
            OnFailure::Refused => None,
        };
        if let Some(bucket) = &on_failure_bucket {
            mapping = mapping.with_on_failure_bucket(bucket);
        }
        Ok(Rig {
            consumer,
            aws,
            local,
            dlq_url,
            proxies,
            hosts,
            mapping,
            recording,
            function_timeout,
            logs,
            dropped: 0,
            on_failure_bucket,
        })
    }

    async fn put(&self, user: &str, plan: &str, version: Value) -> Result<(), DemoError> {
        let version = match version {
            Value::Number(n) => AttributeValue::N(n.to_string()),
            other => AttributeValue::S(other.as_str().unwrap_or_default().to_owned()),
        };
        aws_sdk_dynamodb::Client::new(&self.aws)
            .put_item()
            .table_name(&self.local.users_table)
            .item("userId", AttributeValue::S(user.to_owned()))
            .item("email", AttributeValue::S(format!("{user}@example.com")))
            .item("name", AttributeValue::S(USER_NAME.to_owned()))
            .item("plan", AttributeValue::S(plan.to_owned()))
            .item("version", version)
            .item(
                "updatedAt",
                AttributeValue::S("2026-11-23T10:00:00Z".to_owned()),
            )
            .send()
            .await?;
        Ok(())
    }

    async fn standard_writes(&self) -> Result<(), DemoError> {
        self.put("u1", "free", json!(1)).await?;
        self.put("u1", "pro", json!(2)).await
    }

    async fn deliver(&mut self) -> Result<(), DemoError> {
        // Until idle twice: a retry may still be running when the stream looks idle.
        for _ in 0..2 {
            self.dropped += self.mapping.poll_until_idle().await?.dropped;
        }
        Ok(())
    }

    async fn redeliver_all(&self) -> Result<(), DemoError> {
        let batches = self
            .recording
            .delivered
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        for batch in batches {
            let _ = self.recording.invoke(batch).await;
        }
        Ok(())
    }

    /// Every effect made, one entry per effect (duplicates repeat), as `expected` names them.
    async fn effects(&self) -> Result<Vec<String>, DemoError> {
        let ministack = ministack_url();
        let places = EffectPlaces {
            ministack: &ministack,
            sender: &self.local.sender,
            crm_queue: &self.local.crm_queue,
            audit_table: &self.local.audit_table,
            ledger_table: &self.local.ledger_table,
            search: &self.local.search,
        };
        self.consumer.read_effects(&self.aws, &places).await
    }

    /// `fanout-ops redrive` of this consumer, run as an operator runs it: its function behind a
    /// local Lambda API, its DLQ and on-failure bucket named by flag. Returns the exit code.
    async fn redrive(&self, functions_dir: &Path) -> Result<i32, DemoError> {
        let lambda = fanout_esm::LocalLambdaApi::start(self.hosts.clone()).await?;
        let mut args = vec![
            "redrive".to_owned(),
            self.consumer.entry.crate_name.clone(),
            "--function-name".to_owned(),
            self.consumer.entry.crate_name.clone(),
            "--dlq-url".to_owned(),
            self.dlq_url.clone(),
        ];
        if let Some(bucket) = &self.on_failure_bucket {
            args.extend(["--on-failure-bucket".to_owned(), bucket.clone()]);
        }
        let output = tokio::process::Command::new(functions_dir.join("fanout-ops"))
            .arg("--registry")
            .arg(fanout_registry::workspace_root().join("infra/consumers"))
            .args(&args)
            .env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint())
            .output()
            .await?;
        Ok(output.status.code().unwrap_or(-1))
    }

    /// What the DLQ and the on-failure bucket hold, and the personal data in the parked
    /// messages' `error` texts (the record itself stays whole, for redrive).
    async fn given_up(&self) -> Result<GivenUp, DemoError> {
        let objects = match &self.on_failure_bucket {
            Some(bucket) => on_failure_objects(&self.aws, bucket).await?,
            None => 0,
        };
        let bodies = drain_queue(&aws_sdk_sqs::Client::new(&self.aws), &self.dlq_url).await?;
        let parked: Vec<Value> = bodies
            .iter()
            .filter_map(|b| serde_json::from_str::<Value>(b).ok())
            .filter(|m| m.get("record").is_some())
            .collect();
        let in_errors = parked
            .iter()
            .map(|m| personal_data_in(m["error"].as_str().unwrap_or_default()))
            .sum();
        Ok(GivenUp {
            parked: parked.len(),
            on_failure_messages: bodies.len() - parked.len(),
            on_failure_objects: objects,
            personal_data_in_errors: in_errors,
        })
    }

    /// Everything the function processes logged.
    fn logged(&self) -> String {
        self.logs
            .iter()
            .map(|log| std::fs::read_to_string(log).unwrap_or_default())
            .collect()
    }
}

/// What a rig's DLQ and on-failure bucket hold at the end.
struct GivenUp {
    parked: usize,
    /// OnFailure records in the DLQ (batch positions).
    on_failure_messages: usize,
    /// Objects in the on-failure bucket (whole batches).
    on_failure_objects: usize,
    personal_data_in_errors: usize,
}

/// Runs one scenario for one consumer and counts what happened.
pub async fn run_row(
    consumer: Described,
    scenario: &Scenario,
    functions_dir: &Path,
    log_dir: &Path,
) -> Result<Row, DemoError> {
    let mut rig = Rig::new(consumer, scenario, functions_dir, log_dir).await?;
    match &scenario.drive {
        Drive::Writes | Drive::Overlapping => {
            rig.standard_writes().await?;
            rig.deliver().await?;
        }
        Drive::KillWhenHeld => {
            rig.standard_writes().await?;
            let held_proxy = match scenario.faults.first() {
                Some((_, RuleFor::Effect(..))) => {
                    match rig
                        .consumer
                        .descriptor
                        .effect_call
                        .as_ref()
                        .map(|c| c.upstream)
                    {
                        Some(Upstream::Services) => "services",
                        Some(Upstream::Search) => "search",
                        Some(Upstream::Dynamodb) | None => "dynamodb",
                    }
                }
                _ => "dynamodb",
            };
            let host = Arc::clone(&rig.hosts[0]);
            let proxies = &rig.proxies;
            let killer = async {
                proxies[held_proxy].held().await;
                host.kill();
            };
            let (delivered, ()) = tokio::join!(rig.mapping.poll_until_idle(), killer);
            rig.dropped += delivered?.dropped;
            rig.deliver().await?;
        }
        Drive::RedeliverAfterLease => {
            rig.standard_writes().await?;
            rig.deliver().await?;
            for proxy in rig.proxies.values() {
                proxy.clear();
            }
            tokio::time::sleep(
                rig.function_timeout + fanout_core::time::CLOCK_SKEW + Duration::from_secs(1),
            )
            .await;
            rig.redeliver_all().await?;
        }
        Drive::Poison => {
            rig.put("mallory", "pro", json!("seven")).await?;
            rig.deliver().await?;
        }
        Drive::PoisonRedelivered => {
            rig.standard_writes().await?;
            rig.put("mallory", "pro", json!("seven")).await?;
            rig.deliver().await?;
            rig.redeliver_all().await?;
        }
        Drive::Invoke(events) => {
            for event in events {
                let _ = rig.recording.invoke(event.clone()).await;
            }
        }
        Drive::RedriveFromBucket => {
            rig.standard_writes().await?;
            rig.deliver().await?;
            for proxy in rig.proxies.values() {
                proxy.clear();
            }
            aws_sdk_dynamodb::Client::new(&rig.aws)
                .delete_table()
                .table_name(&rig.local.users_table)
                .send()
                .await?;
            let code = rig.redrive(functions_dir).await?;
            if code != 0 {
                return Err(format!("fanout-ops redrive exited {code}").into());
            }
        }
    }
    let progressed = match &scenario.drive {
        // Nothing to poll: invoked directly, or the stream is gone.
        Drive::Invoke(_) | Drive::RedriveFromBucket => true,
        _ => rig.mapping.poll().await?.invocations.is_empty(),
    };
    let made_list = rig.effects().await?;
    let given_up = rig.given_up().await?;
    let (parked, personal_in_errors) = (given_up.parked, given_up.personal_data_in_errors);
    let on_failure = given_up.on_failure_messages + given_up.on_failure_objects;
    let logged = rig.logged();
    let personal_data = personal_in_errors + personal_data_in(&logged);
    let logged_errors = logged
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .count();
    let expected = scenario.expect.effects(&rig.consumer);
    let made: BTreeSet<String> = made_list
        .iter()
        .filter(|e| expected.contains(*e))
        .cloned()
        .collect();
    // An expected effect not made is in the DLQ when the DLQ holds the record (parked, or in
    // an OnFailure range to redrive); else it is lost.
    let unmade = expected.len() - made.len();
    let in_dlq = if parked + on_failure > 0 { unmade } else { 0 };
    let function_errors = rig
        .recording
        .function_errors
        .lock()
        .map(|e| *e)
        .unwrap_or(0);
    let unexpected = made_list
        .iter()
        .filter(|e| scenario.untouched.iter().any(|user| e.contains(user)))
        .count();
    let alarms = raised_alarms(
        rig.dropped,
        parked,
        given_up.on_failure_messages,
        given_up.on_failure_objects,
        function_errors,
    );
    Ok(Row {
        scenario: scenario.name.to_owned(),
        consumer: rig.consumer.entry.crate_name.clone(),
        expected: expected.len(),
        made: made.len(),
        in_dlq,
        lost: unmade - in_dlq,
        // Effects made more than once (search-warm's are document states: never repeated).
        doubled: made_list.len() - made_list.iter().collect::<BTreeSet<_>>().len(),
        unexpected,
        parked,
        on_failure,
        dropped: rig.dropped,
        alarms,
        logged_errors,
        progressed,
        function_errors,
        personal_data,
    })
}

/// The alarms a deployment raises on what a run shows (docs/operations.md "When an alarm fires"): records
/// the mapping dropped page (`DroppedEvents`); records in the DLQ (`DlqNotEmpty`), parked ones
/// (`RecordsParked`), batches in the on-failure bucket (`OnFailureObjects`) and whole
/// invocations failing (`FunctionErrors`) open a ticket.
pub fn raised_alarms(
    dropped: usize,
    parked: usize,
    on_failure_messages: usize,
    on_failure_objects: usize,
    function_errors: usize,
) -> Vec<&'static str> {
    let mut alarms = Vec::new();
    if dropped > 0 {
        alarms.push("DroppedEvents (page)");
    }
    if parked + on_failure_messages > 0 {
        alarms.push("DlqNotEmpty");
    }
    if on_failure_objects > 0 {
        alarms.push("OnFailureObjects");
    }
    if parked > 0 {
        alarms.push("RecordsParked");
    }
    if function_errors > 0 {
        alarms.push("FunctionErrors");
    }
    alarms
}

/// The table of rows, Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | consumer | expected | made | in DLQ | lost | doubled | acted on unbidden | parked | on-failure | dropped | function errors | shard progressed | alarms raised | personal data in logs and errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.scenario,
            row.consumer,
            row.expected,
            row.made,
            row.in_dlq,
            row.lost,
            row.doubled,
            row.unexpected,
            row.parked,
            row.on_failure,
            row.dropped,
            row.function_errors,
            if row.progressed { "yes" } else { "NO" },
            if row.alarms.is_empty() {
                "none".to_owned()
            } else {
                row.alarms.join(", ")
            },
            row.personal_data
        ));
    }
    out
}
