//! The audit trail: one JSON record per create, rotate, reveal, delete and API-key change,
//! whatever its outcome. Never a secret value: only ids. Records are written as their own
//! JSON lines (not through the log filter), so `RUST_LOG` can never switch them off, and
//! CloudWatch metric filters can match them with `{ $.audit = "webhook-secrets" }`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::Write;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Always `webhook-secrets`: what a metric filter matches on.
    pub audit: &'static str,
    pub time: DateTime<Utc>,
    pub request_id: String,
    pub tenant: Option<String>,
    pub actor_key_id: Option<String>,
    /// `endpoint.create`, `endpoint.update`, `secret.rotate`, `secret.reveal`,
    /// `endpoint.delete`, `secret.prune`, `secret.clear_pending`, `api_key.create`,
    /// `api_key.revoke`.
    pub action: &'static str,
    pub endpoint_id: Option<String>,
    /// For `api_key.*` actions: the key acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The secret versions the action created, returned or removed.
    pub secret_version_ids: Vec<String>,
    /// `success`, or the error code the caller received (`forbidden`, `conflict`, ...).
    pub outcome: String,
    /// The HTTP status answered, when there was a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Whether the answer was a replay of an earlier idempotent request.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// What acted when no API key did: `schedule` (the sweep) or `secretsmanager-rotation`
    /// (Secrets Manager's rotation protocol).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<&'static str>,
}

pub const AUDIT_MARKER: &str = "webhook-secrets";

impl AuditRecord {
    /// A record of `action` at `time` for `request_id` (a request's id, or a sweep run's),
    /// with no actor, endpoint or versions yet and the outcome `success`; the caller fills in
    /// what it knows.
    pub fn new(time: DateTime<Utc>, request_id: impl Into<String>, action: &'static str) -> Self {
        Self {
            audit: AUDIT_MARKER,
            time,
            request_id: request_id.into(),
            tenant: None,
            actor_key_id: None,
            action,
            endpoint_id: None,
            key_id: None,
            secret_version_ids: Vec::new(),
            outcome: "success".to_owned(),
            status: None,
            replayed: false,
            trigger: None,
        }
    }
}

pub trait AuditSink: Send + Sync {
    fn record(&self, record: &AuditRecord);
}

/// Writes each record as one line on stdout (functions: CloudWatch Logs) or stderr (the admin
/// command, whose stdout is for its own output).
pub struct JsonLinesAudit {
    to_stderr: bool,
}

impl JsonLinesAudit {
    pub fn stdout() -> Self {
        Self { to_stderr: false }
    }

    pub fn stderr() -> Self {
        Self { to_stderr: true }
    }
}

impl AuditSink for JsonLinesAudit {
    fn record(&self, record: &AuditRecord) {
        write_line(record, self.to_stderr);
    }
}

/// Writes `value` as one JSON line, in one write so concurrent lines never interleave.
pub fn write_line<T: Serialize>(value: &T, to_stderr: bool) {
    let Ok(mut line) = serde_json::to_vec(value) else {
        return;
    };
    line.push(b'\n');
    let written = if to_stderr {
        std::io::stderr().lock().write_all(&line)
    } else {
        std::io::stdout().lock().write_all(&line)
    };
    if let Err(err) = written {
        tracing::error!(error = %err, "audit line not written");
    }
}

/// Keeps records in memory, for tests.
#[derive(Default)]
pub struct MemoryAudit(Mutex<Vec<AuditRecord>>);

impl MemoryAudit {
    pub fn records(&self) -> Vec<AuditRecord> {
        crate::domain::lock(&self.0).clone()
    }
}

impl AuditSink for MemoryAudit {
    fn record(&self, record: &AuditRecord) {
        crate::domain::lock(&self.0).push(record.clone());
    }
}
