//! The vault: endpoints, their secrets and API-key records, kept in a [`SecretStore`].
//!
//! Names: `{prefix}/{tenant}/{endpoint_id}` for an endpoint, `{prefix}/_api-keys/{key_id}`
//! for an API key (tenants never start with `_`, so the two cannot collide).

use crate::auth::ApiKeyRecord;
use crate::clock::Clock;
use crate::endpoint::{
    Endpoint, EndpointPatch, EndpointRecord, GracePeriod, NewEndpoint, RotationPolicy,
    SecretSource, SecretVersion, MAX_PREVIOUS_SECRETS, RECORD_SCHEMA,
};
use crate::idempotency::{Idempotency, Replay};
use crate::ids::{EndpointId, KeyId, TenantId, VersionId};
use crate::secret::{SecretError, SecretFormat, SecretSpec, WebhookSecret};
use crate::store::{ListFilter, SecretName, SecretStore, StoreError, StoredValue, StoredVersion};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

const API_KEYS: &str = "_api-keys";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("changed concurrently")]
    Conflict,
    #[error("throttled")]
    Throttled,
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("the record would be {0} bytes, over Secrets Manager's 65,536-byte limit")]
    TooLarge(usize),
    #[error("a stored record could not be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The rotation would keep more than `MAX_PREVIOUS_SECRETS` older secrets valid.
    #[error("{MAX_PREVIOUS_SECRETS} older secrets are still valid; the oldest expires at {oldest_expires_at}")]
    TooManyValidSecrets { oldest_expires_at: DateTime<Utc> },
    /// The record's secret was written as often as Secrets Manager allows within 24 hours.
    #[error(
        "the endpoint was written too often; its secret store allows about 100 writes per 24 hours"
    )]
    VersionQuota,
    #[error("the cursor is not one this API returned")]
    InvalidCursor,
    /// The Idempotency-Key was used before with a different request.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
}

impl From<StoreError> for VaultError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            StoreError::AlreadyExists => Self::AlreadyExists,
            StoreError::Conflict => Self::Conflict,
            StoreError::Throttled => Self::Throttled,
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Invalid(m) => Self::Invalid(m),
            StoreError::AccessDenied(m) => Self::AccessDenied(m),
            StoreError::TooLarge(n) => Self::TooLarge(n),
            StoreError::VersionExists => Self::Invalid("a version token was reused".into()),
            StoreError::VersionQuota => Self::VersionQuota,
            StoreError::InvalidCursor => Self::InvalidCursor,
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

    fn format(self) -> SecretFormat {
        match self {
            Self::Uuid => SecretFormat::Uuid,
            Self::Whsec => SecretFormat::Whsec,
        }
    }

    fn name(self) -> &'static str {
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

pub struct Vault {
    store: Arc<dyn SecretStore>,
    prefix: String,
    clock: Arc<dyn Clock>,
}

impl Vault {
    pub fn new(
        store: Arc<dyn SecretStore>,
        prefix: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            prefix: prefix.into(),
            clock,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn store(&self) -> &Arc<dyn SecretStore> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn endpoint_name(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<SecretName, VaultError> {
        Ok(SecretName::parse(&format!(
            "{}/{}/{}",
            self.prefix, tenant, id
        ))?)
    }

    fn key_name(&self, key_id: &KeyId) -> Result<SecretName, VaultError> {
        Ok(SecretName::parse(&format!(
            "{}/{API_KEYS}/{key_id}",
            self.prefix
        ))?)
    }

    /// Creates an endpoint and its first secret. With `idempotency`, a retry of the same
    /// request returns what the first attempt created (even its secret) and writes nothing.
    pub async fn create_endpoint(
        &self,
        tenant: &TenantId,
        new: NewEndpoint,
        idempotency: Option<&Idempotency>,
    ) -> Result<Written, VaultError> {
        let id = match (new.id, idempotency) {
            (Some(id), _) => id,
            (None, Some(idempotency)) => idempotency.endpoint_id(tenant),
            (None, None) => EndpointId::generate(),
        };
        let name = self.endpoint_name(tenant, &id)?;
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
                    .ok_or(VaultError::AlreadyExists),
                None => Err(VaultError::AlreadyExists),
            },
            Err(other) => Err(other.into()),
        }
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
        self.replay_from(tenant, id, &current, idempotency).await
    }

