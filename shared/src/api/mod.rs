//! The native HTTP API, one public function per Lambda function, grouped by resource:
//! [`endpoints`] (create, get, list, update, delete), [`secrets`] (rotate, reveal),
//! [`messages`] (sign, verify) and [`keys`] (the public key set receivers fetch). [`http`] is
//! the plumbing every route and seed contract shares: the runner that owns each request's span, log line and audit record, authentication, body
//! parsing, and the one place where an error becomes a response.

pub mod endpoints;
pub mod http;
pub mod keys;
pub mod messages;
pub mod secrets;
mod views;

pub use endpoints::{
    create_endpoint, delete_endpoint, get_endpoint, list_endpoints, update_endpoint,
};
pub use keys::public_keys;
pub use messages::{sign_message, verify_message};
pub use secrets::{reveal_secret, rotate_secret};

use crate::config::App;
use crate::domain::endpoint::{EndpointRecord, SecretSource};
use crate::domain::ids::EndpointId;
use crate::domain::secret::{SecretFormat, SecretSpec, WebhookSecret};
use crate::vault::AccountSecret;
use http::ApiError;
use zeroize::Zeroizing;

/// The path's endpoint id, parsed. Routes call this only after authenticating, so a caller
/// without a valid key learns nothing from the id's shape.
pub(crate) fn endpoint_id(raw: Option<&str>) -> Result<EndpointId, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::invalid("the path has no endpoint id"))?;
    EndpointId::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))
}

/// `id`, if a native write may change it. Account-level secrets change only through their own
/// contracts (seed 000 rotates `_account-uuid`, seed 003 `_account-whsec`), which keep their
/// format and end the old secret at once; a native rotate, update or delete could give them a
/// grace period, a rotation policy, another format, or take them away. Reading, revealing,
/// signing and verifying with them stay open.
pub(crate) fn changeable(id: EndpointId) -> Result<EndpointId, ApiError> {
    if !id.is_account_secret() {
        return Ok(id);
    }
    Err(ApiError::invalid(format!(
        "{id} is an account-level secret: it changes only through its own contract ({} through POST /v1/webhook/secret, {} through POST /api/v3/webhooks/secret/regenerate); it can be read, revealed, signed and verified with",
        AccountSecret::Uuid.endpoint_id(),
        AccountSecret::Whsec.endpoint_id(),
    )))
}

/// The current secret's version, then every older one still valid.
pub(crate) fn version_ids<'a>(record: &'a EndpointRecord, app: &App) -> Vec<&'a str> {
    record
        .valid_secrets(app.clock.now())
        .into_iter()
        .map(|s| s.version_id.as_str())
        .collect()
}

/// Where the next secret comes from: the caller's own (validated), or generated to the
/// requested format and length, or — with neither — generated like the current one.
pub(crate) fn secret_source(
    supplied: Option<String>,
    format: Option<String>,
    bytes: Option<usize>,
) -> Result<SecretSource, ApiError> {
    let format = format.as_deref().map(SecretFormat::parse).transpose()?;
    if let Some(raw) = supplied {
        let raw = Zeroizing::new(raw);
        let secret = WebhookSecret::parse(&raw)?;
        if bytes.is_some() {
            return Err(ApiError::invalid(
                "secret_bytes applies only to generated secrets; omit it when supplying a secret",
            ));
        }
        if format.is_some_and(|f| f != secret.format()) {
            return Err(ApiError::invalid("secret does not match secret_format"));
        }
        return Ok(SecretSource::Supplied(secret));
    }
    match (format, bytes) {
        (None, None) => Ok(SecretSource::LikeCurrent),
        (Some(SecretFormat::Uuid | SecretFormat::Ed25519), Some(_)) => Err(ApiError::invalid(
            "secret_bytes applies only to the whsec format",
        )),
        (format, bytes) => Ok(SecretSource::Generate(SecretSpec::new(
            format.unwrap_or(SecretFormat::Whsec),
            bytes,
        )?)),
    }
}
