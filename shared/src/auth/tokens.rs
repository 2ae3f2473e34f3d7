//! Access tokens for the contract that authenticates with a JWT (seed `003`): HS256, valid
//! 24 hours, signed with a key kept as a product record at `{prefix}/_jwt-signing-keys`. Rotating the
//! key keeps the previous one a little longer than a token lifetime, so tokens it signed work
//! until they expire. Keys are cached per process for at most 60 seconds, and a token naming a key this
//! process has not seen yet makes it read the record again.

use crate::auth::{AuthError, Authenticator, Principal, Role};
use crate::domain::clock::Clock;
use crate::domain::error_code::ErrorCode;
use crate::domain::ids::KeyId;
use crate::domain::secret::SecretError;
use crate::store::StoreError;
use crate::vault::records::Records;
use crate::vault::VaultError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

pub const TOKEN_LIFETIME: Duration = Duration::hours(24);
pub const SCOPE_READ: &str = "webhooks:read";
pub const SCOPE_WRITE: &str = "webhooks:write";
const ISSUER: &str = "webhook-secrets";
const KEYS_RECORD: &str = "jwt-signing-keys";
const KEYS_CACHE_TTL: Duration = Duration::seconds(60);
/// A retired key outlives the last token it signed by an hour, so an old token is reported
/// as expired (which it is) rather than as signed by an unknown key.
const RETIRED_KEY_KEPT: Duration = Duration::hours(25);

/// The scopes a role may hold.
pub fn scopes_for(role: Role) -> Vec<&'static str> {
    if role.can_write() {
        vec![SCOPE_READ, SCOPE_WRITE]
    } else {
        vec![SCOPE_READ]
    }
}

/// One HS256 signing key. Prints as its id only.
#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKey {
    pub kid: String,
    /// Standard base64 of 32 random bytes.
    key: String,
    pub created_at: DateTime<Utc>,
    /// When a newer key replaced this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
}

impl SigningKey {
    fn generate(now: DateTime<Utc>) -> Result<Self, VaultError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        getrandom::fill(raw.as_mut_slice()).map_err(|_| SecretError::Rng)?;
        Ok(Self {
            kid: format!("k_{}", uuid::Uuid::new_v4().simple()),
            key: STANDARD.encode(raw.as_slice()),
            created_at: now,
            retired_at: None,
        })
    }

    fn bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(STANDARD.decode(&self.key).unwrap_or_default())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningKeys {
    pub current: SigningKey,
    /// Replaced keys still verifying the tokens they signed, newest first.
    #[serde(default)]
    pub retired: Vec<SigningKey>,
}

impl SigningKeys {
    fn find(&self, kid: &str, now: DateTime<Utc>) -> Option<&SigningKey> {
        std::iter::once(&self.current)
            .chain(
                self.retired
                    .iter()
                    .filter(|k| k.retired_at.is_none_or(|at| now < at + RETIRED_KEY_KEPT)),
            )
            .find(|k| k.kid == kid)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The API key id the token was issued to.
    pub sub: String,
    pub tenant: String,
    /// Space-separated scopes.
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// An issued token. Prints without the token.
pub struct IssuedToken {
    pub access_token: Zeroizing<String>,
    pub expires_at: DateTime<Utc>,
    pub scopes: Vec<String>,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuedToken(expires {})", self.expires_at)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is not valid")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("the signing keys could not be read")]
    Keys(#[from] VaultError),
    #[error("the token could not be encoded: {0}")]
    Encoding(String),
}

impl TokenError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid | Self::Expired => ErrorCode::Unauthorized,
            Self::Auth(err) => err.code(),
            Self::Keys(err) => err.code(),
            Self::Encoding(_) => ErrorCode::Internal,
        }
    }
}

pub struct TokenService {
    records: Records,
    clock: Arc<dyn Clock>,
    cache: Mutex<Option<(SigningKeys, DateTime<Utc>)>>,
}

