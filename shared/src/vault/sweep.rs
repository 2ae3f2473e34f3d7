//! The sweep: one run of scheduled rotation over every endpoint under a policy.
//!
//! Every write to Secrets Manager in a region shares one quota (50 per second, and a rotation
//! is two writes), so the sweep spends at most its own write budget, leaving the rest to
//! interactive rotations. A throttle that still gets through is retried with exponential
//! backoff and full jitter, and slows the whole sweep for the backoff. The sweep starts no
//! write it could not finish before the invocation's deadline; whatever it leaves is still
//! due, so the next run picks it up. Two sweeps that overlap cannot rotate an endpoint twice:
//! each rotation is a compare-and-swap from the record it read, and a record read after
//! another sweep's rotation is no longer due.

use super::keyrings::{Keyring, TenantKeyrings, Tokens, KEYRING_TAG};
use super::schedule::{self, Assessment, Candidate, NothingToDo, Plan, PlannedWrite, WriteKind};
use super::{Endpoints, SecretPerEndpoint, VaultError};
use crate::audit::{AuditRecord, AuditSink, AUDIT_MARKER};
use crate::domain::endpoint::{SecretSource, ROTATION_PERIOD_TAG};
use crate::domain::ids::{EndpointId, TenantId, VersionId};
use crate::domain::rotation::rotated;
use crate::events::{EventAction, Origin, Trigger};
use crate::settings::{non_blank, number, ConfigError};
use crate::store::{ListFilter, ListPage, SecretName, SecretStore, StoreError, MAX_VALUE_BYTES};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Secrets Manager's shared write quota per region.
pub const SECRETS_MANAGER_WRITES_PER_SECOND: f64 = 50.0;

#[derive(Debug, Clone, PartialEq)]
pub struct SweepSettings {
    /// Writes per second the sweep may spend.
    pub writes_per_second: f64,
    /// Endpoints worked on at once.
    pub concurrency: usize,
    /// Time kept free before the deadline (at most a quarter of the invocation): no write
    /// starts inside it, so writes in flight (at most one SDK operation timeout each) finish
    /// before the invocation ends.
    pub stop_margin: Duration,
    /// Attempts per endpoint per run when throttled; after them it waits for the next run.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for SweepSettings {
    /// 30 writes a second (15 rotations) leaves 20 of the region's 50 to interactive calls.
    fn default() -> Self {
        Self {
            writes_per_second: 30.0,
            concurrency: 8,
            stop_margin: Duration::from_secs(15),
            max_attempts: 6,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(5),
        }
    }
}

