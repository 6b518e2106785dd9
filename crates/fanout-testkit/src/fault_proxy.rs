//! A fault-injecting HTTP proxy, put between a function and one service (DynamoDB Local,
//! ministack, the search stand-in) through the standard `AWS_ENDPOINT_URL_<SERVICE>`
//! variables. Every request is forwarded unchanged, except where a rule says otherwise for
//! the N-th call of an operation:
//!
//! - a throttling answer (`ProvisionedThroughputExceededException`, `ThrottlingException`, a
//!   429 `TooManyRequestsException`), or any HTTP status;
//! - added latency;
//! - a connection reset before anything is forwarded;
//! - forward, then drop the response (the service acted; the caller never hears);
//! - hold the request and signal it, so a test can kill the caller at that exact moment.
//!
//! Operations are named by `X-Amz-Target` (`PutItem`, `SendMessage`, `PutEvents`), by the
//! REST path for SESv2 (`SendEmail`), and `<METHOD> _doc` for the search document API. Every
//! request is counted, so the proxy also measures requests per operation.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

/// Which calls of an operation a rule applies to (1-based, counted per operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// Only the n-th.
    Nth(u32),
    /// The first n.
    First(u32),
    /// The n-th and every one after it.
    From(u32),
    Every,
}

impl Calls {
    fn includes(self, n: u32) -> bool {
        match self {
            Calls::Nth(k) => n == k,
            Calls::First(k) => n <= k,
            Calls::From(k) => n >= k,
            Calls::Every => true,
        }
    }
}

/// What a matching call gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A throttling answer with this HTTP status and error code.
    Throttle { status: u16, code: String },
    /// An error answer with this HTTP status (`InternalFailure` / `ServiceUnavailable`).
    Status(u16),
    /// Forwarded after this delay.
    Latency(Duration),
    /// The connection closes before anything is forwarded.
    Reset,
    /// Forwarded; the service's answer is thrown away and the connection closed.
    DropResponse,
    /// Held (never forwarded while held) and signalled through [`FaultProxy::held`].
    Hold,
    /// Refused with this status and error code, the message quoting the request body, as
    /// services quote what they refuse (an SES rejection naming the recipient, a search 400
    /// quoting the document): the personal data a consumer must never log or park as text.
    Rejected { status: u16, code: String },
    /// EventBridge `PutEvents` answered 200 with its one entry failed (`code`), the entry's
    /// message quoting the request body: a per-entry refusal, as PutEvents reports them.
    EntryRefused { code: String },
}

impl Fault {
    /// DynamoDB's answer when a table's capacity is exceeded.
    pub fn dynamodb_throttle() -> Self {
        Fault::Throttle {
            status: 400,
            code: "ProvisionedThroughputExceededException".to_owned(),
        }
    }
}

/// One rule: `fault` for the `calls` of `operation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub operation: String,
    pub calls: Calls,
    pub fault: Fault,
}

impl Rule {
    pub fn new(operation: &str, calls: Calls, fault: Fault) -> Self {
        Rule {
            operation: operation.to_owned(),
            calls,
            fault,
        }
    }
}

/// One request the proxy saw, and what it did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub operation: String,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    counts: HashMap<String, u32>,
    calls: Vec<Call>,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    state: Mutex<State>,
    held: Notify,
}

/// A running proxy. Dropping it stops it.
#[derive(Debug)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// The proxy could not be started.
#[derive(Debug, thiserror::Error)]
#[error("starting the fault proxy: {0}")]
pub struct ProxyError(String);

