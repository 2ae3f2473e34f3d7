//! HTTP plumbing shared by every route: request ids, credentials, path and body parsing, and
//! the one place where an error becomes a response.
//!
//! In lambda_http an `Err` is a failed invocation, not an HTTP error, so handlers always
//! answer `Ok(response)`; internal causes go to the log and never into a body.

use crate::audit::AuditRecord;
use crate::auth::{AuthError, Principal, Writer};
use crate::config::App;
use crate::domain::error_code::ErrorCode;
use crate::domain::idempotency::{Idempotency, IdempotencyKey};
use crate::domain::rotation::RotationError;
use crate::domain::secret::SecretError;
use crate::events::{Origin, Trigger};
use crate::store::StoreError;
use crate::vault::VaultError;
use futures::FutureExt;
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde::{Deserialize, Deserializer};
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;
use tracing::Instrument;

/// Management requests are small; anything larger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Sign and verify carry a webhook payload.
pub const MAX_PAYLOAD_BODY_BYTES: usize = 1024 * 1024;
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Secrets Manager frees version slots as versions age past 24 hours; AWS's own guidance is
/// one write per secret every 10 minutes, so that is when a retry can expect room.
pub const VERSION_QUOTA_RETRY_AFTER_SECONDS: u32 = 600;

/// An error as the client sees it, plus the cause that only the log sees. Its status comes
/// from its code ([`ErrorCode::http_status`]), the one table every native route uses.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds a client should wait before retrying (429 and 503 only); 1 when unset.
    pub retry_after: Option<u32>,
    cause: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            cause: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// Keeps `err` and its sources for the log line; the client never sees them.
    pub fn caused_by(mut self, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause = err.to_string();
        let mut source = err.source();
        while let Some(next) = source {
            cause.push_str(": ");
            cause.push_str(&next.to_string());
            source = next.source();
        }
        self.cause = Some(cause);
        self
    }

    fn internal() -> Self {
        Self::new(
            ErrorCode::Internal,
            "an internal error occurred; quote the request id when reporting it",
        )
    }
}

