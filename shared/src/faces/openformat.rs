//! `POST /v1/webhook/secret` (server base `/v1`), seed `000`: a new account-level webhook
//! secret in uuid format. Auth: `X-API-KEY`. The document lists one error response, 500
//! `{"status": "failed", "error": "..."}`, so every failure answers that way.

use super::rotate_account_now;
use crate::config::App;
use crate::http::{header, ApiError, Call, Reply};
use crate::vault::AccountSecret;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;

pub async fn generate_webhook_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "openformat-webhook-secret");
    let outcome = async {
        call.audit(
            "secret.rotate",
            Some(AccountSecret::Uuid.endpoint_id().as_str()),
        );
        let principal = call
            .authenticate_key(app, header(&req, "x-api-key"))
            .await?;
        principal.require_write()?;
        let record = rotate_account_now(app, &principal.tenant, AccountSecret::Uuid).await?;
        call.audit_versions([record.secret.version_id.as_str()], false);
        Reply::json(
            StatusCode::OK,
            &json!({"status": "success", "webhook_secret": record.secret.value.expose()}),
        )
    }
    .await;
    Ok(call.finish_shaped(app, outcome, error_shape))
}

fn error_shape(err: &ApiError, _request_id: &str) -> (StatusCode, serde_json::Value) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"status": "failed", "error": err.message}),
    )
}
