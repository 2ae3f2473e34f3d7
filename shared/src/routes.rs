//! The native API's routes, one public function per Lambda function. Each parses the request,
//! makes one vault call and shapes the response.

use crate::config::App;
use crate::endpoint::{
    EndpointPatch, EndpointRecord, EndpointStatus, GracePeriod, NewEndpoint, RequestConfig,
    RotationPolicy, SecretSource, SecretVersion, DEFAULT_VERSION, MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
};
use crate::http::{
    from_json, idempotency, json_value, path_param, query_param, ApiError, Call, Reply,
    MAX_BODY_BYTES, MAX_PAYLOAD_BODY_BYTES,
};
use crate::ids::EndpointId;
use crate::secret::{SecretFormat, SecretSpec, WebhookSecret};
use crate::signature::{self, DEFAULT_TOLERANCE_SECONDS, MAX_TOLERANCE_SECONDS};
use crate::vault::{AccountSecret, Rotation};
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use zeroize::Zeroizing;

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

/// `POST /v1/endpoints`
pub async fn create_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "create-endpoint");
    let outcome = async {
        call.audit("endpoint.create", None);
        let principal = call.authenticate(app, &req).await?;
        principal.require_write()?;
        let raw = json_value(&req, false, MAX_BODY_BYTES)?;
        let idempotency = idempotency(&req, "create-endpoint", &raw)?;
        let new = from_json::<CreateEndpointBody>(raw)?.validate()?;
        let written = app
            .vault
            .create_endpoint(&principal.tenant, new, idempotency.as_ref())
            .await?;
        let record = &written.record;
        call.audit("endpoint.create", Some(record.endpoint.id.as_str()));
        call.audit_versions([record.secret.version_id.as_str()], written.replayed);
        tracing::debug!(request_id = call.request_id(), endpoint = %record.endpoint.id, secret = %record.secret.value, "endpoint created");
        Reply::json(StatusCode::CREATED, &EndpointView::new(record, true, app))
    }
    .await;
    Ok(call.finish(app, outcome))
}

/// `GET /v1/endpoints/{id}`
pub async fn get_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "get-endpoint");
    let outcome = async {
        let principal = call.authenticate(app, &req).await?;
        let id = endpoint_id(path_param(&req, "id", "/v1/endpoints/{id}").as_deref())?;
        let stored = app.vault.get_endpoint(&principal.tenant, &id).await?;
        Reply::json(
            StatusCode::OK,
            &EndpointView::new(&stored.record, false, app),
        )
    }
    .await;
    Ok(call.finish(app, outcome))
}

/// `GET /v1/endpoints?limit=&cursor=`
pub async fn list_endpoints(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "list-endpoints");
    let outcome = async {
        let principal = call.authenticate(app, &req).await?;
        let limit = match query_param(&req, "limit") {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "limit must be a whole number from 1 to {MAX_PAGE_SIZE}"
                    ))
                })?,
        };
        // A cursor is checked against its tag before the store sees it (see
        // `store::decode_cursor`): one this API never issued for this tenant is 400.
        let cursor = query_param(&req, "cursor").filter(|c| !c.is_empty());
        let page = app
            .vault
            .list_endpoints(&principal.tenant, cursor, limit)
            .await?;
        let data: Vec<EndpointView> = page
            .endpoints
            .iter()
            .map(|record| EndpointView::new(record, false, app))
            .collect();
        Reply::json(
            StatusCode::OK,
            &serde_json::json!({"data": data, "next_cursor": page.next_cursor}),
        )
    }
    .await;
    Ok(call.finish(app, outcome))
}

/// `DELETE /v1/endpoints/{id}`
pub async fn delete_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "delete-endpoint");
    let outcome = async {
        // Audited from the start, so an attempt refused for its key or its id is on record too.
        let raw = path_param(&req, "id", "/v1/endpoints/{id}");
        call.audit("endpoint.delete", raw.as_deref());
        let principal = call.authenticate(app, &req).await?;
        principal.require_write()?;
        let id = changeable(endpoint_id(raw.as_deref())?)?;
        let deleted = app.vault.delete_endpoint(&principal.tenant, &id).await?;
        call.audit_versions(version_ids(&deleted, app), false);
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    }
    .await;
    Ok(call.finish(app, outcome))
}