impl From<VaultError> for ApiError {
    fn from(err: VaultError) -> Self {
        let code = err.code();
        let message = match (&err, code) {
            (_, ErrorCode::NotFound) => "no endpoint with this id".to_owned(),
            (_, ErrorCode::AlreadyExists) => "an endpoint with this id already exists".to_owned(),
            (_, ErrorCode::Conflict) => "the endpoint changed while this request ran (another rotation won); nothing was changed by this request, retry it".to_owned(),
            (_, ErrorCode::Throttled) => "the secret store is throttling requests; retry after a short wait".to_owned(),
            (_, ErrorCode::Unavailable) => "the secret store is unavailable; retry later".to_owned(),
            (VaultError::Store(StoreError::TooLarge(bytes)), _) => format!("the endpoint's record would be {bytes} bytes, over the secret store's 65,536-byte limit"),
            (VaultError::Rotation(RotationError::TooManyValidSecrets { oldest_expires_at }), _) => format!(
                "{} older secrets are still valid, the most this endpoint keeps; the oldest expires at {}. Rotate after that, or with grace_period_seconds 0",
                crate::domain::endpoint::MAX_PREVIOUS_SECRETS,
                oldest_expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            (VaultError::WriteBudget { retry_after }, _) => format!("this endpoint's keyring was written too often: a keyring takes {} writes per 24 hours, shared by the endpoints in it. Retry after {retry_after} seconds", crate::vault::keyrings::WRITE_BUDGET),
            (_, ErrorCode::VersionQuotaExceeded) => format!("this endpoint was written too often: its secret store keeps about 100 versions per 24 hours. Retry after {VERSION_QUOTA_RETRY_AFTER_SECONDS} seconds"),
            (_, ErrorCode::InvalidRequest) => match &err {
                VaultError::Store(StoreError::InvalidCursor) => "the cursor is not one this API returned; start again without a cursor".to_owned(),
                other => other.to_string(),
            },
            (_, ErrorCode::IdempotencyKeyReused) => "this Idempotency-Key was already used with a different request; use a new key for a new request".to_owned(),
            _ => return Self::internal().caused_by(&err),
        };
        let api = Self::new(code, message).caused_by(&err);
        match (&err, code) {
            (VaultError::WriteBudget { retry_after }, _) => api.with_retry_after(*retry_after),
            (_, ErrorCode::VersionQuotaExceeded) => {
                api.with_retry_after(VERSION_QUOTA_RETRY_AFTER_SECONDS)
            }
            _ => api,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing => Self::new(
                ErrorCode::Unauthorized,
                "no API key: send \"Authorization: Bearer <api_key>\" or \"X-API-Key: <api_key>\"",
            ),
            AuthError::Invalid => Self::new(
                ErrorCode::Unauthorized,
                "the API key is not valid (unknown, malformed or revoked)",
            ),
            AuthError::Forbidden => Self::new(
                ErrorCode::Forbidden,
                "this API key's role may only read; creating, rotating and deleting need an owner or admin key",
            ),
            AuthError::Store(err) => err.into(),
        }
    }
}

impl From<SecretError> for ApiError {
    fn from(err: SecretError) -> Self {
        VaultError::Secret(err).into()
    }
}

/// How a contract renders an error: the status and JSON body its clients expect, from the
/// error and the request id.
pub type ErrorShape = fn(&ApiError, &str) -> (StatusCode, serde_json::Value);

/// The native API's error shape: `{"error": {"code", "message", "request_id"}}`.
pub fn native_error(err: &ApiError, request_id: &str) -> (StatusCode, serde_json::Value) {
    (
        err.status(),
        serde_json::json!({"error": {"code": err.code.as_str(), "message": err.message, "request_id": request_id}}),
    )
}

/// A request header's value, if present and readable.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A successful answer: a status and an optional JSON body.
pub struct Reply {
    status: StatusCode,
    body: Option<serde_json::Value>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: StatusCode, body: &impl Serialize) -> Result<Self, ApiError> {
        let body = serde_json::to_value(body).map_err(|e| ApiError::internal().caused_by(&e))?;
        Ok(Self {
            status,
            body: Some(body),
            headers: Vec::new(),
        })
    }

    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: None,
            headers: Vec::new(),
        }
    }

    /// Adds a response header (for example `cache-control`).
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// One request in flight: its id, route and caller, for the response and the log line.
pub struct Call {
    route: &'static str,
    request_id: String,
    started: Instant,
    principal: OnceLock<Principal>,
    audit: Mutex<Option<AuditDraft>>,
}

/// What the audit record of this call will say, filled in as the call goes.
struct AuditDraft {
    action: &'static str,
    endpoint_id: Option<String>,
    secret_version_ids: Vec<String>,
    replayed: bool,
}

/// A route: its name (the function's, for the log line and the audit record) and how its
/// contract renders an error.
#[derive(Clone, Copy)]
pub struct Route {
    pub name: &'static str,
    pub shape: ErrorShape,
    /// What the events of this route's writes name as their trigger.
    pub trigger: Trigger,
}

impl Route {
    /// A route of the native API, with its error shape.
    pub const fn native(name: &'static str) -> Self {
        Self {
            name,
            shape: native_error,
            trigger: Trigger::Api,
        }
    }

    /// A route of a seed contract, with that contract's error shape.
    pub const fn contract(name: &'static str, shape: ErrorShape) -> Self {
        Self {
            name,
            shape,
            trigger: Trigger::Contract,
        }
    }
}

