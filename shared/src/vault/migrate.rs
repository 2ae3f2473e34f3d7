//! Moving a deployment from one secret per endpoint to tenant keyrings (`admin migrate`), and
//! back ([`to_per_endpoint`]).
//!
//! Two passes, each resumable and safe to re-run or interrupt at any point:
//!
//! 1. **Copy** (`migrate --to keyrings`): every endpoint's own secret is copied into its
//!    tenant's keyrings, many endpoints per write (the bulk import), each entry remembering the
//!    version it copies. An endpoint copied before whose own secret was written since (the
//!    deployment still runs on the per-endpoint layout) is copied again, as long as nothing
//!    wrote its keyring entry. The endpoint's own secret is not touched, so the deployment
//!    keeps serving from it.
//! 2. **Finish** (`migrate --to keyrings --delete-old`, after the deployment runs with
//!    `VaultLayout=keyrings`): every endpoint's own secret is deleted once its keyring entry
//!    is verified.
//!
//! **Verified** means: every secret the endpoint's own record holds as valid (the current one
//! and those in their grace period) signs one test message to exactly the signatures the
//! keyring's copy signs it to, or the keyring entry was written since the copy (by the
//! deployment on keyrings), which makes it the endpoint's record from then on. An endpoint
//! that fails the check is reported and its own secret is never deleted.
//!
//! A dry run reads everything, reports what each pass would do, and writes nothing.

use super::endpoints::SecretPerEndpoint;
use super::keyrings::{Entry, TenantKeyrings, KEYRING_TAG};
use super::{decode, encode, VaultError};
use crate::domain::clock::Clock;
use crate::domain::endpoint::{EndpointRecord, RotationPolicy};
use crate::domain::ids::{EndpointId, TenantId, VersionId};
use crate::domain::signature;
use crate::store::{ListFilter, SecretName, SecretStore, StoreError};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The tag every endpoint's own secret carries: the listing of what to migrate.
const TENANT_TAG: &str = "webhook-secrets:tenant";
/// Endpoints read at once.
const READS_AT_ONCE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationOptions {
    /// Delete every endpoint's own secret once its keyring copy is verified.
    pub delete_old: bool,
    pub dry_run: bool,
}

/// What a migration pass did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    pub tenants: usize,
    /// Endpoints found in the layout moved from.
    pub endpoints: usize,
    /// Copied by this pass (first copies and fresh copies of changed ones).
    pub copied: usize,
    /// Already an up-to-date copy, or written in the new layout since.
    pub already: usize,
    /// Whose copy passed the signature check.
    pub verified: usize,
    /// What the old layout held, deleted: own secrets, or (moving back) keyrings.
    pub deleted: usize,
    /// `tenant/endpoint: why`, for every endpoint that failed the check or could not move.
    pub problems: Vec<String>,
    pub dry_run: bool,
}

/// One endpoint in its own secret.
struct Source {
    name: SecretName,
    version: VersionId,
    record: EndpointRecord,
}

