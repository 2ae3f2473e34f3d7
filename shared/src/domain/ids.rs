//! Identifiers, parsed once at the edge so the rest of the code never re-checks them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub &'static str);

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// A tenant: lowercase letters, digits and `-`, 1 to 63 characters, starting with a letter or
/// digit. The vault keeps records that are not a tenant's under names that start with `_`,
/// which this rule keeps out of reach.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let valid = (1..=63).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !raw.starts_with('-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidId(
                "a tenant is 1 to 63 characters of a-z, 0-9 and '-', not starting with '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An endpoint id: `[A-Za-z0-9_-]{1,64}`, so ids chosen by migrating users fit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointId(String);

impl EndpointId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        if (1..=64).contains(&raw.len()) && raw.chars().all(is_id_char) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidId(
                "an endpoint id is 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'",
            ))
        }
    }

    /// Whether this id names one of a tenant's account-level secrets: every id starting with
    /// `_` is reserved for them, and native creates may not use one. They change only through
    /// their own contracts.
    pub fn is_account_secret(&self) -> bool {
        self.0.starts_with('_')
    }

    /// A product-defined id, known valid.
    pub(crate) fn reserved(id: &'static str) -> Self {
        Self(id.to_owned())
    }

    /// A new id: `ep_` and 24 hex digits of randomness.
    pub fn generate() -> Self {
        Self(format!("ep_{}", random_hex(12)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The public half of an API key: `ak_` and 20 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let valid = raw.len() == 23
            && raw.starts_with("ak_")
            && raw[3..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidId("an API key id is \"ak_\" and 20 hex digits"))
        }
    }

    pub fn generate() -> Self {
        Self(format!("ak_{}", random_hex(10)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A version of a stored secret. On Secrets Manager it is the `ClientRequestToken` /
/// `VersionId`, which must be 32 to 64 characters; a hyphenated UUID is 36.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VersionId(String);

impl VersionId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        if (32..=64).contains(&raw.len()) && raw.chars().all(is_id_char) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidId(
                "a version id is 32 to 64 characters of A-Z, a-z, 0-9, '_' and '-'",
            ))
        }
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// A version id that carries `issued_at`, the moment the secret it holds was issued: a
    /// UUID v7 whose timestamp is that moment. Listing a secret returns its current version id
    /// for free, so the scheduler reads each secret's age from the listing alone, and the time
    /// comes from the product's own clock.
    pub fn stamped(issued_at: DateTime<Utc>) -> Self {
        let millis = u64::try_from(issued_at.timestamp_millis()).unwrap_or(0);
        let timestamp = uuid::Timestamp::from_unix(
            uuid::NoContext,
            millis / 1000,
            (millis % 1000) as u32 * 1_000_000,
        );
        Self(uuid::Uuid::new_v7(timestamp).hyphenated().to_string())
    }

    /// A [`VersionId::stamped`] id marked as a migration's copy into the secret `scope`: 62
    /// of its random bits are a digest of `scope`, so a later pass tells its own copy (which
    /// it may replace) from a version written since (which it must keep) with a 2^-62 chance
    /// of mistaking one for the other. Its other 12 random bits keep successive copies apart.
    pub fn stamped_copy(issued_at: DateTime<Utc>, scope: &str) -> Self {
        let millis = u64::try_from(issued_at.timestamp_millis()).unwrap_or(0);
        let mut bytes = [0u8; 10];
        bytes[..2].copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..2]);
        bytes[2..].copy_from_slice(&Self::copy_mark(scope));
        Self(
            uuid::Builder::from_unix_timestamp_millis(millis, &bytes)
                .into_uuid()
                .hyphenated()
                .to_string(),
        )
    }

    /// Whether this id is a [`VersionId::stamped_copy`] into `scope`.
    pub fn is_copy_into(&self, scope: &str) -> bool {
        let Ok(uuid) = uuid::Uuid::try_parse(&self.0) else {
            return false;
        };
        let (bytes, mark) = (uuid.as_bytes(), Self::copy_mark(scope));
        uuid.get_version() == Some(uuid::Version::SortRand)
            && bytes[8] & 0x3f == mark[0] & 0x3f
            && bytes[9..] == mark[1..]
    }

    fn copy_mark(scope: &str) -> [u8; 8] {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("webhook-secrets migration copy v1\n{scope}"));
        let mut mark = [0u8; 8];
        mark.copy_from_slice(&digest[..8]);
        mark
    }

    /// The id every writer derives for the version that follows `previous` of the secret
    /// `scope`, its `n`th candidate: a UUID v8 of a SHA-256 of the three. Writers that race
    /// from the same version race for the same token, and the store refuses all but the first
    /// (a token is written once), so a lost race leaves no version behind. The next candidate
    /// is for when a writer stopped after writing its version and before making it current.
    pub fn successor(scope: &str, previous: &VersionId, n: u32) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        let n = n.to_string();
        for part in ["webhook-secrets successor v1", scope, previous.as_str(), &n] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(
            uuid::Builder::from_custom_bytes(bytes)
                .into_uuid()
                .hyphenated()
                .to_string(),
        )
    }

    /// The issue time a [`VersionId::stamped`] id carries, to the millisecond; `None` for any
    /// other id (Secrets Manager's rotation picks its own).
    pub fn stamp(&self) -> Option<DateTime<Utc>> {
        let uuid = uuid::Uuid::try_parse(&self.0).ok()?;
        if uuid.get_version() != Some(uuid::Version::SortRand) {
            return None;
        }
        let (secs, nanos) = uuid.get_timestamp()?.to_unix();
        DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Ids are public, not secrets: they need uniqueness, not secrecy, so if the OS generator
/// ever fails a UUID v4's randomness stands in rather than failing the request.
fn random_hex(bytes: usize) -> String {
    let mut buf = [0u8; 16];
    let buf = &mut buf[..bytes.min(16)];
    if getrandom::fill(buf).is_err() {
        buf.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..buf.len()]);
    }
    super::hex(buf)
}

