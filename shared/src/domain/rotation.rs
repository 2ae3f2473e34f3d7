//! The rotation rule: what an endpoint's record becomes when its secret is replaced. Every
//! rotation, whatever triggers it (the API, a seed contract, the sweep, Secrets Manager's
//! rotation protocol), goes through [`rotated`].

use crate::domain::endpoint::{
    EndpointRecord, GracePeriod, SecretSource, SecretVersion, MAX_PREVIOUS_SECRETS,
};
use crate::domain::ids::VersionId;
use crate::domain::secret::{SecretError, SecretFormat, SecretSpec, WebhookSecret, WHSEC_PREFIX};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The rotation would keep more than `MAX_PREVIOUS_SECRETS` older secrets valid.
    #[error("{MAX_PREVIOUS_SECRETS} older secrets are still valid; the oldest expires at {oldest_expires_at}")]
    TooManyValidSecrets { oldest_expires_at: DateTime<Utc> },
}

/// `record` after a rotation to a new secret, version `version_id`, issued at `now`: the
/// replaced secret stays valid for `grace` (or every older one ends, with `invalidate_older`),
/// and secrets already expired are dropped.
pub fn rotated(
    mut record: EndpointRecord,
    source: SecretSource,
    grace: GracePeriod,
    invalidate_older: bool,
    version_id: VersionId,
    now: DateTime<Utc>,
) -> Result<EndpointRecord, RotationError> {
    let value = match source {
        SecretSource::Supplied(secret) => secret,
        SecretSource::Generate(spec) => WebhookSecret::generate(spec)?,
        SecretSource::LikeCurrent => WebhookSecret::generate(spec_like(&record.secret.value)?)?,
    };
    if invalidate_older {
        record.previous_secrets.clear();
    }
    record.previous_secrets.retain(|old| old.is_valid_at(now));
    if !grace.is_zero() {
        if record.previous_secrets.len() >= MAX_PREVIOUS_SECRETS {
            let oldest_expires_at = record
                .previous_secrets
                .iter()
                .filter_map(|old| old.expires_at)
                .min()
                .unwrap_or(now);
            return Err(RotationError::TooManyValidSecrets { oldest_expires_at });
        }
        let mut replaced = record.secret.clone();
        replaced.expires_at = Some(now + grace.as_duration());
        record.previous_secrets.insert(0, replaced);
    }
    record.secret = SecretVersion {
        version_id,
        value,
        created_at: now,
        replaces: Some(record.secret.version_id.clone()),
        expires_at: None,
    };
    record.endpoint.updated_at = now;
    record.remember_keyed_write(now, None);
    Ok(record)
}

/// The spec that generates a secret of the same format and length as `secret`.
fn spec_like(secret: &WebhookSecret) -> Result<SecretSpec, SecretError> {
    match secret.format() {
        SecretFormat::Uuid => SecretSpec::new(SecretFormat::Uuid, None),
        SecretFormat::Ed25519 => SecretSpec::new(SecretFormat::Ed25519, None),
        SecretFormat::Whsec => {
            let encoded = secret.expose().trim_start_matches(WHSEC_PREFIX);
            let bytes = STANDARD.decode(encoded).map(|b| b.len()).ok();
            SecretSpec::new(SecretFormat::Whsec, bytes)
        }
    }
}
