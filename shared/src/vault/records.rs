//! The product's own records, kept beside endpoints in the same store: JSON documents in
//! stored secrets named `{prefix}/_{path}` (an API-key ring holds many keys' records). Tenants never start with `_`, so these names can
//! never be an endpoint's. The layers that own each kind of record (API keys in `auth`, the
//! token signing keys in `auth::tokens`) use them through this type.

use super::{decode, encode, VaultError};
use crate::domain::ids::VersionId;
use crate::store::{ListFilter, SecretName, SecretStore, StoreError};
use futures::future::join_all;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

pub struct Records {
    store: Arc<dyn SecretStore>,
    prefix: String,
}

impl Records {
    pub fn new(store: Arc<dyn SecretStore>, prefix: impl Into<String>) -> Self {
        Self {
            store,
            prefix: prefix.into(),
        }
    }

    fn name(&self, path: &str) -> Result<SecretName, VaultError> {
        Ok(SecretName::parse(&format!("{}/_{path}", self.prefix))?)
    }

    /// The record at `path` and the version it was read from.
    pub async fn read<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(T, VersionId), VaultError> {
        let stored = self.store.read_current(&self.name(path)?).await?;
        Ok((decode(&stored)?, stored.version_id))
    }

    pub async fn create<T: Serialize>(
        &self,
        path: &str,
        value: &T,
        tags: &[(String, String)],
    ) -> Result<(), VaultError> {
        let name = self.name(path)?;
        self.store
            .create(&name, &VersionId::generate(), &encode(value)?, tags)
            .await?;
        Ok(())
    }

    /// Compare-and-swap: replaces the record only if `expected` is still its version.
    pub async fn replace<T: Serialize>(
        &self,
        path: &str,
        expected: &VersionId,
        value: &T,
    ) -> Result<(), VaultError> {
        let name = self.name(path)?;
        self.store
            .replace_current(&name, expected, &VersionId::generate(), &encode(value)?)
            .await?;
        Ok(())
    }

    /// Deletes the record at `path`; deleting a missing one succeeds.
    pub async fn delete(&self, path: &str) -> Result<(), VaultError> {
        Ok(self.store.delete(&self.name(path)?).await?)
    }

    /// Every record under `{prefix}/_{folder}/`, in listing order.
    pub async fn list<T: DeserializeOwned>(&self, folder: &str) -> Result<Vec<T>, VaultError> {
        let prefix = format!("{}/_{folder}/", self.prefix);
        let mut records = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list(ListFilter::prefix(&prefix), cursor.as_deref(), 100)
                .await?;
            for read in join_all(page.names().map(|n| self.store.read_current(n))).await {
                match read {
                    Ok(stored) => records.push(decode(&stored)?),
                    // Deleted between the listing and the read.
                    Err(StoreError::NotFound) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(records),
            }
        }
    }
}
