//! crm-sync: every user change becomes one event on the CRM bus.
//!
//! | stream change | detail-type |
//! |---|---|
//! | insert | `UserCreated` |
//! | modify that changed the plan | `UserPlanChanged` |
//! | any other modify | `UserUpdated` |
//! | remove (by the application or by TTL) | `UserDeleted` |
//!
//! The ledger key is `crm-sync#<userId>#<version>#<detail-type>`: the writer bumps `version` on
//! every write, so every stream record of one write publishes once, and redelivery does not
//! republish. The same key travels in the detail as `idempotencyKey` for the CRM's own
//! deduplication.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use fanout_core::effect_retry::UnsentOnlyRetries;
use fanout_core::reconcile::ledger_check;
use fanout_core::{
    BatchProcessor, Change, ConfigError, ConsumerConfig, EffectCheck, EffectKey, EffectState, Env,
    Ledger, PlanChange, RecordError, RecordHandler, RecordInput, RecordOutcome, Remover,
    StreamView, User, changed_attributes, classify_sdk_error,
};
use serde::Serialize;

pub const CONSUMER: &str = "crm-sync";

/// The least stream view it can work from: a plan change is judged from both images.
pub const STREAM_VIEW: StreamView = StreamView::NewAndOldImages;

/// The `source` of every event this consumer publishes.
pub const EVENT_SOURCE: &str = "fanout.users";

/// Per-entry PutEvents error codes that no retry can fix.
const PERMANENT_ENTRY_ERRORS: &[&str] =
    &["MalformedDetail", "InvalidArgument", "ValidationException"];

/// Request-level errors that no retry can fix.
const PERMANENT_REQUEST_ERRORS: &[&str] = &["ValidationException"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmSyncConfig {
    pub consumer: ConsumerConfig,
    /// `CRM_EVENT_BUS`: bus name or ARN.
    pub event_bus: String,
}

impl CrmSyncConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(CrmSyncConfig {
            consumer: ConsumerConfig::from_env(env, STREAM_VIEW)?,
            event_bus: env.required("CRM_EVENT_BUS")?,
        })
    }
}

/// The kind of CRM event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CrmEventType {
    UserCreated,
    UserUpdated,
    UserPlanChanged,
    UserDeleted,
}

impl CrmEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            CrmEventType::UserCreated => "UserCreated",
            CrmEventType::UserUpdated => "UserUpdated",
            CrmEventType::UserPlanChanged => "UserPlanChanged",
            CrmEventType::UserDeleted => "UserDeleted",
        }
    }
}

/// The event detail: what a CRM needs to keep its contact in step, and no more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmEventDetail {
    pub idempotency_key: String,
    pub user_id: String,
    /// The contact's address; absent on `UserDeleted` (the CRM deletes by `userId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The plan now; absent on `UserDeleted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The plan before, on `UserPlanChanged` and `UserDeleted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_plan: Option<String>,
    pub version: u64,
    /// Top-level attributes this write changed (`UserUpdated`, `UserPlanChanged`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed_fields: Vec<String>,
    /// `updatedAt` of the write, or the stream record's time for a delete.
    pub occurred_at: String,
    /// `ttl` or `application`, on `UserDeleted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<Remover>,
}

/// One CRM event ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmEvent {
    pub kind: CrmEventType,
    pub key: EffectKey,
    pub detail: CrmEventDetail,
}

/// The ledger key of the `kind` event for `user`'s version.
pub fn crm_key(user: &User, kind: CrmEventType) -> EffectKey {
    EffectKey::new(
        CONSUMER,
        &[&user.user_id, &user.version.to_string(), kind.as_str()],
    )
}

/// Whether the event for an item's current version is in the ledger, under whichever kind
/// the write that made that version published.
#[derive(Debug, Clone)]
pub struct CrmCheck {
    ledger: Ledger,
}

impl CrmCheck {
    pub fn from_config(aws: &aws_config::SdkConfig, config: &CrmSyncConfig) -> Self {
        CrmCheck {
            ledger: config.consumer.ledger.ledger(aws),
        }
    }
}

impl EffectCheck for CrmCheck {
    async fn check(&self, user: &User) -> Result<EffectState, RecordError> {
        let kinds = [
            CrmEventType::UserCreated,
            CrmEventType::UserUpdated,
            CrmEventType::UserPlanChanged,
        ];
        let keys: Vec<EffectKey> = kinds.into_iter().map(|kind| crm_key(user, kind)).collect();
        ledger_check(&self.ledger, user, &keys).await
    }
}

