//! `/v1/endpoints/{id}/sign` and `/v1/endpoints/{id}/verify`: Standard Webhooks signatures
//! made and checked with every valid secret, so a sender never holds one.

use super::endpoint_id;
use super::http::{
    from_json, json_value, path_param, respond, ApiError, Reply, Route, MAX_PAYLOAD_BODY_BYTES,
};
use crate::config::App;
use crate::domain::signature::{self, DEFAULT_TOLERANCE_SECONDS, MAX_TOLERANCE_SECONDS};
use crate::vault::EndpointRepository;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;
use std::collections::HashMap;

/// `POST /v1/endpoints/{id}/sign`: the Standard Webhooks headers for a payload, signed with
/// every valid secret, so a sender signs deliveries without ever holding a secret.
pub async fn sign_message(app: &App, req: Request) -> Result<Response<Body>, Error> {
    respond(app, req, Route::native("sign-message"), async |call, req| {
        let principal = call.authenticate(app, req).await?;
        let id = endpoint_id(path_param(req, "id", "/v1/endpoints/{id}/sign").as_deref())?;
        let body: SignBody = from_json(json_value(req, false, MAX_PAYLOAD_BODY_BYTES)?)?;
        let msg_id = body
            .msg_id
            .unwrap_or_else(|| format!("msg_{}", uuid::Uuid::new_v4().simple()));
        signature::validate_id(&msg_id).map_err(|_| {
            ApiError::invalid("msg_id must be 1 to 255 characters with no '.' or whitespace")
        })?;
        let now = app.clock.now();
        let timestamp = body.timestamp.unwrap_or(now.timestamp());
        if timestamp < 0 {
            return Err(ApiError::invalid(
                "timestamp must be seconds since the epoch",
            ));
        }
        let stored = app.endpoints.get_endpoint(&principal.tenant, &id).await?;
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
    })
    .await
}

/// `POST /v1/endpoints/{id}/verify`: whether a delivery's headers and payload verify against
/// any valid secret, and which version matched.
pub async fn verify_message(app: &App, req: Request) -> Result<Response<Body>, Error> {
    respond(app, req, Route::native("verify-message"), async |call, req| {
        let principal = call.authenticate(app, req).await?;
        let id = endpoint_id(path_param(req, "id", "/v1/endpoints/{id}/verify").as_deref())?;
        let body: VerifyBody = from_json(json_value(req, false, MAX_PAYLOAD_BODY_BYTES)?)?;
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
        let now = app.clock.now();
        let stored = app.endpoints.get_endpoint(&principal.tenant, &id).await?;
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
    })
    .await
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
