//! `POST /v2/webhooks/{id}/secret`, seed `004`: a new signing secret for a webhook, answered
//! with the whole webhook object. Auth: `Authorization: Bearer <api key>`. The id is a
//! 24-hex-digit ObjectId. The optional `Featurebase-Version` header takes the document's two
//! values; the route exists from `2026-01-01.nova` on, so `2025-12-12.clover` is refused.
//!
//! The document lists no error bodies; errors answer
//! `{"object": "error", "status", "code", "message", "requestId"}` with 400, 401, 403, 404,
//! 429, 500 or 503.

use super::rotate_endpoint_now;
use crate::api::http::{header, path_param, respond, ApiError, Reply, Route};
use crate::auth::AuthError;
use crate::config::App;
use crate::domain::endpoint::EndpointRecord;
use crate::domain::error_code::ErrorCode;
use crate::domain::ids::EndpointId;
use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;

pub const VERSION_HEADER: &str = "featurebase-version";
pub const CURRENT_VERSION: &str = "2026-01-01.nova";
pub const OLDER_VERSION: &str = "2025-12-12.clover";

pub async fn refresh_webhook_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let route = Route::contract("featurebase-refresh-secret", error_shape);
    respond(app, req, route, async |call, req| {
        let raw = path_param(req, "id", "/v2/webhooks/{id}/secret").unwrap_or_default();
        call.audit("secret.rotate", Some(&raw));
        let principal = call.authenticate(app, req).await?;
        match header(req, VERSION_HEADER) {
            None | Some(CURRENT_VERSION) => {}
            Some(OLDER_VERSION) => {
                return Err(ApiError::invalid(format!(
                    "this endpoint is available from Featurebase-Version {CURRENT_VERSION} on"
                )))
            }
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "Featurebase-Version must be \"{CURRENT_VERSION}\" or \"{OLDER_VERSION}\""
                )))
            }
        }
        if !is_object_id(&raw) {
            return Err(ApiError::invalid(
                "the webhook id is a 24-character hexadecimal ObjectId",
            ));
        }
        let id = EndpointId::parse(&raw).map_err(|e| ApiError::invalid(e.to_string()))?;
        let writer = principal.writer().map_err(AuthError::from)?;
        let record = rotate_endpoint_now(app, call, &writer, &id).await?;
        Reply::json(StatusCode::OK, &webhook_object(&record))
    })
    .await
}

pub fn is_object_id(raw: &str) -> bool {
    raw.len() == 24 && raw.bytes().all(|b| b.is_ascii_hexdigit())
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The document's webhook object. This product stores and rotates secrets but does not
/// deliver webhooks, so delivery health reads as a webhook that has not been called yet:
/// zero counters, and the creation time where a last-delivery time is due.
pub fn webhook_object(record: &EndpointRecord) -> serde_json::Value {
    let endpoint = &record.endpoint;
    let created = timestamp(endpoint.created_at);
    json!({
        "object": "webhook",
        "id": endpoint.id,
        "createdAt": created,
        "updatedAt": timestamp(endpoint.updated_at),
        "name": endpoint.name,
        "description": endpoint.description,
        "url": endpoint.url,
        "topics": endpoint.topics,
        "status": endpoint.status,
        "requestConfig": {
            "timeoutMs": endpoint.request_config.timeout_ms,
            "headers": endpoint.request_config.headers,
        },
        "health": {
            "avgResponseTime": 0,
            "consecutiveFailures": 0,
            "errorsSinceLastSuccess": 0,
            "lastResponseTime": 0,
            "lastSuccessAt": created,
        },
        "lastStatus": {"code": 0, "message": "No deliveries yet", "timestamp": created},
        "version": endpoint.version,
        "secret": record.secret.value.expose(),
    })
}

/// The statuses the document allows: 400, 401, 403, 404, 429, 500 and 503. Any other is
/// answered as the nearest of them: a rotation that kept losing its race (409, after the
/// retries in `compat`) as 503, which says "try again"; another client error as 400; anything
/// else as 500. `code` stays the native one, so the cause is still told.
fn error_shape(err: &ApiError, request_id: &str) -> (StatusCode, serde_json::Value) {
    use ErrorCode as E;
    let status = match err.code {
        E::InvalidRequest | E::TooLarge | E::IdempotencyKeyReused => 400,
        E::Unauthorized | E::InvalidCredentials | E::TokenExpired => 401,
        E::Forbidden | E::InsufficientScope => 403,
        E::NotFound => 404,
        E::Throttled | E::VersionQuotaExceeded => 429,
        E::AlreadyExists | E::Conflict | E::TooManyValidSecrets | E::Unavailable => 503,
        E::Internal => 500,
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        json!({
            "object": "error",
            "status": status.as_u16(),
            "code": err.code.as_str(),
            "message": err.message,
            "requestId": request_id,
        }),
    )
}
