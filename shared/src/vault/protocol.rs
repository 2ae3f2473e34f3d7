//! Secrets Manager's rotation protocol for endpoint secrets, so an
//! `AWS::SecretsManager::RotationSchedule` can rotate an endpoint instead of the sweep.
//!
//! Secrets Manager calls the function four times with one `ClientRequestToken`, which becomes
//! the new version's id: `createSecret` stages the rotated record as `AWSPENDING`, `setSecret`
//! has nothing to push (receivers read the new secret from this product), `testSecret` checks
//! the pending record signs and verifies, and `finishSecret` makes it `AWSCURRENT` with a
//! compare-and-swap. Every step is idempotent per token and may be repeated, and a step out
//! of order either does nothing or fails without changing anything.
//!
//! The grace period starts at `createSecret`, when the pending record is written; Secrets
//! Manager runs the four steps within seconds of each other.

use super::keyrings::{Keyring, TenantKeyrings};
use super::{decode, encode, EndpointRepository, Endpoints, SecretPerEndpoint, VaultError};
use crate::audit::{AuditRecord, AuditSink};
use crate::domain::endpoint::{EndpointRecord, GracePeriod, SecretSource};
use crate::domain::ids::{EndpointId, TenantId, VersionId};
use crate::domain::rotation::rotated;
use crate::domain::signature;
use crate::events::{EventAction, Origin, Trigger};
use crate::store::{SecretName, StoreError};
use serde::{Deserialize, Serialize};

/// The event Secrets Manager sends to a rotation function.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RotationEvent {
    #[serde(rename = "Step")]
    pub step: Step,
    /// The secret's ARN (or its name, when invoked by hand).
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    #[serde(rename = "ClientRequestToken")]
    pub client_request_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// `createSecret` staged the rotated record as pending.
    Created,
    /// `finishSecret` made the pending record current.
    Finished,
    /// The step checked what it had to and found it right.
    Checked,
    /// The step had already been done for this token: nothing was written.
    AlreadyDone,
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error(
        "{0} is not a secret of this product's endpoints (expected {1}/<tenant>/<endpoint id>)"
    )]
    NotAnEndpoint(String, String),
    #[error("ClientRequestToken {0:?} is not a valid version id: {1}")]
    BadToken(String, String),
    #[error("no version {0} exists: run createSecret for this token first")]
    NoPendingVersion(String),
    #[error("version {0} is not the rotated record createSecret writes")]
    NotARotation(String),
    #[error("the endpoint changed after createSecret staged version {0}; the stale version was taken out of AWSPENDING, so rotate again")]
    Stale(String),
    #[error("testSecret failed for version {0}: {1}")]
    TestFailed(String, &'static str),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<crate::domain::rotation::RotationError> for ProtocolError {
    fn from(err: crate::domain::rotation::RotationError) -> Self {
        Self::Vault(err.into())
    }
}

impl From<StoreError> for ProtocolError {
    fn from(err: StoreError) -> Self {
        Self::Vault(err.into())
    }
}

struct Target {
    name: SecretName,
    tenant: TenantId,
    id: EndpointId,
    token: VersionId,
}

/// The endpoint secret an ARN or name addresses. An ARN's resource part ends in `-` and
/// the six characters Secrets Manager appends to every secret name.
/// The secret a `SecretId` (a name or an ARN) names.
fn secret_name_of(secret_id: &str) -> Option<SecretName> {
    let name = match secret_id.strip_prefix("arn:") {
        Some(_) => secret_id
            .split_once(":secret:")
            .map(|(_, rest)| rest)
            .filter(|rest| rest.len() > 7 && rest.as_bytes()[rest.len() - 7] == b'-')
            .map(|rest| &rest[..rest.len() - 7]),
        None => Some(secret_id),
    };
    SecretName::parse(name?).ok()
}