/// Moves every endpoint under `prefix` from its own secret into tenant keyrings.
/// `progress(done, total)` is called as endpoints are handled.
pub async fn to_keyrings(
    store: Arc<dyn SecretStore>,
    prefix: &str,
    clock: Arc<dyn Clock>,
    options: MigrationOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<MigrationReport, VaultError> {
    let own = SecretPerEndpoint::new(Arc::clone(&store), prefix, Arc::clone(&clock));
    let keyrings = TenantKeyrings::new(Arc::clone(&store), prefix, Arc::clone(&clock));
    let by_tenant = list_own_secrets(&own).await?;
    let total: usize = by_tenant.values().map(Vec::len).sum();
    let mut report = MigrationReport {
        tenants: by_tenant.len(),
        endpoints: total,
        dry_run: options.dry_run,
        ..MigrationReport::default()
    };
    let mut done = 0;
    progress(done, total);
    for (tenant, ids) in by_tenant {
        for chunk in ids.chunks(READS_AT_ONCE * 8) {
            let sources = read_sources(&own, &tenant, chunk, &mut report).await?;
            migrate_chunk(&keyrings, &own, &tenant, sources, options, &mut report).await?;
            done += chunk.len();
            progress(done, total);
        }
    }
    Ok(report)
}

/// Every endpoint's own secret, by tenant: names `{prefix}/{tenant}/{id}` carrying the tenant
/// tag (keyrings, `{prefix}/{tenant}/_kr/{n}`, are not endpoints).
async fn list_own_secrets(
    own: &SecretPerEndpoint,
) -> Result<BTreeMap<TenantId, Vec<(EndpointId, SecretName)>>, VaultError> {
    let prefix = format!("{}/", own.prefix());
    let filter = ListFilter {
        prefix: &prefix,
        tag_key: Some(TENANT_TAG),
    };
    let mut found: BTreeMap<TenantId, Vec<(EndpointId, SecretName)>> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = own.store.list(filter, cursor.as_deref(), 100).await?;
        for name in page.names() {
            if let Some((tenant, id)) = own.endpoint_of(name) {
                found.entry(tenant).or_default().push((id, name.clone()));
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(found),
        }
    }
}

async fn read_sources(
    own: &SecretPerEndpoint,
    tenant: &TenantId,
    ids: &[(EndpointId, SecretName)],
    report: &mut MigrationReport,
) -> Result<Vec<Source>, VaultError> {
    let mut sources = Vec::with_capacity(ids.len());
    for batch in ids.chunks(READS_AT_ONCE) {
        let reads = batch.iter().map(|(_, name)| own.store.read_current(name));
        for ((id, name), read) in batch.iter().zip(join_all(reads).await) {
            let stored = match read {
                Ok(stored) => stored,
                // Deleted since the listing: nothing to move.
                Err(StoreError::NotFound) => continue,
                Err(other) => return Err(other.into()),
            };
            match decode::<EndpointRecord>(&stored) {
                Ok(record) if record.endpoint.tenant == *tenant && record.endpoint.id == *id => {
                    sources.push(Source {
                        name: name.clone(),
                        version: stored.version_id,
                        record,
                    });
                }
                _ => report.problems.push(format!(
                    "{tenant}/{id}: its secret does not hold this endpoint's record; left alone"
                )),
            }
        }
    }
    Ok(sources)
}

async fn migrate_chunk(
    keyrings: &TenantKeyrings,
    own: &SecretPerEndpoint,
    tenant: &TenantId,
    sources: Vec<Source>,
    options: MigrationOptions,
    report: &mut MigrationReport,
) -> Result<(), VaultError> {
    let now = keyrings.clock.now();
    let entries = join_all(
        sources
            .iter()
            .map(|source| keyrings.entry(tenant, &source.record.endpoint.id)),
    )
    .await;
    let mut first_copies = Vec::new();
    let mut verify = Vec::new();
    for (source, entry) in sources.into_iter().zip(entries) {
        let id = source.record.endpoint.id.clone();
        match entry? {
            None => first_copies.push(source),
            Some(entry) => match entry.copied_from {
                // Written on keyrings since the copy: the keyring holds the endpoint now.
                None => {
                    report.already += 1;
                    verify.push((source, true));
                }
                Some(copied) if copied == source.version => {
                    report.already += 1;
                    verify.push((source, false));
                }
                // The own secret was written after the copy, and the copy never was.
                Some(copied) => {
                    if !options.dry_run
                        && !keyrings
                            .replace_copy(source.record.clone(), &source.version, &copied)
                            .await?
                    {
                        report.problems.push(format!(
                            "{tenant}/{id}: written in both places since the copy; left for a re-run"
                        ));
                        continue;
                    }
                    report.copied += 1;
                    verify.push((source, false));
                }
            },
        }
    }
    if !first_copies.is_empty() {
        report.copied += first_copies.len();
        if !options.dry_run {
            let copies = first_copies
                .iter()
                .map(|s| (s.record.clone(), Some(s.version.clone())))
                .collect();
            keyrings.import_copies(tenant, copies).await?;
        }
        verify.extend(first_copies.into_iter().map(|s| (s, false)));
    }
    for (source, written_since) in verify {
        let id = source.record.endpoint.id.clone();
        if options.dry_run && !written_since {
            // Nothing was copied to check against.
            continue;
        }
        if !written_since && !options.dry_run {
            // Deleted while it was copied: undo the copy (the delete removes the endpoint's
            // own secret before its keyring entry, so one of the two sees the other gone).
            if let Err(StoreError::NotFound) = own.store.read_current(&source.name).await {
                keyrings.remove_entry(tenant, &id).await?;
                continue;
            }
        }
        let ok = written_since
            || match keyrings.entry(tenant, &id).await? {
                Some(entry) if entry.copied_from.is_none() => true,
                Some(entry) => same_signatures(&source.record, &entry.record, now),
                None => false,
            };
        if !ok {
            report.problems.push(format!(
                "{tenant}/{id}: the keyring copy does not sign as the endpoint's own secret does; its own secret is kept"
            ));
            continue;
        }
        report.verified += 1;
        if options.delete_old {
            if !options.dry_run {
                own.store.delete(&source.name).await?;
            }
            report.deleted += 1;
        }
    }
    Ok(())
}

/// Moves every endpoint under `prefix` from tenant keyrings back into its own secret.
/// `progress(done, total)` counts tenants.
///
/// Two passes, as the way in: **copy** while the deployment runs on keyrings, then, once it
/// runs with `VaultLayout=per-endpoint`, again with `delete_old`, which deletes a tenant's
/// keyrings once every one of its endpoints is verified in its own secret.
///
/// A copy's version id is marked as a copy into that secret ([`VersionId::stamped_copy`]): an
/// own secret whose current version is such a copy, but which no longer holds its keyring
/// entry, is a copy the keyring moved on from, and is copied again; any other version was
/// written by the deployment on the per-endpoint layout, and stays as it is.
pub async fn to_per_endpoint(
    store: Arc<dyn SecretStore>,
    prefix: &str,
    clock: Arc<dyn Clock>,
    options: MigrationOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<MigrationReport, VaultError> {
    let own = SecretPerEndpoint::new(Arc::clone(&store), prefix, Arc::clone(&clock));
    let keyrings = TenantKeyrings::new(Arc::clone(&store), prefix, Arc::clone(&clock));
    let tenants = keyring_tenants(&keyrings).await?;
    let mut report = MigrationReport {
        tenants: tenants.len(),
        dry_run: options.dry_run,
        ..MigrationReport::default()
    };
    progress(0, tenants.len());
    for (done, tenant) in tenants.iter().enumerate() {
        let (names, entries) = keyrings.tenant_entries(tenant).await?;
        let tags = own_tags(&own, tenant).await?;
        report.endpoints += entries.len();
        let problems_before = report.problems.len();
        for batch in entries.chunks(READS_AT_ONCE) {
            let outcomes = join_all(batch.iter().map(|entry| {
                let listed = own
                    .secret_name(tenant, &entry.record.endpoint.id)
                    .ok()
                    .and_then(|name| tags.get(&name));
                copy_back(&own, &keyrings, entry, listed, options)
            }))
            .await;
            for (entry, outcome) in batch.iter().zip(outcomes) {
                let id = &entry.record.endpoint.id;
                match outcome? {
                    CopyBack::Copied => {
                        report.copied += 1;
                        report.verified += usize::from(!options.dry_run);
                    }
                    CopyBack::Already => {
                        report.already += 1;
                        report.verified += 1;
                    }
                    CopyBack::Deleted => {}
                    CopyBack::Problem(why) => report.problems.push(format!("{tenant}/{id}: {why}")),
                }
            }
        }
        if options.delete_old && report.problems.len() == problems_before {
            for name in &names {
                if !options.dry_run {
                    match store.delete(name).await {
                        Ok(()) | Err(StoreError::NotFound) => {}
                        Err(other) => return Err(other.into()),
                    }
                }
                report.deleted += 1;
            }
        }
        progress(done + 1, tenants.len());
    }
    Ok(report)
}

/// The tags of `tenant`'s endpoints' own secrets, as listed.
async fn own_tags(
    own: &SecretPerEndpoint,
    tenant: &TenantId,
) -> Result<std::collections::HashMap<SecretName, BTreeMap<String, String>>, VaultError> {
    let prefix = format!("{}/{tenant}/", own.prefix());
    let filter = ListFilter {
        prefix: &prefix,
        tag_key: Some(TENANT_TAG),
    };
    let mut tags = std::collections::HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = own.store.list(filter, cursor.as_deref(), 100).await?;
        tags.extend(page.secrets.into_iter().map(|s| (s.name, s.tags)));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(tags),
        }
    }
}

