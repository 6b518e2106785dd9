//! The `Users` table contract: [`User`], [`Plan`], and what a change means for a plan.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::change::Change;

/// A row of the `Users` table. Attributes not named here are ignored, never rejected.
///
/// `Debug` never prints the email address, so `?user` is safe in a log line.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub user_id: String,
    pub email: Email,
    #[serde(default)]
    pub name: Option<String>,
    pub plan: Plan,
    /// Incremented by the writer on every write; orders versions of one user.
    pub version: u64,
    /// RFC 3339 timestamp of the write.
    pub updated_at: String,
}

impl User {
    /// The attributes of a `Users` item that hold personal data: their values never appear in
    /// a log line or an error text (see `failure::scrub_personal`, which sits above this module).
    pub const PERSONAL_FIELDS: &'static [&'static str] = &["email", "name"];
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("name", &self.name.as_ref().map(|_| "<redacted>"))
            .field("plan", &self.plan)
            .field("version", &self.version)
            .finish()
    }
}

/// An email address. Its `Debug` and `Display` redact it; use [`Email::as_str`] only where
/// the address is really needed (to send mail), never in a log line.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn new(address: impl Into<String>) -> Self {
        Email(address.into())
    }

    /// The address itself. Personal data: do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted email>")
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted email>")
    }
}

/// A subscription plan. Unknown strings are kept as [`Plan::Unknown`], never a decode error,
/// so a new plan added by the writer does not poison every consumer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Plan {
    Free,
    Pro,
    Enterprise,
    Unknown(String),
}

impl Plan {
    pub fn parse(value: &str) -> Plan {
        match value {
            "free" => Plan::Free,
            "pro" => Plan::Pro,
            "enterprise" => Plan::Enterprise,
            other => Plan::Unknown(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
            Plan::Unknown(other) => other,
        }
    }

    /// Order of plans for upgrade/downgrade; an unknown plan has no rank.
    pub fn rank(&self) -> Option<u8> {
        match self {
            Plan::Free => Some(0),
            Plan::Pro => Some(1),
            Plan::Enterprise => Some(2),
            Plan::Unknown(_) => None,
        }
    }

    /// Whether the plan is paid. An unknown plan is not treated as paid.
    pub fn is_paid(&self) -> bool {
        matches!(self, Plan::Pro | Plan::Enterprise)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Plan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(Plan::parse(&value))
    }
}

impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The direction of a plan change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanDirection {
    /// To a higher rank, or from no plan (a new user) to any plan.
    Upgrade,
    /// To a lower rank, or to no plan (the user was removed).
    Downgrade,
    /// One side is an unknown plan, so no order can be said.
    Unranked,
}

/// A change of a user's plan: from `None` on insert, to `None` on remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChange {
    pub user_id: String,
    pub from: Option<Plan>,
    pub to: Option<Plan>,
}

impl PlanChange {
    /// The plan change a stream change carries, if any: an insert (from none), a modify whose
    /// plan value really changed, or a remove (to none). `None` for a modify that left the plan
    /// alone, and for records without the images needed to tell.
    ///
    /// ```
    /// use fanout_core::{Change, Email, Plan, PlanChange, PlanDirection, User};
    /// let user = |plan| User { user_id: "u1".into(), email: Email::new("a@example.com"),
    ///     name: None, plan, version: 1, updated_at: "2026-01-01T00:00:00Z".into() };
    /// let change = Change::Modify { old: Some(user(Plan::Free)), new: Some(user(Plan::Pro)) };
    /// let plan = PlanChange::from_change(&change).unwrap();
    /// assert_eq!(plan.direction(), PlanDirection::Upgrade);
    /// ```
    pub fn from_change(change: &Change<User>) -> Option<PlanChange> {
        match change {
            Change::Insert { new: Some(new) } => Some(PlanChange {
                user_id: new.user_id.clone(),
                from: None,
                to: Some(new.plan.clone()),
            }),
            Change::Modify {
                old: Some(old),
                new: Some(new),
            } if old.plan != new.plan => Some(PlanChange {
                user_id: new.user_id.clone(),
                from: Some(old.plan.clone()),
                to: Some(new.plan.clone()),
            }),
            Change::Remove { old: Some(old), .. } => Some(PlanChange {
                user_id: old.user_id.clone(),
                from: Some(old.plan.clone()),
                to: None,
            }),
            _ => None,
        }
    }

    pub fn direction(&self) -> PlanDirection {
        match (&self.from, &self.to) {
            (None, _) => PlanDirection::Upgrade,
            (_, None) => PlanDirection::Downgrade,
            (Some(from), Some(to)) => match (from.rank(), to.rank()) {
                (Some(a), Some(b)) if b > a => PlanDirection::Upgrade,
                (Some(a), Some(b)) if b < a => PlanDirection::Downgrade,
                _ => PlanDirection::Unranked,
            },
        }
    }

    /// The paid plan this change moves the user onto, if it is a move onto a paid plan from a
    /// lower or no plan. A move between an unknown plan and a paid one is not counted: it can
    /// not be called an upgrade.
    pub fn paid_upgrade(&self) -> Option<&Plan> {
        match &self.to {
            Some(to) if to.is_paid() && self.direction() == PlanDirection::Upgrade => Some(to),
            _ => None,
        }
    }
}