fn rotation_target(
    endpoints: &SecretPerEndpoint,
    secret_id: &str,
    token: &str,
) -> Result<Target, ProtocolError> {
    let not_ours =
        || ProtocolError::NotAnEndpoint(secret_id.to_owned(), endpoints.prefix().to_owned());
    let name = secret_name_of(secret_id).ok_or_else(not_ours)?;
    let (tenant, id) = endpoints.endpoint_of(&name).ok_or_else(not_ours)?;
    // Account-level secrets change only through their own contracts, which end the old
    // secret at once; this protocol would keep it valid for a grace period.
    if id.is_account_secret() {
        return Err(not_ours());
    }
    let token = VersionId::parse(token)
        .map_err(|e| ProtocolError::BadToken(token.to_owned(), e.to_string()))?;
    Ok(Target {
        name,
        tenant,
        id,
        token,
    })
}

/// Runs one step of the rotation protocol.
/// Runs one step of Secrets Manager's rotation on the secret the event names: an endpoint's
/// secret, or, on the tenant-keyrings layout, a keyring, whose rotation rotates every endpoint
/// in it (each keeps its replaced secret for its policy's grace period, or the default).
pub async fn rotation_step(
    endpoints: &Endpoints,
    event: &RotationEvent,
) -> Result<StepOutcome, ProtocolError> {
    match endpoints {
        Endpoints::PerEndpoint(layout) => endpoint_step(layout, event).await,
        Endpoints::Keyrings(layout) => keyring_step(layout, event).await,
    }
}

async fn endpoint_step(
    endpoints: &SecretPerEndpoint,
    event: &RotationEvent,
) -> Result<StepOutcome, ProtocolError> {
    let target = rotation_target(endpoints, &event.secret_id, &event.client_request_token)?;
    // The name alone does not make a secret an endpoint; its record must read as one.
    let current = endpoints.get_endpoint(&target.tenant, &target.id).await?;
    if current.record_version == target.token {
        return Ok(StepOutcome::AlreadyDone);
    }
    let pending = match endpoints
        .store
        .read_version(&target.name, &target.token)
        .await
    {
        Ok(stored) => Some(decode::<EndpointRecord>(&stored)?),
        Err(StoreError::NotFound) => None,
        Err(other) => return Err(other.into()),
    };
    match (event.step, pending) {
        (Step::CreateSecret, Some(record)) => {
            check_rotation(&record, &target)?;
            Ok(StepOutcome::AlreadyDone)
        }
        (Step::CreateSecret, None) => {
            let grace = current
                .record
                .endpoint
                .rotation_policy
                .map_or_else(GracePeriod::default, |policy| policy.grace());
            let record = rotated(
                current.record,
                SecretSource::LikeCurrent,
                grace,
                false,
                target.token.clone(),
                endpoints.clock.now(),
            )?;
            endpoints
                .store
                .put_pending(&target.name, &target.token, &encode(&record)?)
                .await?;
            Ok(StepOutcome::Created)
        }
        (_, None) => Err(ProtocolError::NoPendingVersion(target.token.to_string())),
        (Step::SetSecret, Some(record)) => {
            check_rotation(&record, &target)?;
            Ok(StepOutcome::Checked)
        }
        (Step::TestSecret, Some(record)) => {
            check_rotation(&record, &target)?;
            test_signatures(&record, &current.record, endpoints.clock.now())
                .map_err(|why| ProtocolError::TestFailed(target.token.to_string(), why))?;
            Ok(StepOutcome::Checked)
        }
        (Step::FinishSecret, Some(record)) => {
            check_rotation(&record, &target)?;
            // The pending record was built from the record current at createSecret. If
            // the endpoint changed since (a rotation or an update), making it current
            // would undo that change: refuse, and leave no pending version behind.
            let mut staged_endpoint = record.endpoint.clone();
            staged_endpoint.updated_at = current.record.endpoint.updated_at;
            if record.secret.replaces.as_ref() != Some(&current.record.secret.version_id)
                || staged_endpoint != current.record.endpoint
            {
                endpoints
                    .store
                    .remove_pending(&target.name, &target.token)
                    .await?;
                return Err(ProtocolError::Stale(target.token.to_string()));
            }
            match endpoints
                .store
                .promote(&target.name, &target.token, &current.record_version)
                .await
            {
                Ok(()) => {
                    endpoints
                        .announcer
                        .announce(EventAction::SecretRotated, &record)
                        .await;
                    Ok(StepOutcome::Finished)
                }
                Err(StoreError::Conflict) => {
                    endpoints
                        .store
                        .remove_pending(&target.name, &target.token)
                        .await?;
                    Err(ProtocolError::Stale(target.token.to_string()))
                }
                Err(other) => Err(other.into()),
            }
        }
    }
}

