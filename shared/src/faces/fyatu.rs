//! Seed `003`, base `/api/v3`. `POST /api/v3/auth/token` exchanges an API key (`appId` = its
//! id, `secretKey` = its secret part) for a 24-hour JWT; `POST /api/v3/webhooks/secret/regenerate`
//! takes `Authorization: Bearer <JWT>` with the `webhooks:write` scope and answers a new
//! account-level `whsec_` secret. The old one stops verifying at once, with no grace period.
//! Both answer the document's envelope `{success, status, message, data, meta}`; errors carry
//! `success: false` and an `error.code` (`VALIDATION_ERROR`, `AUTH_INVALID_CREDENTIALS`, ...).

use super::rotate_account_now;
use crate::auth::AuthError;
use crate::config::App;
use crate::http::{bearer_token, from_json, json_value, ApiError, Call, Reply, MAX_BODY_BYTES};
use crate::ids::KeyId;
use crate::tokens::{scopes_for, TokenError, SCOPE_WRITE};
use crate::vault::AccountSecret;
use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;
use serde_json::json;

pub const REGENERATE_NOTE: &str = "Store this secret securely. It will not be shown again. Update your webhook handler with this new secret.";

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn envelope(app: &App, call: &Call, message: &str, data: serde_json::Value) -> serde_json::Value {
    json!({
        "success": true,
        "status": 200,
        "message": message,
        "data": data,
        "meta": {"requestId": call.request_id(), "timestamp": timestamp(app.vault.clock().now())},
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenRequest {
    app_id: Option<String>,
    secret_key: Option<String>,
    grant_type: Option<String>,
    scopes: Option<Vec<String>>,
}

/// `POST /api/v3/auth/token`
pub async fn issue_token(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "fyatu-auth-token");
    let outcome = async {
        let body: TokenRequest = from_json(json_value(&req, false, MAX_BODY_BYTES)?)?;
        let (Some(app_id), Some(secret_key)) = (body.app_id, body.secret_key) else {
            return Err(ApiError::invalid("appId and secretKey are required"));
        };
        if body.grant_type.as_deref() != Some("client_credentials") {
            return Err(ApiError::invalid(
                "grantType must be \"client_credentials\"",
            ));
        }
        let invalid_credentials = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "appId or secretKey is not valid",
            )
        };
        KeyId::parse(&app_id).map_err(|_| invalid_credentials())?;
        let presented = zeroize::Zeroizing::new(format!("{app_id}.{secret_key}"));
        let principal = match call.authenticate_key(app, Some(&presented)).await {
            Ok(principal) => principal,
            Err(err) if err.status == StatusCode::UNAUTHORIZED => return Err(invalid_credentials()),
            Err(err) => return Err(err),
        };
        let allowed = scopes_for(principal.role);
        let scopes = match body.scopes {
            None => allowed.iter().map(|s| s.to_string()).collect(),
            Some(requested) => {
                if let Some(bad) = requested.iter().find(|s| !allowed.contains(&s.as_str())) {
                    return Err(ApiError::invalid(format!(
                        "scope {bad:?} is not available to this key (allowed: {})",
                        allowed.join(", ")
                    )));
                }
                requested
            }
        };
        let issued = app.tokens.issue(&principal, scopes).await?;
        let now = app.vault.clock().now();
        Reply::json(
            StatusCode::OK,
            &envelope(
                app,
                &call,
                "Access token generated successfully",
                json!({
                    "accessToken": issued.access_token.as_str(),
                    "tokenType": "Bearer",
                    "expiresIn": (issued.expires_at - now).num_seconds(),
                    "expiresAt": timestamp(issued.expires_at),
                    "scopes": issued.scopes,
                }),
            ),
        )
    }
    .await;
    Ok(call.finish_shaped(app, outcome, error_shape))
}

/// `POST /api/v3/webhooks/secret/regenerate`
pub async fn regenerate_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "fyatu-regenerate-secret");
    let outcome = async {
        call.audit(
            "secret.rotate",
            Some(AccountSecret::Whsec.endpoint_id().as_str()),
        );
        let token = bearer_token(&req).ok_or_else(|| ApiError::from(AuthError::Missing))?;
        let (claims, principal) = app
            .tokens
            .verify(token, &app.auth)
            .await
            .map_err(token_error)?;
        call.identify(principal.clone());
        if !claims.has_scope(SCOPE_WRITE) || !principal.role.can_write() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("regenerating the webhook secret needs the {SCOPE_WRITE} scope"),
            ));
        }
        let record = rotate_account_now(app, &principal.tenant, AccountSecret::Whsec).await?;
        call.audit_versions([record.secret.version_id.as_str()], false);
        Reply::json(
            StatusCode::OK,
            &envelope(
                app,
                &call,
                "Webhook secret regenerated successfully",
                json!({
                    "webhookSecret": record.secret.value.expose(),
                    "regeneratedAt": timestamp(record.secret.created_at),
                    "note": REGENERATE_NOTE,
                }),
            ),
        )
    }
    .await;
    Ok(call.finish_shaped(app, outcome, error_shape))
}

fn token_error(err: TokenError) -> ApiError {
    match err {
        TokenError::Invalid | TokenError::Auth(AuthError::Invalid | AuthError::Missing) => {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the access token is not valid",
            )
        }
        TokenError::Expired => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_expired",
            "the access token has expired; get a new one from /auth/token",
        ),
        TokenError::Auth(other) => other.into(),
        TokenError::Keys(cause) => crate::vault::VaultError::Unavailable(cause).into(),
    }
}

/// The document's error codes, on the statuses it lists (400, 401, 403, 429, 500, 503). Any
/// other status is answered as the nearest listed one: a rotation that kept losing its race
/// (409, after the retries in `faces`) as 503, which says "try again"; a body over the size
/// limit (413) as the validation error it is; anything else as 500.
fn error_shape(err: &ApiError, request_id: &str) -> (StatusCode, serde_json::Value) {
    let status = match err.status.as_u16() {
        400 | 401 | 403 | 429 | 500 | 503 => err.status,
        409 => StatusCode::SERVICE_UNAVAILABLE,
        413 | 422 => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let code = match (status.as_u16(), err.code) {
        (400, _) => "VALIDATION_ERROR",
        (401, "invalid_credentials") => "AUTH_INVALID_CREDENTIALS",
        (401, "token_expired") => "AUTH_TOKEN_EXPIRED",
        (401, _) => "AUTH_INVALID_TOKEN",
        (403, _) => "AUTH_INSUFFICIENT_SCOPE",
        (429, _) => "RATE_LIMITED",
        (503, _) => "SERVICE_UNAVAILABLE",
        _ => "INTERNAL_ERROR",
    };
    (
        status,
        json!({
            "success": false,
            "status": status.as_u16(),
            "message": err.message,
            "error": {"code": code},
            "meta": {"requestId": request_id, "timestamp": timestamp(Utc::now())},
        }),
    )
}