    async fn replay_from(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        current: &StoredEndpoint,
        idempotency: &Idempotency,
    ) -> Result<Option<Written>, VaultError> {
        let write = match idempotency.find(&current.record, self.clock.now()) {
            None => return Ok(None),
            Some(Replay::Different) => return Err(VaultError::IdempotencyMismatch),
            Some(Replay::Same(write)) => write,
        };
        let record = if write.version == current.record_version {
            current.record.clone()
        } else {
            // A later write moved the record on; the answer is the version this one produced,
            // which Secrets Manager keeps for at least the 24 hours a key is remembered.
            self.endpoint_version(tenant, id, &write.version).await?
        };
        Ok(Some(Written {
            record,
            replayed: true,
        }))
    }

    pub async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<StoredEndpoint, VaultError> {
        let name = self.endpoint_name(tenant, id)?;
        let stored = self.store.read_current(&name).await?;
        let record: EndpointRecord = decode(&stored)?;
        // The name already scopes the record to the tenant; this guards against a record
        // copied between names by hand.
        if record.endpoint.tenant != *tenant || record.endpoint.id != *id {
            return Err(VaultError::NotFound);
        }
        Ok(StoredEndpoint {
            record,
            record_version: stored.version_id,
        })
    }

    pub async fn list_endpoints(
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
        let reads = page.names().map(|name| self.store.read_current(name));
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
    pub async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<EndpointRecord, VaultError> {
        // Read first so another tenant's endpoint, or a record that is not an endpoint, is
        // never deleted through this path.
        let stored = self.get_endpoint(tenant, id).await?;
        self.store.delete(&self.endpoint_name(tenant, id)?).await?;
        Ok(stored.record)
    }

    /// Replaces the endpoint's secret with a new one, as a compare-and-swap on the version
    /// that was read: if another rotation got there first this one fails with `Conflict` and
    /// its secret is never current. The replaced secret stays valid for `grace`; older ones
    /// keep their own expiry, and expired ones are pruned. With `idempotency`, a retry of a
    /// rotation that took effect returns its result and writes nothing; a retry of one that
    /// did not (it lost its swap, or failed before it) rotates now.
    pub async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        rotation: Rotation<'_>,
    ) -> Result<Written, VaultError> {
        let Rotation {
            source,
            grace,
            idempotency,
            invalidate_older,
        } = rotation;
        let name = self.endpoint_name(tenant, id)?;
        let now = self.clock.now();
        let current = self.get_endpoint(tenant, id).await?;
        if let Some(idempotency) = idempotency {
            if let Some(replayed) = self.replay_from(tenant, id, &current, idempotency).await? {
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
                    .ok_or(VaultError::Conflict),
                None => Err(VaultError::Conflict),
            },
            Err(other) => Err(other.into()),
        }
    }

