//! Scheduled rotation, one endpoint at a time: what a listing says is due, and the reads and
//! writes the sweep makes once it has chosen an endpoint.
//!
//! A listing already returns each secret's tags (the rotation policy's mirror) and its current
//! version id, which carries the current secret's issue time (see [`VersionId::stamped`]), so
//! finding due endpoints costs no read and no write per endpoint. The record read just before
//! a write is the authority: a stale listing can only cost a read, never a wrong rotation.

use super::{encode, EndpointRepository, SecretPerEndpoint, StoredEndpoint, VaultError};
use crate::domain::endpoint::{
    EndpointRecord, SecretSource, ROTATION_GRACE_TAG, ROTATION_PERIOD_TAG,
};
use crate::domain::ids::{EndpointId, TenantId, VersionId};
use crate::domain::rotation::rotated;
use crate::store::{ListedSecret, SecretName, StoreError};
use chrono::{DateTime, Duration, Utc};

/// A pending version older than this was left by a writer that stopped mid-rotation (a
/// Lambda invocation lasts at most 15 minutes), not by one still at work.
pub const STALE_PENDING_AFTER: Duration = Duration::hours(1);

/// What an endpoint needs, as far as its listing entry tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Its secret is at least one period old.
    Due,
    /// Older secrets it kept for a grace period have expired since it was last written.
    Prune,
    /// A version was left pending by a write that never finished.
    StalePending(VersionId),
    /// Nothing until `due_at`.
    Waiting,
}

/// An endpoint under a rotation policy, as its listing entry shows it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: SecretName,
    pub tenant: TenantId,
    pub id: EndpointId,
    pub issued_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub assessment: Assessment,
}

/// A write the sweep has decided on, made only once the write budget allows it.
#[derive(Debug, Clone)]
pub struct PlannedWrite {
    pub candidate: Candidate,
    pub kind: WriteKind,
    /// For a rotation or a prune: the record to write in place of the one read.
    pub swap: Option<Swap>,
}

#[derive(Debug, Clone)]
pub struct Swap {
    expected: VersionId,
    version: VersionId,
    pub record: EndpointRecord,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKind {
    /// A new secret; the replaced one stays valid for the policy's grace period.
    Rotate,
    /// The same secret, without the older ones that have expired.
    Prune { removed: Vec<VersionId> },
    /// Take the pending label off an abandoned version.
    ClearPending(VersionId),
}

impl WriteKind {
    /// Secrets Manager writes it costs: a swap is `PutSecretValue` plus
    /// `UpdateSecretVersionStage`; clearing a label is one `UpdateSecretVersionStage`.
    pub fn cost(&self) -> u32 {
        match self {
            Self::Rotate | Self::Prune { .. } => 2,
            Self::ClearPending(_) => 1,
        }
    }
}

/// Why a listed endpoint needed nothing once its record was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NothingToDo {
    /// Rotated (or pruned) since the listing, by another sweep or by hand.
    AlreadyDone,
    /// Its record has no rotation policy (the tags lag a change).
    NoPolicy,
    /// Deleted since the listing.
    Gone,
}

#[derive(Debug, Clone)]
pub enum Plan {
    Write(Box<PlannedWrite>),
    Nothing(NothingToDo),
}

