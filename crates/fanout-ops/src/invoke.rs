//! Sending records to a consumer's deployed function: the Lambda Invoke API, synchronously,
//! `{"Records": [...]}`, read as the event source mapping reads the answer; and asking it for
//! its reconcile check (`fanout_core::reconcile::CheckRequest`).

use aws_smithy_types::Blob;
use fanout_core::User;
use fanout_core::reconcile::{CheckAnswer, CheckRequest};
use serde_json::{Value, json};

use crate::error::OpsError;

/// What the function said of the records it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeAnswer {
    /// Every record succeeded: an empty `batchItemFailures`.
    AllSucceeded,
    /// These records' sequence numbers were reported failed.
    Failed(Vec<String>),
    /// The function itself failed (crashed, timed out, threw); nothing is known of the records.
    FunctionError(String),
}

impl InvokeAnswer {
    pub fn succeeded(&self) -> bool {
        *self == InvokeAnswer::AllSucceeded
    }

    /// One line for a report.
    pub fn describe(&self) -> String {
        match self {
            InvokeAnswer::AllSucceeded => "every record succeeded".to_owned(),
            InvokeAnswer::Failed(ids) => format!("records failed: {}", ids.join(", ")),
            InvokeAnswer::FunctionError(message) => format!("the function failed: {message}"),
        }
    }
}

/// A consumer's function, invoked through the Lambda API.
#[derive(Debug, Clone)]
pub struct Function {
    client: aws_sdk_lambda::Client,
    name: String,
}

impl Function {
    pub fn new(aws: &aws_config::SdkConfig, name: impl Into<String>) -> Self {
        Function {
            client: aws_sdk_lambda::Client::new(aws),
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Invokes the function with `records` and reads its partial batch response.
    pub async fn invoke(&self, records: &[Value]) -> Result<InvokeAnswer, OpsError> {
        Ok(match self.call(&json!({ "Records": records })).await? {
            Ok(body) => read_answer(&body),
            Err(message) => InvokeAnswer::FunctionError(message),
        })
    }

    /// Asks the function for its reconcile check of `users` (run there, with its configuration
    /// and permissions). `Err` inside: the function failed, with its message.
    pub async fn check(&self, users: Vec<User>) -> Result<Result<CheckAnswer, String>, OpsError> {
        Ok(match self.call(&CheckRequest { users }.to_payload()).await? {
            Ok(body) => serde_json::from_value(body)
                .map_err(|e| format!("its answer is not a check answer ({e}): is it a fanout consumer of this version?")),
            Err(message) => Err(message),
        })
    }

    /// One synchronous invocation: the answer's JSON, or the function's error.
    async fn call(&self, payload: &Value) -> Result<Result<Value, String>, OpsError> {
        let operation = || format!("Lambda Invoke {}", self.name);
        let payload = serde_json::to_vec(payload).map_err(|e| OpsError::Aws {
            operation: operation(),
            message: format!("serializing the event: {e}"),
        })?;
        let output = self
            .client
            .invoke()
            .function_name(&self.name)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(OpsError::aws(operation()))?;
        let body: Value = output
            .payload()
            .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
            .unwrap_or(Value::Null);
        Ok(match output.function_error() {
            Some(kind) => Err(format!(
                "{kind}: {}",
                body["errorMessage"].as_str().unwrap_or("no message")
            )),
            None => Ok(body),
        })
    }
}

/// The partial batch response, read as the mapping reads it: a missing or empty list is
/// success; anything else names the failed records (or, malformed, fails them all).
fn read_answer(body: &Value) -> InvokeAnswer {
    match body.get("batchItemFailures") {
        None | Some(Value::Null) => InvokeAnswer::AllSucceeded,
        Some(Value::Array(failures)) if failures.is_empty() => InvokeAnswer::AllSucceeded,
        Some(Value::Array(failures)) => InvokeAnswer::Failed(
            failures
                .iter()
                .map(|f| f["itemIdentifier"].as_str().unwrap_or("?").to_owned())
                .collect(),
        ),
        Some(other) => InvokeAnswer::FunctionError(format!("batchItemFailures is {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_the_mapping_reads_them() {
        assert!(read_answer(&json!({"batchItemFailures": []})).succeeded());
        assert!(read_answer(&json!(null)).succeeded());
        assert_eq!(
            read_answer(&json!({"batchItemFailures": [{"itemIdentifier": "7"}]})),
            InvokeAnswer::Failed(vec!["7".to_owned()])
        );
        assert!(matches!(
            read_answer(&json!({"batchItemFailures": "x"})),
            InvokeAnswer::FunctionError(_)
        ));
    }
}