    /// Changes an endpoint's metadata, its rotation policy included, and keeps the policy's
    /// tags in step. The write is a compare-and-swap retried on a lost race (the patch names
    /// only the fields it sets, so it applies as well to the newer record). The new version
    /// keeps the current secret's issue time in its id, so a metadata change never postpones
    /// a scheduled rotation. If the tags cannot be written after the record, the call fails
    /// and a retry of the same patch writes them.
    pub async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        patch: EndpointPatch,
    ) -> Result<EndpointRecord, VaultError> {
        let name = self.endpoint_name(tenant, id)?;
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
        Err(VaultError::Conflict)
    }

    async fn sync_policy_tags(
        &self,
        name: &SecretName,
        policy: Option<RotationPolicy>,
    ) -> Result<(), VaultError> {
        let (set, remove) = RotationPolicy::tags(policy);
        Ok(self.store.set_tags(name, &set, &remove).await?)
    }

    /// Rotates an account-level secret (an endpoint with a reserved id) with immediate
    /// invalidation, creating it on first use.
    pub async fn rotate_account_secret(
        &self,
        tenant: &TenantId,
        account: AccountSecret,
    ) -> Result<EndpointRecord, VaultError> {
        let id = account.endpoint_id();
        let spec = SecretSpec::new(account.format(), None)?;
        for _ in 0..2 {
            match self
                .rotate_secret(
                    tenant,
                    &id,
                    Rotation::immediate(SecretSource::Generate(spec)),
                )
                .await
            {
                Err(VaultError::NotFound) => {}
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
                version: crate::endpoint::DEFAULT_VERSION.to_owned(),
                rotation_policy: None,
                secret: SecretSource::Generate(spec),
            };
            match self.create_endpoint(tenant, new, None).await {
                // Another request created it first: rotate that one.
                Err(VaultError::AlreadyExists) => continue,
                other => return other.map(|written| written.record),
            }
        }
        Err(VaultError::Conflict)
    }

    /// A record the product keeps for itself, at `{prefix}/_{what}` (tenants never start
    /// with `_`, and endpoints live one level deeper, so these names are free).
    fn internal_name(&self, what: &str) -> Result<SecretName, VaultError> {
        Ok(SecretName::parse(&format!("{}/_{what}", self.prefix))?)
    }

    pub async fn read_internal<T: DeserializeOwned>(
        &self,
        what: &str,
    ) -> Result<(T, VersionId), VaultError> {
        let stored = self.store.read_current(&self.internal_name(what)?).await?;
        Ok((decode(&stored)?, stored.version_id))
    }

    pub async fn create_internal<T: Serialize>(
        &self,
        what: &str,
        value: &T,
    ) -> Result<(), VaultError> {
        let name = self.internal_name(what)?;
        self.store
            .create(&name, &VersionId::generate(), &encode(value)?, &[])
            .await?;
        Ok(())
    }

    /// Compare-and-swap on an internal record.
    pub async fn replace_internal<T: Serialize>(
        &self,
        what: &str,
        expected: &VersionId,
        value: &T,
    ) -> Result<(), VaultError> {
        let name = self.internal_name(what)?;
        self.store
            .replace_current(&name, expected, &VersionId::generate(), &encode(value)?)
            .await?;
        Ok(())
    }

    /// Reads one historical version of an endpoint's record.
    pub async fn endpoint_version(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        version: &VersionId,
    ) -> Result<EndpointRecord, VaultError> {
        let stored = self
            .store
            .read_version(&self.endpoint_name(tenant, id)?, version)
            .await?;
        decode(&stored)
    }

    pub async fn create_api_key(&self, record: &ApiKeyRecord) -> Result<(), VaultError> {
        let name = self.key_name(&record.key_id)?;
        let tags = vec![(
            "webhook-secrets:tenant".to_owned(),
            record.tenant.to_string(),
        )];
        self.store
            .create(&name, &VersionId::generate(), &encode(record)?, &tags)
            .await?;
        Ok(())
    }

    pub async fn api_key(&self, key_id: &KeyId) -> Result<ApiKeyRecord, VaultError> {
        let stored = self.store.read_current(&self.key_name(key_id)?).await?;
        decode(&stored)
    }

    /// Every API-key record, optionally only one tenant's.
    pub async fn list_api_keys(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<ApiKeyRecord>, VaultError> {
        let prefix = format!("{}/{API_KEYS}/", self.prefix);
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list(ListFilter::prefix(&prefix), cursor.as_deref(), 100)
                .await?;
            for read in join_all(page.names().map(|n| self.store.read_current(n))).await {
                match read {
                    Ok(stored) => {
                        let record: ApiKeyRecord = decode(&stored)?;
                        if tenant.is_none_or(|t| *t == record.tenant) {
                            keys.push(record);
                        }
                    }
                    Err(StoreError::NotFound) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        keys.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.key_id.cmp(&b.key_id))
        });
        Ok(keys)
    }

    /// Marks a key revoked; it stays listed so the revocation is on record.
    pub async fn revoke_api_key(&self, key_id: &KeyId) -> Result<ApiKeyRecord, VaultError> {
        let name = self.key_name(key_id)?;
        let stored = self.store.read_current(&name).await?;
        let mut record: ApiKeyRecord = decode(&stored)?;
        if record.revoked_at.is_some() {
            return Ok(record);
        }
        record.revoked_at = Some(self.clock.now());
        self.store
            .replace_current(
                &name,
                &stored.version_id,
                &VersionId::generate(),
                &encode(&record)?,
            )
            .await?;
        Ok(record)
    }
}