/// Runs one request of `route`: the only place that opens a request's span (its request id
/// and route, which every log line inherits), writes its log line and audit record, and turns
/// the handler's outcome into a response. Handlers only answer `Result<Reply, ApiError>`.
pub async fn respond(
    app: &App,
    req: Request,
    route: Route,
    handler: impl AsyncFnOnce(&Call, &Request) -> Result<Reply, ApiError>,
) -> Result<Response<Body>, lambda_http::Error> {
    let call = Call::begin(&req, route.name);
    let span = tracing::info_span!("request", request_id = %call.request_id, route = route.name);
    let origin = Origin {
        trigger: route.trigger,
        route: Some(route.name),
        request_id: call.request_id.clone(),
    };
    // A panic is a bug, but its caller still gets the route's documented 500 with a request
    // id, and the log line names the panic; otherwise API Gateway would answer a bare 502.
    let outcome = AssertUnwindSafe(origin.scope(handler(&call, &req)))
        .catch_unwind()
        .instrument(span.clone())
        .await
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ApiError::internal().caused_by(&Panicked(message)))
        });
    Ok(span.in_scope(|| call.finish(app, outcome, route.shape)))
}

#[derive(Debug, thiserror::Error)]
#[error("the handler panicked: {0}")]
struct Panicked(String);

impl Call {
    fn begin(req: &Request, route: &'static str) -> Self {
        Self {
            route,
            request_id: request_id(req),
            started: Instant::now(),
            principal: OnceLock::new(),
            audit: Mutex::new(None),
        }
    }

    /// Marks this call as an audited action; its record is written when it finishes,
    /// whatever the outcome.
    pub fn audit(&self, action: &'static str, endpoint_id: Option<&str>) {
        *self.draft() = Some(AuditDraft {
            action,
            endpoint_id: endpoint_id.map(str::to_owned),
            secret_version_ids: Vec::new(),
            replayed: false,
        });
    }

