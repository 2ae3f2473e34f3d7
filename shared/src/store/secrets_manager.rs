//! The production store: AWS Secrets Manager, one secret per record.
//!
//! A replace is a compare-and-swap built from two calls: `PutSecretValue` stages the new
//! version as `AWSPENDING` under its `ClientRequestToken`, then `UpdateSecretVersionStage`
//! moves `AWSCURRENT` to it with `RemoveFromVersionId` set to the version that was read, which
//! Secrets Manager refuses if `AWSCURRENT` has moved meanwhile. Every replace then takes
//! `AWSPENDING` off its own version, so none is left dangling whether it won or lost.

use super::{
    decode_cursor, encode_cursor, ListFilter, ListPage, ListedSecret, SecretName, SecretStore,
    StoreError, StoredValue, StoredVersion, VersionStages,
};
use crate::domain::ids::VersionId;
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, ReplicaRegionType, Tag};
use aws_sdk_secretsmanager::Client;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

const CURRENT: &str = "AWSCURRENT";
const PENDING: &str = "AWSPENDING";
const PREVIOUS: &str = "AWSPREVIOUS";

/// Retry and timeout settings for the SDK client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSettings {
    pub max_attempts: u32,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
}

impl ClientSettings {
    fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard().with_max_attempts(self.max_attempts)
    }

    fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.attempt_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }
}

impl Default for ClientSettings {
    fn default() -> Self {
        // Lambda's API Gateway integration gives up after 30 s; a vault call must fail well
        // before that so the function can still answer 503 with a body.
        Self {
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(10),
        }
    }
}

/// Where the secrets this store creates are kept: under which KMS key, and replicated to
/// which other region for disaster recovery. Both are fixed when a secret is created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretPlacement {
    /// A customer-managed key (id, ARN or alias); `None` is `aws/secretsmanager`.
    pub kms_key_id: Option<String>,
    pub replica: Option<ReplicaRegion>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRegion {
    pub region: String,
    /// The key in the replica region; `None` is that region's `aws/secretsmanager`.
    pub kms_key_id: Option<String>,
}

pub struct SecretsManagerStore {
    client: Client,
    placement: SecretPlacement,
}

impl SecretsManagerStore {
    /// Builds the client from the standard AWS settings (`AWS_REGION`, credentials,
    /// `AWS_ENDPOINT_URL`, ...) with standard retries and explicit timeouts. A missing region
    /// is reported now rather than on the first request.
    pub async fn from_env(settings: ClientSettings) -> Result<Self, String> {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_sdk_config(&config, settings)
    }

    /// The same, from an AWS configuration already loaded: a function loads one and shares it
    /// (its credentials, region and HTTP client, whose TLS set-up is most of a cold start)
    /// with every client it builds.
    pub fn from_sdk_config(config: &SdkConfig, settings: ClientSettings) -> Result<Self, String> {
        if config.region().is_none() {
            return Err("no AWS region is configured: set AWS_REGION (Lambda sets it)".into());
        }
        let config = aws_sdk_secretsmanager::config::Builder::from(config)
            .retry_config(settings.retry_config())
            .timeout_config(settings.timeout_config())
            .build();
        Ok(Self::new(Client::from_conf(config)))
    }

