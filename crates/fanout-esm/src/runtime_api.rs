//! A Lambda Runtime API host: runs a function binary as a local process the way Lambda runs a
//! `provided.al2023` function, and invokes it through the Runtime API
//! (`/2018-06-01/runtime/invocation/next`, `…/{id}/response`, `…/{id}/error`,
//! `/2018-06-01/runtime/init/error`).
//!
//! - The process starts on the first invocation (a cold start) with the standard
//!   `AWS_LAMBDA_*` variables, this process's environment and the function's own.
//! - One invocation at a time, with a deadline (`Lambda-Runtime-Deadline-Ms`) from the
//!   function's timeout. Past it the process is killed and the invocation fails with
//!   `Sandbox.Timedout`, as Lambda does; the next invocation starts a new process.
//! - A process that exits during an invocation fails it with `Runtime.ExitError`; an init
//!   error fails it with `Runtime.InitError`.
//! - [`RuntimeApiHost::kill`] kills the process at any moment: a crash, for fault tests.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

use crate::invoke::{Invoke, InvokeError};

/// What the host runs.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    /// The binary (Lambda's `bootstrap`).
    pub binary: PathBuf,
    /// The function's environment, on top of this process's.
    pub env: Vec<(String, String)>,
    /// The function timeout: each invocation's deadline.
    pub timeout: Duration,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
    pub memory_mib: u32,
    /// Where the process's stdout and stderr go (appended); `None` discards them.
    pub log: Option<PathBuf>,
}

/// The host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("binding the Runtime API on loopback: {0}")]
    Bind(std::io::Error),
    #[error("function binary {0} does not exist; build it first")]
    NoBinary(PathBuf),
}

/// Counters of what the host has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStats {
    pub cold_starts: u32,
    pub invocations: u32,
    /// Spawn to the first `/next` of the latest cold start.
    pub last_init: Option<Duration>,
}

struct Pending {
    request_id: String,
    event: Value,
    deadline_ms: u128,
}

/// The invocation awaiting the function's answer: its request id and where the answer goes.
type Waiting = (String, oneshot::Sender<Result<Value, InvokeError>>);

#[derive(Default)]
struct Shared {
    pending: Mutex<Option<Pending>>,
    waiting: Mutex<Option<Waiting>>,
    init_error: Mutex<Option<String>>,
    next_ready: Notify,
    first_next: Mutex<Option<Instant>>,
}

struct Process {
    child: tokio::process::Child,
    spawned: Instant,
}

/// A function process behind its own Runtime API endpoint. Dropping it kills the process.
pub struct RuntimeApiHost {
    config: FunctionConfig,
    addr: SocketAddr,
    shared: Arc<Shared>,
    process: tokio::sync::Mutex<Option<Process>>,
    pid: AtomicU32,
    stats: Mutex<HostStats>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RuntimeApiHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApiHost")
            .field("function", &self.config.name)
            .field("addr", &self.addr)
            .finish()
    }
}

/// Serves `app` on a free loopback port until the returned task is aborted.
pub(crate) async fn serve_on_loopback(
    app: Router,
    what: &'static str,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "{what} server stopped");
        }
    });
    Ok((addr, server))
}

