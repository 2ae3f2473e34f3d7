//! `POST /api/v3/webhook_subscriptions/{id}/rotate_secret`, seed `002`: a new `whsec_`
//! secret for a subscription (an endpoint), returned once as `{"id", "secret"}`. Auth:
//! `x-api-key` or `x-user-api-key`. The document's errors are 401, 404 and 500, each
//! `{"error": {message, code, slug, status, request_id, suggested_fix, errors}}`; a key whose
//! role may not rotate answers 401, the document's status for a caller it refuses.

use super::rotate_endpoint_now;
use crate::api::http::{header, path_param, respond, ApiError, Reply, Route};
use crate::auth::AuthError;
use crate::config::App;
use crate::domain::error_code::ErrorCode;
use crate::domain::ids::EndpointId;
use crate::vault::VaultError;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;

pub async fn rotate_subscription_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let route = Route::contract("composio-rotate-secret", error_shape);
    respond(app, req, route, async |call, req| {
        let raw =
            path_param(req, "id", "/webhook_subscriptions/{id}/rotate_secret").unwrap_or_default();
        call.audit("secret.rotate", Some(&raw));
        let key = header(req, "x-api-key").or_else(|| header(req, "x-user-api-key"));
        let principal = call.authenticate_key(app, key).await?;
        let id = EndpointId::parse(&raw).map_err(|_| ApiError::from(VaultError::not_found()))?;
        let writer = principal.writer().map_err(AuthError::from)?;
        let record = rotate_endpoint_now(app, call, &writer, &id).await?;
        Reply::json(
            StatusCode::OK,
            &json!({"id": record.endpoint.id, "secret": record.secret.value.expose()}),
        )
    })
    .await
}

fn error_shape(err: &ApiError, request_id: &str) -> (StatusCode, serde_json::Value) {
    use ErrorCode as E;
    let (status, slug, suggested_fix) = match err.code {
        E::Unauthorized | E::InvalidCredentials | E::TokenExpired => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Send a valid API key in the x-api-key or x-user-api-key header.",
        ),
        E::Forbidden | E::InsufficientScope => (
            StatusCode::UNAUTHORIZED,
            "insufficient_permissions",
            "Use an API key with the owner or admin role.",
        ),
        E::NotFound => (
            StatusCode::NOT_FOUND,
            "webhook_subscription_not_found",
            "Check the subscription id; it must belong to this API key's project.",
        ),
        E::InvalidRequest
        | E::AlreadyExists
        | E::Conflict
        | E::TooManyValidSecrets
        | E::TooLarge
        | E::IdempotencyKeyReused
        | E::Throttled
        | E::VersionQuotaExceeded
        | E::Unavailable
        | E::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Retry the request; if it keeps failing, report the request_id.",
        ),
    };
    (
        status,
        json!({"error": {
            "message": err.message,
            "code": status.as_u16(),
            "slug": slug,
            "status": status.as_u16(),
            "request_id": request_id,
            "suggested_fix": suggested_fix,
            "errors": [],
        }}),
    )
}
