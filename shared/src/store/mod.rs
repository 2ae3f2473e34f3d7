//! The storage port: a versioned secret store with Secrets Manager's semantics (named secrets,
//! versions labelled current / previous / pending, client request tokens, compare-and-swap).
//! Two backends implement it: [`secrets_manager::SecretsManagerStore`] and
//! [`embedded::EmbeddedStore`]. One behaviour suite (in `tests/`) runs against both.

#[cfg(feature = "embedded")]
pub mod embedded;
pub mod secrets_manager;

use crate::domain::ids::VersionId;
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Secrets Manager's documented limit on a `SecretString`. The local emulator does not enforce
/// it, so the vault does, for both backends alike.
pub const MAX_VALUE_BYTES: usize = 65_536;
/// Secrets Manager keeps every version less than 24 hours old, and at most about 100 of a
/// secret: writing one more often than that is `LimitExceededException`. AWS's guidance is one
/// write per secret every 10 minutes on average.
pub const VERSIONS_PER_DAY: usize = 100;
/// Secrets Manager's documented limit on a secret name.
pub const MAX_NAME_CHARS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such secret or version")]
    NotFound,
    #[error("a secret with this name already exists")]
    AlreadyExists,
    /// A compare-and-swap lost: the current version is no longer the one that was read.
    #[error("the secret changed since it was read")]
    Conflict,
    #[error("the secret store is throttling requests")]
    Throttled,
    #[error("the secret store is unavailable: {0}")]
    Unavailable(String),
    #[error("the secret store rejected the request: {0}")]
    Invalid(String),
    #[error("access to the secret store was denied: {0}")]
    AccessDenied(String),
    #[error("the stored value is {0} bytes, over the {MAX_VALUE_BYTES}-byte limit")]
    TooLarge(usize),
    /// A version with this token exists with another value: versions are immutable.
    #[error("a version with this token already exists with another value")]
    VersionExists,
    /// The secret holds as many versions as Secrets Manager keeps (about 100 written within
    /// 24 hours); no new version can be written until older ones age out.
    #[error("the secret has reached its version quota")]
    VersionQuota,
    /// A list cursor that this store never issued (or that was altered).
    #[error("the cursor is not one this API returned")]
    InvalidCursor,
}

/// A secret's name, checked against Secrets Manager's naming rules. AWS warns against names
/// ending in `-` and six characters because they read like a partial ARN; the store always
/// addresses secrets by name, never by ARN, so such names (an endpoint id like `order-events`)
/// are safe here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretName(String);

