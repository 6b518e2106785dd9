//! The names a deployment gives what a second deployment in the same account and region would
//! collide on, as the CDK app gives them (`infra/lib/names.ts`, checked equal by the workspace
//! tidy test): stacks, the SSM parameters `FanoutTables` and each consumer stack publish,
//! dashboards and enhanced fan-out consumers. A deployment without a stage has today's names.

/// The tables stack's name without a stage.
pub const TABLES_STACK: &str = "FanoutTables";

/// The stack of a stage's pipeline deploy roles (`infra/lib/pipeline-roles-stack.ts`), without
/// the stage: it reads nothing any other stack publishes.
pub const PIPELINE_ROLES_STACK: &str = "FanoutPipelineRoles";

/// What `FanoutTables` publishes for the consumer stacks, under `/fanout[/<stage>]/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parameter {
    UsersTableName,
    UsersStreamArn,
    UsersStreamViewType,
    UsersKinesisStreamArn,
    LedgerTableName,
    AuditTableName,
}

impl Parameter {
    /// Every parameter, in the order the tables stack publishes them.
    pub const ALL: [Parameter; 6] = [
        Parameter::UsersTableName,
        Parameter::UsersStreamArn,
        Parameter::UsersStreamViewType,
        Parameter::UsersKinesisStreamArn,
        Parameter::LedgerTableName,
        Parameter::AuditTableName,
    ];

    /// Its path below `/fanout[/<stage>]/`.
    pub fn path(self) -> &'static str {
        match self {
            Parameter::UsersTableName => "tables/users/name",
            Parameter::UsersStreamArn => "tables/users/stream-arn",
            Parameter::UsersStreamViewType => "tables/users/stream-view-type",
            Parameter::UsersKinesisStreamArn => "tables/users/kinesis-stream-arn",
            Parameter::LedgerTableName => "tables/ledger/name",
            Parameter::AuditTableName => "tables/audit/name",
        }
    }
}

/// A deployment's stage (`fanout:stage`, `--stage`): `None` for the names without one.
///
/// ```
/// use fanout_registry::names::{Parameter, Stage};
/// let dev = Stage::new(Some("dev")).unwrap();
/// assert_eq!(dev.stack("CrmSync"), "CrmSync-dev");
/// assert_eq!(dev.parameter(Parameter::UsersTableName), "/fanout/dev/tables/users/name");
/// assert_eq!(dev.consumer_parameter("crm-sync"), "/fanout/dev/consumers/crm-sync");
/// assert_eq!(dev.consumers_path(), "/fanout/dev/consumers");
/// let none = Stage::new(None).unwrap();
/// assert_eq!(none.stack("CrmSync"), "CrmSync");
/// assert_eq!(none.parameter(Parameter::UsersTableName), "/fanout/tables/users/name");
/// assert!(Stage::new(Some("Dev")).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stage(Option<String>);

/// A stage that is not 1 to 16 of `a-z`, `0-9`, `-`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stage is 1 to 16 of a-z, 0-9 and -, not {0:?}")]
pub struct StageError(pub String);

impl Stage {
    pub fn new(stage: Option<&str>) -> Result<Self, StageError> {
        match stage {
            None => Ok(Stage(None)),
            Some(s)
                if !s.is_empty()
                    && s.len() <= 16
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
            {
                Ok(Stage(Some(s.to_owned())))
            }
            Some(other) => Err(StageError(other.to_owned())),
        }
    }

    /// The stage, if there is one.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Stack `base` of this deployment: `base`, or `base-<stage>`.
    pub fn stack(&self, base: &str) -> String {
        match &self.0 {
            None => base.to_owned(),
            Some(s) => format!("{base}-{s}"),
        }
    }

    /// A physical name of this deployment (a dashboard, an enhanced fan-out consumer):
    /// `fanout-<name>`, or `fanout-<stage>-<name>`.
    pub fn physical(&self, name: &str) -> String {
        match &self.0 {
            None => format!("fanout-{name}"),
            Some(s) => format!("fanout-{s}-{name}"),
        }
    }

    /// The SSM parameter `parameter` of this deployment.
    pub fn parameter(&self, parameter: Parameter) -> String {
        format!("{}{}", self.prefix(), parameter.path())
    }

    /// The path every consumer stack of this deployment publishes its entry below.
    pub fn consumers_path(&self) -> String {
        format!("{}consumers", self.prefix())
    }

    /// The SSM parameter a consumer stack publishes its registry entry under (what fanout-ops
    /// needs of it): `/fanout[/<stage>]/consumers/<crate>`.
    pub fn consumer_parameter(&self, crate_name: &str) -> String {
        format!("{}consumers/{crate_name}", self.prefix())
    }

    fn prefix(&self) -> String {
        match &self.0 {
            None => "/fanout/".to_owned(),
            Some(s) => format!("/fanout/{s}/"),
        }
    }
}