/// The version under `target.token` must be this endpoint's record with that token as its
/// secret's version: anything else was not written by `createSecret`.
/// A step on a keyring: `createSecret` stages the keyring with every endpoint in it rotated
/// (and notes the version it was built from), `testSecret` checks each endpoint's new and
/// replaced secrets, and `finishSecret` makes it current only if the keyring is still the
/// version it was built from: a write to any of its endpoints since makes the rotation stale.
async fn keyring_step(
    keyrings: &TenantKeyrings,
    event: &RotationEvent,
) -> Result<StepOutcome, ProtocolError> {
    let not_ours =
        || ProtocolError::NotAnEndpoint(event.secret_id.clone(), keyrings.prefix().to_owned());
    let name = secret_name_of(&event.secret_id).ok_or_else(not_ours)?;
    let (tenant, _) = keyrings.keyring_of(&name).ok_or_else(not_ours)?;
    let token = VersionId::parse(&event.client_request_token)
        .map_err(|e| ProtocolError::BadToken(event.client_request_token.clone(), e.to_string()))?;
    let (current, current_version) = keyrings.read_keyring(&name).await?;
    if current.tenant != tenant {
        return Err(not_ours());
    }
    if current_version == token {
        return Ok(StepOutcome::AlreadyDone);
    }
    let pending = match keyrings.store.read_version(&name, &token).await {
        Ok(stored) => Some(decode::<Keyring>(&stored)?),
        Err(StoreError::NotFound) => None,
        Err(other) => return Err(other.into()),
    };
    let now = keyrings.clock.now();
    let stale = |pending: &Keyring| pending.rotation_of.as_ref() != Some(&current_version);
    match (event.step, pending) {
        (_, Some(pending)) if pending.rotation_of.is_none() => {
            Err(ProtocolError::NotARotation(token.to_string()))
        }
        (Step::CreateSecret, Some(_)) => Ok(StepOutcome::AlreadyDone),
        (Step::CreateSecret, None) => {
            if current.splitting {
                keyrings
                    .finish_split(
                        &tenant,
                        &name,
                        current,
                        &current_version,
                        &mut super::keyrings::Tokens::default(),
                    )
                    .await?;
                return Err(ProtocolError::Stale(token.to_string()));
            }
            let mut next = current.clone();
            for (id, entry) in current.owned() {
                if id.is_account_secret() {
                    continue;
                }
                let grace = entry
                    .record
                    .endpoint
                    .rotation_policy
                    .map_or_else(GracePeriod::default, |policy| policy.grace());
                let record = rotated(
                    entry.record.clone(),
                    SecretSource::LikeCurrent,
                    grace,
                    false,
                    token.clone(),
                    now,
                )?;
                if let Some(entry) = next.endpoints.get_mut(id) {
                    entry.record = record;
                    entry.version = token.clone();
                    entry.copied_from = None;
                }
            }
            let next = next.staged_rotation(&current, &current_version, now)?;
            let value = super::keyrings::encode_keyring(&next)?;
            keyrings.store.put_pending(&name, &token, &value).await?;
            Ok(StepOutcome::Created)
        }
        (_, None) => Err(ProtocolError::NoPendingVersion(token.to_string())),
        (Step::SetSecret, Some(_)) => Ok(StepOutcome::Checked),
        (Step::TestSecret, Some(pending)) => {
            for (id, entry) in current.owned() {
                let Some(staged) = pending.endpoints.get(id) else {
                    continue;
                };
                if staged.version == token {
                    test_signatures(&staged.record, &entry.record, now)
                        .map_err(|why| ProtocolError::TestFailed(token.to_string(), why))?;
                }
            }
            Ok(StepOutcome::Checked)
        }
        (Step::FinishSecret, Some(pending)) => {
            let promoted = !stale(&pending)
                && match keyrings
                    .store
                    .promote(&name, &token, &current_version)
                    .await
                {
                    Ok(()) => true,
                    Err(StoreError::Conflict) => false,
                    Err(other) => return Err(other.into()),
                };
            if !promoted {
                keyrings.store.remove_pending(&name, &token).await?;
                return Err(ProtocolError::Stale(token.to_string()));
            }
            for (_, entry) in pending.owned() {
                if entry.version == token {
                    keyrings
                        .announcer
                        .announce(EventAction::SecretRotated, &entry.record)
                        .await;
                }
            }
            Ok(StepOutcome::Finished)
        }
    }
}