/// Reads what an endpoint needs at `now` from its listing entry alone; `None` for a
/// secret that is not an endpoint under a policy.
pub fn assess(
    endpoints: &SecretPerEndpoint,
    listed: &ListedSecret,
    now: DateTime<Utc>,
) -> Option<Candidate> {
    let (tenant, id) = endpoints.endpoint_of(&listed.name)?;
    let period_days: i64 = listed.tags.get(ROTATION_PERIOD_TAG)?.parse().ok()?;
    let grace_seconds: Option<i64> = listed
        .tags
        .get(ROTATION_GRACE_TAG)
        .and_then(|raw| raw.parse().ok());
    let stages = &listed.stages;
    let last_changed = stages.last_changed;
    // Versions written by idempotent requests or by Secrets Manager's own rotation carry
    // no stamp; their last change is when they became current.
    let issued_at = stages.current.as_ref()?.stamp().or(last_changed)?;
    let due_at = issued_at + Duration::days(period_days);
    let assessment = if due_at <= now {
        Assessment::Due
    } else if let Some(pending) = stages
        .pending
        .clone()
        .filter(|_| last_changed.is_some_and(|at| at + STALE_PENDING_AFTER <= now))
    {
        Assessment::StalePending(pending)
    } else if grace_seconds.is_some_and(|grace| {
        let expired_at = issued_at + Duration::seconds(grace);
        stages.previous.is_some()
            && expired_at <= now
            && last_changed.is_some_and(|at| at < expired_at)
    }) {
        Assessment::Prune
    } else {
        Assessment::Waiting
    };
    Some(Candidate {
        name: listed.name.clone(),
        tenant,
        id,
        issued_at,
        due_at,
        assessment,
    })
}

/// Reads the candidate's record and decides, from the record, what to write at `now`.
pub async fn plan(
    endpoints: &SecretPerEndpoint,
    candidate: &Candidate,
    now: DateTime<Utc>,
) -> Result<Plan, VaultError> {
    if let Assessment::StalePending(version) = &candidate.assessment {
        return Ok(Plan::Write(Box::new(PlannedWrite {
            candidate: candidate.clone(),
            kind: WriteKind::ClearPending(version.clone()),
            swap: None,
        })));
    }
    let StoredEndpoint {
        record,
        record_version,
    } = match endpoints
        .get_endpoint(&candidate.tenant, &candidate.id)
        .await
    {
        Ok(stored) => stored,
        Err(VaultError::Store(StoreError::NotFound)) => {
            return Ok(Plan::Nothing(NothingToDo::Gone))
        }
        Err(other) => return Err(other),
    };
    let Some(policy) = record.endpoint.rotation_policy else {
        return Ok(Plan::Nothing(NothingToDo::NoPolicy));
    };
    if policy.due_at(record.secret.created_at) <= now {
        let version = VersionId::stamped(now);
        let record = rotated(
            record,
            SecretSource::LikeCurrent,
            policy.grace(),
            false,
            version.clone(),
            now,
        )?;
        return Ok(Plan::Write(Box::new(PlannedWrite {
            candidate: candidate.clone(),
            kind: WriteKind::Rotate,
            swap: Some(Swap {
                expected: record_version,
                version,
                record,
            }),
        })));
    }
    let removed: Vec<VersionId> = record
        .previous_secrets
        .iter()
        .filter(|old| !old.is_valid_at(now))
        .map(|old| old.version_id.clone())
        .collect();
    if removed.is_empty() {
        return Ok(Plan::Nothing(NothingToDo::AlreadyDone));
    }
    let mut record = record;
    record.previous_secrets.retain(|old| old.is_valid_at(now));
    record.remember_keyed_write(now, None);
    // The secret is unchanged, so the new version keeps its issue time.
    let version = VersionId::stamped(record.secret.created_at);
    Ok(Plan::Write(Box::new(PlannedWrite {
        candidate: candidate.clone(),
        kind: WriteKind::Prune { removed },
        swap: Some(Swap {
            expected: record_version,
            version,
            record,
        }),
    })))
}

/// Makes a planned write: a compare-and-swap from the version the plan read, so a
/// rotation another sweep made meanwhile turns this one into `Conflict`, never a second
/// rotation.
pub async fn commit(endpoints: &SecretPerEndpoint, plan: &PlannedWrite) -> Result<(), VaultError> {
    let name = &plan.candidate.name;
    if let WriteKind::ClearPending(version) = &plan.kind {
        return Ok(endpoints.store.remove_pending(name, version).await?);
    }
    let Some(swap) = &plan.swap else {
        return Err(StoreError::Invalid("a planned swap without a record".into()).into());
    };
    match endpoints
        .store
        .replace_current(name, &swap.expected, &swap.version, &encode(&swap.record)?)
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::VersionExists) => Err(VaultError::conflict()),
        Err(other) => Err(other.into()),
    }
}
