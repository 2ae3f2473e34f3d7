//! API-key records, holding each key's tenant, role and the SHA-256 of its secret part, never
//! the key itself.
//!
//! **Key rings.** A record is about 250 bytes, and a secret of its own would cost $0.40 a
//! month, as much as an endpoint's on the per-endpoint layout. So records live in *key rings*,
//! many to a secret, on both layouts: `{prefix}/_api-keys/_ring/{n}`. A key's ring is the
//! first of the chain `b, b + 64, b + 128, …` (where `b` comes from the SHA-256 of its id) that
//! holds it; a key is minted into the first ring of its chain with room, so the chain grows
//! only when 64 rings of about 200 keys each are full, and a lookup is one read. The 64
//! bases spread mints and revocations over 64 secrets' version budgets; only the operator
//! command writes keys. A deployment that keeps records one per secret from before
//! (`{prefix}/_api-keys/{key_id}`) still reads them; [`ApiKeys::move_into_rings`] moves them.

use super::ApiKey;
use crate::domain::access::Role;
use crate::domain::clock::Clock;
use crate::domain::ids::{KeyId, TenantId};
use crate::store::StoreError;
use crate::vault::records::Records;
use crate::vault::VaultError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

const FOLDER: &str = "api-keys";
/// Rings that start a chain.
pub const RING_BASES: u64 = 64;
/// A ring takes no more keys past this size (Secrets Manager's limit is 65,536 bytes).
pub const RING_BYTES: usize = 48 * 1024;
/// Compare-and-swap attempts of one ring write against concurrent operators.
const WRITE_ATTEMPTS: usize = 8;

/// What is kept for an API key: never the key itself.
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

/// One key ring as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyRing {
    keys: BTreeMap<KeyId, ApiKeyRecord>,
}

/// What a secret under `_api-keys/` holds.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Ring(KeyRing),
    Alone(ApiKeyRecord),
}

/// Where a key's record was found.
enum Found {
    Ring {
        number: u64,
        ring: KeyRing,
        version: crate::domain::ids::VersionId,
    },
    /// A record kept one per secret, from before key rings.
    Alone {
        record: ApiKeyRecord,
        version: crate::domain::ids::VersionId,
    },
}

pub struct ApiKeys {
    records: Records,
    clock: Arc<dyn Clock>,
}

impl ApiKeys {
    pub fn new(records: Records, clock: Arc<dyn Clock>) -> Self {
        Self { records, clock }
    }

    fn alone_path(key_id: &KeyId) -> String {
        format!("{FOLDER}/{key_id}")
    }

    fn ring_path(number: u64) -> String {
        format!("{FOLDER}/_ring/{number}")
    }

