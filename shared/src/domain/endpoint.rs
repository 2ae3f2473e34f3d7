//! Endpoints: where webhooks go, and the signing secrets that belong to them.

use crate::domain::ids::{EndpointId, TenantId, VersionId};
use crate::domain::secret::{SecretSpec, WebhookSecret};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
pub const MAX_TOPICS: usize = 64;
pub const MAX_TOPIC_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEndpoint(pub String);

/// An endpoint's public metadata. Stored, a field at its default is left out (it reads back
/// as that default): a keyring holds dozens of records, so every byte left out is storage not
/// paid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub tenant: TenantId,
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: EndpointStatus,
    #[serde(default, skip_serializing_if = "is_default")]
    pub request_config: RequestConfig,
    /// The payload version deliveries to this endpoint use.
    #[serde(
        default = "default_version",
        skip_serializing_if = "is_default_version"
    )]
    pub version: String,
    /// When set, the scheduled sweep rotates the secret once it is this old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<RotationPolicy>,
}

/// The tags that mirror an endpoint's rotation policy on its stored secret, so the sweep finds
/// due endpoints from a listing alone. The record stays the authority; tags only select.
pub const ROTATION_PERIOD_TAG: &str = "webhook-secrets:rotation-period-days";
pub const ROTATION_GRACE_TAG: &str = "webhook-secrets:rotation-grace-seconds";

pub const MIN_ROTATION_PERIOD_DAYS: u32 = 1;
/// Secrets Manager's own rotation schedules stop at 1,000 days.
pub const MAX_ROTATION_PERIOD_DAYS: u32 = 1_000;

/// Rotate every `period_days`, keeping the replaced secret valid for `grace_period_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRotationPolicy", into = "RawRotationPolicy")]
pub struct RotationPolicy {
    period_days: u32,
    grace: GracePeriod,
}

#[derive(Serialize, Deserialize)]
struct RawRotationPolicy {
    period_days: u32,
    grace_period_seconds: u32,
}

impl TryFrom<RawRotationPolicy> for RotationPolicy {
    type Error = InvalidEndpoint;
    fn try_from(raw: RawRotationPolicy) -> Result<Self, Self::Error> {
        Self::new(
            u64::from(raw.period_days),
            GracePeriod::seconds(u64::from(raw.grace_period_seconds))?,
        )
    }
}

impl From<RotationPolicy> for RawRotationPolicy {
    fn from(policy: RotationPolicy) -> Self {
        Self {
            period_days: policy.period_days,
            grace_period_seconds: policy.grace.0,
        }
    }
}

impl RotationPolicy {
    pub fn new(period_days: u64, grace: GracePeriod) -> Result<Self, InvalidEndpoint> {
        let period_days = u32::try_from(period_days)
            .ok()
            .filter(|d| (MIN_ROTATION_PERIOD_DAYS..=MAX_ROTATION_PERIOD_DAYS).contains(d))
            .ok_or_else(|| {
                InvalidEndpoint(format!(
                    "rotation_policy.period_days must be from {MIN_ROTATION_PERIOD_DAYS} to {MAX_ROTATION_PERIOD_DAYS}"
                ))
            })?;
        Ok(Self { period_days, grace })
    }

    pub fn period_days(self) -> u32 {
        self.period_days
    }