/// `PATCH /v1/endpoints/{id}`: changes metadata and the rotation policy; never the secret.
pub async fn update_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "update-endpoint");
    let outcome = async {
        let raw = path_param(&req, "id", "/v1/endpoints/{id}");
        call.audit("endpoint.update", raw.as_deref());
        let principal = call.authenticate(app, &req).await?;
        principal.require_write()?;
        let id = changeable(endpoint_id(raw.as_deref())?)?;
        let patch = from_json::<UpdateEndpointBody>(json_value(&req, false, MAX_BODY_BYTES)?)?
            .validate()?;
        let record = app
            .vault
            .update_endpoint(&principal.tenant, &id, patch)
            .await?;
        Reply::json(StatusCode::OK, &EndpointView::new(&record, false, app))
    }
    .await;
    Ok(call.finish(app, outcome))
}

/// `POST /v1/endpoints/{id}/secret/rotate`
pub async fn rotate_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "rotate-secret");
    let outcome = async {
        let raw_id = path_param(&req, "id", "/v1/endpoints/{id}/secret/rotate");
        call.audit("secret.rotate", raw_id.as_deref());
        let principal = call.authenticate(app, &req).await?;
        principal.require_write()?;
        let id = changeable(endpoint_id(raw_id.as_deref())?)?;
        let raw = json_value(&req, true, MAX_BODY_BYTES)?;
        let idempotency = idempotency(&req, "rotate-secret", &raw)?;
        let body: RotateSecretBody = from_json(raw)?;
        let grace = match body.grace_period_seconds {
            Some(seconds) => GracePeriod::seconds(seconds).map_err(|e| ApiError::invalid(e.0))?,
            None => GracePeriod::default(),
        };
        let source = secret_source(body.secret, body.secret_format, body.secret_bytes)?;
        let rotation = Rotation {
            source,
            grace,
            idempotency: idempotency.as_ref(),
            invalidate_older: false,
        };
        let written = app
            .vault
            .rotate_secret(&principal.tenant, &id, rotation)
            .await?;
        let record = &written.record;
        call.audit_versions(version_ids(record, app), written.replayed);
        tracing::debug!(request_id = call.request_id(), endpoint = %id, secret = %record.secret.value, "secret rotated");
        // The new secret is shown this once; older ones were shown before and stay masked
        // (reveal, which is audited, shows them again).
        Reply::json(StatusCode::OK, &SecretsView::new(record, false, app))
    }
    .await;
    Ok(call.finish(app, outcome))
}

/// `GET /v1/endpoints/{id}/secret`: the current secret and the older ones still valid, for
/// owners and admins. Every reveal is audited.
pub async fn reveal_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "reveal-secret");
    let outcome = async {
        let raw = path_param(&req, "id", "/v1/endpoints/{id}/secret");
        call.audit("secret.reveal", raw.as_deref());
        let principal = call.authenticate(app, &req).await?;
        principal.require_write()?;
        let id = endpoint_id(raw.as_deref())?;
        let stored = app.vault.get_endpoint(&principal.tenant, &id).await?;
        call.audit_versions(version_ids(&stored.record, app), false);
        Reply::json(StatusCode::OK, &SecretsView::new(&stored.record, true, app))
    }
    .await;
    Ok(call.finish(app, outcome))
}

/// `POST /v1/endpoints/{id}/sign`: the Standard Webhooks headers for a payload, signed with
/// every valid secret, so a sender signs deliveries without ever holding a secret.
pub async fn sign_message(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "sign-message");
    let outcome = async {
        let principal = call.authenticate(app, &req).await?;
        let id = endpoint_id(path_param(&req, "id", "/v1/endpoints/{id}/sign").as_deref())?;
        let body: SignBody = from_json(json_value(&req, false, MAX_PAYLOAD_BODY_BYTES)?)?;
        let msg_id = body
            .msg_id
            .unwrap_or_else(|| format!("msg_{}", uuid::Uuid::new_v4().simple()));
        signature::validate_id(&msg_id).map_err(|_| {
            ApiError::invalid("msg_id must be 1 to 255 characters with no '.' or whitespace")
        })?;
        let now = app.vault.clock().now();
        let timestamp = body.timestamp.unwrap_or(now.timestamp());
        if timestamp < 0 {
            return Err(ApiError::invalid(
                "timestamp must be seconds since the epoch",
            ));
        }
        let stored = app.vault.get_endpoint(&principal.tenant, &id).await?;
        let secrets = stored.record.valid_secrets(now);
        let signed = signature::sign(&secrets, &msg_id, timestamp, body.payload.as_bytes());
        Reply::json(
            StatusCode::OK,
            &serde_json::json!({
                "headers": {
                    "webhook-id": signed.id,
                    "webhook-timestamp": signed.timestamp.to_string(),
                    "webhook-signature": signed.signature,
                },
                "version_ids": secrets.iter().map(|s| s.version_id.as_str()).collect::<Vec<_>>(),
            }),
        )
    }
    .await;
    Ok(call.finish(app, outcome))
}

