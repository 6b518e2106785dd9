//! The knobs of one event source mapping, named as in CloudFormation's
//! `AWS::Lambda::EventSourceMapping` (camelCase), so a mapping's settings can be read from the
//! same JSON a CDK app deploys.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Settings that cannot drive a mapping.
#[derive(Debug, thiserror::Error)]
#[error("event source mapping settings: {0}")]
pub struct SettingsError(String);

/// Where a new mapping starts reading a shard that has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartingPosition {
    /// The oldest record the stream still holds.
    TrimHorizon,
    /// Only records written after the mapping starts.
    Latest,
}

/// The mapping knobs.
///
/// ```
/// use fanout_esm::MappingSettings;
/// let settings = MappingSettings::from_json(&serde_json::json!({
///     "startingPosition": "TRIM_HORIZON", "batchSize": 25, "maxBatchingWindowSeconds": 1,
///     "parallelizationFactor": 1, "bisectBatchOnFunctionError": true,
///     "maximumRetryAttempts": 10, "maximumRecordAgeSeconds": 21600,
///     "reportBatchItemFailures": true, "filters": []
/// })).unwrap();
/// assert_eq!(settings.batch_size, 25);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MappingSettings {
    pub starting_position: StartingPosition,
    pub batch_size: usize,
    pub max_batching_window: Duration,
    pub parallelization_factor: u32,
    pub bisect_batch_on_function_error: bool,
    pub maximum_retry_attempts: u32,
    pub maximum_record_age: Duration,
    pub report_batch_item_failures: bool,
    /// Filter criteria patterns; a record is delivered when it matches any (or there are none).
    pub filters: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    starting_position: StartingPosition,
    batch_size: u64,
    max_batching_window_seconds: u64,
    parallelization_factor: u32,
    bisect_batch_on_function_error: bool,
    maximum_retry_attempts: u32,
    maximum_record_age_seconds: u64,
    report_batch_item_failures: bool,
    #[serde(default)]
    filters: Vec<Value>,
}

impl MappingSettings {
    /// Reads the settings from an `eventSourceMapping` JSON object; every knob is required,
    /// so a missing one is an error naming it, never a silent default.
    pub fn from_json(value: &Value) -> Result<Self, SettingsError> {
        let raw: Raw =
            serde_json::from_value(value.clone()).map_err(|e| SettingsError(e.to_string()))?;
        if raw.batch_size == 0 {
            return Err(SettingsError("batchSize must be at least 1".to_owned()));
        }
        if raw.parallelization_factor != 1 {
            return Err(SettingsError(format!(
                "parallelizationFactor {} is not emulated: one batch per shard at a time",
                raw.parallelization_factor
            )));
        }
        Ok(MappingSettings {
            starting_position: raw.starting_position,
            batch_size: usize::try_from(raw.batch_size).unwrap_or(usize::MAX),
            max_batching_window: Duration::from_secs(raw.max_batching_window_seconds),
            parallelization_factor: raw.parallelization_factor,
            bisect_batch_on_function_error: raw.bisect_batch_on_function_error,
            maximum_retry_attempts: raw.maximum_retry_attempts,
            maximum_record_age: Duration::from_secs(raw.maximum_record_age_seconds),
            report_batch_item_failures: raw.report_batch_item_failures,
            filters: raw.filters,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn knobs() -> Value {
        json!({
            "startingPosition": "LATEST", "batchSize": 100, "maxBatchingWindowSeconds": 5,
            "parallelizationFactor": 1, "bisectBatchOnFunctionError": false,
            "maximumRetryAttempts": 3, "maximumRecordAgeSeconds": 60,
            "reportBatchItemFailures": true, "why": "extra fields are ignored"
        })
    }

    #[test]
    fn reads_every_knob() {
        let settings = MappingSettings::from_json(&knobs()).unwrap();
        assert_eq!(settings.starting_position, StartingPosition::Latest);
        assert_eq!(settings.max_batching_window, Duration::from_secs(5));
        assert_eq!(settings.maximum_record_age, Duration::from_secs(60));
        assert!(settings.filters.is_empty() && !settings.bisect_batch_on_function_error);
    }

    #[test]
    fn a_missing_knob_is_named_and_unemulated_values_are_refused() {
        let mut missing = knobs();
        missing
            .as_object_mut()
            .unwrap()
            .remove("maximumRetryAttempts");
        let err = MappingSettings::from_json(&missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("maximumRetryAttempts"), "{err}");
        let mut parallel = knobs();
        parallel["parallelizationFactor"] = json!(2);
        assert!(MappingSettings::from_json(&parallel).is_err());
        let mut empty = knobs();
        empty["batchSize"] = json!(0);
        assert!(MappingSettings::from_json(&empty).is_err());
    }
}