    /// The rings `key_id` may be in, first to last.
    fn chain(key_id: &KeyId) -> impl Iterator<Item = u64> {
        let digest = Sha256::digest(key_id.as_str().as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        let base = u64::from_le_bytes(bytes) % RING_BASES;
        (0..).map(move |step| base + step * RING_BASES)
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn read_ring(
        &self,
        number: u64,
    ) -> Result<Option<(KeyRing, crate::domain::ids::VersionId)>, VaultError> {
        match self.records.read(&Self::ring_path(number)).await {
            Ok(found) => Ok(Some(found)),
            Err(VaultError::Store(StoreError::NotFound)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// The key's record and where it is: down its chain of rings (which ends at the first
    /// ring not created), then alone in a secret of its own.
    async fn find(&self, key_id: &KeyId) -> Result<Found, VaultError> {
        for number in Self::chain(key_id) {
            let Some((ring, version)) = self.read_ring(number).await? else {
                break;
            };
            if ring.keys.contains_key(key_id) {
                return Ok(Found::Ring {
                    number,
                    ring,
                    version,
                });
            }
        }
        let (record, version) = self.records.read(&Self::alone_path(key_id)).await?;
        Ok(Found::Alone { record, version })
    }

    /// Adds `record` to the first ring of its chain with room for it.
    async fn insert(&self, record: &ApiKeyRecord) -> Result<(), VaultError> {
        let size = serde_json::to_vec(record).map_or(0, |bytes| bytes.len());
        for _ in 0..WRITE_ATTEMPTS {
            let mut written = false;
            let mut raced = false;
            for number in Self::chain(&record.key_id) {
                let path = Self::ring_path(number);
                let Some((mut ring, version)) = self.read_ring(number).await? else {
                    let mut ring = KeyRing::default();
                    ring.keys.insert(record.key_id.clone(), record.clone());
                    match self.records.create(&path, &ring, &[]).await {
                        Ok(()) => written = true,
                        Err(VaultError::Store(StoreError::AlreadyExists)) => raced = true,
                        Err(other) => return Err(other),
                    }
                    break;
                };
                if ring.keys.contains_key(&record.key_id) {
                    return Ok(());
                }
                let full =
                    serde_json::to_vec(&ring).map_or(0, |bytes| bytes.len()) + size > RING_BYTES;
                if full {
                    continue;
                }
                ring.keys.insert(record.key_id.clone(), record.clone());
                match self.records.replace(&path, &version, &ring).await {
                    Ok(()) => written = true,
                    Err(VaultError::Store(StoreError::Conflict | StoreError::VersionExists)) => {
                        raced = true
                    }
                    Err(other) => return Err(other),
                }
                break;
            }
            if written {
                return Ok(());
            }
            if !raced {
                break;
            }
        }
        Err(VaultError::conflict())
    }

    /// Mints a key for `tenant` with `role` and stores its record. The returned key is the
    /// only copy of its secret.
    pub async fn mint(
        &self,
        tenant: TenantId,
        role: Role,
    ) -> Result<(ApiKey, ApiKeyRecord), VaultError> {
        let key = ApiKey::generate()?;
        let record = ApiKeyRecord {
            key_id: key.key_id().clone(),
            tenant,
            role,
            secret_sha256: key.secret_sha256(),
            created_at: self.now(),
            revoked_at: None,
        };
        self.insert(&record).await?;
        Ok((key, record))
    }

    pub async fn get(&self, key_id: &KeyId) -> Result<ApiKeyRecord, VaultError> {
        match self.find(key_id).await? {
            Found::Ring { mut ring, .. } => ring
                .keys
                .remove(key_id)
                .ok_or(VaultError::Store(StoreError::NotFound)),
            Found::Alone { record, .. } => Ok(record),
        }
    }

    /// Every API-key record, optionally only one tenant's, oldest first.
    pub async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKeyRecord>, VaultError> {
        let mut keys: Vec<ApiKeyRecord> = Vec::new();
        for stored in self.records.list::<Stored>(FOLDER).await? {
            match stored {
                Stored::Ring(ring) => keys.extend(ring.keys.into_values()),
                Stored::Alone(record) => keys.push(record),
            }
        }
        keys.retain(|record| tenant.is_none_or(|t| *t == record.tenant));
        keys.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.key_id.cmp(&b.key_id))
        });
        Ok(keys)
    }

    /// Marks a key revoked; it stays listed so the revocation is on record.
    pub async fn revoke(&self, key_id: &KeyId) -> Result<ApiKeyRecord, VaultError> {
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.now();
            let outcome = match self.find(key_id).await? {
                Found::Ring {
                    number,
                    mut ring,
                    version,
                } => {
                    let Some(record) = ring.keys.get_mut(key_id) else {
                        continue;
                    };
                    if record.revoked_at.is_some() {
                        return Ok(record.clone());
                    }
                    record.revoked_at = Some(now);
                    let record = record.clone();
                    self.records
                        .replace(&Self::ring_path(number), &version, &ring)
                        .await
                        .map(|()| record)
                }
                Found::Alone {
                    mut record,
                    version,
                } => {
                    if record.revoked_at.is_some() {
                        return Ok(record);
                    }
                    record.revoked_at = Some(now);
                    self.records
                        .replace(&Self::alone_path(key_id), &version, &record)
                        .await
                        .map(|()| record)
                }
            };
            match outcome {
                Err(VaultError::Store(StoreError::Conflict | StoreError::VersionExists)) => {}
                other => return other,
            }
        }
        Err(VaultError::conflict())
    }

    /// Moves every record kept one per secret into its key ring, then deletes its secret;
    /// returns how many moved (or, with `dry_run`, would). Safe to interrupt and re-run: a
    /// record is deleted only once its ring holds it.
    pub async fn move_into_rings(&self, dry_run: bool) -> Result<usize, VaultError> {
        let mut moved = 0;
        for stored in self.records.list::<Stored>(FOLDER).await? {
            let Stored::Alone(record) = stored else {
                continue;
            };
            if !dry_run {
                self.insert(&record).await?;
                self.records
                    .delete(&Self::alone_path(&record.key_id))
                    .await?;
            }
            moved += 1;
        }
        Ok(moved)
    }
}