fn check_rotation(record: &EndpointRecord, target: &Target) -> Result<(), ProtocolError> {
    if record.endpoint.tenant != target.tenant
        || record.endpoint.id != target.id
        || record.secret.version_id != target.token
    {
        return Err(ProtocolError::NotARotation(target.token.to_string()));
    }
    Ok(())
}

/// The pending record's new secret signs a message that verifies against it alone, and the
/// secret it replaces still verifies, for the grace period, wherever it did before.
fn test_signatures(
    pending: &EndpointRecord,
    current: &EndpointRecord,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), &'static str> {
    let payload = br#"{"type":"rotation.test"}"#;
    let timestamp = now.timestamp();
    let signed = signature::sign(&[&pending.secret], "msg_rotation_test", timestamp, payload);
    signature::verify(
        &pending.valid_secrets(now),
        &signed.id,
        &signed.timestamp.to_string(),
        &signed.signature,
        payload,
        now,
        signature::DEFAULT_TOLERANCE_SECONDS,
    )
    .map_err(|_| "the new secret does not verify its own signature")?;
    let old = signature::sign(&[&current.secret], "msg_rotation_test", timestamp, payload);
    let old_still_valid = pending
        .previous_secrets
        .iter()
        .any(|s| s.version_id == current.secret.version_id && s.is_valid_at(now));
    let verified = signature::verify(
        &pending.valid_secrets(now),
        &old.id,
        &old.timestamp.to_string(),
        &old.signature,
        payload,
        now,
        signature::DEFAULT_TOLERANCE_SECONDS,
    )
    .is_ok();
    if verified != old_still_valid {
        return Err("the replaced secret's signatures do not verify as its grace period says");
    }
    Ok(())
}

/// Runs one step for a function invocation and audits a finished rotation.
pub async fn run_step(
    endpoints: &Endpoints,
    audit: &dyn AuditSink,
    event: &RotationEvent,
    request_id: &str,
) -> Result<StepOutcome, ProtocolError> {
    let origin = Origin {
        trigger: Trigger::SecretsManagerRotation,
        route: None,
        request_id: request_id.to_owned(),
    };
    let outcome = origin.scope(rotation_step(endpoints, event)).await;
    let finished = matches!(
        (&outcome, event.step),
        (Ok(StepOutcome::Finished), _) | (Err(_), Step::FinishSecret)
    );
    if finished {
        let (tenant, endpoint_id, now) = match endpoints {
            Endpoints::PerEndpoint(layout) => {
                let target =
                    rotation_target(layout, &event.secret_id, &event.client_request_token).ok();
                (
                    target.as_ref().map(|t| t.tenant.to_string()),
                    target.as_ref().map(|t| t.id.to_string()),
                    layout.clock.now(),
                )
            }
            Endpoints::Keyrings(layout) => (
                secret_name_of(&event.secret_id)
                    .and_then(|name| layout.keyring_of(&name))
                    .map(|(tenant, _)| tenant.to_string()),
                None,
                layout.clock.now(),
            ),
        };
        audit.record(&AuditRecord {
            tenant,
            endpoint_id,
            secret_version_ids: vec![event.client_request_token.clone()],
            outcome: match &outcome {
                Ok(_) => "success".to_owned(),
                Err(ProtocolError::Stale(_)) => "conflict".to_owned(),
                Err(_) => "failed".to_owned(),
            },
            trigger: Some("secretsmanager-rotation"),
            ..AuditRecord::new(now, request_id, "secret.rotate")
        });
    }
    outcome
}