    pub fn period(self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.period_days))
    }

    pub fn grace(self) -> GracePeriod {
        self.grace
    }

    /// When a secret issued at `issued_at` falls due.
    pub fn due_at(self, issued_at: DateTime<Utc>) -> DateTime<Utc> {
        issued_at + self.period()
    }

    /// The tags that mirror this policy (or its absence) on the stored secret: what to set,
    /// and what to remove.
    pub fn tags(policy: Option<Self>) -> (Vec<(String, String)>, Vec<String>) {
        match policy {
            Some(policy) => (
                vec![
                    (
                        ROTATION_PERIOD_TAG.to_owned(),
                        policy.period_days.to_string(),
                    ),
                    (ROTATION_GRACE_TAG.to_owned(), policy.grace.0.to_string()),
                ],
                Vec::new(),
            ),
            None => (
                Vec::new(),
                vec![
                    ROTATION_PERIOD_TAG.to_owned(),
                    ROTATION_GRACE_TAG.to_owned(),
                ],
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    #[default]
    Active,
    Paused,
    Suspended,
}

impl EndpointStatus {
    pub fn parse(raw: &str) -> Result<Self, InvalidEndpoint> {
        match raw {
            "active" => Ok(Self::Active),
            "paused" => Ok(Self::Paused),
            "suspended" => Ok(Self::Suspended),
            _ => Err(InvalidEndpoint(
                "status must be \"active\", \"paused\" or \"suspended\"".into(),
            )),
        }
    }
}

pub const DEFAULT_TIMEOUT_MS: u32 = 5_000;
pub const MIN_TIMEOUT_MS: u32 = 1_000;
pub const MAX_TIMEOUT_MS: u32 = 30_000;
pub const MAX_CUSTOM_HEADERS: usize = 20;
pub const DEFAULT_VERSION: &str = "1.0";

fn default_version() -> String {
    DEFAULT_VERSION.to_owned()
}

fn is_default_version(version: &str) -> bool {
    version == DEFAULT_VERSION
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// How deliveries to the endpoint are made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestConfig {
    pub timeout_ms: u32,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Default for RequestConfig {
    fn default() -> Self {
        Self {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            headers: BTreeMap::new(),
        }
    }
}

impl RequestConfig {
    pub fn validate(
        timeout_ms: Option<u32>,
        headers: BTreeMap<String, String>,
    ) -> Result<Self, InvalidEndpoint> {
        let timeout_ms = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(InvalidEndpoint(format!(
                "request_config.timeout_ms must be from {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS}"
            )));
        }
        if headers.len() > MAX_CUSTOM_HEADERS {
            return Err(InvalidEndpoint(format!(
                "request_config.headers holds at most {MAX_CUSTOM_HEADERS} headers"
            )));
        }
        let mut seen: Vec<String> = Vec::with_capacity(headers.len());
        for (name, value) in &headers {
            let valid_name = (1..=64).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            // Printable ASCII only: no CR, LF, TAB or NUL, which would let a value split the
            // delivery request or smuggle another header into it.
            let valid_value =
                value.len() <= 1024 && value.bytes().all(|b| (0x20..0x7f).contains(&b));
            if !valid_name || !valid_value {
                return Err(InvalidEndpoint(
                    "request_config.headers names are 1 to 64 of A-Z a-z 0-9 -, values up to 1024 printable ASCII characters".into(),
                ));
            }
            if value.trim() != value {
                return Err(InvalidEndpoint(format!(
                    "request_config.headers value of {name} starts or ends with whitespace, which HTTP would strip"
                )));
            }
            let lower = name.to_ascii_lowercase();
            if is_sender_header(&lower) {
                return Err(InvalidEndpoint(format!(
                    "request_config.headers may not set {name}: the sender sets it (Host, Content-Length, Transfer-Encoding, Connection and other hop-by-hop headers, and the webhook-* signature headers)"
                )));
            }
            if seen.contains(&lower) {
                return Err(InvalidEndpoint(format!(
                    "request_config.headers holds {name} twice (header names ignore case)"
                )));
            }
            seen.push(lower);
        }
        Ok(Self {
            timeout_ms,
            headers,
        })
    }
}

/// Headers a sender must set itself, lowercase: the framing of the request (a caller's value
/// would desynchronise it, or split it in two), the hop-by-hop headers, and the Standard
/// Webhooks signature headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`, and any
/// later `webhook-*` one), which a caller's value would forge or shadow.
const SENDER_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

fn is_sender_header(lowercase_name: &str) -> bool {
    SENDER_HEADERS.contains(&lowercase_name) || lowercase_name.starts_with("webhook-")
}

/// One version of an endpoint's signing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersion {
    pub version_id: VersionId,
    pub value: WebhookSecret,
    pub created_at: DateTime<Utc>,
    /// The version this one replaced, which lets anyone walk the rotation history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<VersionId>,
    /// For an older secret kept valid after a rotation: when it stops verifying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// What the vault stores for each endpoint, as one JSON document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub schema: u32,
    pub endpoint: Endpoint,
    pub secret: SecretVersion,
    /// Older secrets still inside a grace period, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_secrets: Vec<SecretVersion>,
    /// The writes made under an `Idempotency-Key` that took effect on this endpoint within
    /// the idempotency window, oldest first. Only a write whose swap won is ever listed, so a
    /// retry answered from this list names a secret that really became current.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyed_writes: Vec<KeyedWrite>,
}

pub const RECORD_SCHEMA: u32 = 1;

/// Hashes of an idempotent request: its key, and its canonical body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFingerprint {
    #[serde(rename = "key")]
    pub idempotency_key_sha256: String,
    #[serde(rename = "request")]
    pub request_sha256: String,
}

