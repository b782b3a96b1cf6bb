//! Typed async client for `/api/v1` (reqwest with rustls): bearer token, optional custom CA,
//! `If-Match` on updates, errors that keep the server's status and error body, and retries of
//! answers that mean "not now" (429, 503: honouring `Retry-After`) and of transport failures
//! that cannot have changed anything, within [`ClientConfig::retry_for`].

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ErrorBody, ErrorCode, ErrorDetail};
use crate::ids::{AgentGroupId, EndpointId, ExporterBindingId, PipelineId};
use crate::types::*;

/// How to reach the server.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://otaas.internal:8080` (no `/api/v1`).
    pub endpoint: String,
    /// Bearer token sent on every request.
    pub token: String,
    /// PEM of an extra CA to trust (for a self-signed server certificate).
    pub ca_cert_pem: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// How long one call may keep retrying a busy or briefly unavailable server (429, 503,
    /// connection failures) before it reports the last answer; zero disables retries.
    pub retry_for: Duration,
}

impl ClientConfig {
    pub fn new(endpoint: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            token: token.into(),
            ca_cert_pem: None,
            timeout: Duration::from_secs(30),
            retry_for: DEFAULT_RETRY_FOR,
        }
    }
}

/// Default of [`ClientConfig::retry_for`]: long enough to ride out a throttled burst of a large
/// plan or a server restart, short enough that a dead server is reported while someone waits.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(300);

/// Errors from the client. `Api` keeps the server's status and error body so callers can tell
/// 404 from 409 from 422 (see the `is_*` helpers).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid client configuration: {0}")]
    Config(String),
    #[error("request to otaas failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("otaas answered {status}: {} ({}){}", .error.message, .error.code,
        .error.field.as_ref().map(|f| format!(" at {f}")).unwrap_or_default())]
    Api { status: u16, error: ErrorDetail },
    #[error("decoding otaas response ({status}): {message}")]
    Decode { status: u16, message: String },
    /// The server stayed busy or unreachable for the whole retry budget; `last` is its last
    /// answer (or the last transport error).
    #[error("{what} {method} {path}: gave up after {attempts} attempts over {}s: {last}",
        .waited.as_secs())]
    GaveUp {
        what: &'static str,
        method: String,
        path: String,
        attempts: u32,
        waited: Duration,
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// HTTP status when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Decode { status, .. } => Some(*status),
            ClientError::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }
    /// The server's error code when it sent an error body.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { error, .. } => Some(error.code),
            ClientError::GaveUp { last, .. } => last.code(),
            _ => None,
        }
    }
    /// The offending field the server named, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => error.field.as_deref(),
            ClientError::GaveUp { last, .. } => last.field(),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }
    pub fn is_unprocessable(&self) -> bool {
        self.status() == Some(422)
    }
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// Whether the request failed because the server's TLS certificate was not accepted
    /// (issued by a CA the client does not trust, for another name, expired): the remedy is
    /// the client's CA bundle (`ca_cert_pem`), not a retry.
    pub fn is_untrusted_certificate(&self) -> bool {
        self.certificate_error().is_some()
    }

    /// The TLS library's reason when the server's certificate was refused (e.g. `invalid peer
    /// certificate: UnknownIssuer`).
    pub fn certificate_error(&self) -> Option<String> {
        let err = match self {
            ClientError::Transport(err) => err,
            ClientError::GaveUp { last, .. } => return last.certificate_error(),
            _ => return None,
        };
        match tls_error(err) {
            Some(tls @ rustls::Error::InvalidCertificate(_)) => Some(tls.to_string()),
            _ => None,
        }
    }
}

