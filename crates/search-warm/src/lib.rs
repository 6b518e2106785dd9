//! search-warm: keeps the OpenSearch `users` index in step with the `Users` table.
//!
//! Insert and modify upsert the user's document, remove deletes it, through the document API
//! with `version_type=external`. OpenSearch refuses a write whose version is not newer with
//! `409`, so stale and repeated writes are no-ops and the index deduplicates by itself: no
//! ledger entry.
//!
//! The external version is a [`DocumentVersion`]: the change's creation time (microseconds)
//! first, then the item's `version`. Not the item's `version` alone: a user deleted and created again starts
//! again at a low version, and Kinesis may deliver the re-creation before the deletion; by
//! time, the re-creation wins and the late deletion is a no-op, in any order and repetition.
//! A deletion is remembered by the index (its tombstone) for `index.gc_deletes` (60 s by
//! default); OpenSearch remembers a deletion even of a document it never had.
//!
//! - `https://` endpoints are Amazon OpenSearch Service: requests are SigV4-signed with the
//!   function's credentials (service `es`, or `SEARCH_SIGNING_SERVICE=aoss` for Serverless).
//! - `http://` is only accepted for a loopback endpoint (local development and tests).
//!
//! Responses: 2xx is done; 409 is a duplicate; 404 on delete is done (nothing to delete);
//! 429 and 5xx and transport errors are retryable; any other 4xx (a mapping error, say) can
//! never succeed and is parked.
//!
//! One case stays: DynamoDB Streams times are whole seconds, so a user deleted and created
//! again within one second, with a `version` that did not grow past the deleted one's, meets
//! the deletion's tombstone. A DynamoDB stream delivers an item's changes in order, so such an
//! insert is the user's newest change: it is tried again, within the record's time, until the
//! tombstone is collected, and else fails as retryable (never counted as done). On Kinesis
//! (microseconds) and for an operator's resend, a refused insert with no live document is a
//! change older than a deletion already applied: a duplicate.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use fanout_core::{
    BatchProcessor, Change, ChangeOrder, ConfigError, ConsumerConfig, EffectCheck, EffectState,
    Env, RecordError, RecordHandler, RecordInput, RecordOutcome, RecordSource, StreamView, User,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use url::Url;

pub const CONSUMER: &str = "search-warm";

/// The least stream view it can work from: upserts take the new image; a delete versions itself from the old one.
pub const STREAM_VIEW: StreamView = StreamView::NewAndOldImages;

/// Timeouts for one request to the search endpoint: well inside a Lambda timeout, so a hung
/// connection fails the record (retryable) instead of the whole invocation.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a re-created user's first write is tried again while a tombstone refuses it.
const TOMBSTONE_POLL: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchWarmConfig {
    pub consumer: ConsumerConfig,
    /// `SEARCH_ENDPOINT`: `https://…` (SigV4) or `http://127.0.0.1:…` (local).
    pub endpoint: Url,
    /// `SEARCH_INDEX`, default `users`.
    pub index: String,
    /// `SEARCH_SIGNING_SERVICE`, default `es`; `aoss` for OpenSearch Serverless.
    pub signing_service: String,
}

