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

use crate::batch::DEFAULT_MAX_CONCURRENCY;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("missing environment variable {name}")]
    Missing { name: String },
    #[error("environment variable {name} is malformed: {reason}")]
    Malformed { name: String, reason: String },
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
