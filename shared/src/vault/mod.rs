//! The service layer: endpoints and the product's own records, kept in a [`SecretStore`].
//!
//! - [`endpoints`] and [`keyrings`]: the endpoints repository and its two layouts, the only
//!   code that maps endpoints onto stored secrets: one secret per endpoint
//!   (`{prefix}/{tenant}/{endpoint_id}`), or tenant keyrings (`{prefix}/{tenant}/_kr/{n}`),
//!   chosen per deployment by [`VaultLayout`];
//! - [`records`]: the product's own records beside them (`{prefix}/_…`: API keys, token
//!   signing keys), used by the `auth` layer that owns them;
//! - [`schedule`], [`sweep`] and [`protocol`]: scheduled rotation and Secrets Manager's
//!   rotation steps, as functions over the repository.
//!
//! [`SecretStore`]: crate::store::SecretStore

pub mod endpoints;
pub mod events;
pub mod keyrings;
pub mod migrate;
pub mod protocol;
pub mod records;
pub mod schedule;
pub mod sweep;

use crate::domain::access::Writer;
use crate::domain::clock::Clock;
use crate::domain::endpoint::GracePeriod;
use crate::domain::endpoint::{EndpointPatch, EndpointRecord, NewEndpoint, SecretSource};
use crate::domain::error_code::ErrorCode;
use crate::domain::idempotency::Idempotency;
use crate::domain::ids::{EndpointId, TenantId, VersionId};
use crate::domain::rotation::RotationError;
use crate::domain::secret::{SecretError, SecretFormat};
use crate::events::EventSink;
use crate::store::{SecretStore, StoreError, StoredValue, StoredVersion};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

pub use endpoints::{EndpointRepository, SecretPerEndpoint};
pub use keyrings::TenantKeyrings;

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
    /// The keyring holding the endpoint has spent its writes for the last 24 hours.
    #[error("the endpoint's keyring has used its writes for the last 24 hours; room returns in {retry_after} seconds")]
    WriteBudget { retry_after: u32 },
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
            Self::WriteBudget { .. } => ErrorCode::VersionQuotaExceeded,
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

/// How a deployment keeps endpoints in the store (`VAULT_LAYOUT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VaultLayout {
    /// One secret per endpoint: [`SecretPerEndpoint`].
    #[default]
    PerEndpoint,
    /// Many endpoints of one tenant per secret: [`TenantKeyrings`].
    Keyrings,
}

impl VaultLayout {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "per-endpoint" => Some(Self::PerEndpoint),
            "keyrings" => Some(Self::Keyrings),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerEndpoint => "per-endpoint",
            Self::Keyrings => "keyrings",
        }
    }
}

/// The endpoints repository of the deployment's layout. The sweep and Secrets Manager's
/// rotation protocol work on stored secrets, so they tell the layouts apart; everything else
/// sees only [`EndpointRepository`].
pub enum Endpoints {
    PerEndpoint(SecretPerEndpoint),
    Keyrings(TenantKeyrings),
}