impl SearchWarmConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let raw = env.required("SEARCH_ENDPOINT")?;
        let malformed = |reason: String| ConfigError::Malformed {
            name: "SEARCH_ENDPOINT".to_owned(),
            reason,
        };
        let endpoint = Url::parse(&raw).map_err(|e| malformed(format!("{raw:?}: {e}")))?;
        match endpoint.scheme() {
            "https" => {}
            "http" if is_loopback(&endpoint) => {}
            "http" => {
                return Err(malformed(format!(
                    "{raw:?}: plain http is only for a loopback endpoint; use https (SigV4)"
                )));
            }
            other => return Err(malformed(format!("{raw:?}: unsupported scheme {other:?}"))),
        }
        Ok(SearchWarmConfig {
            consumer: ConsumerConfig::from_env(env, STREAM_VIEW)?,
            endpoint,
            index: env
                .optional("SEARCH_INDEX")
                .unwrap_or_else(|| "users".to_owned()),
            signing_service: env
                .optional("SEARCH_SIGNING_SERVICE")
                .unwrap_or_else(|| "es".to_owned()),
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// The search document of a user: what the user search needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDocument<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub plan: &'a str,
    pub updated_at: &'a str,
    /// The item's `version` (the document's own version is a [`DocumentVersion`]): what
    /// reconcile compares with the table.
    pub version: u64,
}

impl<'a> UserDocument<'a> {
    pub fn of(user: &'a User) -> Self {
        UserDocument {
            user_id: &user.user_id,
            email: user.email.as_str(),
            name: user.name.as_deref(),
            plan: user.plan.as_str(),
            updated_at: &user.updated_at,
            version: user.version,
        }
    }
}

/// The external version a change writes a user's document at: where the change sits in the
/// user's history. The change's creation time in microseconds fills the high 52 bits (enough
/// until the year 2112, as an OpenSearch version is a long), the item's `version` modulo 2^11
/// the low [`DocumentVersion::ITEM_VERSION_BITS`]. Changes of one user so order by when they
/// were made, across a delete and re-create whatever `version` restarts at. A deletion is one
/// past the version it removes, so it orders after the item's last write.
///
/// Kinesis carries creation times to the microsecond (the tables stack asks for it; AWS
/// documents them as the order of an item's changes), and DynamoDB serializes the writes of
/// one item, so two changes of a user never share a microsecond. DynamoDB Streams carries
/// whole seconds: there the item's `version` (modulo 10^6) stands in for the microseconds
/// within the second, as the stream delivers an item's changes in order anyway.
///
/// ```
/// use fanout_core::{ChangeOrder, RecordSource};
/// use search_warm::DocumentVersion;
/// let at = |micros: i64| ChangeOrder { created_micros: micros, version: None };
/// let kinesis = RecordSource::Kinesis;
/// // Deleted at version 7, created again 500 us later at version 1: the re-creation is newer.
/// let deleted = DocumentVersion::of_deletion(at(1_763_892_000_000_000), kinesis, 7).unwrap();
/// let created = DocumentVersion::of_write(at(1_763_892_000_000_500), kinesis, 1).unwrap();
/// assert!(created > deleted);
/// // On a DynamoDB stream (whole seconds), the item's version orders a second's writes.
/// let stream = RecordSource::DynamoDbStream;
/// let v2 = DocumentVersion::of_write(at(1_763_892_000_000_000), stream, 2).unwrap();
/// let v3 = DocumentVersion::of_write(at(1_763_892_000_000_000), stream, 3).unwrap();
/// assert!(v3 > v2);
/// assert!(DocumentVersion::of_write(at(0), stream, 1).is_err(), "a change without a time");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DocumentVersion(u64);

impl DocumentVersion {
    /// Bits of the item's `version` below the creation time.
    pub const ITEM_VERSION_BITS: u32 = 11;
    /// The first microsecond that no longer fits an OpenSearch version (2^63 - 1).
    const END_OF_MICROS: i64 = 1 << (63 - Self::ITEM_VERSION_BITS);

    /// The version a write (insert or modify) of `item_version`, made at `order` and
    /// delivered by `source`, carries.
    pub fn of_write(
        order: ChangeOrder,
        source: RecordSource,
        item_version: u64,
    ) -> Result<Self, RecordError> {
        Self::new(order, source, item_version)
    }

    /// The version the deletion of an item last at `item_version` carries.
    pub fn of_deletion(
        order: ChangeOrder,
        source: RecordSource,
        item_version: u64,
    ) -> Result<Self, RecordError> {
        Self::new(order, source, item_version.wrapping_add(1))
    }

    fn new(order: ChangeOrder, source: RecordSource, position: u64) -> Result<Self, RecordError> {
        let mut micros = order.created_micros;
        if micros <= 0 || micros >= Self::END_OF_MICROS - 1_000_000 {
            return Err(RecordError::permanent(format!(
                "the change's creation time ({micros} us since the epoch) is missing or out of \
                 range: search-warm orders a user's documents by it"
            )));
        }
        if source == RecordSource::DynamoDbStream {
            // Whole seconds: the item's version stands in for the microseconds.
            micros = micros - micros.rem_euclid(1_000_000) + (position % 1_000_000) as i64;
        }
        let low = position & ((1 << Self::ITEM_VERSION_BITS) - 1);
        Ok(DocumentVersion(
            ((micros as u64) << Self::ITEM_VERSION_BITS) | low,
        ))
    }

    /// The number OpenSearch stores.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
enum Signing {
    /// Loopback endpoint: no signature.
    None,
    SigV4 {
        credentials: SharedCredentialsProvider,
        region: String,
        service: String,
    },
}

/// The OpenSearch document API of one index.
#[derive(Debug, Clone)]
pub struct SearchIndex {
    http: reqwest::Client,
    endpoint: Url,
    index: String,
    signing: Signing,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchSetupError {
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("SigV4 for {0} needs credentials and a region in the AWS config")]
    NoCredentials(String),
}

impl SearchIndex {
    /// A client for a loopback `http://` endpoint, unsigned.
    pub fn local(endpoint: Url, index: impl Into<String>) -> Result<Self, SearchSetupError> {
        Ok(SearchIndex {
            http: http_client()?,
            endpoint,
            index: index.into(),
            signing: Signing::None,
        })
    }

    /// A client that SigV4-signs every request for `service` in `region`.
    pub fn signed(
        endpoint: Url,
        index: impl Into<String>,
        credentials: SharedCredentialsProvider,
        region: impl Into<String>,
        service: impl Into<String>,
    ) -> Result<Self, SearchSetupError> {
        Ok(SearchIndex {
            http: http_client()?,
            endpoint,
            index: index.into(),
            signing: Signing::SigV4 {
                credentials,
                region: region.into(),
                service: service.into(),
            },
        })
    }

    /// The client for `config`: SigV4 for `https://`, unsigned for loopback `http://`.
    pub fn from_config(
        aws: &aws_config::SdkConfig,
        config: &SearchWarmConfig,
    ) -> Result<Self, SearchSetupError> {
        if config.endpoint.scheme() == "http" {
            return Self::local(config.endpoint.clone(), &config.index);
        }
        let (Some(credentials), Some(region)) = (aws.credentials_provider(), aws.region()) else {
            return Err(SearchSetupError::NoCredentials(config.endpoint.to_string()));
        };
        Self::signed(
            config.endpoint.clone(),
            &config.index,
            credentials,
            region.to_string(),
            &config.signing_service,
        )
    }

    fn document_url(&self, user_id: &str, version: DocumentVersion) -> Result<Url, RecordError> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| RecordError::permanent("search endpoint cannot be a base URL"))?
            .pop_if_empty()
            .extend([self.index.as_str(), "_doc", user_id]);
        url.query_pairs_mut()
            .append_pair("version", &version.get().to_string())
            .append_pair("version_type", "external");
        Ok(url)
    }

    /// Indexes `user` at `version`.
    pub async fn upsert(
        &self,
        user: &User,
        version: DocumentVersion,
    ) -> Result<RecordOutcome, RecordError> {
        let body = serde_json::to_vec(&UserDocument::of(user))
            .map_err(|e| RecordError::permanent(format!("serializing document: {e}")))?;
        let url = self.document_url(&user.user_id, version)?;
        let status = self.send(Method::PUT, url, body).await?;
        outcome("index", status, false)
    }

    /// Whether a live document of `user_id` exists (a deleted one's tombstone does not count).
    pub async fn exists(&self, user_id: &str) -> Result<bool, RecordError> {
        Ok(self.document(user_id).await?.is_some())
    }

    /// The live document of `user_id`, if there is one: its `_source`.
    pub async fn document(&self, user_id: &str) -> Result<Option<serde_json::Value>, RecordError> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| RecordError::permanent("search endpoint cannot be a base URL"))?
            .pop_if_empty()
            .extend([self.index.as_str(), "_doc", user_id]);
        let (status, body) = self.send(Method::GET, url, Vec::new()).await?;
        match status {
            StatusCode::OK => serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|mut doc| doc.get_mut("_source").map(serde_json::Value::take))
                .map(Some)
                .ok_or_else(|| {
                    RecordError::Retryable("search get answered 200 without a _source".to_owned())
                }),
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(RecordError::Retryable(format!(
                "search get answered {other}: {body}"
            ))),
        }
    }

    /// Indexes a user that was just created: like [`SearchIndex::upsert`], but a refusal with
    /// no live document (a deletion at this or a later version is remembered) is judged by
    /// how the record came. Delivered in its item's order (a DynamoDB stream), nothing later
    /// of the user has been applied: the deletion is of the user's previous incarnation, within
    /// the same second, and the write is tried again until the tombstone is collected. Else
    /// (Kinesis, an operator's resend) the deletion is a later change: a duplicate.
    pub async fn create(
        &self,
        user: &User,
        version: DocumentVersion,
        input: &RecordInput,
    ) -> Result<RecordOutcome, RecordError> {
        loop {
            match self.upsert(user, version).await? {
                RecordOutcome::Duplicate if !self.exists(&user.user_id).await? => {
                    if !input.delivered_in_order() {
                        return Ok(RecordOutcome::Duplicate);
                    }
                    if !input.time.can_start() {
                        return Err(RecordError::Retryable(format!(
                            "user {} was deleted and created again within one second, at a \
                             version no higher than the deleted one's; the index still remembers \
                             the deletion (index.gc_deletes) and refuses version {}",
                            user.user_id, user.version
                        )));
                    }
                    tracing::debug!(user_id = %user.user_id, "waiting for a deleted document's tombstone to be collected");
                    tokio::time::sleep(TOMBSTONE_POLL).await;
                }
                outcome => return Ok(outcome),
            }
        }
    }

    /// Deletes the document of `user` at `version` (see [`DocumentVersion::of_deletion`]).
    pub async fn delete(
        &self,
        user: &User,
        version: DocumentVersion,
    ) -> Result<RecordOutcome, RecordError> {
        let url = self.document_url(&user.user_id, version)?;
        let status = self.send(Method::DELETE, url, Vec::new()).await?;
        outcome("delete", status, true)
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Vec<u8>,
    ) -> Result<(StatusCode, String), RecordError> {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Signing::SigV4 {
            credentials,
            region,
            service,
        } = &self.signing
        {
            headers.extend(
                sigv4_headers(credentials, region, service, &method, &url, &headers, &body).await?,
            );
        }
        let mut request = self.http.request(method, url.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.map_err(|e| {
            RecordError::retryable(format!(
                "search request to {}: {}",
                url.path(),
                fanout_core::error_chain(&e)
            ))
        })?;
        let status = response.status();
        // The body explains an error; keep a bounded piece of it.
        let text = response.text().await.unwrap_or_default();
        Ok((status, text.chars().take(500).collect()))
    }
}

fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
}

async fn sigv4_headers(
    credentials: &SharedCredentialsProvider,
    region: &str,
    service: &str,
    method: &Method,
    url: &Url,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<(String, String)>, RecordError> {
    let credentials = credentials
        .provide_credentials()
        .await
        .map_err(|e| RecordError::retryable(format!("loading AWS credentials: {e}")))?;
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    // OpenSearch Serverless requires the payload hash header; the managed service accepts it.
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| RecordError::permanent(format!("SigV4 parameters: {e}")))?
        .into();
    let signable = SignableRequest::new(
        method.as_str(),
        url.as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| RecordError::permanent(format!("SigV4 request: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| RecordError::permanent(format!("SigV4 signing: {e}")))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

/// Classifies the search response of one document request.
pub fn outcome(
    action: &str,
    (status, body): (StatusCode, String),
    delete: bool,
) -> Result<RecordOutcome, RecordError> {
    if status.is_success() {
        return Ok(RecordOutcome::Done);
    }
    if status == StatusCode::CONFLICT {
        tracing::debug!(action, "search document already at this or a newer version");
        return Ok(RecordOutcome::Duplicate);
    }
    if delete && status == StatusCode::NOT_FOUND {
        return Ok(RecordOutcome::Done);
    }
    let reason = format!("search {action} answered {status}: {body}");
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(RecordError::Retryable(reason))
    } else if status.is_client_error() {
        Err(RecordError::Permanent(reason))
    } else {
        Err(RecordError::Retryable(reason))
    }
}

/// Keeps the index in step.
#[derive(Debug, Clone)]
pub struct SearchWarm {
    index: SearchIndex,
}

impl SearchWarm {
    pub fn new(index: SearchIndex) -> Self {
        SearchWarm { index }
    }

    pub fn from_config(
        aws: &aws_config::SdkConfig,
        config: &SearchWarmConfig,
    ) -> Result<(BatchProcessor, Self), SearchSetupError> {
        let handler = SearchWarm::new(SearchIndex::from_config(aws, config)?);
        Ok((config.consumer.processor(CONSUMER, aws), handler))
    }
}

/// Whether the index holds an item's current version.
#[derive(Debug, Clone)]
pub struct SearchCheck {
    index: SearchIndex,
}

impl SearchCheck {
    /// The check of the documents in `index`.
    pub fn new(index: SearchIndex) -> Self {
        SearchCheck { index }
    }

    pub fn from_config(
        aws: &aws_config::SdkConfig,
        config: &SearchWarmConfig,
    ) -> Result<Self, SearchSetupError> {
        Ok(SearchCheck::new(SearchIndex::from_config(aws, config)?))
    }
}

impl EffectCheck for SearchCheck {
    /// Made when the document holds the item's current `version`; any other (older, or of an
    /// earlier incarnation of a re-created user) is behind.
    async fn check(&self, user: &User) -> Result<EffectState, RecordError> {
        Ok(match self.index.document(&user.user_id).await? {
            None => EffectState::Missing {
                what: "no search document".to_owned(),
            },
            Some(source) => match source["version"].as_u64() {
                Some(have) if have == user.version => EffectState::Made,
                have => EffectState::Behind {
                    have: have.unwrap_or(0),
                    want: user.version,
                },
            },
        })
    }
}

impl RecordHandler for SearchWarm {
    async fn handle(&self, input: RecordInput) -> Result<RecordOutcome, RecordError> {
        let record = &input.record;
        let change = Change::<User>::from_record(record)?;
        match &change {
            Change::Insert { .. } => {
                let user = change.require_new(record)?;
                let version = DocumentVersion::of_write(input.order, input.source, user.version)?;
                self.index.create(user, version, &input).await
            }
            Change::Modify { .. } => {
                let user = change.require_new(record)?;
                let version = DocumentVersion::of_write(input.order, input.source, user.version)?;
                self.index.upsert(user, version).await
            }
            Change::Remove { .. } => {
                let user = change.require_old(record)?;
                let version =
                    DocumentVersion::of_deletion(input.order, input.source, user.version)?;
                self.index.delete(user, version).await
            }
        }
    }
}
