//! Secret events: what the product tells the world after a secret changes (an endpoint
//! created, a secret rotated, an endpoint deleted), and where it sends them.
//!
//! An event never holds a secret value; it may hold an Ed25519 public key. Its `event_id` is
//! derived from the write it describes, so a republished event (after a failed publish, or a
//! replayed request) carries the same id and a consumer deduplicates on it. EventBridge itself
//! delivers at least once, so consumers must do that anyway.
//!
//! Which trigger caused a write (a native route, a seed contract, the sweep, Secrets Manager's
//! rotation) is told by whoever starts the work, through [`Origin::scope`]; the vault, which
//! makes every write, reads it when it emits the event.

mod eventbridge;

pub use eventbridge::EventBridgeSink;

use crate::domain::endpoint::EndpointRecord;
use crate::settings::ConfigError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// The `source` of every event.
pub const EVENT_SOURCE: &str = "webhook-secrets";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventAction {
    #[serde(rename = "endpoint.created")]
    EndpointCreated,
    #[serde(rename = "secret.rotated")]
    SecretRotated,
    #[serde(rename = "endpoint.deleted")]
    EndpointDeleted,
}

impl EventAction {
    /// The EventBridge `detail-type`, one per action, for rules to match on.
    pub fn detail_type(self) -> &'static str {
        match self {
            Self::EndpointCreated => "Webhook Endpoint Created",
            Self::SecretRotated => "Webhook Secret Rotated",
            Self::EndpointDeleted => "Webhook Endpoint Deleted",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::EndpointCreated => "created",
            Self::SecretRotated => "rotated",
            Self::EndpointDeleted => "deleted",
        }
    }
}

/// What caused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A route of the native API.
    Api,
    /// One of the five seed contracts.
    Contract,
    /// The scheduled sweep.
    Schedule,
    /// Secrets Manager's rotation protocol.
    #[serde(rename = "secretsmanager_rotation")]
    SecretsManagerRotation,
    /// A caller that told no origin (an admin command, a test).
    Direct,
}

/// Who started the work in progress: the trigger, the route (for API and contract calls) and
/// the request or run id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub trigger: Trigger,
    pub route: Option<&'static str>,
    pub request_id: String,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

impl Origin {
    /// Runs `work` with this origin, so the events its writes emit name it.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        ORIGIN.scope(self, work).await
    }

    /// The origin of the work in progress; `Direct` with no request id outside any scope.
    pub fn current() -> Self {
        ORIGIN.try_with(Clone::clone).unwrap_or(Self {
            trigger: Trigger::Direct,
            route: None,
            request_id: String::new(),
        })
    }
}

/// An older secret still valid after the change, and when it stops verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OlderSecret {
    pub version_id: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The `detail` of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretEvent {
    /// Stable across republishing: deduplicate on it.
    pub event_id: String,
    pub action: EventAction,
    pub tenant: String,
    pub endpoint_id: String,
    /// The current secret's version after the change (for a delete, the last one).
    pub version_id: String,
    /// The version the change replaced, for a rotation.
    pub replaced_version_id: Option<String>,
    pub format: crate::domain::secret::SecretFormat,
    /// The current key's public half, for an `ed25519` secret. Never a secret value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Older secrets still valid after the change, with their expiries.
    pub previous_secrets: Vec<OlderSecret>,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub request_id: String,
    pub occurred_at: DateTime<Utc>,
}

impl SecretEvent {
    /// The event of a write that left `record` (for a delete, the record deleted), as seen at
    /// `now`, caused by `origin`.
    pub fn describe(
        action: EventAction,
        record: &EndpointRecord,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Self {
        let current = &record.secret;
        Self {
            event_id: format!("{}.{}", current.version_id, action.suffix()),
            action,
            tenant: record.endpoint.tenant.to_string(),
            endpoint_id: record.endpoint.id.to_string(),
            version_id: current.version_id.to_string(),
            replaced_version_id: match action {
                EventAction::SecretRotated => current.replaces.as_ref().map(|v| v.to_string()),
                _ => None,
            },
            format: current.value.format(),
            public_key: current.value.public_key().map(|key| key.whpk()),
            previous_secrets: record
                .previous_secrets
                .iter()
                .filter(|s| s.is_valid_at(now))
                .map(|s| OlderSecret {
                    version_id: s.version_id.to_string(),
                    expires_at: s.expires_at,
                })
                .collect(),
            trigger: origin.trigger,
            route: origin.route.map(str::to_owned),
            request_id: origin.request_id.clone(),
            occurred_at: now,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the event bus refused or lost {failed} of the events: {reason}")]
    Rejected { failed: usize, reason: String },
    #[error("the event bus could not be reached: {0}")]
    Unavailable(String),
    #[error("an event could not be encoded: {0}")]
    Encoding(#[from] serde_json::Error),
}

/// Where events go.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes every event or fails; a failure may have published some of them.
    async fn publish(&self, events: &[SecretEvent]) -> Result<(), PublishError>;
}

/// Writes each event as a log line (`make dev`, and a deployment with no bus): what a
/// developer watches with `cargo lambda watch`.
pub struct LogSink;

#[async_trait]
impl EventSink for LogSink {
    async fn publish(&self, events: &[SecretEvent]) -> Result<(), PublishError> {
        for event in events {
            let detail = serde_json::to_string(event)?;
            tracing::info!(
                source = EVENT_SOURCE,
                detail_type = event.action.detail_type(),
                %detail,
                "secret event"
            );
        }
        Ok(())
    }
}

/// Which sink the settings choose: EventBridge when `EVENT_BUS_NAME` names a bus (the
/// template sets it), the log otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSettings {
    EventBridge { bus: String },
    Log,
}

impl SinkSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = crate::settings::non_blank(lookup);
        Ok(match get("EVENT_BUS_NAME") {
            None => Self::Log,
            Some(bus) if bus.len() <= 1600 && !bus.chars().any(char::is_whitespace) => {
                Self::EventBridge { bus }
            }
            Some(bus) => {
                return Err(ConfigError(format!(
                    "EVENT_BUS_NAME is {bus:?}; it must be an event bus name or ARN"
                )))
            }
        })
    }
}
