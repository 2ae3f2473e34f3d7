//! `make bench-sweep`: the scheduled sweep at scale, through Secrets Manager's write quota.
//!
//! Creates ENDPOINTS endpoints under a rotation policy on the moto server (directly, not
//! through the quota), moves the injected clock past their period, then runs sweeps through
//! the throttling proxy (AWS's quotas in front of moto), each under a Lambda-like deadline of
//! RUN_SECONDS, until a run reports everything done. Checks afterwards that every endpoint was
//! rotated exactly once, and prints the rotation rate against the quota-bound 25 per second.
//!
//! With INTERACTIVE_ROTATIONS_PER_SECOND above 0, other endpoints are rotated through the same
//! quota at that rate while the sweep runs, as callers of the API would, and the table shows
//! how both fared.
//!
//! It also meters what the layout costs: the secrets it stored (counted with ListSecrets
//! afterwards) and the Secrets Manager calls it made (counted by the proxies: creation goes
//! through one with no quota, the sweep through the quota proxy), priced at Secrets Manager's
//! list prices ($0.40 per secret-month, $0.05 per 10,000 calls) per endpoint-month.
//!
//! Settings (environment): ENDPOINTS (10000), RUN_SECONDS (120), SWEEP_WRITES_PER_SECOND
//! (50), SWEEP_CONCURRENCY (8), INTERACTIVE_ROTATIONS_PER_SECOND (0), plus the AWS settings of
//! the moto server.

use chrono::Utc;
use futures::StreamExt;
use integration_tests::throttle::{QuotaGroup, Quotas, ThrottleProxy};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhook_secrets::audit::MemoryAudit;
use webhook_secrets::domain::clock::ManualClock;
use webhook_secrets::domain::endpoint::{GracePeriod, NewEndpoint, RotationPolicy, SecretSource};
use webhook_secrets::domain::ids::EndpointId;
use webhook_secrets::domain::secret::SecretSpec;
use webhook_secrets::store::secrets_manager::{ClientSettings, SecretsManagerStore};
use webhook_secrets::store::StoreError;
use webhook_secrets::vault::sweep::{sweep, SweepSettings, SweepSummary};
use webhook_secrets::vault::{EndpointRepository, Endpoints, Rotation, VaultError, VaultLayout};

const PERIOD_DAYS: i64 = 30;
/// Secrets Manager's list prices (us-east-1): per secret-month, and per API call.
const SECRET_MONTH_USD: f64 = 0.40;
const CALL_USD: f64 = 0.05 / 10_000.0;
/// Days in the month the cost meter bills.
const MONTH_DAYS: f64 = 30.0;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn vault_at(endpoint_url: &str, prefix: &str, clock: Arc<ManualClock>) -> Endpoints {
    let client = integration_tests::sdk_client(endpoint_url, ClientSettings::default()).await;
    Endpoints::new(
        VaultLayout::PerEndpoint,
        Arc::new(SecretsManagerStore::new(client)),
        prefix,
        clock,
    )
}

/// The secrets stored under `prefix`, counted on moto itself.
async fn count_secrets(moto: &str, prefix: &str) -> usize {
    use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
    let client = integration_tests::sdk_client(moto, ClientSettings::default()).await;
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values(format!("{prefix}/"))
        .build();
    let mut pages = client
        .list_secrets()
        .filters(filter)
        .max_results(100)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += page.expect("list secrets").secret_list().len();
    }
    count
}

fn new_endpoint(id: &str, rotation_policy: Option<RotationPolicy>) -> NewEndpoint {
    NewEndpoint {
        id: Some(EndpointId::parse(id).unwrap()),
        url: "https://example.com/hook".into(),
        name: String::new(),
        description: String::new(),
        topics: Vec::new(),
        status: Default::default(),
        request_config: Default::default(),
        version: "1.0".into(),
        rotation_policy,
        secret: SecretSource::Generate(SecretSpec::default()),
    }
}