    /// The SDK configuration this store runs with: standard retry mode (exponential backoff
    /// with jitter, throttling and transient errors retried) and per-attempt and total
    /// timeouts. Tests add an endpoint to it to aim the same client at a fault injector.
    pub fn config_loader(settings: ClientSettings) -> aws_config::ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            .retry_config(settings.retry_config())
            .timeout_config(settings.timeout_config())
    }

    pub fn new(client: Client) -> Self {
        Self {
            client,
            placement: SecretPlacement::default(),
        }
    }

    /// Creates every new secret under `placement`'s key and with its replica.
    pub fn with_placement(mut self, placement: SecretPlacement) -> Self {
        self.placement = placement;
        self
    }

    /// Takes `AWSPENDING` off a version this writer staged, best effort.
    async fn clear_own_pending(&self, name: &SecretName, version: &VersionId) {
        if let Err(err) = self.remove_pending(name, version).await {
            // Expected when another writer's put has since taken the label: it then cleans up.
            tracing::debug!(secret = %name, version = %version, error = %err, "AWSPENDING not removed");
        }
    }

    /// Moves `AWSCURRENT` from `expected` to `token` (and with it any `AWSPENDING` on `token`,
    /// which then no longer counts as pending). A refusal means either another writer
    /// moved it first (a lost race, `Conflict`) or this is a retry of a move that already
    /// happened (`Ok(true)`: the caller decides whether the version is its own).
    async fn swap_current(
        &self,
        name: &SecretName,
        expected: &VersionId,
        token: &VersionId,
    ) -> Result<bool, StoreError> {
        let swapped = self
            .client
            .update_secret_version_stage()
            .secret_id(name.as_str())
            .version_stage(CURRENT)
            .move_to_version_id(token.as_str())
            .remove_from_version_id(expected.as_str())
            .send()
            .await
            .map_err(store_error);
        match swapped {
            Ok(_) => Ok(false),
            Err(StoreError::Invalid(detail)) => match self.stages(name).await {
                Ok(stages) if stages.current.as_ref() == Some(token) => Ok(true),
                Ok(_) => Err(StoreError::Conflict),
                Err(_) => Err(StoreError::Invalid(detail)),
            },
            Err(other) => Err(other),
        }
    }
}

fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(service) => service.err().code().unwrap_or("unknown").to_owned(),
        SdkError::TimeoutError(_) => "timeout".into(),
        SdkError::DispatchFailure(_) => "dispatch failure".into(),
        SdkError::ResponseError(_) => "unreadable response".into(),
        SdkError::ConstructionFailure(_) => "request construction failure".into(),
        _ => "unknown".into(),
    }
}

/// Maps an SDK error to a store error. Messages stay for the log; the HTTP layer never shows
/// them to a client.
fn store_error<E: ProvideErrorMetadata, R>(err: SdkError<E, R>) -> StoreError {
    let code = error_code(&err);
    let message = match &err {
        SdkError::ServiceError(service) => service.err().message().unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    let detail = format!("{code}: {message}");
    match &err {
        SdkError::ServiceError(_) => match code.as_str() {
            "ResourceNotFoundException" => StoreError::NotFound,
            // A secret scheduled for deletion answers like this; to a caller it is gone.
            "InvalidRequestException" if message.contains("deletion") => StoreError::NotFound,
            "ResourceExistsException" => StoreError::AlreadyExists,
            // PutSecretValue past the versions quota (about 100 written within 24 hours).
            "LimitExceededException" => StoreError::VersionQuota,
            "InvalidNextTokenException" => StoreError::InvalidCursor,
            "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
                StoreError::Throttled
            }
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "DecryptionFailure" => StoreError::AccessDenied(detail),
            "InvalidParameterException"
            | "InvalidRequestException"
            | "ValidationException"
            | "MalformedPolicyDocumentException"
            | "PreconditionNotMetException"
            | "EncryptionFailure" => StoreError::Invalid(detail),
            _ => StoreError::Unavailable(detail),
        },
        SdkError::ConstructionFailure(_) => StoreError::Invalid(detail),
        _ => StoreError::Unavailable(detail),
    }
}

