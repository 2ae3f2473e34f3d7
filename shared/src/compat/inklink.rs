//! `POST /api/v1/webhook/endpoints/{id}/rotate-secret`, seed `001`: a new `whsec_` secret for
//! an endpoint, returned once as `{"secret"}`. Auth: `api-key`. Owners and admins only. The
//! document's errors: 401 `UNAUTHORIZED`; 500 `INTERNAL_ERROR` for server errors, an endpoint
//! that is not found, and permission denied.

use super::rotate_endpoint_now;
use crate::api::http::{header, path_param, respond, ApiError, Reply, Route};
use crate::auth::AuthError;
use crate::config::App;
use crate::domain::ids::EndpointId;
use crate::vault::VaultError;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;

/// The document's endpoint ids: `wh_end_…`.
pub const ID_PREFIX: &str = "wh_end_";

pub async fn rotate_endpoint_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let route = Route::contract("inklink-rotate-secret", error_shape);
    respond(app, req, route, async |call, req| {
        let raw = path_param(req, "id", "/api/v1/webhook/endpoints/{id}/rotate-secret")
            .unwrap_or_default();
        call.audit("secret.rotate", Some(&raw));
        let principal = call.authenticate_key(app, header(req, "api-key")).await?;
        // An id of another shape cannot name one of this contract's endpoints.
        let id = EndpointId::parse(&raw)
            .ok()
            .filter(|id| id.as_str().starts_with(ID_PREFIX))
            .ok_or(ApiError::from(VaultError::not_found()))?;
        let writer = principal.writer().map_err(AuthError::from)?;
        let record = rotate_endpoint_now(app, call, &writer, &id).await?;
        Reply::json(
            StatusCode::OK,
            &json!({"secret": record.secret.value.expose()}),
        )
    })
    .await
}

fn error_shape(err: &ApiError, _request_id: &str) -> (StatusCode, serde_json::Value) {
    if err.status() == StatusCode::UNAUTHORIZED {
        (
            StatusCode::UNAUTHORIZED,
            json!({"code": "UNAUTHORIZED", "message": err.message}),
        )
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"code": "INTERNAL_ERROR", "message": err.message}),
        )
    }
}