/// The TLS library's error behind a transport failure, if TLS is what failed.
fn tls_error(err: &reqwest::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An io::Error's `source()` skips the error it wraps: step into that one instead.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// Page size the client asks for when walking a list (servers lower it to their maximum).
pub const PAGE_LIMIT: usize = 1000;

/// A typed client; cheap to clone (shares its connection pool).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    retry_for: Duration,
    /// Shared by clones: one provider process refreshes through one snapshot per kind.
    snapshots: std::sync::Arc<crate::snapshot::Snapshots>,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .user_agent(concat!("otaas-api/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_cert_pem {
            // A bundle may hold several CAs; text without any certificate is a mistake the
            // user should hear about now, not as an opaque TLS failure later.
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| ClientError::Config(format!("ca_cert_pem: {e}")))?;
            if certs.is_empty() {
                return Err(ClientError::Config(
                    "ca_cert_pem holds no PEM certificate".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let base = config.endpoint.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "endpoint must start with http:// or https://, got {base:?}"
            )));
        }
        Ok(Self {
            http: builder.build()?,
            base,
            token: config.token,
            retry_for: config.retry_for,
            snapshots: Default::default(),
        })
    }

    /// `GET /healthz` (no token), bounded to 10 s: checks that the server is reachable and,
    /// over https, that its certificate is trusted.
    pub async fn probe(&self) -> Result<(), ClientError> {
        let resp = self
            .http
            .get(format!("{}/healthz", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        match resp.status().as_u16() {
            200 => Ok(()),
            status => Err(ClientError::Api {
                status,
                error: ErrorDetail {
                    code: ErrorCode::Other,
                    message: "health check failed".into(),
                    field: None,
                    missing_components: Vec::new(),
                    unsupported_signals: Vec::new(),
                },
            }),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.base, path)
    }

    /// One call: the request, retried while the server says "not now" (see [`Retry`]) and the
    /// budget lasts, then the answer decoded.
    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
        if_match: Option<i64>,
    ) -> Result<Option<T>, ClientError> {
        // Serialised once: every attempt sends the same bytes.
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Config(format!("encoding the request body: {e}")))?;
        let started = tokio::time::Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = self
                .attempt(method.clone(), path, query, body.as_deref(), if_match)
                .await;
            let (what, wait) = match Retry::of(&outcome, &method, attempts) {
                Some(r) => r,
                None => return outcome.and_then(decode),
            };
            let waited = started.elapsed();
            if waited + wait > self.retry_for {
                let last = Box::new(match outcome {
                    Ok(answer) => error_of(answer.status, &answer.bytes),
                    Err(e) => e,
                });
                return Err(if attempts == 1 {
                    *last
                } else {
                    ClientError::GaveUp {
                        what,
                        method: method.to_string(),
                        path: format!("/api/v1{path}"),
                        attempts,
                        waited,
                        last,
                    }
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        if_match: Option<i64>,
    ) -> Result<Answer, ClientError> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(body) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        if let Some(rev) = if_match {
            req = req.header("If-Match", rev.to_string());
        }
        let resp = req.send().await?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await?;
        Ok(Answer {
            status,
            retry_after,
            bytes,
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send::<(), T>(Method::GET, path, &[], None, None)
            .await?
            .ok_or_else(|| empty_body(200))
    }

    /// One page of the list at `path` (`GET /api/v1{path}?...&limit=&cursor=`): the items and
    /// the `next_cursor` to pass for the page after it (`None` on the last page). `limit`
    /// `None` takes the server's default page size.
    pub async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<List<T>, ClientError> {
        let limit = limit.map(|l| l.to_string());
        let mut q = query.to_vec();
        if let Some(l) = &limit {
            q.push(("limit", l));
        }
        if let Some(c) = cursor {
            q.push(("cursor", c));
        }
        self.send::<(), List<T>>(Method::GET, path, &q, None, None)
            .await?
            .ok_or_else(|| empty_body(200))
    }

    /// Every item of the list at `path`, walking its pages in id order with the largest pages
    /// the server serves (it lowers [`PAGE_LIMIT`] to its own maximum): a list of up to 1,000
    /// objects is one request. Each object that exists throughout the walk comes exactly
    /// once (see the server's `paging.rs`).
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ClientError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page: List<T> = self
                .page(path, query, Some(PAGE_LIMIT), cursor.as_deref())
                .await?;
            items.extend(page.items);
            match page.next_cursor {
                None => return Ok(items),
                // A server that hands back the cursor it was given would keep us here forever.
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(ClientError::Decode {
                        status: 200,
                        message: format!(
                            "GET /api/v1{path}: the server answered the same next_cursor twice"
                        ),
                    });
                }
                Some(next) => cursor = Some(next),
            }
        }
    }

    async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ClientError> {
        self.list_all(path, query).await
    }

    async fn find<T: DeserializeOwned>(
        &self,
        path: &str,
        name: &str,
    ) -> Result<Option<T>, ClientError> {
        Ok(self.list(path, &[("name", name)]).await?.into_iter().next())
    }

    async fn write<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        if_match: Option<i64>,
    ) -> Result<T, ClientError> {
        self.send(method, path, &[], Some(body), if_match)
            .await?
            .ok_or_else(|| empty_body(200))
    }

    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send::<(), serde_json::Value>(Method::DELETE, path, &[], None, None)
            .await
            .map(|_| ())
    }
}