impl Endpoints {
    pub fn new(
        layout: VaultLayout,
        store: Arc<dyn SecretStore>,
        prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Self {
        match layout {
            VaultLayout::PerEndpoint => {
                Self::PerEndpoint(SecretPerEndpoint::new(store, prefix, clock))
            }
            VaultLayout::Keyrings => Self::Keyrings(TenantKeyrings::new(store, prefix, clock)),
        }
    }

    /// The same layout on the same store, announcing to `sink`.
    pub fn announcing_to(&self, sink: Arc<dyn EventSink>) -> Self {
        match self {
            Self::PerEndpoint(layout) => Self::PerEndpoint(layout.announcing_to(sink)),
            Self::Keyrings(layout) => Self::Keyrings(layout.announcing_to(sink)),
        }
    }

    pub fn layout(&self) -> VaultLayout {
        match self {
            Self::PerEndpoint(_) => VaultLayout::PerEndpoint,
            Self::Keyrings(_) => VaultLayout::Keyrings,
        }
    }

    /// The stored secret that holds endpoint `id` now: its own, or its keyring.
    pub async fn secret_holding(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<crate::store::SecretName, VaultError> {
        match self {
            Self::PerEndpoint(layout) => layout.secret_name(tenant, id),
            Self::Keyrings(layout) => layout.keyring_holding(tenant, id).await,
        }
    }

    fn store(&self) -> &Arc<dyn SecretStore> {
        match self {
            Self::PerEndpoint(layout) => &layout.store,
            Self::Keyrings(layout) => &layout.store,
        }
    }

    fn prefix(&self) -> &str {
        match self {
            Self::PerEndpoint(layout) => layout.prefix(),
            Self::Keyrings(layout) => layout.prefix(),
        }
    }

    fn repository(&self) -> &dyn EndpointRepository {
        match self {
            Self::PerEndpoint(layout) => layout,
            Self::Keyrings(layout) => layout,
        }
    }
}

#[async_trait]
impl EndpointRepository for Endpoints {
    async fn create_endpoint(
        &self,
        writer: &Writer,
        new: NewEndpoint,
        idempotency: Option<&Idempotency>,
    ) -> Result<Written, VaultError> {
        self.repository()
            .create_endpoint(writer, new, idempotency)
            .await
    }

    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<StoredEndpoint, VaultError> {
        self.repository().get_endpoint(tenant, id).await
    }

    async fn endpoint_version(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        version: &VersionId,
    ) -> Result<EndpointRecord, VaultError> {
        self.repository()
            .endpoint_version(tenant, id, version)
            .await
    }

    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EndpointPage, VaultError> {
        self.repository()
            .list_endpoints(tenant, cursor, limit)
            .await
    }

    /// Deletes the endpoint from both layouts: a migration between them copies endpoints
    /// from one to the other, and a copy left behind would bring a deleted endpoint (and its
    /// secret) back. A migration checks its source again after each copy and undoes the copy
    /// of an endpoint deleted meanwhile; the endpoint's own secret is deleted both before and
    /// after its keyring entry, so a copy racing this delete in either direction is undone.
    async fn delete_endpoint(
        &self,
        writer: &Writer,
        id: &EndpointId,
    ) -> Result<EndpointRecord, VaultError> {
        let (tenant, store) = (writer.tenant(), self.store());
        let own_name = SecretPerEndpoint::name_in(self.prefix(), tenant, id)?;
        let delete_own = async || match store.delete(&own_name).await {
            Ok(()) | Err(StoreError::NotFound) => Ok::<(), VaultError>(()),
            Err(other) => Err(other.into()),
        };
        // The other layout's copy goes even when this layout answers that the endpoint is
        // gone: that is a retry of a delete that failed after its first step.
        let deleted = match self {
            Self::PerEndpoint(own) => {
                let deleted = own.delete_endpoint(writer, id).await;
                // The keyrings layout on the same store, to reach a copy a migration made.
                TenantKeyrings::new(Arc::clone(store), own.prefix(), Arc::clone(&own.clock))
                    .remove_entry(tenant, id)
                    .await?;
                deleted
            }
            Self::Keyrings(keyrings) => {
                delete_own().await?;
                keyrings.delete_endpoint(writer, id).await
            }
        };
        delete_own().await?;
        deleted
    }

    async fn rotate_secret(
        &self,
        writer: &Writer,
        id: &EndpointId,
        rotation: Rotation<'_>,
    ) -> Result<Written, VaultError> {
        self.repository().rotate_secret(writer, id, rotation).await
    }

    async fn update_endpoint(
        &self,
        writer: &Writer,
        id: &EndpointId,
        patch: EndpointPatch,
    ) -> Result<EndpointRecord, VaultError> {
        self.repository().update_endpoint(writer, id, patch).await
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
