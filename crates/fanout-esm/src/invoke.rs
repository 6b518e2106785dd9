//! How a mapping invokes its function, and the Lambda Invoke API client.

use std::future::Future;

use serde_json::Value;

/// An invocation that did not return a response: Lambda counts it as a function error, and
/// the mapping retries (or bisects) the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The function reported an error, crashed, or timed out.
    #[error("function error ({error_type}): {message}")]
    Function { error_type: String, message: String },
    /// The function could not be reached, or answered something that is not JSON.
    #[error("invoking the function: {0}")]
    Transport(String),
}

/// How the mapping invokes the function: the event JSON in, the function's response JSON out.
pub trait Invoke: Send + Sync {
    fn invoke(&self, event: Value) -> impl Future<Output = Result<Value, InvokeError>> + Send;
}

/// A shared function: callers keep a handle to inspect it while the mapping drives it.
impl<T: Invoke> Invoke for std::sync::Arc<T> {
    fn invoke(&self, event: Value) -> impl Future<Output = Result<Value, InvokeError>> + Send {
        (**self).invoke(event)
    }
}

/// A function behind the Lambda Invoke API: `POST /2015-03-31/functions/{name}/invocations`,
/// as served by `cargo lambda watch` (or any Lambda-compatible endpoint without SigV4).
#[derive(Debug, Clone)]
pub struct InvokeApi {
    http: reqwest::Client,
    url: String,
}

impl InvokeApi {
    pub fn new(endpoint: &str, function_name: &str) -> Self {
        InvokeApi {
            http: reqwest::Client::new(),
            url: format!(
                "{}/2015-03-31/functions/{function_name}/invocations",
                endpoint.trim_end_matches('/')
            ),
        }
    }
}

impl Invoke for InvokeApi {
    async fn invoke(&self, event: Value) -> Result<Value, InvokeError> {
        let response = self
            .http
            .post(&self.url)
            .json(&event)
            .send()
            .await
            .map_err(|e| InvokeError::Transport(format!("Invoke API {}: {e}", self.url)))?;
        // A function error is a 200 with X-Amz-Function-Error, as on AWS.
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| InvokeError::Transport(e.to_string()))?;
        if let Some(error_type) = function_error {
            return Err(InvokeError::Function {
                error_type,
                message: body,
            });
        }
        if !status.is_success() {
            return Err(InvokeError::Transport(format!(
                "Invoke API answered {status}: {body}"
            )));
        }
        serde_json::from_str(&body).map_err(|e| {
            InvokeError::Transport(format!("function response is not JSON ({e}): {body}"))
        })
    }
}
