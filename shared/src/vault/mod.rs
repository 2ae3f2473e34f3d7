//! The service layer: endpoints and the product's own records, kept in a [`SecretStore`].
//!
//! - [`endpoints`]: the endpoints repository, the one place that maps endpoints onto stored
//!   secrets (today one secret per endpoint, `{prefix}/{tenant}/{endpoint_id}`);
//! - [`records`]: the product's own records beside them (`{prefix}/_…`: API keys, token
//!   signing keys), used by the `auth` layer that owns them;
//! - [`schedule`], [`sweep`] and [`protocol`]: scheduled rotation and Secrets Manager's
//!   rotation steps, as functions over the repository.
//!
//! [`SecretStore`]: crate::store::SecretStore

pub mod endpoints;
pub mod events;
pub mod protocol;
pub mod records;
pub mod schedule;
pub mod sweep;

use crate::domain::endpoint::GracePeriod;
use crate::domain::endpoint::{EndpointRecord, SecretSource};
use crate::domain::error_code::ErrorCode;
use crate::domain::idempotency::Idempotency;
use crate::domain::ids::{EndpointId, VersionId};
use crate::domain::rotation::RotationError;
use crate::domain::secret::{SecretError, SecretFormat};
use crate::store::{StoreError, StoredValue, StoredVersion};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use endpoints::{EndpointRepository, SecretPerEndpoint};

/// What can go wrong below the HTTP layer. Store failures are kept whole (with their own
/// sources); [`VaultError::code`] classifies every one for the outside world.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rotation(#[from] RotationError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The Idempotency-Key was used before with a different request.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    #[error("version {version} is not a record this product wrote")]
    Corrupt {
        version: VersionId,
        #[source]
        source: serde_json::Error,
    },
    #[error("a record could not be encoded")]
    Encode(#[source] serde_json::Error),
}

impl VaultError {
    /// The one classification of every error below HTTP, used by the routes, the seed
    /// contracts and the sweep alike.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Store(err) => err.code(),
            Self::Rotation(RotationError::TooManyValidSecrets { .. }) => {
                ErrorCode::TooManyValidSecrets
            }
            Self::Rotation(RotationError::Secret(err)) | Self::Secret(err) => secret_code(err),
            Self::IdempotencyMismatch => ErrorCode::IdempotencyKeyReused,
            Self::Corrupt { .. } | Self::Encode(_) => ErrorCode::Internal,
        }
    }

    pub fn not_found() -> Self {
        Self::Store(StoreError::NotFound)
    }

    pub fn conflict() -> Self {
        Self::Store(StoreError::Conflict)
    }
}

fn secret_code(err: &SecretError) -> ErrorCode {
    match err {
        SecretError::Rng => ErrorCode::Internal,
        _ => ErrorCode::InvalidRequest,
    }
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound => ErrorCode::NotFound,
            Self::AlreadyExists => ErrorCode::AlreadyExists,
            Self::Conflict => ErrorCode::Conflict,
            Self::Throttled => ErrorCode::Throttled,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::VersionQuota => ErrorCode::VersionQuotaExceeded,
            Self::InvalidCursor => ErrorCode::InvalidRequest,
            // A store refusal of a request this product built, or a token reused with
            // another value: a fault of this product, not of the client.
            Self::Invalid(_) | Self::AccessDenied(_) | Self::VersionExists => ErrorCode::Internal,
        }
    }
}

/// A tenant's account-level secrets, kept as endpoints with reserved ids (`_` first, which
/// native creates may not use) so that reveal, sign and verify work on them like on any
/// endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountSecret {
    /// A uuid-format account secret.
    Uuid,
    /// A `whsec_` account secret.
    Whsec,
}

impl AccountSecret {
    pub fn endpoint_id(self) -> EndpointId {
        EndpointId::reserved(match self {
            Self::Uuid => "_account-uuid",
            Self::Whsec => "_account-whsec",
        })
    }

    pub(crate) fn format(self) -> SecretFormat {
        match self {
            Self::Uuid => SecretFormat::Uuid,
            Self::Whsec => SecretFormat::Whsec,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Uuid => "Account webhook secret (uuid)",
            Self::Whsec => "Account webhook secret (whsec)",
        }
    }
}

/// An endpoint as read from the vault, with the version of the record it came from.
#[derive(Debug, Clone)]
pub struct StoredEndpoint {
    pub record: EndpointRecord,
    pub record_version: VersionId,
}

/// What a rotation asks for.
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    pub source: SecretSource,
    /// How long the replaced secret keeps verifying.
    pub grace: GracePeriod,
    pub idempotency: Option<&'a Idempotency>,
    /// Also end every older secret still in its grace period, for contracts that promise the
    /// previous secret stops verifying at once.
    pub invalidate_older: bool,
}

impl Rotation<'_> {
    /// A rotation after which only the new secret verifies.
    pub fn immediate(source: SecretSource) -> Self {
        Self {
            source,
            grace: GracePeriod::none(),
            idempotency: None,
            invalidate_older: true,
        }
    }
}

/// The outcome of an idempotent write: the record, and whether it was written by an earlier
/// attempt of the same request (a replay) rather than now.
#[derive(Debug, Clone)]
pub struct Written {
    pub record: EndpointRecord,
    pub replayed: bool,
}

#[derive(Debug, Clone)]
pub struct EndpointPage {
    pub endpoints: Vec<EndpointRecord>,
    pub next_cursor: Option<String>,
}

pub fn encode<T: Serialize>(record: &T) -> Result<StoredValue, VaultError> {
    let json = serde_json::to_string(record).map_err(VaultError::Encode)?;
    Ok(StoredValue::new(json)?)
}

pub fn decode<T: DeserializeOwned>(stored: &StoredVersion) -> Result<T, VaultError> {
    // serde_json's message names a position and type, never the value, so it is safe to log.
    serde_json::from_str(stored.value.expose()).map_err(|source| VaultError::Corrupt {
        version: stored.version_id.clone(),
        source,
    })
}