/// A server's answer before decoding.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    bytes: bytes::Bytes,
}

/// Decodes an answer: the value for 2xx (none for 204), the server's error otherwise.
fn decode<T: DeserializeOwned>(answer: Answer) -> Result<Option<T>, ClientError> {
    let Answer { status, bytes, .. } = answer;
    if status.is_success() {
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        return serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::Decode {
                status: status.as_u16(),
                message: e.to_string(),
            });
    }
    Err(error_of(status, &bytes))
}

/// The server's error body, or its first bytes when it sent no JSON error (a proxy's page).
fn error_of(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            error: body.error,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            error: ErrorDetail {
                code: ErrorCode::Other,
                message: String::from_utf8_lossy(bytes).chars().take(200).collect(),
                field: None,
                missing_components: Vec::new(),
                unsupported_signals: Vec::new(),
            },
        },
    }
}

/// When a failed attempt is worth repeating, and after how long.
///
/// - 429 and 503: the server did not act on the request (rate limit, admission, a database
///   outage rolled back), so any method is repeated; its `Retry-After` is honoured.
/// - A connection that could not be opened: nothing was sent, so any method is repeated;
///   unless TLS refused it, which no retry mends.
/// - Other transport failures (reset, timeout mid-request) may have reached the server: only
///   idempotent methods (GET, PUT, DELETE) are repeated; a POST is reported as it failed.
struct Retry;

impl Retry {
    /// `Some((what, wait))` to retry; `what` names the condition for the final diagnostic.
    fn of(
        outcome: &Result<Answer, ClientError>,
        method: &Method,
        attempts: u32,
    ) -> Option<(&'static str, Duration)> {
        let (what, retry_after) = match outcome {
            Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS => {
                ("otaas kept throttling (429)", a.retry_after)
            }
            Ok(a) if a.status == StatusCode::SERVICE_UNAVAILABLE => {
                ("otaas stayed unavailable (503)", a.retry_after)
            }
            Ok(_) => return None,
            // A TLS failure (an untrusted certificate, a handshake the server refuses) is a
            // setting to fix, not a moment to wait out.
            Err(ClientError::Transport(e)) if tls_error(e).is_some() => return None,
            Err(ClientError::Transport(e)) if e.is_connect() => {
                ("otaas could not be reached", None)
            }
            Err(ClientError::Transport(e))
                if (e.is_timeout() || e.is_request())
                    && matches!(*method, Method::GET | Method::PUT | Method::DELETE) =>
            {
                ("the connection to otaas kept failing", None)
            }
            Err(_) => return None,
        };
        let wait = retry_after.unwrap_or_else(|| backoff(attempts));
        // The server's hint is a floor; a little jitter keeps many callers from waking together.
        Some((what, wait + jitter(wait / 10 + Duration::from_millis(50))))
    }
}

/// 250 ms doubling per attempt, at most 8 s.
fn backoff(attempts: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempts.saturating_sub(1).min(5)))
        .min(Duration::from_secs(8))
}

/// A pseudo-random duration in `[0, max)`: the clock's nanoseconds are random enough to spread
/// concurrent retries, and need no generator state.
fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let max_ns = max.as_nanos().max(1) as u64;
    Duration::from_nanos(u64::from(nanos) % max_ns)
}

