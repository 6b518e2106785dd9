//! A local Lambda API in front of [`RuntimeApiHost`]s: what an operations tool built on the
//! AWS SDK (`aws-sdk-lambda`, endpoint from `AWS_ENDPOINT_URL_LAMBDA`) calls, served by the
//! real function binaries.
//!
//! - `POST /2015-03-31/functions/{name}/invocations`: a synchronous invoke. A function error
//!   answers `200` with `X-Amz-Function-Error: Unhandled`, as Lambda does.
//! - `GET /2015-03-31/functions/{name}/configuration`: name, timeout, memory and environment.
//!
//! `{name}` is a function name or ARN. Requests are not authenticated (loopback only).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::invoke::{Invoke, InvokeError};
use crate::runtime_api::{RuntimeApiHost, serve_on_loopback};

struct Functions {
    by_name: HashMap<String, Arc<RuntimeApiHost>>,
    invocations: AtomicU32,
}

/// The Lambda API of a set of functions, on a free loopback port. Dropping it stops serving.
pub struct LocalLambdaApi {
    addr: SocketAddr,
    functions: Arc<Functions>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalLambdaApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLambdaApi")
            .field("addr", &self.addr)
            .finish()
    }
}

impl LocalLambdaApi {
    /// Serves `hosts`, each under its function name.
    pub async fn start(hosts: Vec<Arc<RuntimeApiHost>>) -> std::io::Result<Self> {
        let functions = Arc::new(Functions {
            by_name: hosts
                .into_iter()
                .map(|host| (host.config().name.clone(), host))
                .collect(),
            invocations: AtomicU32::new(0),
        });
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .route(
                "/2015-03-31/functions/{name}/configuration",
                get(configuration),
            )
            .with_state(Arc::clone(&functions));
        let (addr, server) = serve_on_loopback(app, "local Lambda API").await?;
        Ok(LocalLambdaApi {
            addr,
            functions,
            server,
        })
    }

    /// The endpoint URL (`AWS_ENDPOINT_URL_LAMBDA`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Invocations served so far, of every function.
    pub fn invocations(&self) -> u32 {
        self.functions.invocations.load(Ordering::SeqCst)
    }
}

impl Drop for LocalLambdaApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Functions {
    /// The host of a function name or ARN (`arn:aws:lambda:…:function:<name>[:qualifier]`).
    fn find(&self, name: &str) -> Result<&Arc<RuntimeApiHost>, Box<Response>> {
        let short = match name.split(':').collect::<Vec<_>>().as_slice() {
            ["arn", _, "lambda", _, _, "function", function, ..] => *function,
            _ => name,
        };
        self.by_name.get(short).ok_or_else(|| {
            Box::new(
                (
                    StatusCode::NOT_FOUND,
                    [("x-amzn-errortype", "ResourceNotFoundException")],
                    axum::Json(json!({
                        "Type": "User",
                        "message": format!("Function not found: {name}"),
                    })),
                )
                    .into_response(),
            )
        })
    }
}

async fn invoke(
    State(functions): State<Arc<Functions>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let host = match functions.find(&name) {
        Ok(host) => Arc::clone(host),
        Err(response) => return *response,
    };
    let event: Value = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                [("x-amzn-errortype", "InvalidRequestContentException")],
                axum::Json(
                    json!({"Type": "User", "message": format!("payload is not JSON: {err}")}),
                ),
            )
                .into_response();
        }
    };
    functions.invocations.fetch_add(1, Ordering::SeqCst);
    match host.invoke(event).await {
        Ok(answer) => (StatusCode::OK, axum::Json(answer)).into_response(),
        Err(InvokeError::Function {
            error_type,
            message,
        }) => (
            StatusCode::OK,
            [("x-amz-function-error", "Unhandled")],
            axum::Json(json!({"errorType": error_type, "errorMessage": message})),
        )
            .into_response(),
        Err(InvokeError::Transport(message)) => (
            StatusCode::BAD_GATEWAY,
            [("x-amzn-errortype", "ServiceException")],
            axum::Json(json!({"Type": "Service", "message": message})),
        )
            .into_response(),
    }
}

async fn configuration(
    State(functions): State<Arc<Functions>>,
    Path(name): Path<String>,
) -> Response {
    let host = match functions.find(&name) {
        Ok(host) => host,
        Err(response) => return *response,
    };
    let config = host.config();
    let variables: serde_json::Map<String, Value> = config
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    axum::Json(json!({
        "FunctionName": config.name,
        "FunctionArn": format!("arn:aws:lambda:us-east-1:000000000000:function:{}", config.name),
        "Runtime": "provided.al2023",
        "Handler": "bootstrap",
        "Timeout": config.timeout.as_secs(),
        "MemorySize": config.memory_mib,
        "Environment": {"Variables": variables},
    }))
    .into_response()
}
