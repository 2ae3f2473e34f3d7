//! A store decorator for fault and race tests: every call goes to the real store, except that
//! a hook runs just before each compare-and-swap and may act on the real store first (a rival
//! writer, a put that then dies) or refuse the swap with an error of its choosing.

use async_trait::async_trait;
use std::sync::Arc;
use webhook_secrets::domain::ids::VersionId;
use webhook_secrets::store::{
    ListFilter, ListPage, SecretName, SecretStore, StoreError, StoredValue, StoredVersion,
    VersionStages,
};

/// What happens just before a replace reaches the real store.
#[async_trait]
pub trait BeforeReplace: Send + Sync + 'static {
    /// `Err` is the replace's answer and the real store never sees it.
    async fn before_replace(
        &self,
        store: &dyn SecretStore,
        name: &SecretName,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<(), StoreError>;
}

pub struct Interposed<H> {
    inner: Arc<dyn SecretStore>,
    pub hook: H,
}

impl<H: BeforeReplace> Interposed<H> {
    pub fn wrap(inner: Arc<dyn SecretStore>, hook: H) -> Arc<Self> {
        Arc::new(Self { inner, hook })
    }
}

#[async_trait]
impl<H: BeforeReplace> SecretStore for Interposed<H> {
    async fn create(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &StoredValue,
        tags: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.inner.create(name, token, value, tags).await
    }

    async fn read_current(&self, name: &SecretName) -> Result<StoredVersion, StoreError> {
        self.inner.read_current(name).await
    }

    async fn read_version(
        &self,
        name: &SecretName,
        version: &VersionId,
    ) -> Result<StoredVersion, StoreError> {
        self.inner.read_version(name, version).await
    }

    async fn replace_current(
        &self,
        name: &SecretName,
        expected: &VersionId,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<(), StoreError> {
        self.hook
            .before_replace(self.inner.as_ref(), name, token, value)
            .await?;
        self.inner
            .replace_current(name, expected, token, value)
            .await
    }

    async fn delete(&self, name: &SecretName) -> Result<(), StoreError> {
        self.inner.delete(name).await
    }

    async fn list(
        &self,
        filter: ListFilter<'_>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        self.inner.list(filter, cursor, limit).await
    }

    async fn stages(&self, name: &SecretName) -> Result<VersionStages, StoreError> {
        self.inner.stages(name).await
    }

    async fn set_tags(
        &self,
        name: &SecretName,
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<(), StoreError> {
        self.inner.set_tags(name, set, remove).await
    }

    async fn put_pending(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<(), StoreError> {
        self.inner.put_pending(name, token, value).await
    }

    async fn promote(
        &self,
        name: &SecretName,
        token: &VersionId,
        expected: &VersionId,
    ) -> Result<(), StoreError> {
        self.inner.promote(name, token, expected).await
    }

    async fn remove_pending(
        &self,
        name: &SecretName,
        version: &VersionId,
    ) -> Result<(), StoreError> {
        self.inner.remove_pending(name, version).await
    }
}