fn empty_body(status: u16) -> ClientError {
    ClientError::Decode {
        status,
        message: "empty response body".into(),
    }
}

/// The 404 a server would answer for an object that is not there (for snapshot reads).
fn not_found(route: &str, id: &str) -> ClientError {
    ClientError::Api {
        status: 404,
        error: ErrorDetail {
            code: ErrorCode::NotFound,
            message: format!("{} {id} not found", route.trim_start_matches('/')),
            field: None,
            missing_components: Vec::new(),
            unsupported_signals: Vec::new(),
        },
    }
}

/// CRUD methods for one resource kind; `update_*` sends `If-Match` when a revision is given.
macro_rules! crud {
    ($path:literal, $id:ty, $spec:ty, $obj:ty, $slot:ident,
     $create:ident, $list:ident, $get:ident, $read:ident, $find:ident, $update:ident, $delete:ident) => {
        impl Client {
            #[doc = concat!("`POST /api/v1", $path, "`")]
            pub async fn $create(&self, spec: &$spec) -> Result<$obj, ClientError> {
                let written = self.write(Method::POST, $path, spec, None).await;
                self.snapshots.invalidate();
                written
            }
            #[doc = concat!("The object as `GET /api/v1", $path, "/{id}` would answer, from this \
                client's snapshot of `GET /api/v1", $path, "` (one list request per kind until \
                the client's next write; see `snapshot.rs`). A missing object is a 404 error.")]
            pub async fn $read(&self, id: $id) -> Result<$obj, ClientError> {
                let generation = self.snapshots.generation();
                self.snapshots
                    .$slot
                    .get(generation, id, |o: &$obj| o.id, || self.$list())
                    .await?
                    .ok_or_else(|| not_found(concat!($path, "/{id}"), &id.to_string()))
            }
            #[doc = concat!("`GET /api/v1", $path, "`")]
            pub async fn $list(&self) -> Result<Vec<$obj>, ClientError> {
                self.list($path, &[]).await
            }
            #[doc = concat!("`GET /api/v1", $path, "/{id}`")]
            pub async fn $get(&self, id: $id) -> Result<$obj, ClientError> {
                self.get(&format!(concat!($path, "/{}"), id)).await
            }
            #[doc = concat!("`GET /api/v1", $path, "?name=`: `None` when no object has that name")]
            pub async fn $find(&self, name: &str) -> Result<Option<$obj>, ClientError> {
                self.find($path, name).await
            }
            #[doc = concat!("`PUT /api/v1", $path, "/{id}` with `If-Match: <revision>` when given")]
            pub async fn $update(
                &self,
                id: $id,
                spec: &$spec,
                if_match: Option<i64>,
            ) -> Result<$obj, ClientError> {
                let written = self
                    .write(
                        Method::PUT,
                        &format!(concat!($path, "/{}"), id),
                        spec,
                        if_match,
                    )
                    .await;
                self.snapshots.invalidate();
                written
            }
            #[doc = concat!("`DELETE /api/v1", $path, "/{id}`")]
            pub async fn $delete(&self, id: $id) -> Result<(), ClientError> {
                let deleted = self.delete(&format!(concat!($path, "/{}"), id)).await;
                self.snapshots.invalidate();
                deleted
            }
        }
    };
}

crud!(
    "/pipelines",
    PipelineId,
    PipelineSpec,
    Pipeline,
    pipelines,
    create_pipeline,
    list_pipelines,
    get_pipeline,
    read_pipeline,
    find_pipeline,
    update_pipeline,
    delete_pipeline
);
crud!(
    "/endpoints",
    EndpointId,
    EndpointSpec,
    Endpoint,
    endpoints,
    create_endpoint,
    list_endpoints,
    get_endpoint,
    read_endpoint,
    find_endpoint,
    update_endpoint,
    delete_endpoint
);
crud!(
    "/exporter-bindings",
    ExporterBindingId,
    ExporterBindingSpec,
    ExporterBinding,
    bindings,
    create_exporter_binding,
    list_exporter_bindings,
    get_exporter_binding,
    read_exporter_binding,
    find_exporter_binding,
    update_exporter_binding,
    delete_exporter_binding
);
crud!(
    "/agent-groups",
    AgentGroupId,
    AgentGroupSpec,
    AgentGroup,
    groups,
    create_agent_group,
    list_agent_groups,
    get_agent_group,
    read_agent_group,
    find_agent_group,
    update_agent_group,
    delete_agent_group
);