/// `POST /v1/endpoints/{id}/verify`: whether a delivery's headers and payload verify against
/// any valid secret, and which version matched.
pub async fn verify_message(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "verify-message");
    let outcome = async {
        let principal = call.authenticate(app, &req).await?;
        let id = endpoint_id(path_param(&req, "id", "/v1/endpoints/{id}/verify").as_deref())?;
        let body: VerifyBody = from_json(json_value(&req, false, MAX_PAYLOAD_BODY_BYTES)?)?;
        let tolerance = body.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS);
        if tolerance > MAX_TOLERANCE_SECONDS {
            return Err(ApiError::invalid(format!(
                "tolerance_seconds must be from 0 to {MAX_TOLERANCE_SECONDS}"
            )));
        }
        // Header names are case-insensitive, so a name given twice in different cases is
        // ambiguous: refuse it rather than let map order pick the verdict.
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            if body.headers.keys().filter(|k| k.eq_ignore_ascii_case(name)).count() > 1 {
                return Err(ApiError::invalid(format!("headers holds {name} more than once")));
            }
        }
        let header = |name: &str| {
            body.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let now = app.vault.clock().now();
        let stored = app.vault.get_endpoint(&principal.tenant, &id).await?;
        let verdict = signature::verify(
            &stored.record.valid_secrets(now),
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            body.payload.as_bytes(),
            now,
            tolerance,
        );
        let answer = match verdict {
            Ok(version) => serde_json::json!({"valid": true, "version_id": version, "reason": null, "message": null}),
            Err(failure) => serde_json::json!({
                "valid": false, "version_id": null, "reason": failure.code(), "message": failure.to_string()
            }),
        };
        Reply::json(StatusCode::OK, &answer)
    }
    .await;
    Ok(call.finish(app, outcome))
}

/// The path's endpoint id, parsed. Routes call this only after authenticating, so a caller
/// without a valid key learns nothing from the id's shape.
fn endpoint_id(raw: Option<&str>) -> Result<EndpointId, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::invalid("the path has no endpoint id"))?;
    EndpointId::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Whether `id` names one of a tenant's account-level secrets (every id starting with `_` is
/// reserved for them; native creates may not use one).
pub fn is_account_secret(id: &EndpointId) -> bool {
    id.is_account_secret()
}

/// `id`, if a native write may change it. Account-level secrets change only through their own
/// contracts (seed 000 rotates `_account-uuid`, seed 003 `_account-whsec`), which keep their
/// format and end the old secret at once; a native rotate, update or delete could give them a
/// grace period, a rotation policy, another format, or take them away. Reading, revealing,
/// signing and verifying with them stay open.
fn changeable(id: EndpointId) -> Result<EndpointId, ApiError> {
    if !is_account_secret(&id) {
        return Ok(id);
    }
    Err(ApiError::invalid(format!(
        "{id} is an account-level secret: it changes only through its own contract ({} through POST /v1/webhook/secret, {} through POST /api/v3/webhooks/secret/regenerate); it can be read, revealed, signed and verified with",
        AccountSecret::Uuid.endpoint_id(),
        AccountSecret::Whsec.endpoint_id(),
    )))
}

