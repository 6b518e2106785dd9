//! Typed configuration from environment variables, read once at cold start.
//!
//! ```
//! use fanout_core::config::{Env, ConfigError};
//! let env = Env::from_pairs([("DLQ_URL", "http://127.0.0.1/q"), ("MAX_CONCURRENCY", "zero")]);
//! assert_eq!(env.required("DLQ_URL").unwrap(), "http://127.0.0.1/q");
//! let err = env.required("LEDGER_TABLE").unwrap_err();
//! assert_eq!(err.to_string(), "missing environment variable LEDGER_TABLE");
//! assert!(env.max_concurrency().is_err());
//! ```

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::str::FromStr;

use crate::batch::{DEFAULT_MAX_CONCURRENCY, DEFAULT_RECORD_BUDGET};
use crate::change::StreamView;

/// A configuration error. `Debug` prints the same sentence as `Display`: a consumer's `main`
/// returns it, and Rust (and so Lambda's init error) shows `main`'s error with `Debug`.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("missing environment variable {name}")]
    Missing { name: String },
    #[error("environment variable {name} is malformed: {reason}")]
    Malformed { name: String, reason: String },
}

impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A snapshot of the environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment. Variables that are not valid UTF-8 are left out (and then
    /// reported as missing by name, if required).
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A required, non-empty variable.
    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        match self.vars.get(name) {
            Some(value) if !value.trim().is_empty() => Ok(value.clone()),
            Some(_) => Err(ConfigError::Malformed {
                name: name.to_owned(),
                reason: "it is empty".to_owned(),
            }),
            None => Err(ConfigError::Missing {
                name: name.to_owned(),
            }),
        }
    }

    /// An optional variable; empty counts as unset.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }

    /// An optional variable parsed as `T`, with `default` when unset.
    pub fn parsed_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Malformed {
                    name: name.to_owned(),
                    reason: format!("{raw:?}: {e}"),
                }),
        }
    }

    /// `MAX_CONCURRENCY`: keys processed at once within a batch (a positive integer).
    pub fn max_concurrency(&self) -> Result<NonZeroUsize, ConfigError> {
        self.parsed_or("MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY)
    }

    /// `DLQ_URL`: the consumer's SQS queue for parked records.
    pub fn dlq_url(&self) -> Result<String, ConfigError> {
        self.required("DLQ_URL")
    }
}

/// What every consumer reads: `USERS_TABLE` (the table whose changes it acts on), `DLQ_URL`,
/// the ledger (`LEDGER_TABLE`: effects, and parked records once each), `MAX_CONCURRENCY`,
/// `RECORD_BUDGET_SECONDS`, and `STREAM_VIEW_TYPE` (the table's stream view, when the stack
/// knows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// `USERS_TABLE`: a record of any other table is parked, never acted on.
    pub users_table: String,
    pub dlq_url: String,
    pub ledger: LedgerConfig,
    pub max_concurrency: NonZeroUsize,
    /// What one record's work may take at most (claim, effect, complete).
    pub record_budget: std::time::Duration,
}

impl ConsumerConfig {
    /// Reads the configuration of a consumer that needs records of view `needs`: a cold start
    /// on a stream whose `STREAM_VIEW_TYPE` cannot serve it fails here, naming both.
    pub fn from_env(env: &Env, needs: StreamView) -> Result<Self, ConfigError> {
        if let Some(raw) = env.optional("STREAM_VIEW_TYPE") {
            let view: StreamView = raw
                .trim()
                .parse()
                .map_err(|reason| ConfigError::Malformed {
                    name: "STREAM_VIEW_TYPE".to_owned(),
                    reason: format!("{raw:?}: {reason}"),
                })?;
            if !view.serves(needs) {
                return Err(ConfigError::Malformed {
                    name: "STREAM_VIEW_TYPE".to_owned(),
                    reason: format!(
                        "the table's stream is {}, and this consumer needs {}: enable that view \
                         on the Users table's stream",
                        view.as_str(),
                        needs.as_str()
                    ),
                });
            }
        }
        let seconds: u64 =
            env.parsed_or("RECORD_BUDGET_SECONDS", DEFAULT_RECORD_BUDGET.as_secs())?;
        if seconds == 0 {
            return Err(ConfigError::Malformed {
                name: "RECORD_BUDGET_SECONDS".to_owned(),
                reason: "0: a record needs time to run".to_owned(),
            });
        }
        Ok(ConsumerConfig {
            dlq_url: env.dlq_url()?,
            ledger: LedgerConfig::from_env(env)?,
            max_concurrency: env.max_concurrency()?,
            record_budget: std::time::Duration::from_secs(seconds),
            users_table: env.required("USERS_TABLE")?,
        })
    }

    /// The batch processor for `consumer`, parking into its DLQ once per record.
    pub fn processor(
        &self,
        consumer: &str,
        aws: &aws_config::SdkConfig,
    ) -> crate::batch::BatchProcessor {
        let dlq = crate::dlq::DeadLetterQueue::new(aws_sdk_sqs::Client::new(aws), &self.dlq_url);
        crate::batch::BatchProcessor::new(consumer, &self.users_table, dlq, self.ledger.ledger(aws))
            .with_max_concurrency(self.max_concurrency)
            .with_record_budget(self.record_budget)
    }
}

/// The ledger every consumer uses: `LEDGER_TABLE` and the optional `LEDGER_RETENTION_HOURS`
/// (how long a completed entry deduplicates; default 48, at least
/// 25 so it outlives the 24-hour stream retention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    pub table: String,
    pub retention: std::time::Duration,
}

impl LedgerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let hours: u64 = env.parsed_or("LEDGER_RETENTION_HOURS", 48)?;
        if hours < 25 {
            return Err(ConfigError::Malformed {
                name: "LEDGER_RETENTION_HOURS".to_owned(),
                reason: format!(
                    "{hours} is shorter than the 24-hour stream retention plus an hour"
                ),
            });
        }
        Ok(LedgerConfig {
            table: env.required("LEDGER_TABLE")?,
            retention: std::time::Duration::from_secs(hours * 3600),
        })
    }

    pub fn ledger(&self, aws: &aws_config::SdkConfig) -> crate::ledger::Ledger {
        crate::ledger::Ledger::new(aws_sdk_dynamodb::Client::new(aws), &self.table)
            .with_retention(self.retention)
    }
}