impl TokenService {
    pub fn new(records: Records, clock: Arc<dyn Clock>) -> Self {
        Self {
            records,
            clock,
            cache: Mutex::new(None),
        }
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Option<(SigningKeys, DateTime<Utc>)>> {
        crate::domain::lock(&self.cache)
    }

    /// The signing keys, from the cache unless `refresh` or stale; made on first use.
    async fn keys(&self, refresh: bool) -> Result<SigningKeys, VaultError> {
        let now = self.clock.now();
        if !refresh {
            if let Some((keys, at)) = self.cached().as_ref() {
                if now - *at < KEYS_CACHE_TTL {
                    return Ok(keys.clone());
                }
            }
        }
        let keys = match self.records.read::<SigningKeys>(KEYS_RECORD).await {
            Ok((keys, _)) => keys,
            Err(VaultError::Store(StoreError::NotFound)) => {
                let keys = SigningKeys {
                    current: SigningKey::generate(now)?,
                    retired: Vec::new(),
                };
                match self.records.create(KEYS_RECORD, &keys, &[]).await {
                    Ok(()) => keys,
                    // Another process made them first; use theirs.
                    Err(VaultError::Store(StoreError::AlreadyExists)) => {
                        self.records.read::<SigningKeys>(KEYS_RECORD).await?.0
                    }
                    Err(other) => return Err(other),
                }
            }
            Err(other) => return Err(other),
        };
        *self.cached() = Some((keys.clone(), now));
        Ok(keys)
    }

    /// Issues a token to `principal` with `scopes` (already checked against its role).
    pub async fn issue(
        &self,
        principal: &Principal,
        scopes: Vec<String>,
    ) -> Result<IssuedToken, TokenError> {
        let keys = self.keys(false).await?;
        let now = self.clock.now();
        let expires_at = now + TOKEN_LIFETIME;
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: principal.key_id.to_string(),
            tenant: principal.tenant.to_string(),
            scope: scopes.join(" "),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.current.kid.clone());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&keys.current.bytes()),
        )
        .map_err(|e| TokenError::Encoding(e.to_string()))?;
        Ok(IssuedToken {
            access_token: Zeroizing::new(token),
            expires_at,
            scopes,
        })
    }

    /// Checks a token's signature, issuer and expiry, then that its API key is still active.
    pub async fn verify(
        &self,
        token: &str,
        auth: &Authenticator,
    ) -> Result<(Claims, Principal), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let now = self.clock.now();
        let keys = self.keys(false).await?;
        let key = match keys.find(&kid, now) {
            Some(key) => key.clone(),
            None => {
                let fresh = self.keys(true).await?;
                fresh.find(&kid, now).cloned().ok_or(TokenError::Invalid)?
            }
        };
        // Expiry is checked against the injected clock below, not the system's.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_issuer(&[ISSUER]);
        let claims = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&key.bytes()),
            &validation,
        )
        .map_err(|_| TokenError::Invalid)?
        .claims;
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        let key_id = KeyId::parse(&claims.sub).map_err(|_| TokenError::Invalid)?;
        let principal = auth.active_key(&key_id).await?;
        if principal.tenant.as_str() != claims.tenant {
            return Err(TokenError::Invalid);
        }
        Ok((claims, principal))
    }

    /// Makes a new current signing key; the old one keeps verifying for a token lifetime,
    /// and keys retired longer ago are dropped. Returns the new key's id.
    pub async fn rotate_signing_key(&self) -> Result<String, VaultError> {
        for _ in 0..3 {
            self.keys(true).await?;
            let (mut keys, version) = self.records.read::<SigningKeys>(KEYS_RECORD).await?;
            let now = self.clock.now();
            keys.retired
                .retain(|k| k.retired_at.is_none_or(|at| now < at + RETIRED_KEY_KEPT));
            let mut old = std::mem::replace(&mut keys.current, SigningKey::generate(now)?);
            old.retired_at = Some(now);
            keys.retired.insert(0, old);
            match self.records.replace(KEYS_RECORD, &version, &keys).await {
                Ok(()) => {
                    let kid = keys.current.kid.clone();
                    *self.cached() = Some((keys, now));
                    return Ok(kid);
                }
                Err(VaultError::Store(StoreError::Conflict)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(VaultError::conflict())
    }
}
