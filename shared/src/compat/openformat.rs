//! `POST /v1/webhook/secret` (server base `/v1`), seed `000`: a new account-level webhook
//! secret in uuid format. Auth: `X-API-KEY`. The document lists one error response, 500
//! `{"status": "failed", "error": "..."}`, so every failure answers that way.

use super::rotate_account_now;
use crate::api::http::{header, respond, ApiError, Reply, Route};
use crate::config::App;
use crate::vault::AccountSecret;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;

pub async fn generate_webhook_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let route = Route::contract("openformat-webhook-secret", error_shape);
    respond(app, req, route, async |call, req| {
        call.audit(
            "secret.rotate",
            Some(AccountSecret::Uuid.endpoint_id().as_str()),
        );
        let writer = call.writer_with_key(app, header(req, "x-api-key")).await?;
        let record = rotate_account_now(app, &writer, AccountSecret::Uuid).await?;
        call.audit_versions([record.secret.version_id.as_str()], false);
        Reply::json(
            StatusCode::OK,
            &json!({"status": "success", "webhook_secret": record.secret.value.expose()}),
        )
    })
    .await
}

fn error_shape(err: &ApiError, _request_id: &str) -> (StatusCode, serde_json::Value) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"status": "failed", "error": err.message}),
    )
}
