//! API keys and request authentication. The API-key records themselves live in [`keys`];
//! access tokens for the seed contract that uses them in [`tokens`].
//!
//! A key is `{key_id}.{secret}`: the id is public and names the vault record; the secret part
//! is 32 random bytes, shown once and stored only as its SHA-256. A plain hash suits a
//! 256-bit random secret (no dictionary to attack), and keeps each check cheap.

pub mod keys;
pub mod tokens;

use crate::domain::access::ReadOnly;
pub use crate::domain::access::{Principal, Role, Writer};
use crate::domain::error_code::ErrorCode;
use crate::domain::ids::KeyId;
use crate::domain::secret::SecretError;
use crate::store::StoreError;
use crate::vault::VaultError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use keys::{ApiKeyRecord, ApiKeys};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const KEY_SECRET_BYTES: usize = 32;
/// The longest a revoked key may keep working in a warm process.
pub const MAX_CACHE_TTL: Duration = Duration::seconds(60);

/// A whole API key, as presented by a caller or just minted. Prints as its id only.
pub struct ApiKey {
    key_id: KeyId,
    secret: Zeroizing<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no API key was presented")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("this API key's role may not do this")]
    Forbidden,
    /// The key store failed (throttled, unavailable, a corrupt record); the key may be fine.
    #[error("the key store failed")]
    Store(#[from] VaultError),
}

impl AuthError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Missing | Self::Invalid => ErrorCode::Unauthorized,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::Store(err) => err.code(),
        }
    }
}

impl From<ReadOnly> for AuthError {
    fn from(_: ReadOnly) -> Self {
        Self::Forbidden
    }
}

impl ApiKey {
    pub fn generate() -> Result<Self, SecretError> {
        let mut raw = Zeroizing::new([0u8; KEY_SECRET_BYTES]);
        getrandom::fill(raw.as_mut_slice()).map_err(|_| SecretError::Rng)?;
        Ok(Self {
            key_id: KeyId::generate(),
            secret: Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_slice())),
        })
    }

    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let (id, secret) = raw.trim().split_once('.').ok_or(AuthError::Invalid)?;
        let key_id = KeyId::parse(id).map_err(|_| AuthError::Invalid)?;
        if secret.is_empty() || secret.len() > 128 {
            return Err(AuthError::Invalid);
        }
        Ok(Self {
            key_id,
            secret: Zeroizing::new(secret.to_owned()),
        })
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The whole key, for showing once to whoever minted it.
    pub fn expose(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}.{}", self.key_id, self.secret.as_str()))
    }

    pub(crate) fn secret_sha256(&self) -> String {
        crate::domain::hex(&Sha256::digest(self.secret.as_bytes()))
    }

    fn matches(&self, record: &ApiKeyRecord) -> bool {
        let presented = self.secret_sha256();
        presented
            .as_bytes()
            .ct_eq(record.secret_sha256.as_bytes())
            .into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}.…)", self.key_id)
    }
}

/// Checks API keys against their records, caching records per process for at most `ttl`.
pub struct Authenticator {
    keys: ApiKeys,
    ttl: Duration,
    cache: Mutex<HashMap<KeyId, (ApiKeyRecord, DateTime<Utc>)>>,
}

impl Authenticator {
    pub fn new(keys: ApiKeys, ttl: Duration) -> Self {
        Self {
            keys,
            ttl: ttl.clamp(Duration::zero(), MAX_CACHE_TTL),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The API-key records this authenticator checks against, for the admin command.
    pub fn keys(&self) -> &ApiKeys {
        &self.keys
    }

    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        let key = ApiKey::parse(presented)?;
        let record = self.record(&key.key_id).await?;
        // The hash is compared even for a revoked key, so timing does not tell revoked
        // from wrong.
        let matches = key.matches(&record);
        if !matches || record.revoked_at.is_some() {
            return Err(AuthError::Invalid);
        }
        Ok(Principal {
            tenant: record.tenant,
            key_id: record.key_id,
            role: record.role,
        })
    }

    /// The principal of a key known only by its id (a token names it), if the key still
    /// exists and is not revoked; subject to the same cache lifetime as keys.
    pub async fn active_key(&self, key_id: &KeyId) -> Result<Principal, AuthError> {
        let record = self.record(key_id).await?;
        if record.revoked_at.is_some() {
            return Err(AuthError::Invalid);
        }
        Ok(Principal {
            tenant: record.tenant,
            key_id: record.key_id,
            role: record.role,
        })
    }

    async fn record(&self, key_id: &KeyId) -> Result<ApiKeyRecord, AuthError> {
        let now = self.keys.now();
        if let Some((record, fetched)) = self.lock().get(key_id) {
            if now - *fetched < self.ttl {
                return Ok(record.clone());
            }
        }
        let record = match self.keys.get(key_id).await {
            Ok(record) => record,
            Err(VaultError::Store(StoreError::NotFound)) => {
                self.lock().remove(key_id);
                return Err(AuthError::Invalid);
            }
            Err(other) => return Err(other.into()),
        };
        self.lock().insert(key_id.clone(), (record.clone(), now));
        Ok(record)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, (ApiKeyRecord, DateTime<Utc>)>> {
        crate::domain::lock(&self.cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_print_only_their_id() {
        let key = ApiKey::generate().unwrap();
        let whole = key.expose();
        let parsed = ApiKey::parse(&whole).unwrap();
        assert_eq!(parsed.key_id(), key.key_id());
        assert_eq!(parsed.secret_sha256(), key.secret_sha256());
        let shown = format!("{key:?}");
        assert!(!shown.contains(key.secret.as_str()));
        assert!(shown.contains(key.key_id().as_str()));
    }

    #[test]
    fn malformed_keys_are_invalid() {
        for bad in [
            "",
            "nodot",
            "ak_123.secret",
            ".secret",
            "ak_0123456789abcdef0123.",
        ] {
            assert!(
                matches!(ApiKey::parse(bad), Err(AuthError::Invalid)),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_owners_and_admins_write() {
        assert!(Role::Owner.can_write());
        assert!(Role::Admin.can_write());
        assert!(!Role::Member.can_write());
        let principal = |role| Principal {
            tenant: crate::domain::ids::TenantId::parse("acme").unwrap(),
            key_id: KeyId::generate(),
            role,
        };
        assert!(principal(Role::Admin).writer().is_ok());
        assert!(principal(Role::Member).writer().is_err());
    }
}
