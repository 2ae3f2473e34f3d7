//! Seed `003`, base `/api/v3`. `POST /api/v3/auth/token` exchanges an API key (`appId` = its
//! id, `secretKey` = its secret part) for a 24-hour JWT; `POST /api/v3/webhooks/secret/regenerate`
//! takes `Authorization: Bearer <JWT>` with the `webhooks:write` scope and answers a new
//! account-level `whsec_` secret. The old one stops verifying at once, with no grace period.
//! Both answer the document's envelope `{success, status, message, data, meta}`; errors carry
//! `success: false` and an `error.code` (`VALIDATION_ERROR`, `AUTH_INVALID_CREDENTIALS`, ...).

use super::rotate_account_now;
use crate::api::http::{
    bearer_token, from_json, json_value, respond, ApiError, Call, Reply, Route, MAX_BODY_BYTES,
};
use crate::auth::tokens::{scopes_for, TokenError, SCOPE_WRITE};
use crate::auth::AuthError;
use crate::config::App;
use crate::domain::error_code::ErrorCode;
use crate::domain::ids::KeyId;
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
        "meta": {"requestId": call.request_id(), "timestamp": timestamp(app.clock.now())},
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
    let route = Route::contract("fyatu-auth-token", error_shape);
    respond(app, req, route, async |call, req| {
        let body: TokenRequest = from_json(json_value(req, false, MAX_BODY_BYTES)?)?;
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
                ErrorCode::InvalidCredentials,
                "appId or secretKey is not valid",
            )
        };
        KeyId::parse(&app_id).map_err(|_| invalid_credentials())?;
        let presented = zeroize::Zeroizing::new(format!("{app_id}.{secret_key}"));
        let principal = match call.authenticate_key(app, Some(&presented)).await {
            Ok(principal) => principal,
            Err(err) if err.code == ErrorCode::Unauthorized => return Err(invalid_credentials()),
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
        let issued = app
            .tokens
            .issue(&principal, scopes)
            .await
            .map_err(token_error)?;
        let now = app.clock.now();
        Reply::json(
            StatusCode::OK,
            &envelope(
                app,
                call,
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
    })
    .await
}

/// `POST /api/v3/webhooks/secret/regenerate`
pub async fn regenerate_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let route = Route::contract("fyatu-regenerate-secret", error_shape);
    respond(app, req, route, async |call, req| {
        call.audit(
            "secret.rotate",
            Some(AccountSecret::Whsec.endpoint_id().as_str()),
        );
        let token = bearer_token(req).ok_or_else(|| ApiError::from(AuthError::Missing))?;
        let (claims, principal) = app
            .tokens
            .verify(token, &app.auth)
            .await
            .map_err(token_error)?;
        call.identify(principal.clone());
        if !claims.has_scope(SCOPE_WRITE) || !principal.role.can_write() {
            return Err(ApiError::new(
                ErrorCode::InsufficientScope,
                format!("regenerating the webhook secret needs the {SCOPE_WRITE} scope"),
            ));
        }
        let writer = principal.writer().map_err(AuthError::from)?;
        let record = rotate_account_now(app, &writer, AccountSecret::Whsec).await?;
        call.audit_versions([record.secret.version_id.as_str()], false);
        Reply::json(
            StatusCode::OK,
            &envelope(
                app,
                call,
                "Webhook secret regenerated successfully",
                json!({
                    "webhookSecret": record.secret.value.expose(),
                    "regeneratedAt": timestamp(record.secret.created_at),
                    "note": REGENERATE_NOTE,
                }),
            ),
        )
    })
    .await
}

fn token_error(err: TokenError) -> ApiError {
    match err {
        TokenError::Invalid | TokenError::Auth(AuthError::Invalid | AuthError::Missing) => {
            ApiError::new(ErrorCode::Unauthorized, "the access token is not valid")
        }
        TokenError::Expired => ApiError::new(
            ErrorCode::TokenExpired,
            "the access token has expired; get a new one from /auth/token",
        ),
        TokenError::Auth(other) => other.into(),
        TokenError::Keys(err) => err.into(),
        TokenError::Encoding(_) => ApiError::new(
            ErrorCode::Internal,
            "an internal error occurred; quote the request id when reporting it",
        )
        .caused_by(&err),
    }
}

/// The document's error codes, on the statuses it lists (400, 401, 403, 429, 500, 503). Any
/// other status is answered as the nearest listed one: a rotation that kept losing its race
/// (409, after the retries in `compat`) as 503, which says "try again"; a body over the size
/// limit (413) as the validation error it is; anything else as 500.
fn error_shape(err: &ApiError, request_id: &str) -> (StatusCode, serde_json::Value) {
    use ErrorCode as E;
    let (status, code) = match err.code {
        E::InvalidRequest | E::TooLarge | E::IdempotencyKeyReused => (400, "VALIDATION_ERROR"),
        E::InvalidCredentials => (401, "AUTH_INVALID_CREDENTIALS"),
        E::TokenExpired => (401, "AUTH_TOKEN_EXPIRED"),
        E::Unauthorized => (401, "AUTH_INVALID_TOKEN"),
        E::Forbidden | E::InsufficientScope => (403, "AUTH_INSUFFICIENT_SCOPE"),
        E::Throttled | E::VersionQuotaExceeded => (429, "RATE_LIMITED"),
        E::Conflict | E::AlreadyExists | E::TooManyValidSecrets | E::Unavailable => {
            (503, "SERVICE_UNAVAILABLE")
        }
        E::NotFound | E::Internal => (500, "INTERNAL_ERROR"),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