/// Whether `tags` are the ones `policy` puts on an endpoint's own secret.
fn tagged_for(tags: Option<&BTreeMap<String, String>>, policy: Option<RotationPolicy>) -> bool {
    let (set, remove) = RotationPolicy::tags(policy);
    tags.is_some_and(|tags| {
        set.iter().all(|(key, value)| tags.get(key) == Some(value))
            && remove.iter().all(|key| !tags.contains_key(key))
    })
}

/// Every tenant that has a keyring.
async fn keyring_tenants(keyrings: &TenantKeyrings) -> Result<Vec<TenantId>, VaultError> {
    let prefix = format!("{}/", keyrings.prefix());
    let filter = ListFilter {
        prefix: &prefix,
        tag_key: Some(KEYRING_TAG),
    };
    let mut tenants = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = keyrings.store.list(filter, cursor.as_deref(), 100).await?;
        tenants.extend(
            page.names()
                .filter_map(|name| Some(keyrings.keyring_of(name)?.0)),
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(tenants.into_iter().collect()),
        }
    }
}

enum CopyBack {
    /// Written into the endpoint's own secret (or, in a dry run, would be).
    Copied,
    /// The own secret already holds it, or was written since by the per-endpoint layout.
    Already,
    /// The endpoint was deleted while it was copied; the copy is undone.
    Deleted,
    Problem(&'static str),
}

/// Copies one keyring entry into its endpoint's own secret, then checks the copy signs as the
/// entry does.
async fn copy_back(
    own: &SecretPerEndpoint,
    keyrings: &TenantKeyrings,
    entry: &Entry,
    listed_tags: Option<&BTreeMap<String, String>>,
    options: MigrationOptions,
) -> Result<CopyBack, VaultError> {
    let (tenant, id) = (&entry.record.endpoint.tenant, &entry.record.endpoint.id);
    let name = own.secret_name(tenant, id)?;
    let now = own.clock.now();
    let current = match own.store.read_current(&name).await {
        Ok(stored) => match decode::<EndpointRecord>(&stored) {
            Ok(record) if record.endpoint.tenant == *tenant && record.endpoint.id == *id => {
                Some((record, stored.version_id))
            }
            _ => {
                return Ok(CopyBack::Problem(
                    "its own secret's name holds something else; left alone",
                ))
            }
        },
        Err(StoreError::NotFound) => None,
        Err(other) => return Err(other.into()),
    };
    // The version the copy is written as keeps the secret's issue time, which the
    // per-endpoint sweep reads; the latest keyed write moves to it, so a retry of that write
    // still replays.
    let version = VersionId::stamped_copy(entry.record.secret.created_at, name.as_str());
    let mut copy = entry.record.clone();
    for write in &mut copy.keyed_writes {
        if write.version == entry.version {
            write.version = version.clone();
        }
    }
    match current {
        Some((record, read))
            if record.endpoint == entry.record.endpoint
                && same_signatures(&record, &entry.record, now) =>
        {
            // A copy of ours whose policy tags an interrupted pass never wrote after it.
            let policy = record.endpoint.rotation_policy;
            if read.is_copy_into(name.as_str())
                && !options.dry_run
                && !tagged_for(listed_tags, policy)
            {
                own.sync_policy_tags(&name, policy).await?;
            }
            return Ok(CopyBack::Already);
        }
        // Written since by the deployment on one secret per endpoint: that is the endpoint.
        Some((_, read)) if !read.is_copy_into(name.as_str()) => return Ok(CopyBack::Already),
        _ if options.dry_run => return Ok(CopyBack::Copied),
        None => {
            let mut tags = vec![
                ("webhook-secrets:tenant".to_owned(), tenant.to_string()),
                ("webhook-secrets:endpoint".to_owned(), id.to_string()),
            ];
            tags.extend(RotationPolicy::tags(copy.endpoint.rotation_policy).0);
            match own
                .store
                .create(&name, &version, &encode(&copy)?, &tags)
                .await
            {
                Ok(()) => {}
                Err(StoreError::AlreadyExists) => {
                    return Ok(CopyBack::Problem(
                        "created in its own secret meanwhile; left for a re-run",
                    ))
                }
                Err(other) => return Err(other.into()),
            }
        }
        Some((_, read)) => {
            match own
                .store
                .replace_current(&name, &read, &version, &encode(&copy)?)
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict | StoreError::VersionExists) => {
                    return Ok(CopyBack::Problem(
                        "written in both places since the copy; left for a re-run",
                    ))
                }
                Err(other) => return Err(other.into()),
            }
            own.sync_policy_tags(&name, copy.endpoint.rotation_policy)
                .await?;
        }
    }
    // Deleted while it was copied: undo the copy (the delete removes the keyring entry
    // before the endpoint's own secret, and that secret again after it).
    if keyrings.entry(tenant, id).await?.is_none() {
        match own.store.delete(&name).await {
            Ok(()) | Err(StoreError::NotFound) => return Ok(CopyBack::Deleted),
            Err(other) => return Err(other.into()),
        }
    }
    let written: EndpointRecord = decode(&own.store.read_current(&name).await?)?;
    Ok(if same_signatures(&written, &entry.record, now) {
        CopyBack::Copied
    } else {
        CopyBack::Problem(
            "its own secret does not sign as the keyring entry does; its keyrings are kept",
        )
    })
}

/// Whether every secret valid at `now` in either record signs one test message to the same
/// signatures in the other.
pub fn same_signatures(a: &EndpointRecord, b: &EndpointRecord, now: DateTime<Utc>) -> bool {
    let payload = br#"{"type":"migration.check"}"#;
    let signatures = |record: &EndpointRecord| {
        let mut all: Vec<String> = record
            .valid_secrets(now)
            .iter()
            .map(|secret| {
                signature::sign(&[secret], "msg_migration_check", now.timestamp(), payload)
                    .signature
            })
            .collect();
        all.sort();
        all
    };
    let (left, right) = (signatures(a), signatures(b));
    !left.is_empty() && left == right
}