    /// Records the secret versions the action touched, and whether it was a replay.
    pub fn audit_versions<'a>(&self, versions: impl IntoIterator<Item = &'a str>, replayed: bool) {
        if let Some(draft) = self.draft().as_mut() {
            draft.secret_version_ids = versions.into_iter().map(str::to_owned).collect();
            draft.replayed = replayed;
        }
    }

    fn draft(&self) -> std::sync::MutexGuard<'_, Option<AuditDraft>> {
        crate::domain::lock(&self.audit)
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Authenticates the caller from `Authorization: Bearer` or `X-API-Key`.
    pub async fn authenticate(&self, app: &App, req: &Request) -> Result<Principal, ApiError> {
        self.authenticate_key(app, api_key_header(req)).await
    }

    /// Authenticates the caller and requires an owner or admin: what every route that changes
    /// an endpoint or shows its secrets asks for.
    pub async fn writer(&self, app: &App, req: &Request) -> Result<Writer, ApiError> {
        self.writer_with_key(app, api_key_header(req)).await
    }

    /// [`Call::writer`] for a key taken from wherever the route's contract carries it.
    pub async fn writer_with_key(
        &self,
        app: &App,
        presented: Option<&str>,
    ) -> Result<Writer, ApiError> {
        let principal = self.authenticate_key(app, presented).await?;
        Ok(principal.writer().map_err(AuthError::from)?)
    }

    /// Authenticates an API key taken from wherever the route's contract carries it.
    pub async fn authenticate_key(
        &self,
        app: &App,
        presented: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let principal = app
            .auth
            .authenticate(presented.ok_or(AuthError::Missing)?)
            .await?;
        self.identify(principal.clone());
        Ok(principal)
    }

    /// Records who made the call, for its log line and audit record.
    pub fn identify(&self, principal: Principal) {
        let _ = self.principal.set(principal);
    }

    /// Turns the outcome into the response, an error in the route's contract's `shape`;
    /// writes the request's one log line and, for an audited action, its audit record (whose
    /// outcome is always the native error code, whatever the contract calls it).
    fn finish(
        self,
        app: &App,
        outcome: Result<Reply, ApiError>,
        shape: ErrorShape,
    ) -> Response<Body> {
        let (status, body, outcome_code, retry_after, extra_headers) = match outcome {
            Ok(reply) => (reply.status, reply.body, "success", None, reply.headers),
            Err(err) => {
                self.log_error(&err);
                let (status, body) = shape(&err, &self.request_id);
                (
                    status,
                    Some(body),
                    err.code.as_str(),
                    err.retry_after,
                    Vec::new(),
                )
            }
        };
        let principal = self.principal.get();
        let draft = self.draft().take();
        let replayed = draft.as_ref().is_some_and(|d| d.replayed);
        if let Some(draft) = draft {
            app.audit.record(&AuditRecord {
                tenant: principal.map(|p| p.tenant.to_string()),
                actor_key_id: principal.map(|p| p.key_id.to_string()),
                endpoint_id: draft.endpoint_id,
                secret_version_ids: draft.secret_version_ids,
                outcome: outcome_code.to_owned(),
                status: Some(status.as_u16()),
                replayed: draft.replayed,
                ..AuditRecord::new(app.clock.now(), self.request_id.clone(), draft.action)
            });
        }
        tracing::info!(
            route = self.route,
            status = status.as_u16(),
            tenant = principal.map(|p| p.tenant.as_str()),
            key_id = principal.map(|p| p.key_id.as_str()),
            duration_ms = self.started.elapsed().as_millis() as u64,
            "request finished"
        );
        let mut response = Response::builder().status(status);
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
            response = response.header(REQUEST_ID_HEADER, id);
        }
        if replayed {
            response = response.header("idempotent-replayed", "true");
        }
        for (name, value) in extra_headers {
            response = response.header(name, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            response = response.header("www-authenticate", "Bearer");
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            response = response.header("retry-after", retry_after.unwrap_or(1).to_string());
        }
        let built = match body {
            Some(body) => response
                .header("content-type", "application/json")
                .body(Body::Text(body.to_string())),
            None => response.body(Body::Empty),
        };
        built.unwrap_or_else(|_| {
            let mut fallback = Response::new(Body::Empty);
            *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
    }

    fn log_error(&self, err: &ApiError) {
        let cause = err.cause.as_deref().unwrap_or("");
        if err.status().is_server_error() {
            tracing::error!(
                route = self.route,
                code = err.code.as_str(),
                cause,
                "request failed"
            );
        } else {
            tracing::info!(route = self.route, code = err.code.as_str(), reason = %err.message, "request refused");
        }
    }
}

fn request_id(req: &Request) -> String {
    let from_gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    from_gateway
        .or_else(|| req.lambda_context_ref().map(|ctx| ctx.request_id.clone()))
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn api_key_header(req: &Request) -> Option<&str> {
    bearer_token(req).or_else(|| header(req, "x-api-key"))
}

/// The token of an `Authorization: Bearer <token>` header, if that is what it holds.
pub fn bearer_token(req: &Request) -> Option<&str> {
    let (scheme, token) = header(req, "authorization")?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// A path parameter, from API Gateway (or the `cargo lambda watch` router) or, when the event
/// carries none, matched from the end of the raw path against `template`.
pub fn path_param(req: &Request, name: &str, template: &str) -> Option<String> {
    if let Some(value) = req.path_parameters_ref().and_then(|p| p.first(name)) {
        return Some(value.to_owned());
    }
    let path = req.raw_http_path();
    let path = if path.is_empty() {
        req.uri().path()
    } else {
        path
    };
    let actual: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let wanted: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    if actual.len() < wanted.len() {
        return None;
    }
    let tail = &actual[actual.len() - wanted.len()..];
    let mut found = None;
    for (segment, pattern) in tail.iter().zip(&wanted) {
        if *pattern == format!("{{{name}}}") {
            found = Some((*segment).to_owned());
        } else if !(pattern.starts_with('{') || segment == pattern) {
            return None;
        }
    }
    found
}

pub fn query_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
}

/// Reads the JSON body, refusing more than `max_bytes`. An empty body reads as `{}` when
/// `empty_ok`.
pub fn json_value(
    req: &Request,
    empty_ok: bool,
    max_bytes: usize,
) -> Result<serde_json::Value, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    if bytes.len() > max_bytes {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("the request body is over {max_bytes} bytes"),
        ));
    }
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        if !empty_ok {
            return Err(ApiError::invalid("this route needs a JSON body"));
        }
        b"{}"
    } else {
        bytes
    };
    strict_json(bytes).map_err(body_error)
}