impl Client {
    /// `GET /api/v1/agent-groups/{id}/config`: the group's current rendered collector YAML.
    pub async fn agent_group_config(&self, id: AgentGroupId) -> Result<GroupConfig, ClientError> {
        self.get(&format!("/agent-groups/{id}/config")).await
    }

    /// `GET /api/v1/agent-groups/{id}/config?revision=N`: the group's rendered collector YAML
    /// at `revision` (the current one when `None`).
    pub async fn agent_group_config_at(
        &self,
        id: AgentGroupId,
        revision: Option<i64>,
    ) -> Result<GroupConfig, ClientError> {
        match revision {
            Some(r) => {
                self.get(&format!("/agent-groups/{id}/config?revision={r}"))
                    .await
            }
            None => self.agent_group_config(id).await,
        }
    }

    /// `GET /api/v1/agent-groups/{id}/revisions/{rev}`: one revision with its redacted YAML.
    pub async fn agent_group_revision(
        &self,
        id: AgentGroupId,
        revision: i64,
    ) -> Result<GroupConfig, ClientError> {
        self.get(&format!("/agent-groups/{id}/revisions/{revision}"))
            .await
    }

    /// `GET /api/v1/agent-groups/{id}/revisions/{from}/diff/{to}`: a unified diff of two
    /// revisions' redacted YAML.
    pub async fn agent_group_diff(
        &self,
        id: AgentGroupId,
        from: i64,
        to: i64,
    ) -> Result<RevisionDiff, ClientError> {
        self.get(&format!("/agent-groups/{id}/revisions/{from}/diff/{to}"))
            .await
    }

    /// `GET /api/v1/agent-groups/{id}/revisions`: the group's config history, oldest first.
    pub async fn agent_group_revisions(
        &self,
        id: AgentGroupId,
    ) -> Result<Vec<GroupRevisionSummary>, ClientError> {
        self.list(&format!("/agent-groups/{id}/revisions"), &[])
            .await
    }

    /// `GET /api/v1/agent-groups/{id}/status`: where the group's rollout stands.
    pub async fn group_status(
        &self,
        id: AgentGroupId,
    ) -> Result<crate::status::GroupStatus, ClientError> {
        self.get(&format!("/agent-groups/{id}/status")).await
    }

    /// `POST /api/v1/agent-groups/{id}/rollout/pause`: stop advancing (agents keep what they run).
    pub async fn pause_rollout(
        &self,
        id: AgentGroupId,
    ) -> Result<crate::status::GroupStatus, ClientError> {
        self.rollout_action(id, "pause").await
    }

    /// `POST /api/v1/agent-groups/{id}/rollout/resume`: continue a paused rollout.
    pub async fn resume_rollout(
        &self,
        id: AgentGroupId,
    ) -> Result<crate::status::GroupStatus, ClientError> {
        self.rollout_action(id, "resume").await
    }

    /// `POST /api/v1/agent-groups/{id}/rollout/rollback`: send every agent back to the last
    /// good revision.
    pub async fn rollback(
        &self,
        id: AgentGroupId,
    ) -> Result<crate::status::GroupStatus, ClientError> {
        self.rollout_action(id, "rollback").await
    }

    async fn rollout_action(
        &self,
        id: AgentGroupId,
        action: &str,
    ) -> Result<crate::status::GroupStatus, ClientError> {
        let done = self
            .write(
                Method::POST,
                &format!("/agent-groups/{id}/rollout/{action}"),
                &serde_json::json!({}),
                None,
            )
            .await;
        // A rollback moves the group's revision: later reads must not serve the old one.
        self.snapshots.invalidate();
        done
    }

