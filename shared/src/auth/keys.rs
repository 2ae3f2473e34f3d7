//! API-key records: one per key, at `{prefix}/_api-keys/{key_id}`, holding the key's tenant,
//! role and the SHA-256 of its secret part, never the key itself.

use super::ApiKey;
use crate::domain::access::Role;
use crate::domain::clock::Clock;
use crate::domain::ids::{KeyId, TenantId};
use crate::vault::records::Records;
use crate::vault::VaultError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const FOLDER: &str = "api-keys";

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

pub struct ApiKeys {
    records: Records,
    clock: Arc<dyn Clock>,
}

impl ApiKeys {
    pub fn new(records: Records, clock: Arc<dyn Clock>) -> Self {
        Self { records, clock }
    }

    fn path(key_id: &KeyId) -> String {
        format!("{FOLDER}/{key_id}")
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
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
        let tags = [(
            "webhook-secrets:tenant".to_owned(),
            record.tenant.to_string(),
        )];
        self.records
            .create(&Self::path(&record.key_id), &record, &tags)
            .await?;
        Ok((key, record))
    }

    pub async fn get(&self, key_id: &KeyId) -> Result<ApiKeyRecord, VaultError> {
        Ok(self.records.read(&Self::path(key_id)).await?.0)
    }

    /// Every API-key record, optionally only one tenant's, oldest first.
    pub async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKeyRecord>, VaultError> {
        let mut keys: Vec<ApiKeyRecord> = self.records.list(FOLDER).await?;
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
        let path = Self::path(key_id);
        let (mut record, version): (ApiKeyRecord, _) = self.records.read(&path).await?;
        if record.revoked_at.is_some() {
            return Ok(record);
        }
        record.revoked_at = Some(self.now());
        self.records.replace(&path, &version, &record).await?;
        Ok(record)
    }
}
