//! `POST /api/v3/webhook_subscriptions/{id}/rotate_secret`, seed `002`: a new `whsec_`
//! secret for a subscription (an endpoint), returned once as `{"id", "secret"}`. Auth:
//! `x-api-key` or `x-user-api-key`. The document's errors are 401, 404 and 500, each
//! `{"error": {message, code, slug, status, request_id, suggested_fix, errors}}`; a key whose
//! role may not rotate answers 401, the document's status for a caller it refuses.

use super::rotate_endpoint_now;
use crate::config::App;
use crate::http::{header, path_param, ApiError, Call, Reply};
use crate::ids::EndpointId;
use crate::vault::VaultError;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;

pub async fn rotate_subscription_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "composio-rotate-secret");
    let outcome = async {
        let raw = path_param(
            &req,
            "id",
            "/api/v3/webhook_subscriptions/{id}/rotate_secret",
        )
        .unwrap_or_default();
        call.audit("secret.rotate", Some(&raw));
        let key = header(&req, "x-api-key").or_else(|| header(&req, "x-user-api-key"));
        let principal = call.authenticate_key(app, key).await?;
        let id = EndpointId::parse(&raw).map_err(|_| ApiError::from(VaultError::NotFound))?;
        let record = rotate_endpoint_now(app, &call, &principal, &id).await?;
        Reply::json(
            StatusCode::OK,
            &json!({"id": record.endpoint.id, "secret": record.secret.value.expose()}),
        )
    }
    .await;
    Ok(call.finish_shaped(app, outcome, error_shape))
}

fn error_shape(err: &ApiError, request_id: &str) -> (StatusCode, serde_json::Value) {
    let (status, slug, suggested_fix) = match err.status {
        StatusCode::UNAUTHORIZED => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Send a valid API key in the x-api-key or x-user-api-key header.",
        ),
        StatusCode::FORBIDDEN => (
            StatusCode::UNAUTHORIZED,
            "insufficient_permissions",
            "Use an API key with the owner or admin role.",
        ),
        StatusCode::NOT_FOUND => (
            StatusCode::NOT_FOUND,
            "webhook_subscription_not_found",
            "Check the subscription id; it must belong to this API key's project.",
        ),
        _ => (
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
