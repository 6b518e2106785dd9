//! A stand-in for the OpenSearch document API, for tests and the demo. No OpenSearch server
//! can be installed here; this one enforces the part of the contract search-warm relies on:
//!
//! - `PUT /{index}/_doc/{id}?version=N&version_type=external`: stored when `N` is greater
//!   than the stored version (also a deleted document's, until its tombstone is collected
//!   after `index.gc_deletes`, 60 s unless set), else `409` `version_conflict_engine_exception`.
//! - `PUT /{index}/_settings` with `{"index": {"gc_deletes": "2s"}}` (or `{"index.gc_deletes":
//!   "2s"}`): how long a deleted document's version is remembered.
//! - `DELETE /{index}/_doc/{id}?version=N&version_type=external`: the same rule; `404` when
//!   there is no live document, and then, as OpenSearch does with external versions, the
//!   deletion is still remembered at `N` (a tombstone), so an older write arriving after it is
//!   refused.
//! - External versions are longs: above `2^63 - 1`, `400` (as OpenSearch refuses them).
//! - `GET /{index}/_doc/{id}`: the document and its `_version`, or `404`.
//! - `PUT /{index}` with `{"mappings": {"dynamic": "strict", "properties": {…}}}`: documents
//!   with other fields are refused with `400` `strict_dynamic_mapping_exception`.
//! - `POST /_standin/faults` `{"status": 503, "count": 1}`: the next `count` document requests
//!   answer `status` (a test's way to make the server fail).
//!
//! It is not OpenSearch and says so in its `GET /` answer.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    pub version: u64,
    /// `None` once deleted (a tombstone that still holds the version).
    pub source: Option<Value>,
    /// When it was deleted: the tombstone is collected `gc_deletes` later.
    pub deleted_at: Option<Instant>,
}

/// OpenSearch's default `index.gc_deletes`.
pub const DEFAULT_GC_DELETES: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Index {
    strict_fields: Option<HashSet<String>>,
    documents: HashMap<String, StoredDocument>,
    gc_deletes: Duration,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            strict_fields: None,
            documents: HashMap::new(),
            gc_deletes: DEFAULT_GC_DELETES,
        }
    }
}

impl Index {
    /// The stored document, unless it is a tombstone older than `gc_deletes` (collected).
    fn live(&self, id: &str) -> Option<&StoredDocument> {
        self.documents
            .get(id)
            .filter(|d| d.deleted_at.is_none_or(|at| at.elapsed() < self.gc_deletes))
    }
}

#[derive(Debug, Default)]
struct Faults {
    status: u16,
    remaining: u32,
}

#[derive(Debug, Default)]
struct Store {
    indices: HashMap<String, Index>,
    faults: Faults,
    /// Headers of the last document write, to check request signing.
    last_write_headers: HashMap<String, String>,
}

type Shared = Arc<Mutex<Store>>;

/// A running stand-in on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct SearchStandIn {
    pub addr: SocketAddr,
    store: Shared,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Deserialize)]
struct VersionQuery {
    version: Option<u64>,
    version_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FaultRequest {
    status: u16,
    count: u32,
}

type Reply = (StatusCode, Json<Value>);

fn reply(status: StatusCode, body: Value) -> Reply {
    (status, Json(body))
}

fn error(status: StatusCode, kind: &str, reason: String) -> Reply {
    reply(
        status,
        json!({"error": {"type": kind, "reason": reason}, "status": status.as_u16()}),
    )
}

fn injected_fault(store: &mut Store) -> Option<Reply> {
    if store.faults.remaining == 0 {
        return None;
    }
    store.faults.remaining -= 1;
    let status =
        StatusCode::from_u16(store.faults.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    Some(error(
        status,
        "injected_fault",
        "fault injected by the test".to_owned(),
    ))
}

fn external_version(query: &VersionQuery) -> Result<u64, Reply> {
    match (query.version_type.as_deref(), query.version) {
        (Some("external"), Some(version)) if version > i64::MAX as u64 => Err(error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            format!("illegal version value [{version}] for version type [EXTERNAL]"),
        )),
        (Some("external"), Some(version)) => Ok(version),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "this stand-in only serves version_type=external with a version".to_owned(),
        )),
    }
}

fn conflict(id: &str, current: u64, given: u64) -> Reply {
    error(
        StatusCode::CONFLICT,
        "version_conflict_engine_exception",
        format!(
            "[{id}]: version conflict, current version [{current}] is higher or equal to the one provided [{given}]"
        ),
    )
}

