//! The deployment's settings, read once at cold start, and the [`App`] built from them.

use crate::audit::{AuditSink, JsonLinesAudit};
use crate::auth::keys::ApiKeys;
use crate::auth::tokens::TokenService;
use crate::auth::{Authenticator, MAX_CACHE_TTL};
use crate::domain::clock::{Clock, SystemClock};
use crate::events::{EventBridgeSink, EventSink, SinkSettings};
use crate::settings::{non_blank, number, ConfigError};
use crate::store::secrets_manager::{
    ClientSettings, ReplicaRegion, SecretPlacement, SecretsManagerStore,
};
use crate::store::SecretStore;
use crate::vault::records::Records;
use crate::vault::{Endpoints, VaultLayout};
use aws_config::{BehaviorVersion, SdkConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_PREFIX: &str = "webhook-secrets";
pub const DEFAULT_EMBEDDED_PATH: &str = ".data/vault.sqlite3";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Embedded { path: PathBuf },
    SecretsManager(ClientSettings, SecretPlacement),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub backend: Backend,
    pub prefix: String,
    pub layout: VaultLayout,
    pub key_cache_ttl: chrono::Duration,
    pub events: SinkSettings,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    ///
    /// - `VAULT_BACKEND`: `embedded` (default) or `secretsmanager`
    /// - `VAULT_PREFIX`: the name prefix of every stored secret (default `webhook-secrets`)
    /// - `VAULT_LAYOUT`: `per-endpoint` (default: one secret per endpoint) or `keyrings` (the
    ///   endpoints of a tenant share secrets)
    /// - `VAULT_PATH`: the embedded database file (default `.data/vault.sqlite3`)
    /// - `VAULT_SM_MAX_ATTEMPTS`, `VAULT_SM_ATTEMPT_TIMEOUT_MS`, `VAULT_SM_TIMEOUT_MS`
    /// - `VAULT_KMS_KEY_ID`: the KMS key every new secret is encrypted with
    /// - `VAULT_REPLICA_REGION`, `VAULT_REPLICA_KMS_KEY_ID`: a region every new secret is
    ///   replicated to, and the key there
    /// - `API_KEY_CACHE_TTL_SECONDS`: 0 to 60 (default 60)
    /// - `EVENT_BUS_NAME`: the EventBridge bus (name or ARN) that secret events go to; unset,
    ///   they are written to the log
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let events = SinkSettings::from_lookup(&lookup)?;
        let get = non_blank(lookup);
        let prefix = get("VAULT_PREFIX").unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        validate_prefix(&prefix)?;
        let layout = match get("VAULT_LAYOUT") {
            None => VaultLayout::default(),
            Some(raw) => VaultLayout::parse(&raw).ok_or_else(|| {
                ConfigError(format!(
                    "VAULT_LAYOUT is {raw:?}; it must be \"per-endpoint\" or \"keyrings\""
                ))
            })?,
        };
        let backend = match get("VAULT_BACKEND").as_deref().unwrap_or("embedded") {
            "embedded" => Backend::Embedded {
                path: PathBuf::from(
                    get("VAULT_PATH").unwrap_or_else(|| DEFAULT_EMBEDDED_PATH.to_owned()),
                ),
            },
            "secretsmanager" => {
                let defaults = ClientSettings::default();
                let settings = ClientSettings {
                    max_attempts: number(&get, "VAULT_SM_MAX_ATTEMPTS", 1, 10)?
                        .map_or(defaults.max_attempts, |n| n as u32),
                    attempt_timeout: number(&get, "VAULT_SM_ATTEMPT_TIMEOUT_MS", 100, 60_000)?
                        .map_or(defaults.attempt_timeout, Duration::from_millis),
                    operation_timeout: number(&get, "VAULT_SM_TIMEOUT_MS", 100, 120_000)?
                        .map_or(defaults.operation_timeout, Duration::from_millis),
                };
                Backend::SecretsManager(settings, placement(&get)?)
            }
            other => {
                return Err(ConfigError(format!(
                    "VAULT_BACKEND is {other:?}; it must be \"embedded\" or \"secretsmanager\""
                )))
            }
        };
        let ttl_max = MAX_CACHE_TTL.num_seconds() as u64;
        let key_cache_ttl = number(&get, "API_KEY_CACHE_TTL_SECONDS", 0, ttl_max)?
            .map_or(MAX_CACHE_TTL, |s| chrono::Duration::seconds(s as i64));
        Ok(Self {
            backend,
            prefix,
            layout,
            key_cache_ttl,
            events,
        })
    }

    /// Builds the store, repository and authenticator this configuration describes.
    pub async fn build(&self, clock: Arc<dyn Clock>) -> Result<App, ConfigError> {
        // One AWS configuration for every client: loading it again per client would build a
        // second HTTP client and TLS set-up on every cold start.
        let mut aws: Option<SdkConfig> = None;
        let store: Arc<dyn SecretStore> = match &self.backend {
            #[cfg(feature = "embedded")]
            Backend::Embedded { path } => Arc::new(
                crate::store::embedded::EmbeddedStore::open(path, Arc::clone(&clock))
                    .map_err(|e| ConfigError(format!("VAULT_PATH {}: {e}", path.display())))?,
            ),
            #[cfg(not(feature = "embedded"))]
            Backend::Embedded { .. } => {
                return Err(ConfigError(
                    "VAULT_BACKEND=embedded: this build has no embedded store (deployed functions link only Secrets Manager); set VAULT_BACKEND=secretsmanager".into(),
                ))
            }
            Backend::SecretsManager(settings, placement) => {
                let config = aws.insert(load_aws().await);
                Arc::new(
                    SecretsManagerStore::from_sdk_config(config, *settings)
                        .map_err(|e| ConfigError(format!("VAULT_BACKEND=secretsmanager: {e}")))?
                        .with_placement(placement.clone()),
                )
            }
        };
        let app = App::new(store, &self.prefix, self.layout, clock, self.key_cache_ttl);
        Ok(match &self.events {
            SinkSettings::Log => app,
            SinkSettings::EventBridge { bus } => {
                let config = match aws {
                    Some(config) => config,
                    None => load_aws().await,
                };
                app.with_events(Arc::new(EventBridgeSink::from_sdk_config(
                    &config,
                    bus.clone(),
                )))
            }
        })
    }
}

