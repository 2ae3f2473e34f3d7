//! The endpoints repository and its one-secret-per-endpoint layout.

use super::events::Announcer;
use super::{
    decode, encode, AccountSecret, EndpointPage, Rotation, StoredEndpoint, VaultError, Written,
};
use crate::domain::access::Writer;
use crate::domain::clock::Clock;
use crate::domain::endpoint::{
    Endpoint, EndpointPatch, EndpointRecord, NewEndpoint, RotationPolicy, SecretSource,
    SecretVersion, DEFAULT_VERSION, RECORD_SCHEMA,
};
use crate::domain::idempotency::{Idempotency, Replay};
use crate::domain::ids::{EndpointId, TenantId, VersionId};
use crate::domain::rotation::rotated;
use crate::domain::secret::{SecretSpec, WebhookSecret};
use crate::events::{EventAction, EventSink, LogSink};
use crate::store::{ListFilter, SecretName, SecretStore, StoreError};
use async_trait::async_trait;
use futures::future::join_all;
use std::sync::Arc;

/// The endpoints repository: the only code that knows how endpoints map onto stored
/// secrets. A second storage layout implements this trait. Reads name a tenant; every call
/// that changes an endpoint takes the [`Writer`] that authorised it.
#[async_trait]
pub trait EndpointRepository: Send + Sync {
    /// Creates an endpoint and its first secret. With `idempotency`, a retry of a create that
    /// took effect answers what it created (even its secret) and writes nothing.
    async fn create_endpoint(
        &self,
        writer: &Writer,
        new: NewEndpoint,
        idempotency: Option<&Idempotency>,
    ) -> Result<Written, VaultError>;

    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<StoredEndpoint, VaultError>;

    /// One historical version of an endpoint's record.
    async fn endpoint_version(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        version: &VersionId,
    ) -> Result<EndpointRecord, VaultError>;

    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EndpointPage, VaultError>;

    /// Deletes the endpoint and every version of its secret; returns what was deleted.
    async fn delete_endpoint(
        &self,
        writer: &Writer,
        id: &EndpointId,
    ) -> Result<EndpointRecord, VaultError>;

    /// Replaces the endpoint's secret, as a compare-and-swap on the record read.
    async fn rotate_secret(
        &self,
        writer: &Writer,
        id: &EndpointId,
        rotation: Rotation<'_>,
    ) -> Result<Written, VaultError>;

    /// Changes an endpoint's metadata, its rotation policy included; never its secret.
    async fn update_endpoint(
        &self,
        writer: &Writer,
        id: &EndpointId,
        patch: EndpointPatch,
    ) -> Result<EndpointRecord, VaultError>;

    /// Rotates an account-level secret (an endpoint with a reserved id) with immediate
    /// invalidation, creating it on first use.
    async fn rotate_account_secret(
        &self,
        writer: &Writer,
        account: AccountSecret,
    ) -> Result<EndpointRecord, VaultError> {
        let id = account.endpoint_id();
        let spec = SecretSpec::new(account.format(), None)?;
        for _ in 0..2 {
            match self
                .rotate_secret(
                    writer,
                    &id,
                    Rotation::immediate(SecretSource::Generate(spec)),
                )
                .await
            {
                Err(VaultError::Store(StoreError::NotFound)) => {}
                other => return other.map(|written| written.record),
            }
            let new = NewEndpoint {
                id: Some(id.clone()),
                url: String::new(),
                name: account.name().to_owned(),
                description: String::new(),
                topics: Vec::new(),
                status: Default::default(),
                request_config: Default::default(),
                version: DEFAULT_VERSION.to_owned(),
                rotation_policy: None,
                secret: SecretSource::Generate(spec),
            };
            match self.create_endpoint(writer, new, None).await {
                // Another request created it first: rotate that one.
                Err(VaultError::Store(StoreError::AlreadyExists)) => continue,
                other => return other.map(|written| written.record),
            }
        }
        Err(VaultError::conflict())
    }
}

/// The one-secret-per-endpoint layout: each endpoint is one stored secret named
/// `{prefix}/{tenant}/{endpoint_id}`, tagged with its tenant and id, whose versions are the
/// record's versions. Every write is a compare-and-swap of that secret.
pub struct SecretPerEndpoint {
    pub(super) store: Arc<dyn SecretStore>,
    pub(super) prefix: String,
    pub(super) clock: Arc<dyn Clock>,
    /// Publishes the event of every create, rotation and delete.
    pub(super) announcer: Announcer,
}

