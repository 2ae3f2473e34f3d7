//! `GET /v1/tenants/{tenant}/endpoints/{id}/jwks.json`: an endpoint's Ed25519 public keys, for
//! its receivers to fetch and cache.
//!
//! The route takes no credentials. Receivers are the tenant's customers and hold no API key of
//! this product, the document holds only public keys (RFC 8037 JWKs, with the Standard Webhooks
//! `whpk_` form beside each), and a key set is public by design, as an OpenID provider's
//! `jwks_uri` is. So that it cannot be used to learn anything else, every endpoint without a
//! valid Ed25519 key (absent, HMAC-only, an account secret, a malformed id or tenant) answers
//! the same 404.

use super::http::{path_param, respond, ApiError, Reply, Route};
use crate::config::App;
use crate::domain::endpoint::EndpointRecord;
use crate::domain::error_code::ErrorCode;
use crate::domain::ids::{EndpointId, TenantId};
use crate::vault::EndpointRepository;
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde::Serialize;

const TEMPLATE: &str = "/v1/tenants/{tenant}/endpoints/{id}/jwks.json";
/// How long a receiver may cache the document, at most. A key published by a rotation reaches
/// a receiver within this time; until then the delivery also carries the older key's signature
/// for the grace period, which is why a grace period of at least this long is the safe choice.
pub const MAX_CACHE_SECONDS: i64 = 300;

/// One key, as a JWK with this product's members beside the standard ones.
#[derive(Serialize)]
struct Jwk {
    kty: &'static str,
    crv: &'static str,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
    kid: String,
    x: String,
    /// The same key in the Standard Webhooks form.
    whpk: String,
    /// `current`, or `previous` for a key still inside its grace period.
    status: &'static str,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct KeySet {
    keys: Vec<Jwk>,
}

/// The valid Ed25519 public keys of `record` at `now`, current first.
fn key_set(record: &EndpointRecord, now: DateTime<Utc>) -> KeySet {
    let keys = record
        .valid_secrets(now)
        .into_iter()
        .enumerate()
        .filter_map(|(position, version)| {
            let public = version.value.public_key()?;
            Some(Jwk {
                kty: "OKP",
                crv: "Ed25519",
                alg: "EdDSA",
                use_: "sig",
                kid: version.version_id.to_string(),
                x: public.jwk_x(),
                whpk: public.whpk(),
                status: if position == 0 { "current" } else { "previous" },
                created_at: version.created_at,
                expires_at: version.expires_at,
            })
        })
        .collect();
    KeySet { keys }
}

/// `GET /v1/tenants/{tenant}/endpoints/{id}/jwks.json`
pub async fn public_keys(app: &App, req: Request) -> Result<Response<Body>, Error> {
    respond(
        app,
        req,
        Route::native("public-keys"),
        async |_call, req| {
            let no_keys = || {
                ApiError::new(
                    ErrorCode::NotFound,
                    "no Ed25519 public keys are published for this endpoint",
                )
            };
            let tenant = path_param(req, "tenant", TEMPLATE)
                .and_then(|raw| TenantId::parse(&raw).ok())
                .ok_or_else(no_keys)?;
            let id = path_param(req, "id", TEMPLATE)
                .and_then(|raw| EndpointId::parse(&raw).ok())
                .filter(|id| !id.is_account_secret())
                .ok_or_else(no_keys)?;
            let stored = match app.endpoints.get_endpoint(&tenant, &id).await {
                Ok(stored) => stored,
                Err(err) if err.code() == ErrorCode::NotFound => return Err(no_keys()),
                Err(err) => return Err(err.into()),
            };
            let now = app.clock.now();
            let set = key_set(&stored.record, now);
            if set.keys.is_empty() {
                return Err(no_keys());
            }
            // Never cached past the moment a listed key stops verifying.
            let max_age = set
                .keys
                .iter()
                .filter_map(|key| key.expires_at)
                .map(|expiry| (expiry - now).num_seconds())
                .fold(MAX_CACHE_SECONDS, i64::min)
                .max(0);
            Ok(Reply::json(StatusCode::OK, &set)?
                .with_header("cache-control", format!("public, max-age={max_age}")))
        },
    )
    .await
}
