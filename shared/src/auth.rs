//! API keys, roles and request authentication.
//!
//! A key is `{key_id}.{secret}`: the id is public and names the vault record; the secret part
//! is 32 random bytes, shown once and stored only as its SHA-256. A plain hash suits a
//! 256-bit random secret (no dictionary to attack), and keeps each check cheap.

use crate::clock::Clock;
use crate::ids::{KeyId, TenantId};
use crate::vault::{Vault, VaultError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const KEY_SECRET_BYTES: usize = 32;
/// The longest a revoked key may keep working in a warm process.
pub const MAX_CACHE_TTL: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// Owners and admins create, rotate and delete; members only read.
    pub fn can_write(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

/// What the vault keeps for an API key: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: KeyId,
    pub tenant: TenantId,
    pub role: Role,
    /// Hex SHA-256 of the key's secret part.
    pub secret_sha256: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A whole API key, as presented by a caller or just minted. Prints as its id only.
pub struct ApiKey {
    key_id: KeyId,
    secret: Zeroizing<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no API key was presented")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("this API key's role may not do this")]
    Forbidden,
    #[error("the key store is throttling requests")]
    Throttled,
    #[error("the key store is unavailable")]
    Unavailable(String),
    /// The key store refused in a way retrying will not fix (denied access, a corrupt record).
    #[error("the key store failed")]
    Internal(String),
}

impl ApiKey {
    pub fn generate() -> Result<Self, AuthError> {
        let mut raw = Zeroizing::new([0u8; KEY_SECRET_BYTES]);
        getrandom::fill(raw.as_mut_slice())
            .map_err(|_| AuthError::Unavailable("the OS random generator failed".into()))?;
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

    fn secret_sha256(&self) -> String {
        hex(&Sha256::digest(self.secret.as_bytes()))
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Mints a key for `tenant` with `role` and stores its record. The returned key is the only
/// copy of its secret.
pub async fn mint_api_key(
    vault: &Vault,
    tenant: TenantId,
    role: Role,
) -> Result<(ApiKey, ApiKeyRecord), VaultError> {
    let key = ApiKey::generate().map_err(|e| VaultError::Unavailable(e.to_string()))?;
    let record = ApiKeyRecord {
        key_id: key.key_id.clone(),
        tenant,
        role,
        secret_sha256: key.secret_sha256(),
        created_at: vault.clock().now(),
        revoked_at: None,
    };
    vault.create_api_key(&record).await?;
    Ok((key, record))
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub key_id: KeyId,
    pub role: Role,
}

impl Principal {
    pub fn require_write(&self) -> Result<(), AuthError> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }
}

/// Checks API keys against the vault, caching records per process for at most `ttl`.
pub struct Authenticator {
    vault: Arc<Vault>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    cache: Mutex<HashMap<KeyId, (ApiKeyRecord, DateTime<Utc>)>>,
}

impl Authenticator {
    pub fn new(vault: Arc<Vault>, ttl: Duration) -> Self {
        Self {
            clock: Arc::clone(vault.clock()),
            vault,
            ttl: ttl.clamp(Duration::zero(), MAX_CACHE_TTL),
            cache: Mutex::new(HashMap::new()),
        }
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
        let now = self.clock.now();
        if let Some((record, fetched)) = self.lock().get(key_id) {
            if now - *fetched < self.ttl {
                return Ok(record.clone());
            }
        }
        let record = match self.vault.api_key(key_id).await {
            Ok(record) => record,
            Err(VaultError::NotFound) => {
                self.lock().remove(key_id);
                return Err(AuthError::Invalid);
            }
            Err(VaultError::Throttled) => return Err(AuthError::Throttled),
            Err(err @ VaultError::Unavailable(_)) => {
                return Err(AuthError::Unavailable(err.to_string()))
            }
            Err(other) => return Err(AuthError::Internal(other.to_string())),
        };
        self.lock().insert(key_id.clone(), (record.clone(), now));
        Ok(record)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, (ApiKeyRecord, DateTime<Utc>)>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
            assert_eq!(ApiKey::parse(bad).unwrap_err(), AuthError::Invalid, "{bad}");
        }
    }

    #[test]
    fn only_owners_and_admins_write() {
        assert!(Role::Owner.can_write());
        assert!(Role::Admin.can_write());
        assert!(!Role::Member.can_write());
    }
}
