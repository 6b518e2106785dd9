//! search-warm: keeps the OpenSearch `users` index in step with the `Users` table.
//!
//! Insert and modify upsert the user's document, remove deletes it, through the document API
//! with `version_type=external`: the item's `version` is the document version (a delete uses
//! `version + 1`, the removal being the next event after the last write). OpenSearch refuses a
//! write whose version is not newer with `409`, so stale and repeated writes are no-ops and
//! the index deduplicates by itself: no ledger entry.
//!
//! - `https://` endpoints are Amazon OpenSearch Service: requests are SigV4-signed with the
//!   function's credentials (service `es`, or `SEARCH_SIGNING_SERVICE=aoss` for Serverless).
//! - `http://` is only accepted for a loopback endpoint (local development and tests).
//!
//! Responses: 2xx is done; 409 is a duplicate; 404 on delete is done (nothing to delete);
//! 429 and 5xx and transport errors are retryable; any other 4xx (a mapping error, say) can
//! never succeed and is parked.
//!
//! A user deleted and re-created starts again at a low `version`, while the index remembers
//! the deletion's version for `index.gc_deletes` (60 s by default): the new user's first write
//! is refused with 409 although no document exists. So a 409 on an insert whose document is
//! absent is not a duplicate: the write is tried again, within the record's time, until the
//! tombstone is collected, and else fails as retryable (never counted as done).

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use fanout_core::{
    BatchProcessor, Change, ConfigError, ConsumerConfig, EffectCheck, EffectState, Env,
    RecordError, RecordHandler, RecordInput, RecordOutcome, StreamView, TimeBudget, User,
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
}

impl<'a> UserDocument<'a> {
    pub fn of(user: &'a User) -> Self {
        UserDocument {
            user_id: &user.user_id,
            email: user.email.as_str(),
            name: user.name.as_deref(),
            plan: user.plan.as_str(),
            updated_at: &user.updated_at,
        }
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

    fn document_url(&self, user_id: &str, version: u64) -> Result<Url, RecordError> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| RecordError::permanent("search endpoint cannot be a base URL"))?
            .pop_if_empty()
            .extend([self.index.as_str(), "_doc", user_id]);
        url.query_pairs_mut()
            .append_pair("version", &version.to_string())
            .append_pair("version_type", "external");
        Ok(url)
    }

    /// Indexes `user` at its version.
    pub async fn upsert(&self, user: &User) -> Result<RecordOutcome, RecordError> {
        let body = serde_json::to_vec(&UserDocument::of(user))
            .map_err(|e| RecordError::permanent(format!("serializing document: {e}")))?;
        let url = self.document_url(&user.user_id, user.version)?;
        let status = self.send(Method::PUT, url, body).await?;
        outcome("index", status, false)
    }

    /// Whether a live document of `user_id` exists (a deleted one's tombstone does not count).
    pub async fn exists(&self, user_id: &str) -> Result<bool, RecordError> {
        Ok(self.document_version(user_id).await?.is_some())
    }

    /// The version of the live document of `user_id`, if there is one.
    pub async fn document_version(&self, user_id: &str) -> Result<Option<u64>, RecordError> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| RecordError::permanent("search endpoint cannot be a base URL"))?
            .pop_if_empty()
            .extend([self.index.as_str(), "_doc", user_id]);
        let (status, body) = self.send(Method::GET, url, Vec::new()).await?;
        match status {
            StatusCode::OK => serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|doc| doc["_version"].as_u64())
                .map(Some)
                .ok_or_else(|| {
                    RecordError::Retryable("search get answered 200 without a _version".to_owned())
                }),
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(RecordError::Retryable(format!(
                "search get answered {other}: {body}"
            ))),
        }
    }

    /// Indexes a user that was just created: like [`SearchIndex::upsert`], but a 409 with no
    /// live document is the tombstone of an earlier incarnation, tried again until collected.
    pub async fn create(
        &self,
        user: &User,
        time: &TimeBudget,
    ) -> Result<RecordOutcome, RecordError> {
        loop {
            match self.upsert(user).await? {
                RecordOutcome::Duplicate if !self.exists(&user.user_id).await? => {
                    if !time.can_start() {
                        return Err(RecordError::Retryable(format!(
                            "user {} was deleted and created again; the index still remembers the \
                             deletion (index.gc_deletes) and refuses version {}",
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

    /// Deletes the document of `user`, as the event after its last version.
    pub async fn delete(&self, user: &User) -> Result<RecordOutcome, RecordError> {
        let url = self.document_url(&user.user_id, user.version.saturating_add(1))?;
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
    pub fn from_config(
        aws: &aws_config::SdkConfig,
        config: &SearchWarmConfig,
    ) -> Result<Self, SearchSetupError> {
        Ok(SearchCheck {
            index: SearchIndex::from_config(aws, config)?,
        })
    }
}

impl EffectCheck for SearchCheck {
    async fn check(&self, user: &User) -> Result<EffectState, RecordError> {
        Ok(match self.index.document_version(&user.user_id).await? {
            None => EffectState::Missing {
                what: "no search document".to_owned(),
            },
            Some(have) if have < user.version => EffectState::Behind {
                have,
                want: user.version,
            },
            Some(_) => EffectState::Made,
        })
    }
}

impl RecordHandler for SearchWarm {
    async fn handle(&self, input: RecordInput) -> Result<RecordOutcome, RecordError> {
        let record = &input.record;
        let change = Change::<User>::from_record(record)?;
        match &change {
            Change::Insert { .. } => {
                self.index
                    .create(change.require_new(record)?, &input.time)
                    .await
            }
            Change::Modify { .. } => self.index.upsert(change.require_new(record)?).await,
            Change::Remove { .. } => self.index.delete(change.require_old(record)?).await,
        }
    }
}
