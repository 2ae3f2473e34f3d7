//! What the native API answers for an endpoint and its secrets. A secret's value appears only
//! where it is shown on purpose: create, rotate, and reveal.

use crate::config::App;
use crate::domain::endpoint::{
    EndpointRecord, EndpointStatus, RequestConfig, RotationPolicy, SecretVersion,
};
use crate::domain::secret::SecretFormat;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Serialize)]
pub struct SecretView<'a> {
    /// Present only where the secret is shown: create, rotate and reveal.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    masked: String,
    format: SecretFormat,
    /// An `ed25519` secret's public key, `whpk_…`: not a secret, so always shown in full.
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    version_id: &'a str,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

impl<'a> SecretView<'a> {
    pub fn new(version: &'a SecretVersion, reveal: bool) -> Self {
        Self {
            value: reveal.then(|| version.value.expose()),
            masked: version.value.fingerprint(),
            format: version.value.format(),
            public_key: version.value.public_key().map(|key| key.whpk()),
            version_id: version.version_id.as_str(),
            created_at: version.created_at,
            expires_at: version.expires_at,
        }
    }
}

fn previous_views<'a>(record: &'a EndpointRecord, reveal: bool, app: &App) -> Vec<SecretView<'a>> {
    let now = app.clock.now();
    record
        .previous_secrets
        .iter()
        .filter(|s| s.is_valid_at(now))
        .map(|s| SecretView::new(s, reveal))
        .collect()
}

#[derive(Serialize)]
pub struct EndpointView<'a> {
    id: &'a str,
    url: &'a str,
    name: &'a str,
    description: &'a str,
    topics: &'a [String],
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    status: EndpointStatus,
    request_config: &'a RequestConfig,
    version: &'a str,
    rotation_policy: Option<RotationPolicy>,
    /// When the scheduled sweep rotates the secret next; `null` without a policy.
    next_rotation_at: Option<DateTime<Utc>>,
    secret: SecretView<'a>,
    /// Older secrets still valid, masked, with their expiry.
    previous_secrets: Vec<SecretView<'a>>,
}

impl<'a> EndpointView<'a> {
    pub fn new(record: &'a EndpointRecord, reveal: bool, app: &App) -> Self {
        let endpoint = &record.endpoint;
        Self {
            id: endpoint.id.as_str(),
            url: &endpoint.url,
            name: &endpoint.name,
            description: &endpoint.description,
            topics: &endpoint.topics,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
            status: endpoint.status,
            request_config: &endpoint.request_config,
            version: &endpoint.version,
            rotation_policy: endpoint.rotation_policy,
            next_rotation_at: endpoint
                .rotation_policy
                .map(|policy| policy.due_at(record.secret.created_at)),
            secret: SecretView::new(&record.secret, reveal),
            previous_secrets: previous_views(record, false, app),
        }
    }
}

/// An endpoint's secrets: rotate's and reveal's answer.
#[derive(Serialize)]
pub struct SecretsView<'a> {
    endpoint_id: &'a str,
    secret: SecretView<'a>,
    previous_secrets: Vec<SecretView<'a>>,
}

impl<'a> SecretsView<'a> {
    /// The current secret's value always; older ones' values only when `reveal_previous`.
    pub fn new(record: &'a EndpointRecord, reveal_previous: bool, app: &App) -> Self {
        Self {
            endpoint_id: record.endpoint.id.as_str(),
            secret: SecretView::new(&record.secret, true),
            previous_secrets: previous_views(record, reveal_previous, app),
        }
    }
}