impl FaultProxy {
    /// A proxy to `upstream` (`http://127.0.0.1:<port>`) on a free loopback port.
    pub async fn start(upstream: &str) -> Result<Self, ProxyError> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| ProxyError(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ProxyError(e.to_string()))?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ProxyError(e.to_string()))?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
            state: Mutex::new(State::default()),
            held: Notify::new(),
        });
        let serving = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            // Connections live in the accept task's set, so dropping the proxy ends them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                while connections.try_join_next().is_some() {}
                let shared = Arc::clone(&serving);
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = Arc::clone(&shared);
                        async move { handle(&shared, request).await }
                    });
                    // An error here is the injected reset or drop: the connection closes.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FaultProxy { addr, shared, task })
    }

    /// The proxy's base URL, for an `AWS_ENDPOINT_URL_<SERVICE>` variable.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a rule. Rules apply in the order added; the first that matches a call wins.
    pub fn add(&self, rule: Rule) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.rules.push(rule);
        }
    }

    /// Removes every rule (counting goes on).
    pub fn clear(&self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.rules.clear();
        }
    }

    /// How many calls of `operation` the proxy has seen.
    pub fn count(&self, operation: &str) -> u32 {
        self.shared
            .state
            .lock()
            .map(|s| s.counts.get(operation).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared
            .state
            .lock()
            .map(|s| s.calls.clone())
            .unwrap_or_default()
    }

    /// Waits until a call is held by a [`Fault::Hold`] rule.
    pub async fn held(&self) {
        self.shared.held.notified().await;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The operation a request is: `X-Amz-Target`'s action, SESv2's REST path, or the search
/// document API.
fn operation(request: &Request<Incoming>) -> String {
    if let Some(target) = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let path = request.uri().path();
    if path.starts_with("/v2/email/outbound-emails") {
        return "SendEmail".to_owned();
    }
    if path.contains("/_doc/") {
        return format!("{} _doc", request.method());
    }
    format!("{} {path}", request.method())
}

fn answer(status: u16, code: &str) -> Response<Full<Bytes>> {
    answer_with(status, code, "injected by the fault proxy")
}

/// An error answer every protocol here reads: JSON `__type`/`message` (DynamoDB, EventBridge),
/// the `x-amzn-errortype` header (SESv2) and OpenSearch's `error.reason`.
fn answer_with(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "__type": code,
        "message": message,
        "error": {"type": code, "reason": message},
        "status": status,
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Ok(value) = "application/x-amz-json-1.0".parse() {
        headers.insert("content-type", value);
    }
    if let Ok(value) = code.parse() {
        headers.insert("x-amzn-errortype", value);
    }
    response
}

/// Why the proxy closed a connection without an answer (an injected fault, or the service
/// could not be reached).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Closed(String);

type Handled = Result<Response<Full<Bytes>>, Closed>;

async fn handle(shared: &Shared, request: Request<Incoming>) -> Handled {
    let operation = operation(&request);
    let fault = {
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let n = {
            let count = state.counts.entry(operation.clone()).or_default();
            *count += 1;
            *count
        };
        let fault = state
            .rules
            .iter()
            .find(|r| r.operation == operation && r.calls.includes(n))
            .map(|r| r.fault.clone());
        state.calls.push(Call {
            operation: operation.clone(),
            fault: fault.clone(),
        });
        fault
    };
    match &fault {
        Some(Fault::Throttle { status, code }) => return Ok(answer(*status, code)),
        Some(Fault::Rejected { status, code }) => {
            let body = request
                .into_body()
                .collect()
                .await
                .map_err(|e| Closed(e.to_string()))?
                .to_bytes();
            let quoted = format!("refused: {}", String::from_utf8_lossy(&body));
            return Ok(answer_with(*status, code, &quoted));
        }
        Some(Fault::EntryRefused { code }) => {
            let body = request
                .into_body()
                .collect()
                .await
                .map_err(|e| Closed(e.to_string()))?
                .to_bytes();
            let answer = serde_json::json!({
                "FailedEntryCount": 1,
                "Entries": [{
                    "ErrorCode": code,
                    "ErrorMessage": format!("refused: {}", String::from_utf8_lossy(&body)),
                }],
            });
            let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
            if let Ok(value) = "application/x-amz-json-1.1".parse() {
                response.headers_mut().insert("content-type", value);
            }
            return Ok(response);
        }
        Some(Fault::Status(status)) => {
            let code = if *status == 503 {
                "ServiceUnavailable"
            } else {
                "InternalFailure"
            };
            return Ok(answer(*status, code));
        }
        Some(Fault::Reset) => return Err(Closed("injected connection reset".to_owned())),
        Some(Fault::Latency(delay)) => tokio::time::sleep(*delay).await,
        Some(Fault::Hold) => {
            shared.held.notify_one();
            // Held until the caller goes away (its connection closes and this future with it),
            // and never forwarded: a held call must not act later behind the test's back.
            std::future::pending::<()>().await;
            return Err(Closed("held".to_owned()));
        }
        Some(Fault::DropResponse) | None => {}
    }
    let response = forward(shared, request).await?;
    if fault == Some(Fault::DropResponse) {
        return Err(Closed(
            "injected: response dropped after the service acted".to_owned(),
        ));
    }
    Ok(response)
}

async fn forward(shared: &Shared, request: Request<Incoming>) -> Handled {
    let (parts, body) = request.into_parts();
    let closed = |e: &dyn std::fmt::Display| Closed(e.to_string());
    let body = body.collect().await.map_err(|e| closed(&e))?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut outgoing = shared
        .http
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        // The signed Host header is kept; length and framing are the client's to set again.
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            outgoing = outgoing.header(name, value);
        }
    }
    let upstream = outgoing.send().await.map_err(|e| closed(&e))?;
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.map_err(|e| closed(&e))?;
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(response)
}
