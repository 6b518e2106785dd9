//! welcome-email: one welcome email, for the new plan, when a user moves to a paid plan.
//!
//! A move to a paid plan is an insert with a paid plan, or a modify from a lower (or no)
//! plan to a paid one ([`PlanChange::paid_upgrade`]). Nothing is sent on a downgrade, on a
//! modify that leaves the plan alone, or on a remove. The ledger key is
//! `welcome-email#<userId>#<plan>`, so every stream record of one upgrade sends one email.

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use fanout_core::effect_retry::UnsentOnlyRetries;
use fanout_core::reconcile::ledger_check;
use fanout_core::{
    BatchProcessor, Change, ConfigError, ConsumerConfig, EffectCheck, EffectKey, EffectState, Env,
    Ledger, Plan, PlanChange, RecordError, RecordHandler, RecordInput, RecordOutcome, StreamView,
    User, classify_sdk_error,
};

/// The consumer's name: its ledger key prefix, log field and metric dimension.
pub const CONSUMER: &str = "welcome-email";

/// The least stream view it can work from: the old image tells an upgrade from an insert or a repeat.
pub const STREAM_VIEW: StreamView = StreamView::NewAndOldImages;

/// SES errors that no retry can fix: the request itself is malformed (for example an
/// invalid recipient address). An unverified sender or a paused account is retryable: an
/// operator can fix it, and the record must not be lost meanwhile.
const PERMANENT_SES_ERRORS: &[&str] = &["BadRequestException"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeEmailConfig {
    pub consumer: ConsumerConfig,
    /// `FROM_ADDRESS`: the verified SES sender.
    pub from_address: String,
}

impl WelcomeEmailConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(WelcomeEmailConfig {
            consumer: ConsumerConfig::from_env(env, STREAM_VIEW)?,
            from_address: env.required("FROM_ADDRESS")?,
        })
    }
}

/// Sends welcome emails.
#[derive(Debug, Clone)]
pub struct WelcomeEmail {
    ledger: Ledger,
    ses: aws_sdk_sesv2::Client,
    from_address: String,
}

impl WelcomeEmail {
    pub fn new(
        ledger: Ledger,
        ses: aws_sdk_sesv2::Client,
        from_address: impl Into<String>,
    ) -> Self {
        WelcomeEmail {
            ledger,
            ses,
            from_address: from_address.into(),
        }
    }

    /// The batch processor and handler, with clients built once from `aws`.
    pub fn from_config(
        aws: &aws_config::SdkConfig,
        config: &WelcomeEmailConfig,
    ) -> (BatchProcessor, Self) {
        // SendEmail is not idempotent: the SDK may only retry what was surely not sent.
        let ses = aws_sdk_sesv2::Client::from_conf(
            aws_sdk_sesv2::config::Builder::from(aws)
                .retry_classifier(UnsentOnlyRetries)
                .build(),
        );
        let handler = WelcomeEmail::new(
            config.consumer.ledger.ledger(aws),
            ses,
            &config.from_address,
        );
        (config.consumer.processor(CONSUMER, aws), handler)
    }

    async fn send(&self, user: &User, plan: &Plan) -> Result<(), RecordError> {
        let (subject, text) = welcome_message(user, plan);
        let content = |data: String| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .map_err(|e| RecordError::permanent(format!("building email: {e}")))
        };
        let message = Message::builder()
            .subject(content(subject)?)
            .body(Body::builder().text(content(text)?).build())
            .build();
        let output = self
            .ses
            .send_email()
            .from_email_address(&self.from_address)
            .destination(
                Destination::builder()
                    .to_addresses(user.email.as_str())
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|err| classify_sdk_error("SESv2 SendEmail", &err, PERMANENT_SES_ERRORS))?;
        tracing::debug!(user_id = %user.user_id, %plan, message_id = output.message_id().unwrap_or(""),
            "welcome email sent");
        Ok(())
    }
}

/// The ledger key of `user`'s welcome to `plan`: one email per user and plan, ever.
pub fn welcome_key(user: &User, plan: &Plan) -> EffectKey {
    EffectKey::new(CONSUMER, &[&user.user_id, plan.as_str()])
}

/// Whether a paid user's welcome to their current plan is in the ledger.
#[derive(Debug, Clone)]
pub struct WelcomeCheck {
    ledger: Ledger,
}

impl WelcomeCheck {
    pub fn from_config(aws: &aws_config::SdkConfig, config: &WelcomeEmailConfig) -> Self {
        WelcomeCheck {
            ledger: config.consumer.ledger.ledger(aws),
        }
    }
}

impl EffectCheck for WelcomeCheck {
    async fn check(&self, user: &User) -> Result<EffectState, RecordError> {
        if !user.plan.is_paid() {
            return Ok(EffectState::NotDue);
        }
        ledger_check(&self.ledger, user, &[welcome_key(user, &user.plan)]).await
    }
}

/// The welcome email's subject and text for `plan`.
pub fn welcome_message(user: &User, plan: &Plan) -> (String, String) {
    let plan_name = match plan {
        Plan::Pro => "Pro",
        Plan::Enterprise => "Enterprise",
        other => other.as_str(),
    };
    let greeting = match user.name.as_deref() {
        Some(name) if !name.trim().is_empty() => format!("Hello {name},"),
        _ => "Hello,".to_owned(),
    };
    (
        format!("Welcome to {plan_name}"),
        format!(
            "{greeting}\n\nthank you for moving to the {plan_name} plan. \
             Everything it includes is ready for you now.\n"
        ),
    )
}

impl RecordHandler for WelcomeEmail {
    async fn handle(&self, input: RecordInput) -> Result<RecordOutcome, RecordError> {
        let record = &input.record;
        let change = Change::<User>::from_record(record)?;
        // A record it cannot judge is never counted as done: an insert needs its new image, a
        // modify both (was the plan really changed?). A remove never sends mail.
        match &change {
            Change::Remove { .. } => return Ok(RecordOutcome::Ignored),
            Change::Insert { .. } => {
                change.require_new(record)?;
            }
            Change::Modify { .. } => {
                change.require_old(record)?;
                change.require_new(record)?;
            }
        }
        let Some(plan_change) = PlanChange::from_change(&change) else {
            tracing::debug!("plan unchanged");
            return Ok(RecordOutcome::Ignored);
        };
        let Some(plan) = plan_change.paid_upgrade() else {
            tracing::debug!(direction = ?plan_change.direction(), "no move to a paid plan");
            return Ok(RecordOutcome::Ignored);
        };
        let user = change.require_new(record)?;
        let key = welcome_key(user, plan);
        self.ledger
            .perform_once(&key, &input.time, || self.send(user, plan))
            .await
    }
}