async fn put_document(
    State(store): State<Shared>,
    Path((index, id)): Path<(String, String)>,
    Query(query): Query<VersionQuery>,
    headers: HeaderMap,
    Json(source): Json<Value>,
) -> Reply {
    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
    store.last_write_headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    if let Some(fault) = injected_fault(&mut store) {
        return fault;
    }
    let version = match external_version(&query) {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let index_state = store.indices.entry(index.clone()).or_default();
    let unknown = match (&index_state.strict_fields, source.as_object()) {
        (Some(allowed), Some(fields)) => fields.keys().find(|f| !allowed.contains(*f)).cloned(),
        _ => None,
    };
    if let Some(unknown) = unknown {
        return error(
            StatusCode::BAD_REQUEST,
            "strict_dynamic_mapping_exception",
            format!(
                "mapping set to strict, dynamic introduction of [{unknown}] within [_doc] is not allowed"
            ),
        );
    }
    let created = match index_state.live(&id) {
        Some(existing) if existing.version >= version => {
            return conflict(&id, existing.version, version);
        }
        Some(existing) => existing.source.is_none(),
        None => true,
    };
    index_state.documents.insert(
        id.clone(),
        StoredDocument {
            version,
            source: Some(source),
            deleted_at: None,
        },
    );
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    reply(
        status,
        json!({"_index": index, "_id": id, "_version": version,
        "result": if created { "created" } else { "updated" }}),
    )
}

async fn delete_document(
    State(store): State<Shared>,
    Path((index, id)): Path<(String, String)>,
    Query(query): Query<VersionQuery>,
) -> Reply {
    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(fault) = injected_fault(&mut store) {
        return fault;
    }
    let version = match external_version(&query) {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let index_state = store.indices.entry(index.clone()).or_default();
    let existed = match index_state.live(&id) {
        Some(existing) if existing.version >= version => {
            return conflict(&id, existing.version, version);
        }
        Some(existing) => existing.source.is_some(),
        None => false,
    };
    // Found or not, the deletion is remembered at its version until gc_deletes.
    index_state.documents.insert(
        id.clone(),
        StoredDocument {
            version,
            source: None,
            deleted_at: Some(Instant::now()),
        },
    );
    if existed {
        reply(
            StatusCode::OK,
            json!({"_index": index, "_id": id, "_version": version, "result": "deleted"}),
        )
    } else {
        reply(
            StatusCode::NOT_FOUND,
            json!({"_index": index, "_id": id, "_version": version, "result": "not_found"}),
        )
    }
}

async fn get_document(
    State(store): State<Shared>,
    Path((index, id)): Path<(String, String)>,
) -> Reply {
    let store = store.lock().unwrap_or_else(|p| p.into_inner());
    match store.indices.get(&index).and_then(|i| i.documents.get(&id)) {
        Some(StoredDocument {
            version,
            source: Some(source),
            ..
        }) => reply(
            StatusCode::OK,
            json!({"_index": index, "_id": id, "_version": version, "found": true, "_source": source}),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"_index": index, "_id": id, "found": false}),
        ),
    }
}

async fn create_index(
    State(store): State<Shared>,
    Path(index): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
    let mappings = &body["mappings"];
    let strict_fields = (mappings["dynamic"] == "strict").then(|| {
        mappings["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    });
    store
        .indices
        .entry(index.clone())
        .or_default()
        .strict_fields = strict_fields;
    reply(
        StatusCode::OK,
        json!({"acknowledged": true, "index": index}),
    )
}

/// `PUT /{index}/_settings`: `index.gc_deletes`, nested or dotted, as `<n>s` or `<n>ms`.
async fn put_settings(
    State(store): State<Shared>,
    Path(index): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let raw = body["index"]["gc_deletes"]
        .as_str()
        .or_else(|| body["index.gc_deletes"].as_str())
        .unwrap_or_default()
        .to_owned();
    let parsed = raw
        .strip_suffix("ms")
        .and_then(|n| n.parse().ok().map(Duration::from_millis))
        .or_else(|| {
            raw.strip_suffix('s')
                .and_then(|n| n.parse().ok().map(Duration::from_secs))
        });
    let Some(gc_deletes) = parsed else {
        return error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            format!("this stand-in only takes index.gc_deletes as <n>s or <n>ms, not {raw:?}"),
        );
    };
    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
    store.indices.entry(index).or_default().gc_deletes = gc_deletes;
    reply(StatusCode::OK, json!({"acknowledged": true}))
}

async fn set_faults(State(store): State<Shared>, Json(request): Json<FaultRequest>) -> Reply {
    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
    store.faults = Faults {
        status: request.status,
        remaining: request.count,
    };
    reply(
        StatusCode::OK,
        json!({"status": request.status, "count": request.count}),
    )
}

async fn about() -> Reply {
    reply(
        StatusCode::OK,
        json!({"name": "fanout search stand-in", "tagline": "not OpenSearch: the external-version document API only"}),
    )
}

impl SearchStandIn {
    /// Starts the stand-in on a free loopback port, on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let store: Shared = Arc::default();
        let app = Router::new()
            .route("/", get(about))
            .route("/_standin/faults", post(set_faults))
            .route("/{index}", put(create_index))
            .route("/{index}/_settings", put(put_settings))
            .route(
                "/{index}/_doc/{id}",
                put(put_document).delete(delete_document).get(get_document),
            )
            .with_state(Arc::clone(&store));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "search stand-in stopped");
            }
        });
        Ok(SearchStandIn { addr, store, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The stored document (or tombstone) for `id` in `index`.
    pub fn document(&self, index: &str, id: &str) -> Option<StoredDocument> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store
            .indices
            .get(index)
            .and_then(|i| i.documents.get(id))
            .cloned()
    }

    /// The headers of the last document write (lower-case names).
    pub fn last_write_headers(&self) -> HashMap<String, String> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store.last_write_headers.clone()
    }

    /// Every live document of `index`: id, version and source, sorted by id.
    pub fn documents(&self, index: &str) -> Vec<(String, u64, Value)> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let mut docs: Vec<_> = store
            .indices
            .get(index)
            .map(|i| {
                i.documents
                    .iter()
                    .filter_map(|(id, d)| d.source.clone().map(|s| (id.clone(), d.version, s)))
                    .collect()
            })
            .unwrap_or_default();
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        docs
    }
}

impl Drop for SearchStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}