    /// `POST /api/v1/tokens`: mint an agent enrollment token (shown once).
    pub async fn create_token(&self, req: &TokenCreate) -> Result<TokenCreated, ClientError> {
        self.write(Method::POST, "/tokens", req, None).await
    }

    /// `DELETE /api/v1/tokens/{id}`: revoke a token (idempotent).
    pub async fn revoke_token(&self, id: crate::TokenId) -> Result<(), ClientError> {
        self.delete(&format!("/tokens/{id}")).await
    }
}

impl Client {
    /// `GET /api/v1/agents` with the query's filters.
    pub async fn list_agents(
        &self,
        query: &crate::agents::AgentQuery,
    ) -> Result<Vec<crate::agents::Agent>, ClientError> {
        let pairs = query.to_pairs();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.list("/agents", &refs).await
    }

    /// `POST /api/v1/component-check`: would this pipeline or agent group, as written, use a
    /// component type some agent it reaches lacks? `Err` with code `missing_components` if so.
    pub async fn component_check(
        &self,
        check: &crate::types::ComponentCheck,
    ) -> Result<crate::types::ComponentCheckResult, ClientError> {
        self.write(Method::POST, "/component-check", check, None)
            .await
    }

    /// `POST /api/v1/config-preview`: the collector config an object renders, and the groups
    /// the write would reach.
    pub async fn config_preview(
        &self,
        preview: &crate::types::ConfigPreview,
    ) -> Result<crate::types::ConfigPreviewResult, ClientError> {
        self.write(Method::POST, "/config-preview", preview, None)
            .await
    }

    /// `GET /api/v1/agents/{id}` (id = instance uid in hex), with the redacted effective config.
    pub async fn get_agent(&self, id: &str) -> Result<crate::agents::Agent, ClientError> {
        self.get(&format!("/agents/{id}")).await
    }
}

impl Client {
    /// `GET /api/v1/audit`: every audit entry matching `query`, oldest first (admin tokens
    /// only).
    pub async fn list_audit(
        &self,
        query: &crate::audit::AuditQuery,
    ) -> Result<Vec<crate::audit::AuditEntry>, ClientError> {
        let pairs = query.to_pairs();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.list("/audit", &refs).await
    }

    /// `GET /api/v1/audit/export`: the matching entries as JSON Lines, as the server sent them.
    pub async fn export_audit(
        &self,
        query: &crate::audit::AuditQuery,
    ) -> Result<bytes::Bytes, ClientError> {
        let pairs = query.to_pairs();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = self
            .attempt(Method::GET, "/audit/export", &refs, None, None)
            .await?;
        if answer.status.is_success() {
            Ok(answer.bytes)
        } else {
            Err(error_of(answer.status, &answer.bytes))
        }
    }
}

impl Client {
    /// `GET /api/v1/insights`.
    pub async fn insights(&self) -> Result<crate::insights::FleetInsights, ClientError> {
        self.get("/insights").await
    }

    /// `GET /api/v1/discovered-pipelines`: the pipelines connected collectors run.
    pub async fn list_discovered_pipelines(
        &self,
    ) -> Result<Vec<crate::discovery::DiscoveredPipeline>, ClientError> {
        self.list("/discovered-pipelines", &[]).await
    }

    /// `GET /api/v1/discovered-pipelines/{id}`.
    pub async fn get_discovered_pipeline(
        &self,
        id: &str,
    ) -> Result<crate::discovery::DiscoveredPipeline, ClientError> {
        self.get(&format!("/discovered-pipelines/{id}")).await
    }

    /// `POST /api/v1/discovered-pipelines/{id}/adopt`: the adoption plan (`dry_run`), or the
    /// objects created.
    pub async fn adopt_discovered_pipeline(
        &self,
        id: &str,
        req: &crate::discovery::AdoptRequest,
    ) -> Result<crate::discovery::Adoption, ClientError> {
        let done = self
            .write(
                Method::POST,
                &format!("/discovered-pipelines/{id}/adopt"),
                req,
                None,
            )
            .await;
        if !req.dry_run {
            self.snapshots.invalidate();
        }
        done
    }
}