/// Parses a JSON document, refusing an object that holds the same key twice at any depth.
/// serde_json keeps the last of duplicates, so `{"id": "a", "id": "b"}` would otherwise
/// create `b` while a proxy or a log reader sees `a`.
pub fn strict_json(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value.0)
}

/// A JSON value built by a visitor that refuses duplicate keys; otherwise what
/// `serde_json::Value` builds (the depth limit is the parser's own).
struct StrictValue(serde_json::Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<StrictValue, E> {
        Ok(StrictValue(serde_json::Number::from_f64(v).map_or(
            serde_json::Value::Null,
            serde_json::Value::Number,
        )))
    }

    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(v.into()))
    }

    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(v.into()))
    }

    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(serde_json::Value::Null))
    }

    fn visit_none<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(serde_json::Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<StrictValue, D::Error> {
        StrictValue::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictValue(serde_json::Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                // The key is not named: a key is caller text and could be anything.
                return Err(de::Error::custom("an object holds the same key twice"));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(StrictValue(serde_json::Value::Object(object)))
    }
}

/// Parses an already-read body into the route's request type.
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(body_error)
}

/// Parses the JSON body into the route's request type.
pub fn json_body<T: DeserializeOwned>(req: &Request, empty_ok: bool) -> Result<T, ApiError> {
    from_json(json_value(req, empty_ok, MAX_BODY_BYTES)?)
}

fn body_error(err: serde_json::Error) -> ApiError {
    ApiError::invalid(format!(
        "the body is not valid for this route: {}",
        redact_quoted(&err.to_string())
    ))
}

/// The request's `Idempotency-Key`, if any, bound to this route and body.
pub fn idempotency(
    req: &Request,
    route: &str,
    body: &serde_json::Value,
) -> Result<Option<Idempotency>, ApiError> {
    let Some(raw) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .and_then(|raw| IdempotencyKey::parse(raw).ok())
        .ok_or_else(|| {
            ApiError::invalid("Idempotency-Key must be 8 to 64 visible ASCII characters")
        })?;
    Ok(Some(Idempotency::new(key, route, body)))
}

/// serde_json quotes the offending value in some messages; a value could be a secret, so
/// quoted text is dropped before the message reaches a body or a log.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_redacted() {
        let message =
            r#"invalid type: string "whsec_c2VjcmV0", expected usize at line 1 column 30"#;
        let redacted = redact_quoted(message);
        assert!(!redacted.contains("whsec_"));
        assert!(redacted.contains("expected usize at line 1 column 30"));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for bad in [
            r#"{"id": "a", "id": "b"}"#,
            r#"{"a": {"x": 1, "y": 2, "x": 3}}"#,
            r#"[{"k": 1}, {"k": 1, "k": 1}]"#,
        ] {
            let err = strict_json(bad.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("same key twice"), "{err}");
        }
        let same = r#"{"a": [1, -2, 3.5, true, null, "s"], "b": {"a": 1}, "c": {}}"#;
        assert_eq!(
            strict_json(same.as_bytes()).unwrap(),
            serde_json::from_str::<serde_json::Value>(same).unwrap()
        );
        assert!(strict_json(b"{} x").is_err(), "trailing text");
    }

    #[test]
    fn path_params_fall_back_to_the_raw_path() {
        let req = Request::new(Body::Empty);
        let mut req = req;
        *req.uri_mut() =
            "http://localhost/lambda-url/rotate-secret/v1/endpoints/ep_1/secret/rotate"
                .parse()
                .unwrap();
        assert_eq!(
            path_param(&req, "id", "/v1/endpoints/{id}/secret/rotate").as_deref(),
            Some("ep_1")
        );
        assert_eq!(path_param(&req, "id", "/v1/endpoints/{id}"), None);
    }
}