impl SweepSettings {
    /// - `SWEEP_WRITES_PER_SECOND`: 1 to 50 (default 30)
    /// - `SWEEP_CONCURRENCY`: 1 to 64 (default 8)
    /// - `SWEEP_STOP_MARGIN_SECONDS`: 1 to 300 (default 15)
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let get = non_blank(lookup);
        let number = |name: &str, min: u64, max: u64| number(&get, name, min, max);
        Ok(Self {
            writes_per_second: number("SWEEP_WRITES_PER_SECOND", 1, 50)?
                .map_or(defaults.writes_per_second, |n| n as f64),
            concurrency: number("SWEEP_CONCURRENCY", 1, 64)?
                .map_or(defaults.concurrency, |n| n as usize),
            stop_margin: number("SWEEP_STOP_MARGIN_SECONDS", 1, 300)?
                .map_or(defaults.stop_margin, Duration::from_secs),
            ..defaults
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// One run's record: what was due and what became of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    pub audit: &'static str,
    pub action: &'static str,
    pub run_id: String,
    pub started_at: Option<DateTime<Utc>>,
    /// Endpoints under a rotation policy.
    pub scheduled: usize,
    /// Of those, due for rotation by their listing.
    pub due: usize,
    pub rotated: usize,
    /// Endpoints whose expired older secrets were removed.
    pub pruned: usize,
    /// Abandoned pending versions cleared.
    pub pending_cleared: usize,
    /// Listed as needing work, but nothing to do once read: already rotated by an
    /// overlapping sweep or by hand, deleted, or no longer under a policy.
    pub skipped: usize,
    /// Throttling errors received; every one was retried.
    pub throttled: usize,
    pub failed: usize,
    /// Left for the next run: the deadline came, or throttling outlasted the retries.
    pub deferred: usize,
    /// Events from the outbox (their first publish had failed) published by this run.
    pub events_republished: usize,
    /// Events still in the outbox: the bus failed again; the next run tries again.
    pub events_unpublished: usize,
    pub duration_ms: u64,
    /// Everything due was handled; `false` means the next run has work left.
    pub complete: bool,
}

/// A token bucket over the sweep's writes, shared by its workers.
struct WriteBudget {
    rate: f64,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl WriteBudget {
    fn new(rate: f64) -> Self {
        // A fifth of a second of burst: enough to keep workers busy, too little to spike.
        let capacity = (rate / 5.0).max(2.0);
        Self {
            rate,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// Waits until `cost` writes may be made; `false` if that would be after `stop_at`.
    async fn acquire(&self, cost: u32, stop_at: Instant) -> bool {
        let cost = f64::from(cost);
        loop {
            let wait = {
                let mut state = crate::domain::lock(&self.state);
                let now = Instant::now();
                let refill = now.duration_since(state.1).as_secs_f64() * self.rate;
                state.0 = (state.0 + refill).min(self.capacity);
                state.1 = now;
                if state.0 >= cost {
                    state.0 -= cost;
                    return true;
                }
                Duration::from_secs_f64((cost - state.0) / self.rate)
            };
            if Instant::now() + wait >= stop_at {
                return false;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Withholds `pause` worth of writes from every worker: the quota is shared, so a
    /// throttle seen by one means all of them are going too fast.
    fn penalise(&self, pause: Duration) {
        let mut state = crate::domain::lock(&self.state);
        state.0 -= pause.as_secs_f64() * self.rate;
    }
}

/// Exponential backoff with full jitter: a random wait up to `base * 2^attempt`, capped.
fn backoff(settings: &SweepSettings, attempt: u32) -> Duration {
    let ceiling = settings
        .backoff_base
        .saturating_mul(1u32 << attempt.min(16))
        .min(settings.backoff_cap);
    let mut random = [0u8; 8];
    // Jitter needs spread, not secrecy: a failed generator falls back to the full wait.
    let fraction = match getrandom::fill(&mut random) {
        Ok(()) => u64::from_le_bytes(random) as f64 / u64::MAX as f64,
        Err(_) => 1.0,
    };
    ceiling.mul_f64(fraction)
}

/// Runs one sweep over every endpoint under a policy, until everything due is handled or
/// `deadline` (less the stop margin) comes. Fails only if the listing itself fails.
pub async fn sweep(
    vault: &Endpoints,
    audit: &dyn AuditSink,
    run_id: &str,
    deadline: Instant,
    settings: &SweepSettings,
) -> Result<SweepSummary, VaultError> {
    let started = Instant::now();
    // A short invocation (a local emulator's few seconds) keeps a quarter of its time free
    // rather than the whole margin.
    let margin = settings
        .stop_margin
        .min(deadline.saturating_duration_since(started) / 4);
    let stop_at = deadline.checked_sub(margin).unwrap_or(started).max(started);
    let (announcer, clock) = match vault {
        Endpoints::PerEndpoint(layout) => (&layout.announcer, &layout.clock),
        Endpoints::Keyrings(layout) => (&layout.announcer, &layout.clock),
    };
    let mut summary = SweepSummary {
        audit: AUDIT_MARKER,
        action: "sweep.summary",
        run_id: run_id.to_owned(),
        started_at: Some(clock.now()),
        ..SweepSummary::default()
    };
    // Events whose first publish failed go out first; a failure here does not stop rotation.
    match announcer.republish_outbox().await {
        Ok(outbox) => {
            summary.events_republished = outbox.republished;
            summary.events_unpublished = outbox.left;
        }
        Err(err) => {
            tracing::warn!(error = %err, "the event outbox could not be read; the next run tries again");
        }
    }
    let mut summary = match vault {
        Endpoints::PerEndpoint(layout) => {
            sweep_secrets(layout, audit, run_id, stop_at, settings, summary).await?
        }
        Endpoints::Keyrings(layout) => {
            sweep_keyrings(layout, audit, run_id, stop_at, settings, summary).await?
        }
    };
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(summary)
}

/// The sweep of the one-secret-per-endpoint layout: the listing's tags and version ids say
/// which endpoints need work, and each is its own compare-and-swap.
async fn sweep_secrets(
    vault: &SecretPerEndpoint,
    audit: &dyn AuditSink,
    run_id: &str,
    stop_at: Instant,
    settings: &SweepSettings,
    mut summary: SweepSummary,
) -> Result<SweepSummary, VaultError> {
    let now = vault.clock.now();
    let (work, listed_all) = list_work(vault, now, stop_at, settings, &mut summary).await?;
    let budget = WriteBudget::new(settings.writes_per_second);
    let tally = Mutex::new(summary);
    futures::stream::iter(work)
        .for_each_concurrent(settings.concurrency.max(1), |candidate| {
            let (budget, tally) = (&budget, &tally);
            async move {
                let outcome = schedule_origin(run_id)
                    .scope(handle(
                        vault, audit, run_id, &candidate, budget, stop_at, settings,
                    ))
                    .await;
                let mut summary = crate::domain::lock(tally);
                summary.throttled += outcome.throttled;
                match outcome.result {
                    Handled::Rotated => summary.rotated += 1,
                    Handled::Pruned => summary.pruned += 1,
                    Handled::PendingCleared => summary.pending_cleared += 1,
                    Handled::Skipped => summary.skipped += 1,
                    Handled::Failed => summary.failed += 1,
                    Handled::Deferred => summary.deferred += 1,
                }
            }
        })
        .await;
    let mut summary = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    summary.complete = listed_all && summary.deferred == 0 && summary.failed == 0;
    Ok(summary)
}

fn schedule_origin(run_id: &str) -> Origin {
    Origin {
        trigger: Trigger::Schedule,
        route: None,
        request_id: run_id.to_owned(),
    }
}

/// The sweep of the tenant-keyrings layout: it reads every keyring and rotates every due
/// endpoint of one in a single compare-and-swap (pruning expired secrets in the same write),
/// so its rate is counted in endpoints, not writes.
async fn sweep_keyrings(
    vault: &TenantKeyrings,
    audit: &dyn AuditSink,
    run_id: &str,
    stop_at: Instant,
    settings: &SweepSettings,
    summary: SweepSummary,
) -> Result<SweepSummary, VaultError> {
    let prefix = format!("{}/", vault.prefix());
    let filter = ListFilter {
        prefix: &prefix,
        tag_key: Some(KEYRING_TAG),
    };
    let budget = WriteBudget::new(settings.writes_per_second);
    let tally = Mutex::new(summary);
    let mut cursor: Option<String> = None;
    let listed_all = loop {
        let listing = list_page(
            &*vault.store,
            filter,
            cursor.as_deref(),
            stop_at,
            settings,
            || crate::domain::lock(&tally).throttled += 1,
        );
        let Some(page) = listing.await? else {
            break false;
        };
        // A version a protocol rotation left pending and never finished.
        let now = vault.clock.now();
        for listed in &page.secrets {
            let stale = listed.stages.pending.clone().filter(|_| {
                listed
                    .stages
                    .last_changed
                    .is_some_and(|at| at + schedule::STALE_PENDING_AFTER <= now)
            });
            let Some(pending) = stale else {
                continue;
            };
            if !budget.acquire(1, stop_at).await {
                break;
            }
            match vault.store.remove_pending(&listed.name, &pending).await {
                Ok(()) => crate::domain::lock(&tally).pending_cleared += 1,
                Err(err) => {
                    tracing::warn!(run_id, keyring = %listed.name, error = %err, "an abandoned pending version could not be cleared; the next run tries again");
                }
            }
        }
        let keyrings = page
            .names()
            .filter_map(|name| Some((vault.keyring_of(name)?.0, name.clone())));
        futures::stream::iter(keyrings)
            .for_each_concurrent(settings.concurrency.max(1), |(tenant, name)| {
                let (budget, tally) = (&budget, &tally);
                async move {
                    let outcome = schedule_origin(run_id)
                        .scope(sweep_keyring(
                            vault, audit, run_id, &tenant, &name, budget, stop_at, settings,
                        ))
                        .await;
                    crate::domain::lock(tally).add(&outcome);
                }
            })
            .await;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break true,
        }
    };
    let mut summary = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    summary.complete = listed_all && summary.deferred == 0 && summary.failed == 0;
    Ok(summary)
}

impl SweepSummary {
    fn add(&mut self, keyring: &KeyringOutcome) {
        self.scheduled += keyring.scheduled;
        self.due += keyring.due;
        self.rotated += keyring.rotated;
        self.pruned += keyring.pruned;
        self.skipped += keyring.skipped;
        self.throttled += keyring.throttled;
        self.failed += keyring.failed;
        self.deferred += keyring.deferred;
    }
}

/// What the sweep did to one keyring, counted in endpoints.
#[derive(Default)]
struct KeyringOutcome {
    scheduled: usize,
    due: usize,
    rotated: usize,
    pruned: usize,
    skipped: usize,
    throttled: usize,
    failed: usize,
    deferred: usize,
}

/// The scheduled writes of one keyring, from one read of it.
struct KeyringPlan {
    next: Keyring,
    rotated: Vec<EndpointId>,
    pruned: Vec<(EndpointId, Vec<VersionId>)>,
    scheduled: usize,
    due: usize,
}

fn plan_keyring(
    keyring: &Keyring,
    token: &VersionId,
    now: DateTime<Utc>,
) -> Result<KeyringPlan, VaultError> {
    let mut plan = KeyringPlan {
        next: keyring.clone(),
        rotated: Vec::new(),
        pruned: Vec::new(),
        scheduled: 0,
        due: 0,
    };
    for (id, entry) in keyring.owned() {
        let record = &entry.record;
        let Some(policy) = record.endpoint.rotation_policy else {
            continue;
        };
        plan.scheduled += 1;
        let changed = if policy.due_at(record.secret.created_at) <= now {
            plan.due += 1;
            plan.rotated.push(id.clone());
            rotated(
                record.clone(),
                SecretSource::LikeCurrent,
                policy.grace(),
                false,
                token.clone(),
                now,
            )?
        } else {
            let removed: Vec<VersionId> = record
                .previous_secrets
                .iter()
                .filter(|old| !old.is_valid_at(now))
                .map(|old| old.version_id.clone())
                .collect();
            if removed.is_empty() {
                continue;
            }
            plan.pruned.push((id.clone(), removed));
            let mut record = record.clone();
            record.previous_secrets.retain(|old| old.is_valid_at(now));
            record.remember_keyed_write(now, None);
            record
        };
        if let Some(entry) = plan.next.endpoints.get_mut(id) {
            entry.record = changed;
            entry.version = token.clone();
            entry.copied_from = None;
        }
    }
    Ok(plan)
}

#[allow(clippy::too_many_arguments)]
async fn sweep_keyring(
    vault: &TenantKeyrings,
    audit: &dyn AuditSink,
    run_id: &str,
    tenant: &TenantId,
    name: &SecretName,
    budget: &WriteBudget,
    stop_at: Instant,
    settings: &SweepSettings,
) -> KeyringOutcome {
    let mut outcome = KeyringOutcome::default();
    let mut first_due: Option<usize> = None;
    let mut first_depth: Option<u8> = None;
    let mut tokens = Tokens::default();
    for attempt in 0..settings.max_attempts {
        if Instant::now() >= stop_at {
            outcome.deferred += first_due.unwrap_or(0);
            return outcome;
        }
        let read = match vault.read_keyring(name).await {
            Ok(read) => Ok(read),
            Err(VaultError::Store(StoreError::NotFound)) => return outcome,
            Err(err) => Err(err),
        };
        let now = vault.clock.now();
        let result = match read {
            Ok((keyring, version)) if keyring.splitting => vault
                .finish_split(tenant, name, keyring, &version, &mut tokens)
                .await
                .map(|()| None),
            Ok((keyring, version)) => {
                match plan_keyring(&keyring, &tokens.next(name, &version), now) {
                    Err(err) => Err(err),
                    Ok(plan) => {
                        if first_due.is_none() {
                            outcome.scheduled = plan.scheduled;
                            outcome.due = plan.due;
                            first_due = Some(plan.due);
                            first_depth = Some(keyring.depth);
                        }
                        if plan.rotated.is_empty() && plan.pruned.is_empty() {
                            // Rotated meanwhile by another sweep or by hand, or moved to a
                            // sibling by a split (the next run's listing holds it).
                            if keyring.depth > first_depth.unwrap_or(keyring.depth) {
                                outcome.deferred += first_due.unwrap_or(0);
                            } else {
                                outcome.skipped += first_due.unwrap_or(0);
                            }
                            return outcome;
                        }
                        if !budget.acquire(2, stop_at).await {
                            outcome.deferred += plan.rotated.len() + plan.pruned.len();
                            return outcome;
                        }
                        // Every due endpoint grows by its replaced secret at once: the keyring
                        // may pass its split size, and the next interactive write splits it.
                        vault
                            .commit(
                                tenant,
                                name,
                                &keyring,
                                &version,
                                plan.next.clone(),
                                &mut tokens,
                                MAX_VALUE_BYTES,
                            )
                            .await
                            .map(|written| written.then_some(plan))
                    }
                }
            }
            Err(err) => Err(err),
        };
        match result {
            Ok(Some(plan)) => {
                let now = vault.clock.now();
                for id in &plan.rotated {
                    let Some(entry) = plan.next.endpoints.get(id) else {
                        continue;
                    };
                    let versions = entry
                        .record
                        .valid_secrets(now)
                        .iter()
                        .map(|s| s.version_id.to_string())
                        .collect();
                    audit.record(&audit_record(
                        now,
                        run_id,
                        tenant,
                        id,
                        "secret.rotate",
                        versions,
                        "success",
                    ));
                    vault
                        .announcer
                        .announce(EventAction::SecretRotated, &entry.record)
                        .await;
                }
                for (id, removed) in &plan.pruned {
                    let versions = removed.iter().map(ToString::to_string).collect();
                    audit.record(&audit_record(
                        now,
                        run_id,
                        tenant,
                        id,
                        "secret.prune",
                        versions,
                        "success",
                    ));
                }
                outcome.rotated += plan.rotated.len();
                outcome.pruned += plan.pruned.len();
                // Due at the first read and not rotated here: rotated meanwhile by someone
                // else, or moved to a sibling by a split, which this run's listing did not
                // hold and the next run's does.
                let left = first_due.unwrap_or(0).saturating_sub(plan.rotated.len());
                if plan.next.depth > first_depth.unwrap_or(plan.next.depth) {
                    outcome.deferred += left;
                } else {
                    outcome.skipped += left;
                }
                return outcome;
            }
            // A split, or another write of the keyring won the swap: read it again.
            Ok(None) => continue,
            Err(VaultError::Store(StoreError::Throttled)) => {
                outcome.throttled += 1;
                let pause = backoff(settings, attempt);
                budget.penalise(pause);
                tokio::time::sleep(pause).await;
            }
            Err(VaultError::WriteBudget { retry_after }) => {
                tracing::warn!(run_id, %tenant, keyring = %name, retry_after, "the keyring's write budget is spent; its due endpoints wait for the next run");
                outcome.deferred += first_due.unwrap_or(0);
                return outcome;
            }
            Err(err) => {
                tracing::error!(run_id, %tenant, keyring = %name, error = %err, "scheduled rotation of a keyring failed");
                let failed = first_due.unwrap_or(0).max(1);
                audit.record(&AuditRecord {
                    tenant: Some(tenant.to_string()),
                    outcome: err.code().as_str().to_owned(),
                    trigger: Some("schedule"),
                    ..AuditRecord::new(vault.clock.now(), run_id, "secret.rotate")
                });
                outcome.failed += failed;
                return outcome;
            }
        }
    }
    outcome.deferred += first_due.unwrap_or(0);
    outcome
}

/// Lists every endpoint under a policy and keeps those needing work, due ones first, oldest
/// first. Returns whether the listing reached its end before the stop time.
/// One page of the listing under `filter`, throttling retried as `settings` allow (each
/// retry reported to `throttled`); `None` once `stop_at` has passed.
async fn list_page(
    store: &dyn SecretStore,
    filter: ListFilter<'_>,
    cursor: Option<&str>,
    stop_at: Instant,
    settings: &SweepSettings,
    mut throttled: impl FnMut(),
) -> Result<Option<ListPage>, VaultError> {
    let mut attempt = 0;
    loop {
        if Instant::now() >= stop_at {
            return Ok(None);
        }
        match store.list(filter, cursor, 100).await {
            Ok(page) => return Ok(Some(page)),
            Err(StoreError::Throttled) if attempt + 1 < settings.max_attempts => {
                throttled();
                attempt += 1;
                tokio::time::sleep(backoff(settings, attempt)).await;
            }
            Err(other) => return Err(other.into()),
        }
    }
}

async fn list_work(
    vault: &SecretPerEndpoint,
    now: DateTime<Utc>,
    stop_at: Instant,
    settings: &SweepSettings,
    summary: &mut SweepSummary,
) -> Result<(Vec<Candidate>, bool), VaultError> {
    let prefix = format!("{}/", vault.prefix());
    let filter = ListFilter {
        prefix: &prefix,
        tag_key: Some(ROTATION_PERIOD_TAG),
    };
    let mut work = Vec::new();
    let mut cursor: Option<String> = None;
    let listed_all = loop {
        let listing = list_page(
            &*vault.store,
            filter,
            cursor.as_deref(),
            stop_at,
            settings,
            || summary.throttled += 1,
        );
        let Some(page) = listing.await? else {
            break false;
        };
        for listed in &page.secrets {
            let Some(candidate) = schedule::assess(vault, listed, now) else {
                continue;
            };
            summary.scheduled += 1;
            match candidate.assessment {
                Assessment::Waiting => {}
                Assessment::Due => {
                    summary.due += 1;
                    work.push(candidate);
                }
                _ => work.push(candidate),
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break true,
        }
    };
    work.sort_by_key(|c| (c.assessment != Assessment::Due, c.issued_at));
    Ok((work, listed_all))
}

enum Handled {
    Rotated,
    Pruned,
    PendingCleared,
    Skipped,
    Failed,
    Deferred,
}

struct Outcome {
    result: Handled,
    throttled: usize,
}

async fn handle(
    vault: &SecretPerEndpoint,
    audit: &dyn AuditSink,
    run_id: &str,
    candidate: &Candidate,
    budget: &WriteBudget,
    stop_at: Instant,
    settings: &SweepSettings,
) -> Outcome {
    let mut throttled = 0;
    let done = |result, throttled| Outcome { result, throttled };
    for attempt in 0..settings.max_attempts {
        if Instant::now() >= stop_at {
            return done(Handled::Deferred, throttled);
        }
        let now = vault.clock.now();
        let result = match schedule::plan(vault, candidate, now).await {
            Ok(Plan::Nothing(
                NothingToDo::AlreadyDone | NothingToDo::NoPolicy | NothingToDo::Gone,
            )) => return done(Handled::Skipped, throttled),
            Ok(Plan::Write(plan)) => {
                if !budget.acquire(plan.kind.cost(), stop_at).await {
                    return done(Handled::Deferred, throttled);
                }
                schedule::commit(vault, &plan).await.map(|()| plan)
            }
            Err(err) => Err(err),
        };
        match result {
            Ok(plan) => {
                record(vault, audit, run_id, &plan, "success");
                if let (WriteKind::Rotate, Some(swap)) = (&plan.kind, &plan.swap) {
                    vault
                        .announcer
                        .announce(EventAction::SecretRotated, &swap.record)
                        .await;
                }
                return done(
                    match plan.kind {
                        WriteKind::Rotate => Handled::Rotated,
                        WriteKind::Prune { .. } => Handled::Pruned,
                        WriteKind::ClearPending(_) => Handled::PendingCleared,
                    },
                    throttled,
                );
            }
            Err(VaultError::Store(StoreError::Throttled)) => {
                throttled += 1;
                let pause = backoff(settings, attempt);
                budget.penalise(pause);
                tokio::time::sleep(pause).await;
            }
            // Another sweep, or a person, changed the endpoint between the read and the
            // write: the next attempt reads the new record, which is most likely not due.
            Err(VaultError::Store(StoreError::Conflict)) => continue,
            Err(err) => {
                tracing::error!(run_id, endpoint = %candidate.id, tenant = %candidate.tenant, error = %err, "scheduled rotation failed");
                audit.record(&audit_record(
                    vault.clock.now(),
                    run_id,
                    &candidate.tenant,
                    &candidate.id,
                    "secret.rotate",
                    Vec::new(),
                    err.code().as_str(),
                ));
                return done(Handled::Failed, throttled);
            }
        }
    }
    done(Handled::Deferred, throttled)
}

fn record(
    vault: &SecretPerEndpoint,
    audit: &dyn AuditSink,
    run_id: &str,
    plan: &PlannedWrite,
    outcome: &str,
) {
    let now = vault.clock.now();
    let (action, versions) = match (&plan.kind, &plan.swap) {
        (WriteKind::Rotate, Some(swap)) => (
            "secret.rotate",
            swap.record
                .valid_secrets(now)
                .iter()
                .map(|s| s.version_id.to_string())
                .collect(),
        ),
        (WriteKind::Prune { removed }, _) => (
            "secret.prune",
            removed.iter().map(ToString::to_string).collect(),
        ),
        (WriteKind::ClearPending(version), _) => {
            ("secret.clear_pending", vec![version.to_string()])
        }
        (WriteKind::Rotate, None) => ("secret.rotate", Vec::new()),
    };
    audit.record(&audit_record(
        now,
        run_id,
        &plan.candidate.tenant,
        &plan.candidate.id,
        action,
        versions,
        outcome,
    ));
}

fn audit_record(
    now: DateTime<Utc>,
    run_id: &str,
    tenant: &TenantId,
    id: &EndpointId,
    action: &'static str,
    secret_version_ids: Vec<String>,
    outcome: &str,
) -> AuditRecord {
    AuditRecord {
        tenant: Some(tenant.to_string()),
        endpoint_id: Some(id.to_string()),
        secret_version_ids,
        outcome: outcome.to_owned(),
        trigger: Some("schedule"),
        ..AuditRecord::new(now, run_id, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_paces_writes_to_its_rate() {
        let budget = WriteBudget::new(20.0);
        let far = Instant::now() + Duration::from_secs(60);
        let started = Instant::now();
        // 4 writes of burst, then 20 a second: 24 writes take about a second.
        for _ in 0..12 {
            assert!(budget.acquire(2, far).await);
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(950), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        // A write that cannot start before the stop time is refused at once.
        let soon = Instant::now() + Duration::from_millis(10);
        budget.penalise(Duration::from_secs(1));
        assert!(!budget.acquire(2, soon).await);
    }

    #[test]
    fn backoff_grows_and_stays_under_its_cap() {
        let settings = SweepSettings::default();
        for attempt in 0..20 {
            let wait = backoff(&settings, attempt);
            let ceiling =
                (settings.backoff_base * 2u32.pow(attempt.min(16))).min(settings.backoff_cap);
            assert!(wait <= ceiling, "attempt {attempt}: {wait:?}");
        }
    }
}