impl RuntimeApiHost {
    /// Serves the Runtime API on a free loopback port. The process starts on the first
    /// invocation.
    pub async fn start(config: FunctionConfig) -> Result<Self, HostError> {
        if !config.binary.is_file() {
            return Err(HostError::NoBinary(config.binary));
        }
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&shared));
        let (addr, server) = serve_on_loopback(app, "Runtime API")
            .await
            .map_err(HostError::Bind)?;
        Ok(RuntimeApiHost {
            config,
            addr,
            shared,
            process: tokio::sync::Mutex::new(None),
            pid: AtomicU32::new(0),
            stats: Mutex::new(HostStats::default()),
            server,
        })
    }

    /// The `AWS_LAMBDA_RUNTIME_API` value (`127.0.0.1:port`).
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// The running process's id, if one runs.
    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::SeqCst) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Kills the process now (SIGKILL), as a crash would; an invocation in flight fails with
    /// `Runtime.ExitError` and the next one cold-starts.
    pub fn kill(&self) {
        if let Some(pid) = self.pid() {
            // `kill` from procps: one signal needs no libc binding.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }

    /// What it runs: name, binary, environment, timeout.
    pub fn config(&self) -> &FunctionConfig {
        &self.config
    }

    pub fn stats(&self) -> HostStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    fn spawn(&self) -> Result<Process, InvokeError> {
        let mut command = tokio::process::Command::new(&self.config.binary);
        command
            .env("AWS_LAMBDA_RUNTIME_API", self.runtime_api())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.config.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.config.memory_mib.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.config.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .envs(
                self.config
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match &self.config.log {
            Some(path) => {
                let open = || {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                };
                let out = open().map_err(|e| spawn_error(&self.config, &e))?;
                let err = open().map_err(|e| spawn_error(&self.config, &e))?;
                command.stdout(out).stderr(err);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = command.spawn().map_err(|e| spawn_error(&self.config, &e))?;
        self.pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
        if let Ok(mut first) = self.shared.first_next.lock() {
            *first = None;
        }
        if let Ok(mut stats) = self.stats.lock() {
            stats.cold_starts += 1;
        }
        Ok(Process {
            child,
            spawned: Instant::now(),
        })
    }

    /// After a cold start's invocation: how long the process took to ask for its first event.
    fn record_init(&self, spawned: Instant) {
        let first = self.shared.first_next.lock().ok().and_then(|f| *f);
        if let (Some(first), Ok(mut stats)) = (first, self.stats.lock()) {
            stats.last_init = Some(first.saturating_duration_since(spawned));
        }
    }
}

fn spawn_error(config: &FunctionConfig, err: &std::io::Error) -> InvokeError {
    InvokeError::Function {
        error_type: "Runtime.InvalidEntrypoint".to_owned(),
        message: format!("starting {}: {err}", config.binary.display()),
    }
}

fn function_error(error_type: &str, message: impl Into<String>) -> InvokeError {
    InvokeError::Function {
        error_type: error_type.to_owned(),
        message: message.into(),
    }
}

impl Invoke for RuntimeApiHost {
    async fn invoke(&self, event: Value) -> Result<Value, InvokeError> {
        let mut process = self.process.lock().await;
        if let Some(running) = process.as_mut()
            && let Ok(Some(_)) = running.child.try_wait()
        {
            *process = None;
        }
        let cold = process.is_none();
        if cold {
            if let Ok(mut init) = self.shared.init_error.lock() {
                *init = None;
            }
            *process = Some(self.spawn()?);
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let deadline = SystemTime::now() + self.config.timeout;
        let (tx, mut rx) = oneshot::channel();
        if let Ok(mut waiting) = self.shared.waiting.lock() {
            *waiting = Some((request_id.clone(), tx));
        }
        if let Ok(mut pending) = self.shared.pending.lock() {
            *pending = Some(Pending {
                request_id,
                event,
                deadline_ms: deadline
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis(),
            });
        }
        self.shared.next_ready.notify_one();
        if let Ok(mut stats) = self.stats.lock() {
            stats.invocations += 1;
        }

        let Some(running) = process.as_mut() else {
            return Err(function_error("Runtime.Unknown", "no process"));
        };
        let spawned = running.spawned;
        let sleep = tokio::time::sleep(self.config.timeout);
        tokio::pin!(sleep);
        let outcome = tokio::select! {
                result = &mut rx => {
                    result.unwrap_or_else(|_| Err(function_error("Runtime.Unknown", "response channel closed")))
                }
                status = running.child.wait() => {
                    let init = self.shared.init_error.lock().ok().and_then(|mut e| e.take());
                    let outcome = match init {
                        Some(message) => Err(function_error("Runtime.InitError", message)),
                        None => Err(function_error(
                            "Runtime.ExitError",
                            format!("the process exited during the invocation: {}",
                                status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())),
                        )),
                    };
                    *process = None;
                    self.pid.store(0, Ordering::SeqCst);
                    outcome
                }
                () = &mut sleep => {
                    let _ = running.child.start_kill();
                    let _ = running.child.wait().await;
                    *process = None;
                    self.pid.store(0, Ordering::SeqCst);
                    Err(function_error(
                        "Sandbox.Timedout",
                        format!("Task timed out after {:.2} seconds", self.config.timeout.as_secs_f64()),
                    ))
                }
        };
        // Nothing must be handed out after the invocation ended.
        if let Ok(mut pending) = self.shared.pending.lock() {
            *pending = None;
        }
        if let Ok(mut waiting) = self.shared.waiting.lock() {
            *waiting = None;
        }
        if cold {
            self.record_init(spawned);
        }
        outcome
    }
}

impl Drop for RuntimeApiHost {
    fn drop(&mut self) {
        self.kill();
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    if let Ok(mut first) = shared.first_next.lock()
        && first.is_none()
    {
        *first = Some(Instant::now());
    }
    loop {
        let notified = shared.next_ready.notified();
        let taken = shared.pending.lock().ok().and_then(|mut p| p.take());
        if let Some(pending) = taken {
            let mut headers = HeaderMap::new();
            let mut put = |name: &'static str, value: &str| {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.insert(name, value);
                }
            };
            // Runtime clients that decode by content type (Python's awslambdaric) need it.
            put("content-type", "application/json");
            put("lambda-runtime-aws-request-id", &pending.request_id);
            put(
                "lambda-runtime-deadline-ms",
                &pending.deadline_ms.to_string(),
            );
            put(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:local",
            );
            put(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000",
            );
            return (StatusCode::OK, headers, pending.event.to_string()).into_response();
        }
        notified.await;
    }
}

fn settle(shared: &Shared, id: &str, outcome: Result<Value, InvokeError>) -> StatusCode {
    let waiter = shared.waiting.lock().ok().and_then(|mut w| {
        if w.as_ref().is_some_and(|(waiting_id, _)| waiting_id == id) {
            w.take()
        } else {
            None
        }
    });
    match waiter {
        Some((_, tx)) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        // A late answer to an invocation that already timed out, as Lambda would see it.
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let outcome = serde_json::from_slice(&body).map_err(|e| {
        InvokeError::Transport(format!(
            "function response is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        ))
    });
    settle(&shared, &id, outcome)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let outcome = Err(function_error(
        parsed["errorType"].as_str().unwrap_or("Unhandled"),
        parsed["errorMessage"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
    ));
    settle(&shared, &id, outcome)
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    if let Ok(mut init) = shared.init_error.lock() {
        *init = Some(String::from_utf8_lossy(&body).into_owned());
    }
    StatusCode::ACCEPTED
}
