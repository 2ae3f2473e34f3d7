//! Retry-safe writes. A write made under an `Idempotency-Key` is remembered in the record it
//! produced (see [`KeyedWrite`]) and carried forward by every later write for a day, so the
//! guarantee holds across processes and cold starts with no extra table. A retry first reads
//! the record: if its key is there, the write happened and the retry is answered from the
//! version it produced; if not, the write never took effect (it lost its swap, or died before
//! it) and the retry simply runs it again, as Stripe does.

use super::hex;
use crate::domain::endpoint::{EndpointRecord, KeyedWrite, RequestFingerprint};
use crate::domain::ids::{EndpointId, TenantId, VersionId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hex digits kept of each SHA-256: 128 bits, ample to tell apart one endpoint's requests of a
/// day, and half the bytes in the record.
const FINGERPRINT_HEX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 8 to 64 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, InvalidIdempotencyKey> {
        let visible = raw.bytes().all(|b| b.is_ascii_graphic());
        if (8..=64).contains(&raw.len()) && visible {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidIdempotencyKey)
        }
    }
}

/// An idempotent request: its key, and a hash of what it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    key: IdempotencyKey,
    fingerprint: RequestFingerprint,
}

impl Idempotency {
    /// `route` and `body` identify the request; the body is hashed in canonical form (object
    /// keys sorted), so the same JSON sent with other spacing or key order is the same request.
    pub fn new(key: IdempotencyKey, route: &str, body: &Value) -> Self {
        let mut canonical = String::from(route);
        canonical.push('\n');
        write_canonical(body, &mut canonical);
        let fingerprint = RequestFingerprint {
            idempotency_key_sha256: hex_sha256(key.0.as_bytes())[..FINGERPRINT_HEX].to_owned(),
            request_sha256: hex_sha256(canonical.as_bytes())[..FINGERPRINT_HEX].to_owned(),
        };
        Self { key, fingerprint }
    }

    pub fn fingerprint(&self) -> &RequestFingerprint {
        &self.fingerprint
    }

    /// The id of an endpoint created under this key without a caller-chosen id, so a retried
    /// create finds the endpoint its first attempt made.
    pub fn endpoint_id(&self, tenant: &TenantId) -> EndpointId {
        let digest = self.derive(tenant, "create:generated-id");
        EndpointId::parse(&format!("ep_{}", &hex(&digest)[..24]))
            .unwrap_or_else(|_| EndpointId::generate())
    }

    /// What `record` remembers of this key at `now`: `None` if no write under it took effect
    /// there within the window, else the write and whether it was this same request.
    pub fn find<'r>(&self, record: &'r EndpointRecord, now: DateTime<Utc>) -> Option<Replay<'r>> {
        let write = record.keyed_writes.iter().rev().find(|w| {
            w.is_remembered_at(now)
                && w.fingerprint.idempotency_key_sha256 == self.fingerprint.idempotency_key_sha256
        })?;
        Some(
            if write.fingerprint.request_sha256 == self.fingerprint.request_sha256 {
                Replay::Same(write)
            } else {
                Replay::Different
            },
        )
    }

    /// The entry a write under this key leaves in the record it produces, `version`.
    pub fn keyed_write(&self, version: &VersionId, at: DateTime<Utc>) -> KeyedWrite {
        KeyedWrite {
            fingerprint: self.fingerprint.clone(),
            version: version.clone(),
            at,
        }
    }

    fn derive(&self, tenant: &TenantId, scope: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in [tenant.as_str(), scope, &self.key.0] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize().into()
    }
}

/// A key found in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay<'r> {
    /// The same request wrote this: answer from its version.
    Same(&'r KeyedWrite),
    /// Another request used the key.
    Different,
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(raw: &str) -> IdempotencyKey {
        IdempotencyKey::parse(raw).unwrap()
    }

    #[test]
    fn keys_are_8_to_64_visible_characters() {
        assert!(IdempotencyKey::parse("abcdefgh").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(64)).is_ok());
        for bad in [
            "short",
            "has space in it",
            "tab\there!",
            &"k".repeat(65),
            "ünïcödé-key",
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_same_request_in_any_key_order_has_one_fingerprint() {
        let a = Idempotency::new(
            key("retry-key-1"),
            "rotate",
            &json!({"a": 1, "b": [1, {"y": 2, "x": 1}]}),
        );
        let b = Idempotency::new(
            key("retry-key-1"),
            "rotate",
            &json!({"b": [1, {"x": 1, "y": 2}], "a": 1}),
        );
        let c = Idempotency::new(key("retry-key-1"), "rotate", &json!({"a": 2}));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(
            a.fingerprint().request_sha256,
            c.fingerprint().request_sha256
        );
    }

    #[test]
    fn derived_ids_are_stable_and_scoped() {
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        let one = Idempotency::new(key("retry-key-1"), "rotate", &json!({}));
        let again = Idempotency::new(key("retry-key-1"), "rotate", &json!({}));
        assert_eq!(one.endpoint_id(&acme), again.endpoint_id(&acme));
        assert_ne!(one.endpoint_id(&acme), one.endpoint_id(&globex));
        assert!(EndpointId::parse(one.endpoint_id(&acme).as_str()).is_ok());
    }
}