impl SecretPerEndpoint {
    pub fn new(
        store: Arc<dyn SecretStore>,
        prefix: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let prefix = prefix.into();
        Self {
            announcer: Announcer::new(
                Arc::new(LogSink),
                Arc::clone(&store),
                &prefix,
                Arc::clone(&clock),
            ),
            store,
            prefix,
            clock,
        }
    }

    /// The same layout on the same store, announcing to `sink`.
    pub fn announcing_to(&self, sink: Arc<dyn EventSink>) -> Self {
        Self {
            announcer: Announcer::new(
                sink,
                Arc::clone(&self.store),
                &self.prefix,
                Arc::clone(&self.clock),
            ),
            store: Arc::clone(&self.store),
            prefix: self.prefix.clone(),
            clock: Arc::clone(&self.clock),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The tenant and endpoint an endpoint's secret name belongs to; `None` for any other
    /// name (a keyring's, a record's).
    pub fn endpoint_of(&self, name: &SecretName) -> Option<(TenantId, EndpointId)> {
        let rest = name
            .as_str()
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?;
        let (tenant, id) = rest.split_once('/')?;
        Some((TenantId::parse(tenant).ok()?, EndpointId::parse(id).ok()?))
    }

    /// The stored secret that holds an endpoint.
    pub fn secret_name(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<SecretName, VaultError> {
        Self::name_in(&self.prefix, tenant, id)
    }

    /// The name of an endpoint's own secret under `prefix`.
    pub fn name_in(
        prefix: &str,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<SecretName, VaultError> {
        Ok(SecretName::parse(&format!("{prefix}/{tenant}/{id}"))?)
    }

    /// The answer to a retry of `idempotency`, read from the endpoint's current record: the
    /// record its earlier attempt produced if that write took effect, `None` if no write
    /// under the key ever did (the retry then runs the write anew).
    async fn replay(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        idempotency: &Idempotency,
    ) -> Result<Option<Written>, VaultError> {
        let current = self.get_endpoint(tenant, id).await?;
        replay_from(self, tenant, id, &current, idempotency, self.clock.now()).await
    }

    pub(super) async fn sync_policy_tags(
        &self,
        name: &SecretName,
        policy: Option<RotationPolicy>,
    ) -> Result<(), VaultError> {
        let (set, remove) = RotationPolicy::tags(policy);
        Ok(self.store.set_tags(name, &set, &remove).await?)
    }
}

#[async_trait]
impl EndpointRepository for SecretPerEndpoint {
    /// Creates an endpoint and its first secret. With `idempotency`, a retry of the same
    /// request returns what the first attempt created (even its secret) and writes nothing.
    async fn create_endpoint(
        &self,
        writer: &Writer,
        new: NewEndpoint,
        idempotency: Option<&Idempotency>,
    ) -> Result<Written, VaultError> {
        // Every way out of the write that succeeds, a replay included, is announced.
        let written: Result<Written, VaultError> = async {
            let tenant = writer.tenant();
            let id = match (new.id, idempotency) {
                (Some(id), _) => id,
                (None, Some(idempotency)) => idempotency.endpoint_id(tenant),
                (None, None) => EndpointId::generate(),
            };
            let name = self.secret_name(tenant, &id)?;
            let now = self.clock.now();
            let version_id = VersionId::stamped(now);
            let value = match new.secret {
                SecretSource::Supplied(secret) => secret,
                SecretSource::Generate(spec) => WebhookSecret::generate(spec)?,
                SecretSource::LikeCurrent => WebhookSecret::generate(SecretSpec::default())?,
            };
            let record = EndpointRecord {
                schema: RECORD_SCHEMA,
                endpoint: Endpoint {
                    id,
                    tenant: tenant.clone(),
                    url: new.url,
                    name: new.name,
                    description: new.description,
                    topics: new.topics,
                    created_at: now,
                    updated_at: now,
                    status: new.status,
                    request_config: new.request_config,
                    version: new.version,
                    rotation_policy: new.rotation_policy,
                },
                secret: SecretVersion {
                    version_id: version_id.clone(),
                    value,
                    created_at: now,
                    replaces: None,
                    expires_at: None,
                },
                previous_secrets: Vec::new(),
                keyed_writes: idempotency
                    .map(|i| i.keyed_write(&version_id, now))
                    .into_iter()
                    .collect(),
            };
            let mut tags = vec![
                ("webhook-secrets:tenant".to_owned(), tenant.to_string()),
                (
                    "webhook-secrets:endpoint".to_owned(),
                    record.endpoint.id.to_string(),
                ),
            ];
            tags.extend(RotationPolicy::tags(new.rotation_policy).0);
            match self
                .store
                .create(&name, &version_id, &encode(&record)?, &tags)
                .await
            {
                Ok(()) => Ok(Written {
                    record,
                    replayed: false,
                }),
                // The endpoint exists: a replay if an earlier attempt of this request made it.
                Err(StoreError::AlreadyExists) => match idempotency {
                    Some(idempotency) => self
                        .replay(tenant, &record.endpoint.id, idempotency)
                        .await?
                        .ok_or(StoreError::AlreadyExists.into()),
                    None => Err(StoreError::AlreadyExists.into()),
                },
                Err(other) => Err(other.into()),
            }
        }
        .await;
        let written = written?;
        self.announcer
            .announce(EventAction::EndpointCreated, &written.record)
            .await;
        Ok(written)
    }

    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<StoredEndpoint, VaultError> {
        let name = self.secret_name(tenant, id)?;
        let stored = self.store.read_current(&name).await?;
        let record: EndpointRecord = decode(&stored)?;
        // The name already scopes the record to the tenant; this guards against a record
        // copied between names by hand.
        if record.endpoint.tenant != *tenant || record.endpoint.id != *id {
            return Err(VaultError::not_found());
        }
        Ok(StoredEndpoint {
            record,
            record_version: stored.version_id,
        })
    }

    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EndpointPage, VaultError> {
        let prefix = format!("{}/{}/", self.prefix, tenant);
        let page = self
            .store
            .list(ListFilter::prefix(&prefix), cursor, limit)
            .await?;
        // The tenant's keyrings (`{tenant}/_kr/{n}`) share the prefix while a migration
        // copies endpoints into them; only endpoints' own names are read.
        let reads = page
            .names()
            .filter(|name| self.endpoint_of(name).is_some())
            .map(|name| self.store.read_current(name));
        let mut endpoints = Vec::with_capacity(page.secrets.len());
        for read in join_all(reads).await {
            match read {
                Ok(stored) => endpoints.push(decode::<EndpointRecord>(&stored)?),
                // Deleted between the listing and the read.
                Err(StoreError::NotFound) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Ok(EndpointPage {
            endpoints,
            next_cursor: page.next,
        })
    }

    /// Deletes the endpoint and every version of its secret; returns what was deleted.
    async fn delete_endpoint(
        &self,
        writer: &Writer,
        id: &EndpointId,
    ) -> Result<EndpointRecord, VaultError> {
        let tenant = writer.tenant();
        // Read first so another tenant's endpoint, or a record that is not an endpoint, is
        // never deleted through this path.
        let stored = self.get_endpoint(tenant, id).await?;
        self.store.delete(&self.secret_name(tenant, id)?).await?;
        self.announcer
            .announce(EventAction::EndpointDeleted, &stored.record)
            .await;
        Ok(stored.record)
    }

    /// Replaces the endpoint's secret with a new one, as a compare-and-swap on the version
    /// that was read: if another rotation got there first this one fails with `Conflict` and
    /// its secret is never current. The replaced secret stays valid for `grace`; older ones
    /// keep their own expiry, and expired ones are pruned. With `idempotency`, a retry of a
    /// rotation that took effect returns its result and writes nothing; a retry of one that
    /// did not (it lost its swap, or failed before it) rotates now.
    async fn rotate_secret(
        &self,
        writer: &Writer,
        id: &EndpointId,
        rotation: Rotation<'_>,
    ) -> Result<Written, VaultError> {
        // Every way out of the write that succeeds, a replay included, is announced.
        let written: Result<Written, VaultError> = async {
            let tenant = writer.tenant();
            let Rotation {
                source,
                grace,
                idempotency,
                invalidate_older,
            } = rotation;
            let name = self.secret_name(tenant, id)?;
            let now = self.clock.now();
            let current = self.get_endpoint(tenant, id).await?;
            if let Some(idempotency) = idempotency {
                if let Some(replayed) =
                    replay_from(self, tenant, id, &current, idempotency, now).await?
                {
                    return Ok(replayed);
                }
            }
            // A fresh version id every attempt: a retry of a write that never took effect must not
            // collide with the version its first attempt may have left behind.
            let version_id = VersionId::stamped(now);
            let mut record = rotated(
                current.record,
                source,
                grace,
                invalidate_older,
                version_id.clone(),
                now,
            )?;
            record.remember_keyed_write(now, idempotency.map(|i| i.keyed_write(&version_id, now)));
            match self
                .store
                .replace_current(
                    &name,
                    &current.record_version,
                    &version_id,
                    &encode(&record)?,
                )
                .await
            {
                Ok(()) => Ok(Written {
                    record,
                    replayed: false,
                }),
                // Lost the swap. If the winner was this same request (a concurrent retry), its
                // answer is this one's; otherwise nothing was changed by this attempt.
                Err(StoreError::Conflict | StoreError::VersionExists) => match idempotency {
                    Some(idempotency) => self
                        .replay(tenant, id, idempotency)
                        .await?
                        .ok_or_else(VaultError::conflict),
                    None => Err(VaultError::conflict()),
                },
                Err(other) => Err(other.into()),
            }
        }
        .await;
        let written = written?;
        self.announcer
            .announce(EventAction::SecretRotated, &written.record)
            .await;
        Ok(written)
    }

    /// Changes an endpoint's metadata, its rotation policy included, and keeps the policy's
    /// tags in step. The write is a compare-and-swap retried on a lost race (the patch names
    /// only the fields it sets, so it applies as well to the newer record). The new version
    /// keeps the current secret's issue time in its id, so a metadata change never postpones
    /// a scheduled rotation. If the tags cannot be written after the record, the call fails
    /// and a retry of the same patch writes them.
    async fn update_endpoint(
        &self,
        writer: &Writer,
        id: &EndpointId,
        patch: EndpointPatch,
    ) -> Result<EndpointRecord, VaultError> {
        let tenant = writer.tenant();
        let name = self.secret_name(tenant, id)?;
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let StoredEndpoint {
                mut record,
                record_version,
            } = self.get_endpoint(tenant, id).await?;
            let policy_before = record.endpoint.rotation_policy;
            let mut endpoint = record.endpoint.clone();
            if !patch.clone().apply(&mut endpoint) {
                self.sync_policy_tags(&name, record.endpoint.rotation_policy)
                    .await?;
                return Ok(record);
            }
            let now = self.clock.now();
            endpoint.updated_at = now;
            record.endpoint = endpoint;
            record.previous_secrets.retain(|old| old.is_valid_at(now));
            record.remember_keyed_write(now, None);
            let version = VersionId::stamped(record.secret.created_at);
            match self
                .store
                .replace_current(&name, &record_version, &version, &encode(&record)?)
                .await
            {
                Ok(()) => {
                    if record.endpoint.rotation_policy != policy_before {
                        self.sync_policy_tags(&name, record.endpoint.rotation_policy)
                            .await?;
                    }
                    return Ok(record);
                }
                Err(StoreError::Conflict) if attempt < ATTEMPTS => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(VaultError::conflict())
    }

    /// Reads one historical version of an endpoint's record.
    async fn endpoint_version(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        version: &VersionId,
    ) -> Result<EndpointRecord, VaultError> {
        let stored = self
            .store
            .read_version(&self.secret_name(tenant, id)?, version)
            .await?;
        decode(&stored)
    }
}

/// The answer to a retry of `idempotency` given the endpoint's `current` record: the record
/// its earlier attempt produced if that write took effect, `None` if no write under the key
/// ever did (the retry then runs the write anew).
pub(super) async fn replay_from<R: EndpointRepository + ?Sized>(
    repository: &R,
    tenant: &TenantId,
    id: &EndpointId,
    current: &StoredEndpoint,
    idempotency: &Idempotency,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Written>, VaultError> {
    let write = match idempotency.find(&current.record, now) {
        None => return Ok(None),
        Some(Replay::Different) => return Err(VaultError::IdempotencyMismatch),
        Some(Replay::Same(write)) => write,
    };
    let record = if write.version == current.record_version {
        current.record.clone()
    } else {
        // A later write moved the record on; the answer is the version this one produced,
        // which Secrets Manager keeps for at least the 24 hours a key is remembered.
        repository
            .endpoint_version(tenant, id, &write.version)
            .await?
    };
    Ok(Some(Written {
        record,
        replayed: true,
    }))
}