/// A write made under an `Idempotency-Key` that took effect: the request's fingerprint, the
/// record version it produced (a retry is answered from that version), and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedWrite {
    #[serde(flatten)]
    pub fingerprint: RequestFingerprint,
    pub version: VersionId,
    pub at: DateTime<Utc>,
}

/// How long an `Idempotency-Key` is remembered, as Stripe does: a retry within it replays the
/// write; after it the same key is a new request.
pub const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;
/// Secrets Manager keeps about 100 versions of a secret per 24 hours, so a record cannot take
/// more keyed writes than this within the window; the bound only guards the record's size.
pub const MAX_KEYED_WRITES: usize = 100;

impl KeyedWrite {
    /// Whether a retry at `now` is still inside the idempotency window of this write.
    pub fn is_remembered_at(&self, now: DateTime<Utc>) -> bool {
        now < self.at + chrono::Duration::hours(IDEMPOTENCY_WINDOW_HOURS)
    }
}

impl EndpointRecord {
    /// Drops keyed writes older than the idempotency window (and the oldest past the bound),
    /// then records `write` if given. Every write of the record calls this, so the list is
    /// carried forward and stays bounded.
    pub fn remember_keyed_write(&mut self, now: DateTime<Utc>, write: Option<KeyedWrite>) {
        self.keyed_writes.retain(|w| w.is_remembered_at(now));
        if let Some(write) = write {
            self.keyed_writes.push(write);
        }
        let excess = self.keyed_writes.len().saturating_sub(MAX_KEYED_WRITES);
        self.keyed_writes.drain(..excess);
    }

    /// The secrets that verify at `now`: the current one, then older ones inside their grace.
    pub fn valid_secrets(&self, now: DateTime<Utc>) -> Vec<&SecretVersion> {
        std::iter::once(&self.secret)
            .chain(self.previous_secrets.iter().filter(|s| s.is_valid_at(now)))
            .collect()
    }
}

impl SecretVersion {
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

/// Longest grace period: 7 days.
pub const MAX_GRACE_SECONDS: u32 = 604_800;
/// Default grace period: 24 hours, long enough for every receiver to pick up the new secret.
pub const DEFAULT_GRACE_SECONDS: u32 = 86_400;
/// Most older secrets an endpoint keeps valid at once; each one is one more HMAC per delivery.
pub const MAX_PREVIOUS_SECRETS: usize = 10;

/// How long an old secret keeps verifying after a rotation; 0 means it stops at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracePeriod(u32);

impl GracePeriod {
    pub fn seconds(seconds: u64) -> Result<Self, InvalidEndpoint> {
        u32::try_from(seconds)
            .ok()
            .filter(|s| *s <= MAX_GRACE_SECONDS)
            .map(Self)
            .ok_or_else(|| {
                InvalidEndpoint(format!(
                    "grace_period_seconds must be from 0 to {MAX_GRACE_SECONDS}"
                ))
            })
    }

    /// The old secret stops verifying at once.
    pub fn none() -> Self {
        Self(0)
    }

    pub fn as_duration(self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.0))
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn as_seconds(self) -> u32 {
        self.0
    }
}

impl Default for GracePeriod {
    fn default() -> Self {
        Self(DEFAULT_GRACE_SECONDS)
    }
}

/// Where a new secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Generate(SecretSpec),
    /// Generate one like the current secret (same format and length).
    LikeCurrent,
    Supplied(WebhookSecret),
}

/// A validated request to create an endpoint.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub id: Option<EndpointId>,
    pub url: String,
    pub name: String,
    pub description: String,
    pub topics: Vec<String>,
    pub status: EndpointStatus,
    pub request_config: RequestConfig,
    pub version: String,
    pub rotation_policy: Option<RotationPolicy>,
    pub secret: SecretSource,
}