/// The current secret's version, then every older one still valid.
fn version_ids<'a>(record: &'a EndpointRecord, app: &App) -> Vec<&'a str> {
    record
        .valid_secrets(app.vault.clock().now())
        .into_iter()
        .map(|s| s.version_id.as_str())
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEndpointBody {
    id: Option<String>,
    url: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    topics: Vec<String>,
    status: Option<String>,
    request_config: Option<RequestConfigBody>,
    version: Option<String>,
    rotation_policy: Option<RotationPolicyBody>,
    secret_format: Option<String>,
    secret_bytes: Option<usize>,
    secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationPolicyBody {
    period_days: u64,
    grace_period_seconds: Option<u64>,
}

impl RotationPolicyBody {
    fn validate(self) -> Result<RotationPolicy, ApiError> {
        let grace = match self.grace_period_seconds {
            Some(seconds) => GracePeriod::seconds(seconds)
                .map_err(|e| ApiError::invalid(format!("rotation_policy.{}", e.0)))?,
            None => GracePeriod::default(),
        };
        RotationPolicy::new(self.period_days, grace).map_err(|e| ApiError::invalid(e.0))
    }
}

/// `PATCH` fields: absent leaves a field alone; `rotation_policy: null` turns it off.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEndpointBody {
    url: Option<String>,
    name: Option<String>,
    description: Option<String>,
    topics: Option<Vec<String>>,
    status: Option<String>,
    request_config: Option<RequestConfigBody>,
    version: Option<String>,
    #[serde(default, deserialize_with = "present")]
    rotation_policy: Option<Option<RotationPolicyBody>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl UpdateEndpointBody {
    fn validate(self) -> Result<EndpointPatch, ApiError> {
        let invalid = |e: crate::endpoint::InvalidEndpoint| ApiError::invalid(e.0);
        Ok(EndpointPatch {
            url: self
                .url
                .map(|url| NewEndpoint::validate_url(&url))
                .transpose()
                .map_err(invalid)?,
            name: self
                .name
                .map(|name| NewEndpoint::validate_text("name", &name, MAX_NAME_CHARS))
                .transpose()
                .map_err(invalid)?,
            description: self
                .description
                .map(|d| NewEndpoint::validate_text("description", &d, MAX_DESCRIPTION_CHARS))
                .transpose()
                .map_err(invalid)?,
            topics: self
                .topics
                .map(NewEndpoint::validate_topics)
                .transpose()
                .map_err(invalid)?,
            status: self
                .status
                .as_deref()
                .map(EndpointStatus::parse)
                .transpose()
                .map_err(invalid)?,
            request_config: self
                .request_config
                .map(|c| RequestConfig::validate(c.timeout_ms, c.headers))
                .transpose()
                .map_err(invalid)?,
            version: self
                .version
                .as_deref()
                .map(NewEndpoint::validate_version)
                .transpose()
                .map_err(invalid)?,
            rotation_policy: self
                .rotation_policy
                .map(|policy| policy.map(RotationPolicyBody::validate).transpose())
                .transpose()?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestConfigBody {
    timeout_ms: Option<u32>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

impl CreateEndpointBody {
    fn validate(self) -> Result<NewEndpoint, ApiError> {
        let invalid = |e: crate::endpoint::InvalidEndpoint| ApiError::invalid(e.0);
        let id = self
            .id
            .map(|raw| EndpointId::parse(&raw))
            .transpose()
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        if id.as_ref().is_some_and(is_account_secret) {
            return Err(ApiError::invalid(
                "ids starting with '_' are reserved for account-level secrets",
            ));
        }
        let mut secret = secret_source(self.secret, self.secret_format, self.secret_bytes)?;
        if matches!(secret, SecretSource::LikeCurrent) {
            secret = SecretSource::Generate(SecretSpec::default());
        }
        Ok(NewEndpoint {
            id,
            url: NewEndpoint::validate_url(&self.url).map_err(invalid)?,
            name: NewEndpoint::validate_text("name", &self.name, MAX_NAME_CHARS)
                .map_err(invalid)?,
            description: NewEndpoint::validate_text(
                "description",
                &self.description,
                MAX_DESCRIPTION_CHARS,
            )
            .map_err(invalid)?,
            topics: NewEndpoint::validate_topics(self.topics).map_err(invalid)?,
            status: self
                .status
                .as_deref()
                .map(EndpointStatus::parse)
                .transpose()
                .map_err(invalid)?
                .unwrap_or_default(),
            request_config: match self.request_config {
                Some(config) => {
                    RequestConfig::validate(config.timeout_ms, config.headers).map_err(invalid)?
                }
                None => RequestConfig::default(),
            },
            version: NewEndpoint::validate_version(
                self.version.as_deref().unwrap_or(DEFAULT_VERSION),
            )
            .map_err(invalid)?,
            rotation_policy: self
                .rotation_policy
                .map(RotationPolicyBody::validate)
                .transpose()?,
            secret,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateSecretBody {
    grace_period_seconds: Option<u64>,
    secret_format: Option<String>,
    secret_bytes: Option<usize>,
    secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    payload: String,
    msg_id: Option<String>,
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    headers: HashMap<String, String>,
    payload: String,
    tolerance_seconds: Option<u32>,
}

/// Where the next secret comes from: the caller's own (validated), or generated to the
/// requested format and length, or — with neither — generated like the current one.
fn secret_source(
    supplied: Option<String>,
    format: Option<String>,
    bytes: Option<usize>,
) -> Result<SecretSource, ApiError> {
    let format = format.as_deref().map(SecretFormat::parse).transpose()?;
    if let Some(raw) = supplied {
        let raw = Zeroizing::new(raw);
        let secret = WebhookSecret::parse(&raw)?;
        if bytes.is_some() {
            return Err(ApiError::invalid(
                "secret_bytes applies only to generated secrets; omit it when supplying a secret",
            ));
        }
        if format.is_some_and(|f| f != secret.format()) {
            return Err(ApiError::invalid("secret does not match secret_format"));
        }
        return Ok(SecretSource::Supplied(secret));
    }
    match (format, bytes) {
        (None, None) => Ok(SecretSource::LikeCurrent),
        (Some(SecretFormat::Uuid), Some(_)) => Err(ApiError::invalid(
            "secret_bytes applies only to the whsec format",
        )),
        (format, bytes) => Ok(SecretSource::Generate(SecretSpec::new(
            format.unwrap_or(SecretFormat::Whsec),
            bytes,
        )?)),
    }
}

#[derive(Serialize)]
pub struct SecretView<'a> {
    /// Present only where the secret is shown: create, rotate and reveal.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    masked: String,
    format: SecretFormat,
    version_id: &'a str,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

impl<'a> SecretView<'a> {
    fn new(version: &'a SecretVersion, reveal: bool) -> Self {
        Self {
            value: reveal.then(|| version.value.expose()),
            masked: version.value.fingerprint(),
            format: version.value.format(),
            version_id: version.version_id.as_str(),
            created_at: version.created_at,
            expires_at: version.expires_at,
        }
    }
}

fn previous_views<'a>(record: &'a EndpointRecord, reveal: bool, app: &App) -> Vec<SecretView<'a>> {
    let now = app.vault.clock().now();
    record
        .previous_secrets
        .iter()
        .filter(|s| s.is_valid_at(now))
        .map(|s| SecretView::new(s, reveal))
        .collect()
}

#[derive(Serialize)]
pub struct EndpointView<'a> {
    id: &'a str,
    url: &'a str,
    name: &'a str,
    description: &'a str,
    topics: &'a [String],
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    status: EndpointStatus,
    request_config: &'a RequestConfig,
    version: &'a str,
    rotation_policy: Option<RotationPolicy>,
    /// When the scheduled sweep rotates the secret next; `null` without a policy.
    next_rotation_at: Option<DateTime<Utc>>,
    secret: SecretView<'a>,
    /// Older secrets still valid, masked, with their expiry.
    previous_secrets: Vec<SecretView<'a>>,
}

impl<'a> EndpointView<'a> {
    fn new(record: &'a EndpointRecord, reveal: bool, app: &App) -> Self {
        let endpoint = &record.endpoint;
        Self {
            id: endpoint.id.as_str(),
            url: &endpoint.url,
            name: &endpoint.name,
            description: &endpoint.description,
            topics: &endpoint.topics,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
            status: endpoint.status,
            request_config: &endpoint.request_config,
            version: &endpoint.version,
            rotation_policy: endpoint.rotation_policy,
            next_rotation_at: endpoint
                .rotation_policy
                .map(|policy| policy.due_at(record.secret.created_at)),
            secret: SecretView::new(&record.secret, reveal),
            previous_secrets: previous_views(record, false, app),
        }
    }
}

/// An endpoint's secrets: rotate's and reveal's answer.
#[derive(Serialize)]
struct SecretsView<'a> {
    endpoint_id: &'a str,
    secret: SecretView<'a>,
    previous_secrets: Vec<SecretView<'a>>,
}

impl<'a> SecretsView<'a> {
    /// The current secret's value always; older ones' values only when `reveal_previous`.
    fn new(record: &'a EndpointRecord, reveal_previous: bool, app: &App) -> Self {
        Self {
            endpoint_id: record.endpoint.id.as_str(),
            secret: SecretView::new(&record.secret, true),
            previous_secrets: previous_views(record, reveal_previous, app),
        }
    }
}