macro_rules! string_newtype_impls {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    )*};
}

string_newtype_impls!(TenantId, EndpointId, KeyId, VersionId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_are_one_per_version_and_scope() {
        let v = VersionId::generate();
        let next = VersionId::successor("p/acme/_kr/0", &v, 0);
        assert_eq!(next, VersionId::successor("p/acme/_kr/0", &v, 0));
        assert!(VersionId::parse(next.as_str()).is_ok());
        assert_ne!(next, VersionId::successor("p/acme/_kr/0", &v, 1));
        assert_ne!(next, VersionId::successor("p/acme/_kr/1", &v, 0));
        assert_ne!(next, VersionId::successor("p/acme/_kr/0", &next, 0));
    }

    #[test]
    fn endpoint_ids_follow_the_documented_pattern() {
        for ok in ["a", "wh_end_123", "ABC-def_9", &"x".repeat(64)] {
            assert!(EndpointId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a.b", "é", &"x".repeat(65), "a b"] {
            assert!(EndpointId::parse(bad).is_err(), "{bad}");
        }
        let generated = EndpointId::generate();
        assert!(EndpointId::parse(generated.as_str()).is_ok());
    }

    #[test]
    fn tenants_cannot_reach_reserved_names() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("acme-2").is_ok());
        for bad in ["", "_api-keys", "Acme", "-acme", "a/b", &"a".repeat(64)] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_and_version_ids_round_trip() {
        let key = KeyId::generate();
        assert_eq!(KeyId::parse(key.as_str()).unwrap(), key);
        let version = VersionId::generate();
        assert_eq!(VersionId::parse(version.as_str()).unwrap(), version);
        assert!(KeyId::parse("ak_123").is_err());
        assert!(VersionId::parse("short").is_err());
    }

    #[test]
    fn copies_are_stamped_and_marked_for_their_secret_only() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T12:34:56.789Z")
            .unwrap()
            .with_timezone(&Utc);
        let copy = VersionId::stamped_copy(at, "p/acme/orders");
        assert_eq!(copy.stamp(), Some(at));
        assert!(copy.is_copy_into("p/acme/orders"));
        assert!(!copy.is_copy_into("p/acme/invoices"));
        assert_ne!(copy, VersionId::stamped_copy(at, "p/acme/orders"));
        assert!(!VersionId::stamped(at).is_copy_into("p/acme/orders"));
        assert!(!VersionId::generate().is_copy_into("p/acme/orders"));
    }

    #[test]
    fn stamped_version_ids_carry_their_issue_time() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T12:34:56.789Z")
            .unwrap()
            .with_timezone(&Utc);
        let first = VersionId::stamped(at);
        let second = VersionId::stamped(at);
        assert_ne!(first, second, "stamped ids stay unique");
        assert_eq!(first.stamp(), Some(at));
        assert_eq!(VersionId::parse(first.as_str()).unwrap(), first);
        assert_eq!(VersionId::generate().stamp(), None);
        assert_eq!(
            VersionId::parse("0123456789abcdef0123456789abcdef")
                .unwrap()
                .stamp(),
            None
        );
    }
}