/// Builds the CRM event for one stream record.
pub fn crm_event(input: &RecordInput) -> Result<CrmEvent, RecordError> {
    let record = &input.record;
    let change = Change::<User>::from_record(record)?;
    let changed_fields = || {
        changed_attributes(&record.change.old_image, &record.change.new_image)
            .into_iter()
            .collect::<Vec<_>>()
    };
    // Every event needs the image it describes; an update also the one before it.
    let (kind, user, by) = match &change {
        Change::Insert { .. } => (CrmEventType::UserCreated, change.require_new(record)?, None),
        Change::Modify { .. } => {
            change.require_old(record)?;
            let kind = if PlanChange::from_change(&change).is_some() {
                CrmEventType::UserPlanChanged
            } else {
                CrmEventType::UserUpdated
            };
            (kind, change.require_new(record)?, None)
        }
        Change::Remove { by, .. } => (
            CrmEventType::UserDeleted,
            change.require_old(record)?,
            Some(*by),
        ),
    };
    let key = crm_key(user, kind);
    let deleted = kind == CrmEventType::UserDeleted;
    let detail = CrmEventDetail {
        idempotency_key: key.to_string(),
        user_id: user.user_id.clone(),
        email: (!deleted).then(|| user.email.as_str().to_owned()),
        name: if deleted { None } else { user.name.clone() },
        plan: (!deleted).then(|| user.plan.to_string()),
        previous_plan: match (kind, change.old()) {
            (CrmEventType::UserPlanChanged | CrmEventType::UserDeleted, Some(old)) => {
                Some(old.plan.to_string())
            }
            _ => None,
        },
        version: user.version,
        changed_fields: match kind {
            CrmEventType::UserUpdated | CrmEventType::UserPlanChanged => changed_fields(),
            _ => Vec::new(),
        },
        occurred_at: if deleted {
            record.change.approximate_creation_date_time.to_rfc3339()
        } else {
            user.updated_at.clone()
        },
        deleted_by: by,
    };
    Ok(CrmEvent { kind, key, detail })
}

/// Publishes user changes to the CRM bus.
#[derive(Debug, Clone)]
pub struct CrmSync {
    ledger: Ledger,
    events: aws_sdk_eventbridge::Client,
    event_bus: String,
}

impl CrmSync {
    pub fn new(
        ledger: Ledger,
        events: aws_sdk_eventbridge::Client,
        event_bus: impl Into<String>,
    ) -> Self {
        CrmSync {
            ledger,
            events,
            event_bus: event_bus.into(),
        }
    }

    pub fn from_config(
        aws: &aws_config::SdkConfig,
        config: &CrmSyncConfig,
    ) -> (BatchProcessor, Self) {
        // PutEvents is not idempotent: the SDK may only retry what was surely not sent.
        let events = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(aws)
                .retry_classifier(UnsentOnlyRetries)
                .build(),
        );
        let handler = CrmSync::new(
            config.consumer.ledger.ledger(aws),
            events,
            &config.event_bus,
        );
        (config.consumer.processor(CONSUMER, aws), handler)
    }

    async fn publish(&self, event: &CrmEvent) -> Result<(), RecordError> {
        let detail = serde_json::to_string(&event.detail)
            .map_err(|e| RecordError::permanent(format!("serializing detail: {e}")))?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.event_bus)
            .source(EVENT_SOURCE)
            .detail_type(event.kind.as_str())
            .detail(detail)
            .build();
        let output = self
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|err| {
                classify_sdk_error("EventBridge PutEvents", &err, PERMANENT_REQUEST_ERRORS)
            })?;
        // PutEvents succeeds as a request even when entries fail: check both the count and
        // the entry itself.
        let failed_entry = output
            .entries()
            .first()
            .and_then(|e| e.error_code().map(|code| (code, e.error_message())));
        if output.failed_entry_count() > 0 || failed_entry.is_some() || output.entries().is_empty()
        {
            let (code, message) = failed_entry.unwrap_or(("Unknown", None));
            let reason = format!(
                "EventBridge PutEvents entry failed ({code}): {}",
                message.unwrap_or("no message")
            );
            return Err(if PERMANENT_ENTRY_ERRORS.contains(&code) {
                RecordError::Permanent(reason)
            } else {
                RecordError::Retryable(reason)
            });
        }
        tracing::debug!(user_id = %event.detail.user_id, detail_type = event.kind.as_str(),
            event_id = output.entries().first().and_then(|e| e.event_id()).unwrap_or(""),
            "CRM event published");
        Ok(())
    }
}

impl RecordHandler for CrmSync {
    async fn handle(&self, input: RecordInput) -> Result<RecordOutcome, RecordError> {
        let event = crm_event(&input)?;
        self.ledger
            .perform_once(&event.key, &input.time, || self.publish(&event))
            .await
    }
}