impl SecretName {
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        let valid = !raw.is_empty()
            && raw.chars().count() <= MAX_NAME_CHARS
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(StoreError::Invalid(format!(
                "{raw:?} is not a valid secret name (1 to {MAX_NAME_CHARS} of A-Z a-z 0-9 / _ + = . @ -)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored value: a JSON document that holds secrets, so it never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredValue(Zeroizing<String>);

impl StoredValue {
    pub fn new(value: String) -> Result<Self, StoreError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(StoreError::TooLarge(value.len()));
        }
        Ok(Self(Zeroizing::new(value)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredValue({} bytes)", self.0.len())
    }
}

#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub version_id: VersionId,
    pub value: StoredValue,
}

/// Where each staging label points, and how many versions are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStages {
    pub current: Option<VersionId>,
    pub previous: Option<VersionId>,
    pub pending: Option<VersionId>,
    pub version_count: usize,
    pub last_changed: Option<DateTime<Utc>>,
}

/// One secret as a listing shows it: everything here comes with the listing itself, with no
/// read of the secret's value.
#[derive(Debug, Clone)]
pub struct ListedSecret {
    pub name: SecretName,
    pub tags: BTreeMap<String, String>,
    pub stages: VersionStages,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub secrets: Vec<ListedSecret>,
    /// Opaque; pass back to get the next page. `None` when there is none.
    pub next: Option<String>,
}

impl ListPage {
    pub fn names(&self) -> impl Iterator<Item = &SecretName> {
        self.secrets.iter().map(|secret| &secret.name)
    }
}

/// Which secrets a listing returns: names starting with `prefix`, and, with `tag_key`, only
/// those carrying that tag.
#[derive(Debug, Clone, Copy)]
pub struct ListFilter<'a> {
    pub prefix: &'a str,
    pub tag_key: Option<&'a str>,
}

impl<'a> ListFilter<'a> {
    pub fn prefix(prefix: &'a str) -> Self {
        Self {
            prefix,
            tag_key: None,
        }
    }
}

/// The longest cursor accepted: a Secrets Manager `NextToken` is at most 4,096 characters,
/// and its cursor carries it in base64 with a tag, so anything longer was never issued.
pub const MAX_CURSOR_CHARS: usize = 6_000;
/// Bytes of the SHA-256 tag at the head of every cursor.
const CURSOR_TAG_BYTES: usize = 16;

/// Cursors are opaque to callers: base64url of a 16-byte tag followed by the backend's own
/// position (a name, or a Secrets Manager `NextToken`), so they travel safely in a query
/// string. The tag is a truncated SHA-256 of the position and of the listing it belongs to
/// (the name prefix, which holds the tenant, and the tag filter), so a cursor that is garbage,
/// cut short, altered, or taken from another tenant's or another filter's listing is refused
/// as [`StoreError::InvalidCursor`] before any call reaches the store.
///
/// The limit of that choice: the tag is a checksum, not a MAC. No key is shared by every
/// process that lists (one per process would break a page fetched by another Lambda
/// environment), so a client that knows this scheme can mint a well-formed cursor for a
/// position of its choice. That position is still inside its own listing, because every
/// store applies the prefix filter on every page: the worst a forged cursor does is skip or
/// repeat the caller's own entries, or hand Secrets Manager a `NextToken` it refuses
/// (`InvalidNextTokenException`, also `InvalidCursor`).
pub fn encode_cursor(filter: ListFilter<'_>, position: &str) -> String {
    let mut raw = Vec::with_capacity(CURSOR_TAG_BYTES + position.len());
    raw.extend_from_slice(&cursor_tag(filter, position.as_bytes()));
    raw.extend_from_slice(position.as_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

/// The position a cursor from [`encode_cursor`] holds, if it was issued for this `filter`.
pub fn decode_cursor(filter: ListFilter<'_>, cursor: &str) -> Result<String, StoreError> {
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(StoreError::InvalidCursor);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::InvalidCursor)?;
    if raw.len() <= CURSOR_TAG_BYTES {
        return Err(StoreError::InvalidCursor);
    }
    let (tag, position) = raw.split_at(CURSOR_TAG_BYTES);
    if !bool::from(tag.ct_eq(&cursor_tag(filter, position))) {
        return Err(StoreError::InvalidCursor);
    }
    String::from_utf8(position.to_vec()).map_err(|_| StoreError::InvalidCursor)
}

fn cursor_tag(filter: ListFilter<'_>, position: &[u8]) -> [u8; CURSOR_TAG_BYTES] {
    let mut hash = Sha256::new();
    hash.update(b"webhook-secrets list cursor v1\0");
    // Each part is length-prefixed, so no two listings' parts run into the same bytes.
    let tag_key = filter.tag_key.map(str::as_bytes);
    for part in [Some(filter.prefix.as_bytes()), tag_key, Some(position)] {
        match part {
            Some(bytes) => {
                hash.update([1]);
                hash.update((bytes.len() as u64).to_be_bytes());
                hash.update(bytes);
            }
            None => hash.update([0]),
        }
    }
    let digest = hash.finalize();
    let mut tag = [0u8; CURSOR_TAG_BYTES];
    tag.copy_from_slice(&digest[..CURSOR_TAG_BYTES]);
    tag
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Creates a secret whose first version, `token`, is current. Retrying with the same token
    /// and value succeeds without writing; any other existing secret is `AlreadyExists`.
    async fn create(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &StoredValue,
        tags: &[(String, String)],
    ) -> Result<(), StoreError>;

    async fn read_current(&self, name: &SecretName) -> Result<StoredVersion, StoreError>;

    async fn read_version(
        &self,
        name: &SecretName,
        version: &VersionId,
    ) -> Result<StoredVersion, StoreError>;

    /// Compare-and-swap: writes `value` as version `token` and makes it current only if
    /// `expected` is still current; otherwise `Conflict` and the new version is never current
    /// and not left pending. Retrying a swap that already happened, with the same token and
    /// value, succeeds without writing.
    async fn replace_current(
        &self,
        name: &SecretName,
        expected: &VersionId,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<(), StoreError>;

    /// Deletes the secret and all its versions at once, with no recovery window. Deleting a
    /// missing secret succeeds, as a forced delete does on Secrets Manager, so retries are safe.
    async fn delete(&self, name: &SecretName) -> Result<(), StoreError>;

    /// The secrets `filter` selects, in pages of at most `limit` (1 to 100), with their tags
    /// and staging labels.
    async fn list(
        &self,
        filter: ListFilter<'_>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError>;

    async fn stages(&self, name: &SecretName) -> Result<VersionStages, StoreError>;

    /// Adds or overwrites the `set` tags and removes the `remove` keys.
    async fn set_tags(
        &self,
        name: &SecretName,
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<(), StoreError>;

    /// Writes `value` as version `token` labelled pending, not current (the first step of
    /// Secrets Manager's rotation protocol). The pending label moves off any other version.
    /// Retrying with the same token and value succeeds without writing; the same token with
    /// another value is `VersionExists`.
    async fn put_pending(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<(), StoreError>;

    /// Makes the existing version `token` current if `expected` still is (`Conflict`
    /// otherwise); a pending version made current no longer counts as pending. Succeeds
    /// without writing if `token` is already current; `NotFound` if there is no such version.
    async fn promote(
        &self,
        name: &SecretName,
        token: &VersionId,
        expected: &VersionId,
    ) -> Result<(), StoreError>;

    /// Takes the pending label off `version`, if it has it.
    async fn remove_pending(
        &self,
        name: &SecretName,
        version: &VersionId,
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_only_within_their_listing() {
        let acme = ListFilter::prefix("p/acme/");
        let cursor = encode_cursor(acme, "p/acme/orders");
        assert_eq!(decode_cursor(acme, &cursor).unwrap(), "p/acme/orders");
        // Another tenant's listing, or the same prefix filtered by a tag, refuses it.
        for other in [
            ListFilter::prefix("p/globex/"),
            ListFilter {
                prefix: "p/acme/",
                tag_key: Some("t"),
            },
        ] {
            assert!(matches!(
                decode_cursor(other, &cursor),
                Err(StoreError::InvalidCursor)
            ));
        }
        // The bare position, garbage, a truncated or altered cursor: all refused.
        let bare = URL_SAFE_NO_PAD.encode("p/acme/orders");
        let truncated = &cursor[..cursor.len() - 1];
        let mut altered = cursor.clone().into_bytes();
        altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        let long = "A".repeat(MAX_CURSOR_CHARS + 1);
        for bad in ["", "!!", "%%%", &bare, truncated, &altered, &long] {
            assert!(
                matches!(decode_cursor(acme, bad), Err(StoreError::InvalidCursor)),
                "{bad}"
            );
        }
    }
}