fn to_chrono(time: &aws_sdk_secretsmanager::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn create(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &StoredValue,
        tags: &[(String, String)],
    ) -> Result<(), StoreError> {
        let tags = tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect::<Vec<_>>();
        let replica = self.placement.replica.as_ref().map(|replica| {
            vec![ReplicaRegionType::builder()
                .region(&replica.region)
                .set_kms_key_id(replica.kms_key_id.clone())
                .build()]
        });
        let created = self
            .client
            .create_secret()
            .name(name.as_str())
            .client_request_token(token.as_str())
            .secret_string(value.expose())
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_kms_key_id(self.placement.kms_key_id.clone())
            .set_add_replica_regions(replica)
            .send()
            .await;
        match created.map_err(store_error) {
            Ok(_) => Ok(()),
            // AWS treats a retry with the same token and value as a no-op; make that explicit
            // so the emulator and AWS answer alike.
            Err(StoreError::AlreadyExists) => match self.read_version(name, token).await {
                Ok(existing) if existing.value == *value => Ok(()),
                _ => Err(StoreError::AlreadyExists),
            },
            Err(other) => Err(other),
        }
    }

    async fn read_current(&self, name: &SecretName) -> Result<StoredVersion, StoreError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(name.as_str())
            .version_stage(CURRENT)
            .send()
            .await
            .map_err(store_error)?;
        stored_version(output.version_id(), output.secret_string())
    }

    async fn read_version(
        &self,
        name: &SecretName,
        version: &VersionId,
    ) -> Result<StoredVersion, StoreError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(name.as_str())
            .version_id(version.as_str())
            .send()
            .await
            .map_err(store_error)?;
        stored_version(output.version_id(), output.secret_string())
    }

    async fn replace_current(
        &self,
        name: &SecretName,
        expected: &VersionId,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<(), StoreError> {
        // A retry finds its version already written and only repeats the swap.
        self.put_pending(name, token, value).await?;
        // A swap that won leaves AWSPENDING on the version that is now AWSCURRENT, which AWS
        // treats as a finished rotation (the next PutSecretValue moves the label), so a
        // rotation costs two writes, not three. A version that lost is taken out of pending.
        match self.swap_current(name, expected, token).await {
            Ok(false) => Ok(()),
            // Current is this token, but only the value tells whether this call wrote it or
            // another writer reusing the token did.
            Ok(true) => match self.read_version(name, token).await {
                Ok(stored) if stored.value == *value => Ok(()),
                Ok(_) => Err(StoreError::VersionExists),
                Err(err) => Err(err),
            },
            Err(err) => {
                self.clear_own_pending(name, token).await;
                Err(err)
            }
        }
    }

    async fn delete(&self, name: &SecretName) -> Result<(), StoreError> {
        // Secrets Manager refuses to delete a primary secret that still has replicas.
        if let Some(replica) = &self.placement.replica {
            let removed = self
                .client
                .remove_regions_from_replication()
                .secret_id(name.as_str())
                .remove_replica_regions(&replica.region)
                .send()
                .await
                .map_err(store_error);
            match removed {
                // Gone already, or never replicated (created before the replica was set).
                Ok(_) | Err(StoreError::NotFound | StoreError::Invalid(_)) => {}
                Err(other) => return Err(other),
            }
        }
        self.client
            .delete_secret()
            .secret_id(name.as_str())
            .force_delete_without_recovery(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn list(
        &self,
        filter: ListFilter<'_>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        let next_token = cursor.map(|c| decode_cursor(filter, c)).transpose()?;
        let mut filters = vec![Filter::builder()
            .key(FilterNameStringType::Name)
            .values(filter.prefix)
            .build()];
        if let Some(tag_key) = filter.tag_key {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::TagKey)
                    .values(tag_key)
                    .build(),
            );
        }
        let output = self
            .client
            .list_secrets()
            .set_filters(Some(filters))
            .max_results(limit.clamp(1, 100) as i32)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(store_error)?;
        // The name filter is a case-insensitive prefix match; keep only exact prefixes.
        let mut secrets = Vec::new();
        for entry in output.secret_list() {
            let Some(name) = entry.name().filter(|n| n.starts_with(filter.prefix)) else {
                continue;
            };
            let tags: BTreeMap<String, String> = entry
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                .collect();
            if filter.tag_key.is_some_and(|key| !tags.contains_key(key)) {
                continue;
            }
            secrets.push(ListedSecret {
                name: SecretName::parse(name)?,
                tags,
                stages: version_stages(
                    entry.secret_versions_to_stages(),
                    entry.last_changed_date().and_then(to_chrono),
                ),
            });
        }
        secrets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ListPage {
            secrets,
            next: output
                .next_token()
                .map(|token| encode_cursor(filter, token)),
        })
    }

    async fn stages(&self, name: &SecretName) -> Result<VersionStages, StoreError> {
        let output = self
            .client
            .describe_secret()
            .secret_id(name.as_str())
            .send()
            .await
            .map_err(store_error)?;
        Ok(version_stages(
            output.version_ids_to_stages(),
            output.last_changed_date().and_then(to_chrono),
        ))
    }

    async fn set_tags(
        &self,
        name: &SecretName,
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<(), StoreError> {
        if !set.is_empty() {
            let tags = set
                .iter()
                .map(|(key, value)| Tag::builder().key(key).value(value).build())
                .collect();
            self.client
                .tag_resource()
                .secret_id(name.as_str())
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(store_error)?;
        }
        if !remove.is_empty() {
            self.client
                .untag_resource()
                .secret_id(name.as_str())
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    async fn put_pending(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<(), StoreError> {
        // Secrets Manager itself makes the token idempotent: the same token and value succeed
        // without writing, the same token with another value is ResourceExistsException.
        let put = self
            .client
            .put_secret_value()
            .secret_id(name.as_str())
            .client_request_token(token.as_str())
            .secret_string(value.expose())
            .version_stages(PENDING)
            .send()
            .await
            .map_err(store_error);
        match put {
            Ok(_) => Ok(()),
            Err(StoreError::AlreadyExists) => Err(StoreError::VersionExists),
            Err(other) => Err(other),
        }
    }

    async fn promote(
        &self,
        name: &SecretName,
        token: &VersionId,
        expected: &VersionId,
    ) -> Result<(), StoreError> {
        let stages = self.stages(name).await?;
        if stages.current.as_ref() != Some(token) {
            // Looking the version up first turns a missing one into NotFound rather than the
            // generic refusal Secrets Manager answers for it.
            self.read_version(name, token).await?;
            self.swap_current(name, expected, token).await?;
        }
        Ok(())
    }

    async fn remove_pending(
        &self,
        name: &SecretName,
        version: &VersionId,
    ) -> Result<(), StoreError> {
        if self.stages(name).await?.pending.as_ref() != Some(version) {
            return Ok(());
        }
        self.client
            .update_secret_version_stage()
            .secret_id(name.as_str())
            .version_stage(PENDING)
            .remove_from_version_id(version.as_str())
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

fn version_stages(
    versions: Option<&std::collections::HashMap<String, Vec<String>>>,
    last_changed: Option<DateTime<Utc>>,
) -> VersionStages {
    let mut stages = VersionStages {
        current: None,
        previous: None,
        pending: None,
        version_count: 0,
        last_changed,
    };
    for (version, labels) in versions.into_iter().flatten() {
        stages.version_count += 1;
        let Ok(version) = VersionId::parse(version) else {
            continue;
        };
        for label in labels {
            match label.as_str() {
                CURRENT => stages.current = Some(version.clone()),
                PREVIOUS => stages.previous = Some(version.clone()),
                PENDING => stages.pending = Some(version.clone()),
                _ => {}
            }
        }
    }
    // AWSPENDING on the AWSCURRENT version marks a finished rotation, not a pending one.
    if stages.pending.is_some() && stages.pending == stages.current {
        stages.pending = None;
    }
    stages
}

fn stored_version(version: Option<&str>, value: Option<&str>) -> Result<StoredVersion, StoreError> {
    let version = version
        .ok_or_else(|| StoreError::Unavailable("GetSecretValue returned no VersionId".into()))?;
    let version_id = VersionId::parse(version)
        .map_err(|e| StoreError::Unavailable(format!("unexpected version id: {e}")))?;
    let value =
        value.ok_or_else(|| StoreError::Unavailable("the secret holds no SecretString".into()))?;
    Ok(StoredVersion {
        version_id,
        value: StoredValue::new(value.to_owned())?,
    })
}