/// A validated change to an endpoint's metadata: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub topics: Option<Vec<String>>,
    pub status: Option<EndpointStatus>,
    pub request_config: Option<RequestConfig>,
    pub version: Option<String>,
    /// `Some(None)` turns scheduled rotation off.
    pub rotation_policy: Option<Option<RotationPolicy>>,
}

impl EndpointPatch {
    /// Applies the patch; returns whether anything changed.
    pub fn apply(self, endpoint: &mut Endpoint) -> bool {
        let before = endpoint.clone();
        let Self {
            url,
            name,
            description,
            topics,
            status,
            request_config,
            version,
            rotation_policy,
        } = self;
        if let Some(url) = url {
            endpoint.url = url;
        }
        if let Some(name) = name {
            endpoint.name = name;
        }
        if let Some(description) = description {
            endpoint.description = description;
        }
        if let Some(topics) = topics {
            endpoint.topics = topics;
        }
        if let Some(status) = status {
            endpoint.status = status;
        }
        if let Some(request_config) = request_config {
            endpoint.request_config = request_config;
        }
        if let Some(version) = version {
            endpoint.version = version;
        }
        if let Some(rotation_policy) = rotation_policy {
            endpoint.rotation_policy = rotation_policy;
        }
        *endpoint != before
    }
}

impl NewEndpoint {
    /// The url in its normalised form (as the WHATWG URL standard serialises it: scheme and
    /// host lowercased, default port dropped, path percent-encoded), which is what is stored
    /// and shown. The URL parser itself silently drops tabs and newlines and trims control
    /// characters and spaces at either end, so a url holding any of them is refused here
    /// first: a sender that used the raw text could be made to split its request.
    pub fn validate_url(raw: &str) -> Result<String, InvalidEndpoint> {
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(InvalidEndpoint(format!(
                "url is longer than {MAX_URL_CHARS} characters"
            )));
        }
        if raw.chars().any(char::is_control) {
            return Err(InvalidEndpoint(
                "url contains control characters (such as CR, LF, TAB or NUL)".into(),
            ));
        }
        if raw.trim() != raw {
            return Err(InvalidEndpoint("url starts or ends with whitespace".into()));
        }
        let parsed = url::Url::parse(raw)
            .map_err(|e| InvalidEndpoint(format!("url is not an absolute URL: {e}")))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err(InvalidEndpoint(
                "url must be an http or https URL with a host".into(),
            ));
        }
        let normalised = String::from(parsed);
        if normalised.chars().count() > MAX_URL_CHARS {
            return Err(InvalidEndpoint(format!(
                "url is longer than {MAX_URL_CHARS} characters once normalised"
            )));
        }
        Ok(normalised)
    }

    pub fn validate_text(field: &str, raw: &str, max: usize) -> Result<String, InvalidEndpoint> {
        if raw.chars().count() > max {
            return Err(InvalidEndpoint(format!(
                "{field} is longer than {max} characters"
            )));
        }
        if raw.chars().any(|c| c.is_control() && c != '\n') {
            return Err(InvalidEndpoint(format!(
                "{field} contains control characters"
            )));
        }
        Ok(raw.to_owned())
    }

    pub fn validate_version(raw: &str) -> Result<String, InvalidEndpoint> {
        let valid = (1..=32).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if valid {
            Ok(raw.to_owned())
        } else {
            Err(InvalidEndpoint(
                "version is 1 to 32 of A-Z a-z 0-9 . _ -".into(),
            ))
        }
    }

    pub fn validate_topics(raw: Vec<String>) -> Result<Vec<String>, InvalidEndpoint> {
        if raw.len() > MAX_TOPICS {
            return Err(InvalidEndpoint(format!(
                "at most {MAX_TOPICS} topics are allowed"
            )));
        }
        let mut topics = Vec::with_capacity(raw.len());
        for topic in raw {
            let valid = (1..=MAX_TOPIC_CHARS).contains(&topic.len())
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:*-/".contains(c));
            if !valid {
                return Err(InvalidEndpoint(format!(
                    "each topic is 1 to {MAX_TOPIC_CHARS} characters of A-Z a-z 0-9 . _ : * - /"
                )));
            }
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        Ok(topics)
    }
}