/// `record` after a rotation to a new secret, version `version_id`, issued at `now`: the
/// replaced secret stays valid for `grace` (or every older one ends, with `invalidate_older`),
/// and secrets already expired are dropped.
pub(crate) fn rotated(
    mut record: EndpointRecord,
    source: SecretSource,
    grace: GracePeriod,
    invalidate_older: bool,
    version_id: VersionId,
    now: DateTime<Utc>,
) -> Result<EndpointRecord, VaultError> {
    let value = match source {
        SecretSource::Supplied(secret) => secret,
        SecretSource::Generate(spec) => WebhookSecret::generate(spec)?,
        SecretSource::LikeCurrent => WebhookSecret::generate(spec_like(&record.secret.value)?)?,
    };
    if invalidate_older {
        record.previous_secrets.clear();
    }
    record.previous_secrets.retain(|old| old.is_valid_at(now));
    if !grace.is_zero() {
        if record.previous_secrets.len() >= MAX_PREVIOUS_SECRETS {
            let oldest_expires_at = record
                .previous_secrets
                .iter()
                .filter_map(|old| old.expires_at)
                .min()
                .unwrap_or(now);
            return Err(VaultError::TooManyValidSecrets { oldest_expires_at });
        }
        let mut replaced = record.secret.clone();
        replaced.expires_at = Some(now + grace.as_duration());
        record.previous_secrets.insert(0, replaced);
    }
    record.secret = SecretVersion {
        version_id,
        value,
        created_at: now,
        replaces: Some(record.secret.version_id.clone()),
        expires_at: None,
    };
    record.endpoint.updated_at = now;
    record.remember_keyed_write(now, None);
    Ok(record)
}

/// The spec that generates a secret of the same format and length as `secret`.
fn spec_like(secret: &WebhookSecret) -> Result<SecretSpec, SecretError> {
    match secret.format() {
        SecretFormat::Uuid => SecretSpec::new(SecretFormat::Uuid, None),
        SecretFormat::Whsec => {
            let encoded = secret
                .expose()
                .trim_start_matches(crate::secret::WHSEC_PREFIX);
            let bytes = STANDARD.decode(encoded).map(|b| b.len()).ok();
            SecretSpec::new(SecretFormat::Whsec, bytes)
        }
    }
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Result<StoredValue, VaultError> {
    let json = serde_json::to_string(record).map_err(|e| VaultError::Invalid(e.to_string()))?;
    Ok(StoredValue::new(json)?)
}

pub(crate) fn decode<T: DeserializeOwned>(stored: &StoredVersion) -> Result<T, VaultError> {
    // serde_json's message names a position and type, never the value, so it is safe to log.
    serde_json::from_str(stored.value.expose()).map_err(|e| {
        VaultError::Corrupt(format!(
            "version {} is not a record this product wrote (line {}, column {})",
            stored.version_id,
            e.line(),
            e.column()
        ))
    })
}