#[tokio::main]
async fn main() {
    let endpoints = setting("ENDPOINTS", 10_000) as usize;
    let run_seconds = setting("RUN_SECONDS", 120);
    let interactive_rate = setting("INTERACTIVE_ROTATIONS_PER_SECOND", 0);
    let settings = SweepSettings {
        writes_per_second: setting("SWEEP_WRITES_PER_SECOND", 50) as f64,
        concurrency: setting("SWEEP_CONCURRENCY", 8) as usize,
        stop_margin: Duration::from_secs(15),
        ..SweepSettings::default()
    };
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: the moto server");
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let tenant = integration_tests::owner_of("acme");
    let policy = RotationPolicy::new(PERIOD_DAYS as u64, GracePeriod::default()).unwrap();

    eprintln!("creating {endpoints} endpoints under a {PERIOD_DAYS}-day policy (no quota)");
    let direct = vault_at(&moto, &prefix, clock.clone()).await;
    // Creation goes through a proxy with no quota, only so that its calls are counted.
    let counting = ThrottleProxy::start(&moto, Quotas::unlimited()).await;
    let creator = vault_at(&counting.url(), &prefix, clock.clone()).await;
    let started = Instant::now();
    let created = futures::stream::iter(0..endpoints)
        .map(|i| {
            let (creator, tenant) = (&creator, &tenant);
            async move {
                let new = new_endpoint(&format!("ep-{i:05}"), Some(policy));
                creator
                    .create_endpoint(tenant, new, None)
                    .await
                    .map(|w| w.record)
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let originals: std::collections::HashMap<_, _> = created
        .into_iter()
        .map(|r| {
            let r = r.expect("create an endpoint");
            (r.endpoint.id.to_string(), r.secret.version_id)
        })
        .collect();
    let interactive_ids: Vec<EndpointId> = (0..20)
        .map(|i| EndpointId::parse(&format!("interactive-{i:02}")).unwrap())
        .collect();
    if interactive_rate > 0 {
        for id in &interactive_ids {
            let new = new_endpoint(id.as_str(), None);
            direct
                .create_endpoint(&tenant, new, None)
                .await
                .expect("create");
        }
    }
    let create_seconds = started.elapsed().as_secs_f64();
    let create_calls = counting.stats().total_forwarded();
    eprintln!("created in {create_seconds:.0} s");

    clock.advance(chrono::Duration::days(PERIOD_DAYS));
    let proxy = ThrottleProxy::start(&moto, Quotas::aws()).await;
    let through_quota = vault_at(&proxy.url(), &prefix, clock.clone()).await;
    let through_quota = Arc::new(through_quota);
    let done = Arc::new(AtomicBool::new(false));
    let interactive = Arc::new([(); 4].map(|()| AtomicUsize::new(0)));
    let load = (interactive_rate > 0).then(|| {
        let (vault, done, counts, tenant) = (
            through_quota.clone(),
            done.clone(),
            interactive.clone(),
            tenant.clone(),
        );
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_secs_f64(1.0 / interactive_rate as f64));
            let mut n = 0usize;
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                let id = interactive_ids[n % interactive_ids.len()].clone();
                n += 1;
                let (vault, counts, tenant) = (vault.clone(), counts.clone(), tenant.clone());
                tokio::spawn(async move {
                    let rotation = Rotation::immediate(SecretSource::LikeCurrent);
                    let slot = match vault.rotate_secret(&tenant, &id, rotation).await {
                        Ok(_) => 0,
                        Err(VaultError::Store(StoreError::Throttled)) => 1,
                        Err(VaultError::Store(StoreError::Conflict)) => 2,
                        Err(_) => 3,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                });
            }
        })
    });
    let audit = MemoryAudit::default();
    let mut runs: Vec<SweepSummary> = Vec::new();
    let sweep_started = Instant::now();
    loop {
        let deadline = Instant::now() + Duration::from_secs(run_seconds);
        let summary = sweep(
            &through_quota,
            &audit,
            &format!("run-{}", runs.len() + 1),
            deadline,
            &settings,
        )
        .await
        .expect("the sweep lists endpoints");
        eprintln!(
            "run {}: due {}, rotated {}, deferred {}, throttled {}, failed {}, {:.1} s",
            runs.len() + 1,
            summary.due,
            summary.rotated,
            summary.deferred,
            summary.throttled,
            summary.failed,
            summary.duration_ms as f64 / 1000.0
        );
        let complete = summary.complete;
        runs.push(summary);
        if complete || runs.len() >= 100 {
            break;
        }
    }
    let sweep_seconds = sweep_started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    if let Some(load) = load {
        let _ = load.await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let stats = proxy.stats();
    let secrets = count_secrets(&moto, &prefix).await;

    eprintln!("checking every endpoint (directly on moto)");
    let mut rotated_once = 0usize;
    let mut rotated_more = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let page = direct
            .list_endpoints(tenant.tenant(), cursor.as_deref(), 100)
            .await
            .expect("list");
        let records = page.endpoints;
        for record in records {
            // The interactive endpoints have no policy and no place in the count.
            let Some(original) = originals.get(record.endpoint.id.as_str()) else {
                continue;
            };
            if record.secret.replaces.as_ref() == Some(original)
                && record.previous_secrets.len() == 1
            {
                rotated_once += 1;
            } else if record.secret.version_id != *original {
                rotated_more += 1;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }

    let rotated: usize = runs.iter().map(|r| r.rotated).sum();
    let throttled_in_sweep: usize = runs.iter().map(|r| r.throttled).sum();
    let busy_seconds: f64 = runs.iter().map(|r| r.duration_ms as f64 / 1000.0).sum();
    let rate = rotated as f64 / busy_seconds;
    let writes = stats.forwarded(QuotaGroup::Writes);
    let rows = [
        ("endpoints due", endpoints.to_string()),
        ("rotated exactly once", rotated_once.to_string()),
        (
            "missed",
            (endpoints - rotated_once - rotated_more).to_string(),
        ),
        ("rotated more than once", rotated_more.to_string()),
        (
            "write budget",
            format!("{} writes/s of the 50 quota", settings.writes_per_second),
        ),
        ("concurrency", settings.concurrency.to_string()),
        (
            "runs (deadline each)",
            format!(
                "{} ({run_seconds} s each, at most 15 s kept free)",
                runs.len()
            ),
        ),
        ("sweep time, all runs", format!("{busy_seconds:.1} s")),
        ("wall time incl. restarts", format!("{sweep_seconds:.1} s")),
        (
            "rotations per second",
            format!(
                "{rate:.2} (quota-bound maximum 25: {:.0}%)",
                rate / 25.0 * 100.0
            ),
        ),
        (
            "writes forwarded (proxy)",
            format!("{writes} ({:.1}/s)", writes as f64 / busy_seconds),
        ),
        (
            "writes throttled (proxy)",
            stats.throttled(QuotaGroup::Writes).to_string(),
        ),
        (
            "throttles past SDK retries",
            format!("{throttled_in_sweep} (each retried by the sweep)"),
        ),
        ("creation (setup)", format!("{create_seconds:.0} s")),
    ];
    let mut rows = rows.to_vec();
    // A month of the layout's own costs, per endpoint: its secrets, the calls that create
    // them spread over a year of life, and the sweep's calls for the rotations a month holds.
    // API traffic (sign, verify, rotate on demand) is the caller's and priced apart.
    let per_endpoint = |n: f64| n / endpoints as f64;
    let sweep_calls = stats.total_forwarded() as f64;
    let storage_usd = per_endpoint(secrets as f64) * SECRET_MONTH_USD;
    let create_usd = per_endpoint(create_calls as f64) * CALL_USD / 12.0;
    let sweep_usd = per_endpoint(sweep_calls) * CALL_USD * MONTH_DAYS / PERIOD_DAYS as f64;
    rows.extend([
        (
            "secrets stored (ListSecrets)",
            format!("{secrets} ({:.3} per endpoint)", per_endpoint(secrets as f64)),
        ),
        (
            "calls to create (proxy)",
            format!("{create_calls} ({:.2} per endpoint)", per_endpoint(create_calls as f64)),
        ),
        (
            "calls to sweep (proxy)",
            format!("{sweep_calls} ({:.2} per rotated endpoint)", per_endpoint(sweep_calls)),
        ),
        (
            "$ per endpoint-month",
            format!(
                "{:.4} = storage {storage_usd:.4} + sweep calls {sweep_usd:.6} + creation {create_usd:.6} (a {PERIOD_DAYS}-day period, creation over 12 months)",
                storage_usd + sweep_usd + create_usd
            ),
        ),
    ]);
    if interactive_rate > 0 {
        let [ok, throttled, conflict, other] =
            [0, 1, 2, 3].map(|i| interactive[i].load(Ordering::Relaxed));
        rows.push((
            "interactive rotations",
            format!(
                "{interactive_rate}/s asked: {ok} done, {throttled} throttled (429), {conflict} lost a race (409), {other} other errors"
            ),
        ));
    }
    println!("\nscheduled sweep through the Secrets Manager quota proxy");
    println!("{:-<60}", "");
    for (label, value) in rows {
        println!("{label:<28} {value}");
    }
    if rotated_once != endpoints {
        eprintln!(
            "FAILED: {} endpoints not rotated exactly once",
            endpoints - rotated_once
        );
        std::process::exit(1);
    }
}