/// The environment's AWS settings (region, credentials, `AWS_ENDPOINT_URL`, ...).
async fn load_aws() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The state every function builds once and borrows per request.
pub struct App {
    /// The store every repository of this app writes to.
    pub store: Arc<dyn SecretStore>,
    pub clock: Arc<dyn Clock>,
    pub endpoints: Arc<Endpoints>,
    pub auth: Authenticator,
    pub tokens: TokenService,
    pub audit: Arc<dyn AuditSink>,
}

impl App {
    /// An app whose audit records go to stdout, as a function's do.
    pub fn new(
        store: Arc<dyn SecretStore>,
        prefix: &str,
        layout: VaultLayout,
        clock: Arc<dyn Clock>,
        key_cache_ttl: chrono::Duration,
    ) -> Self {
        let audit = Arc::new(JsonLinesAudit::stdout());
        Self::with_audit(store, prefix, layout, clock, key_cache_ttl, audit)
    }

    pub fn with_audit(
        store: Arc<dyn SecretStore>,
        prefix: &str,
        layout: VaultLayout,
        clock: Arc<dyn Clock>,
        key_cache_ttl: chrono::Duration,
        audit: Arc<dyn AuditSink>,
    ) -> Self {
        let records = || Records::new(Arc::clone(&store), prefix);
        Self {
            auth: Authenticator::new(ApiKeys::new(records(), Arc::clone(&clock)), key_cache_ttl),
            tokens: TokenService::new(records(), Arc::clone(&clock)),
            endpoints: Arc::new(Endpoints::new(
                layout,
                Arc::clone(&store),
                prefix,
                Arc::clone(&clock),
            )),
            store,
            clock,
            audit,
        }
    }

    /// The same app, with secret events going to `sink`.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.endpoints = Arc::new(self.endpoints.announcing_to(sink));
        self
    }

    /// Reads the configuration and builds the app, for a function's `main`.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Config::from_env()?.build(Arc::new(SystemClock)).await
    }
}

/// The KMS key and replica region new secrets get (template parameters `SecretsKmsKey`,
/// `ReplicaRegion`, `ReplicaKmsKeyArn`).
fn placement(get: &impl Fn(&str) -> Option<String>) -> Result<SecretPlacement, ConfigError> {
    let key = |name: &str| -> Result<Option<String>, ConfigError> {
        get(name)
            .map(|raw| {
                let raw = raw.trim().to_owned();
                let valid = raw.len() <= 2048
                    && raw
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ":/_-".contains(c));
                if valid {
                    Ok(raw)
                } else {
                    Err(ConfigError(format!(
                        "{name} must be a KMS key id, ARN or alias (A-Z a-z 0-9 : / _ -)"
                    )))
                }
            })
            .transpose()
    };
    let replica_key = key("VAULT_REPLICA_KMS_KEY_ID")?;
    let replica = match get("VAULT_REPLICA_REGION") {
        Some(region) => {
            let region = region.trim().to_owned();
            let parts: Vec<&str> = region.split('-').collect();
            let valid = (3..=4).contains(&parts.len())
                && parts.iter().all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                })
                && parts
                    .last()
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
            if !valid {
                return Err(ConfigError(format!(
                    "VAULT_REPLICA_REGION is {region:?}; it must be an AWS region such as eu-west-1"
                )));
            }
            Some(ReplicaRegion {
                region,
                kms_key_id: replica_key,
            })
        }
        None if replica_key.is_some() => {
            return Err(ConfigError(
                "VAULT_REPLICA_KMS_KEY_ID is set without VAULT_REPLICA_REGION".into(),
            ))
        }
        None => None,
    };
    Ok(SecretPlacement {
        kms_key_id: key("VAULT_KMS_KEY_ID")?,
        replica,
    })
}

fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    let valid = (1..=64).contains(&prefix.len())
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
        && !prefix.starts_with('/')
        && !prefix.ends_with('/');
    if valid {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "VAULT_PREFIX is {prefix:?}; it must be 1 to 64 of A-Z a-z 0-9 / _ + = . @ -, not starting or ending with '/'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_to_the_embedded_store() {
        let config = config(&[]).unwrap();
        assert_eq!(
            config.backend,
            Backend::Embedded {
                path: PathBuf::from(DEFAULT_EMBEDDED_PATH)
            }
        );
        assert_eq!(config.prefix, DEFAULT_PREFIX);
        assert_eq!(config.layout, VaultLayout::PerEndpoint);
        assert_eq!(config.key_cache_ttl, MAX_CACHE_TTL);
    }

    #[test]
    fn the_layout_is_chosen_per_deployment() {
        let keyrings = config(&[("VAULT_LAYOUT", "keyrings")]).unwrap();
        assert_eq!(keyrings.layout, VaultLayout::Keyrings);
    }

    #[test]
    fn invalid_settings_are_one_clear_error() {
        let err = config(&[("VAULT_BACKEND", "dynamo")]).unwrap_err();
        assert!(err.0.contains("VAULT_BACKEND"), "{err}");
        let err = config(&[("VAULT_LAYOUT", "sharded")]).unwrap_err();
        assert!(
            err.0.contains("VAULT_LAYOUT") && err.0.contains("keyrings"),
            "{err}"
        );
        let err = config(&[("VAULT_PREFIX", "bad prefix")]).unwrap_err();
        assert!(err.0.contains("VAULT_PREFIX"), "{err}");
        let err = config(&[("API_KEY_CACHE_TTL_SECONDS", "600")]).unwrap_err();
        assert!(err.0.contains("0 to 60"), "{err}");
        let err = config(&[
            ("VAULT_BACKEND", "secretsmanager"),
            ("VAULT_SM_MAX_ATTEMPTS", "zero"),
        ])
        .unwrap_err();
        assert!(err.0.contains("VAULT_SM_MAX_ATTEMPTS"), "{err}");
    }

    #[test]
    fn reads_secrets_manager_settings() {
        let config = config(&[
            ("VAULT_BACKEND", "secretsmanager"),
            ("VAULT_SM_ATTEMPT_TIMEOUT_MS", "500"),
        ])
        .unwrap();
        let Backend::SecretsManager(settings, placement) = config.backend else {
            panic!("expected Secrets Manager");
        };
        assert_eq!(settings.attempt_timeout, Duration::from_millis(500));
        assert_eq!(settings.max_attempts, 3);
        assert_eq!(placement, SecretPlacement::default());
    }

    #[test]
    fn reads_the_kms_key_and_replica_region() {
        let placed = config(&[
            ("VAULT_BACKEND", "secretsmanager"),
            (
                "VAULT_KMS_KEY_ID",
                "arn:aws:kms:us-east-1:123456789012:key/abc-123",
            ),
            ("VAULT_REPLICA_REGION", "eu-west-1"),
            ("VAULT_REPLICA_KMS_KEY_ID", ""),
        ])
        .unwrap();
        let Backend::SecretsManager(_, placement) = placed.backend else {
            panic!("expected Secrets Manager");
        };
        assert_eq!(
            placement.kms_key_id.as_deref(),
            Some("arn:aws:kms:us-east-1:123456789012:key/abc-123")
        );
        assert_eq!(
            placement.replica,
            Some(ReplicaRegion {
                region: "eu-west-1".into(),
                kms_key_id: None
            })
        );
        for (name, value) in [
            ("VAULT_REPLICA_REGION", "Europe"),
            ("VAULT_REPLICA_KMS_KEY_ID", "key-without-region"),
            ("VAULT_KMS_KEY_ID", "key with spaces"),
        ] {
            let err = config(&[("VAULT_BACKEND", "secretsmanager"), (name, value)]).unwrap_err();
            assert!(err.0.contains(name), "{err}");
        }
    }
}
