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
//! Both storage layouts run, one after the other in one invocation, and the table sets them
//! side by side. The per-endpoint layout's endpoints belong to one tenant and are created one
//! by one. The keyrings layout's endpoints spread over tenants as a platform's do, skewed: a
//! tenant per 100 endpoints, 90% of them with 5 endpoints and 10% sharing the rest (at
//! 100,000 endpoints: 900 tenants of 5 and 100 of 955). They arrive through the bulk import
//! the migration command uses, which packs each keyring in a few writes; created one by one
//! within minutes they would spread over more keyrings, because a keyring takes 70 writes a day.
//!
//! Settings (environment): LAYOUTS ("per-endpoint keyrings"), ENDPOINTS (3000, the
//! per-endpoint layout's), KEYRING_ENDPOINTS (100000), RUN_SECONDS (120),
//! SWEEP_WRITES_PER_SECOND (50), SWEEP_CONCURRENCY (8), INTERACTIVE_ROTATIONS_PER_SECOND (0),
//! plus the AWS settings of the moto server.

use chrono::Utc;
use futures::StreamExt;
use integration_tests::throttle::{QuotaGroup, Quotas, ThrottleProxy};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhook_secrets::audit::MemoryAudit;
use webhook_secrets::domain::access::Writer;
use webhook_secrets::domain::clock::Clock;
use webhook_secrets::domain::clock::ManualClock;
use webhook_secrets::domain::endpoint::{
    Endpoint, EndpointRecord, GracePeriod, NewEndpoint, RotationPolicy, SecretSource,
    SecretVersion, RECORD_SCHEMA,
};
use webhook_secrets::domain::ids::{EndpointId, TenantId, VersionId};
use webhook_secrets::domain::secret::SecretSpec;
use webhook_secrets::domain::secret::WebhookSecret;
use webhook_secrets::store::secrets_manager::{ClientSettings, SecretsManagerStore};
use webhook_secrets::store::StoreError;
use webhook_secrets::vault::sweep::{sweep, SweepSettings, SweepSummary};
use webhook_secrets::vault::{EndpointRepository, Endpoints, Rotation, VaultError, VaultLayout};

const PERIOD_DAYS: i64 = 30;
/// Endpoints the interactive load rotates, in turn.
const INTERACTIVE_ENDPOINTS: usize = 200;
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

async fn vault_at(
    endpoint_url: &str,
    prefix: &str,
    clock: Arc<ManualClock>,
    layout: VaultLayout,
) -> Endpoints {
    let client = integration_tests::sdk_client(endpoint_url, ClientSettings::default()).await;
    Endpoints::new(
        layout,
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

/// The tenants of `endpoints` endpoints on the keyrings layout: (tenant, endpoints of it).
fn skewed_tenants(endpoints: usize) -> Vec<(TenantId, usize)> {
    let tenants = (endpoints / 100).max(1);
    let small = tenants * 9 / 10;
    let big = tenants - small;
    let in_big = endpoints.saturating_sub(small * 5);
    (0..tenants)
        .map(|t| {
            let count = if t < small {
                5
            } else {
                in_big / big + usize::from(t - small < in_big % big)
            };
            (TenantId::parse(&format!("t{t:05}")).unwrap(), count)
        })
        .collect()
}

/// An endpoint's record as the import takes it.
fn record(
    tenant: &TenantId,
    id: &str,
    policy: RotationPolicy,
    now: chrono::DateTime<Utc>,
) -> EndpointRecord {
    EndpointRecord {
        schema: RECORD_SCHEMA,
        endpoint: Endpoint {
            id: EndpointId::parse(id).unwrap(),
            tenant: tenant.clone(),
            url: format!("https://example.com/hooks/{tenant}/{id}"),
            name: String::new(),
            description: String::new(),
            topics: Vec::new(),
            created_at: now,
            updated_at: now,
            status: Default::default(),
            request_config: Default::default(),
            version: "1.0".into(),
            rotation_policy: Some(policy),
        },
        secret: SecretVersion {
            version_id: VersionId::stamped(now),
            value: WebhookSecret::generate(SecretSpec::default()).unwrap(),
            created_at: now,
            replaces: None,
            expires_at: None,
        },
        previous_secrets: Vec::new(),
        keyed_writes: Vec::new(),
    }
}

#[tokio::main]
async fn main() {
    let layouts = std::env::var("LAYOUTS").unwrap_or_else(|_| "per-endpoint keyrings".into());
    let mut columns = Vec::new();
    let mut failed = false;
    for name in layouts.split_whitespace() {
        let layout = VaultLayout::parse(name).expect("LAYOUTS: per-endpoint and/or keyrings");
        let endpoints = match layout {
            VaultLayout::PerEndpoint => setting("ENDPOINTS", 3_000),
            VaultLayout::Keyrings => setting("KEYRING_ENDPOINTS", 100_000),
        } as usize;
        let (rows, ok) = run(layout, endpoints).await;
        failed |= !ok;
        columns.push((name.to_owned(), rows));
    }
    println!("\nscheduled sweep through the Secrets Manager quota proxy");
    print!("{:<30}", "");
    for (name, _) in &columns {
        print!(" | {name:<44}");
    }
    println!();
    println!("{:-<1$}", "", 30 + 47 * columns.len());
    let labels: Vec<&str> = columns[0].1.iter().map(|(label, _)| *label).collect();
    for (i, label) in labels.iter().enumerate() {
        print!("{label:<30}");
        for (_, rows) in &columns {
            print!(" | {:<44}", rows.get(i).map_or("", |(_, v)| v.as_str()));
        }
        println!();
    }
    if let [(_, first), (_, second)] = columns.as_slice() {
        let rate = |rows: &[(&str, String)]| -> f64 {
            rows.iter()
                .find(|(l, _)| *l == "endpoints rotated per second")
                .and_then(|(_, v)| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0)
        };
        println!(
            "\nsweep rate, keyrings against per-endpoint in this run: {:.1}x",
            rate(second) / rate(first)
        );
    }
    if failed {
        std::process::exit(1);
    }
}

async fn run(layout: VaultLayout, endpoints: usize) -> (Vec<(&'static str, String)>, bool) {
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
    let direct = vault_at(&moto, &prefix, clock.clone(), layout).await;
    // Creation goes through a proxy with no quota, only so that its calls are counted.
    let counting = ThrottleProxy::start(&moto, Quotas::unlimited()).await;
    let creator = vault_at(&counting.url(), &prefix, clock.clone(), layout).await;
    let started = Instant::now();
    let mut originals: std::collections::HashMap<(TenantId, String), VersionId> =
        std::collections::HashMap::new();
    let tenants: Vec<(TenantId, usize)> = match &creator {
        Endpoints::PerEndpoint(_) => {
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
            for r in created {
                let r = r.expect("create an endpoint");
                originals.insert(
                    (r.endpoint.tenant.clone(), r.endpoint.id.to_string()),
                    r.secret.version_id,
                );
            }
            vec![(tenant.tenant().clone(), endpoints)]
        }
        Endpoints::Keyrings(keyrings) => {
            let tenants = skewed_tenants(endpoints);
            let now = clock.now();
            let imports = futures::stream::iter(tenants.clone())
                .map(|(tenant, count)| async move {
                    let records: Vec<EndpointRecord> = (0..count)
                        .map(|i| record(&tenant, &format!("ep-{i:05}"), policy, now))
                        .collect();
                    let versions: Vec<_> = records
                        .iter()
                        .map(|r| {
                            (
                                (tenant.clone(), r.endpoint.id.to_string()),
                                r.secret.version_id.clone(),
                            )
                        })
                        .collect();
                    keyrings.import(&tenant, records).await.expect("import");
                    versions
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await;
            originals.extend(imports.into_iter().flatten());
            tenants
        }
    };
    // The interactive load's endpoints: INTERACTIVE_ENDPOINTS of them, so that at 15 a
    // second each is rotated about every 13 s, well within a secret's (or a keyring's) daily
    // versions over a run. On keyrings they sit in the big tenants' keyrings, beside the
    // endpoints the sweep rotates, two or three per tenant.
    let owners: Vec<Writer> = match layout {
        VaultLayout::PerEndpoint => vec![tenant.clone()],
        VaultLayout::Keyrings => tenants
            .iter()
            .filter(|(_, count)| *count > 5)
            .map(|(t, _)| integration_tests::owner_of(t.as_str()))
            .collect(),
    };
    let interactive_ids: Vec<(Writer, EndpointId)> = (0..INTERACTIVE_ENDPOINTS)
        .map(|i| {
            let owner = owners[i % owners.len()].clone();
            (
                owner,
                EndpointId::parse(&format!("interactive-{i:03}")).unwrap(),
            )
        })
        .collect();
    if interactive_rate > 0 {
        for (owner, id) in &interactive_ids {
            let new = new_endpoint(id.as_str(), None);
            direct
                .create_endpoint(owner, new, None)
                .await
                .expect("create");
        }
    }
    let create_seconds = started.elapsed().as_secs_f64();
    let create_calls = counting.stats().total_forwarded();
    eprintln!("created in {create_seconds:.0} s");

    clock.advance(chrono::Duration::days(PERIOD_DAYS));
    let proxy = ThrottleProxy::start(&moto, Quotas::aws()).await;
    let through_quota = vault_at(&proxy.url(), &prefix, clock.clone(), layout).await;
    let through_quota = Arc::new(through_quota);
    let done = Arc::new(AtomicBool::new(false));
    let interactive = Arc::new([(); 5].map(|()| AtomicUsize::new(0)));
    let load = (interactive_rate > 0).then(|| {
        let (vault, done, counts) = (through_quota.clone(), done.clone(), interactive.clone());
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_secs_f64(1.0 / interactive_rate as f64));
            let mut n = 0usize;
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                let (tenant, id) = interactive_ids[n % interactive_ids.len()].clone();
                n += 1;
                let (vault, counts) = (vault.clone(), counts.clone());
                tokio::spawn(async move {
                    let rotation = Rotation::immediate(SecretSource::LikeCurrent);
                    let slot = match vault.rotate_secret(&tenant, &id, rotation).await {
                        Ok(_) => 0,
                        Err(VaultError::Store(StoreError::Throttled)) => 1,
                        Err(VaultError::Store(StoreError::Conflict)) => 2,
                        Err(
                            VaultError::WriteBudget { .. }
                            | VaultError::Store(StoreError::VersionQuota),
                        ) => 3,
                        Err(_) => 4,
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
    for (tenant, _) in &tenants {
        let mut cursor: Option<String> = None;
        loop {
            let page = direct
                .list_endpoints(tenant, cursor.as_deref(), 100)
                .await
                .expect("list");
            let records = page.endpoints;
            for record in records {
                // The interactive endpoints have no policy and no place in the count.
                let key = (
                    record.endpoint.tenant.clone(),
                    record.endpoint.id.to_string(),
                );
                let Some(original) = originals.get(&key) else {
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
    }

    let rotated: usize = runs.iter().map(|r| r.rotated).sum();
    let throttled_in_sweep: usize = runs.iter().map(|r| r.throttled).sum();
    let busy_seconds: f64 = runs.iter().map(|r| r.duration_ms as f64 / 1000.0).sum();
    let rate = rotated as f64 / busy_seconds;
    let writes = stats.forwarded(QuotaGroup::Writes);
    let rows = [
        (
            "endpoints due (tenants)",
            format!("{endpoints} ({})", tenants.len()),
        ),
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
            format!("{} ({run_seconds} s each)", runs.len()),
        ),
        ("sweep time, all runs", format!("{busy_seconds:.1} s")),
        ("wall time incl. restarts", format!("{sweep_seconds:.1} s")),
        ("endpoints rotated per second", format!("{rate:.2}")),
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
            format!(
                "{secrets} ({:.3} per endpoint)",
                per_endpoint(secrets as f64)
            ),
        ),
        (
            "calls to create (proxy)",
            format!(
                "{create_calls} ({:.2} per endpoint)",
                per_endpoint(create_calls as f64)
            ),
        ),
        (
            "calls to sweep (proxy)",
            format!(
                "{sweep_calls} ({:.2} per rotated endpoint)",
                per_endpoint(sweep_calls)
            ),
        ),
        (
            "$ per endpoint-month",
            format!(
                "{:.4} ({storage_usd:.4} + {sweep_usd:.6} + {create_usd:.6})",
                storage_usd + sweep_usd + create_usd
            ),
        ),
    ]);
    if interactive_rate > 0 {
        let [ok, throttled, conflict, budget, other] =
            [0, 1, 2, 3, 4].map(|i| interactive[i].load(Ordering::Relaxed));
        rows.push((
            "interactive rotations",
            format!(
                "{interactive_rate}/s asked over {INTERACTIVE_ENDPOINTS} endpoints: {ok} done, {throttled} throttled (429), {conflict} lost a race (409), {budget} over a version budget (429), {other} other errors"
            ),
        ));
    }
    // Sign, warm, as a function does it: one read of the secret that holds the endpoint, then
    // the signature. On keyrings, an endpoint of the largest keyring of the biggest tenant.
    let (sign_tenant, _) = tenants
        .iter()
        .max_by_key(|(_, count)| *count)
        .expect("a tenant")
        .clone();
    let mut target: Option<(EndpointId, String, usize)> = None;
    for (t, id) in originals.keys() {
        if *t != sign_tenant {
            continue;
        }
        let id = EndpointId::parse(id).unwrap();
        let holder = direct
            .secret_holding(&sign_tenant, &id)
            .await
            .expect("holder");
        let store = SecretsManagerStore::new(
            integration_tests::sdk_client(&moto, ClientSettings::default()).await,
        );
        use webhook_secrets::store::SecretStore;
        let bytes = store
            .read_current(&holder)
            .await
            .expect("read")
            .value
            .expose()
            .len();
        if target.as_ref().is_none_or(|(_, _, b)| bytes > *b) {
            target = Some((id, holder.to_string(), bytes));
        }
        if layout == VaultLayout::PerEndpoint || bytes > 50_000 {
            break;
        }
    }
    let (sign_id, holder, holder_bytes) = target.expect("an endpoint to sign with");
    // Through a proxy that only counts, so the reads per signature are counted, not assumed.
    let counter = ThrottleProxy::start(&moto, Quotas::unlimited()).await;
    let signer = vault_at(&counter.url(), &prefix, clock.clone(), layout).await;
    let mut took = Vec::new();
    let mut warm_from = 0;
    for n in 0..201 {
        if n == 1 {
            warm_from = counter.stats().total_forwarded();
        }
        let started = Instant::now();
        let stored = signer
            .get_endpoint(&sign_tenant, &sign_id)
            .await
            .expect("read the endpoint");
        let now = clock.now();
        let secrets = stored.record.valid_secrets(now);
        let signed =
            webhook_secrets::domain::signature::sign(&secrets, "msg_bench", now.timestamp(), b"{}");
        assert!(!signed.signature.is_empty());
        if n > 0 {
            took.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let reads = (counter.stats().total_forwarded() - warm_from) as f64 / took.len() as f64;
    took.sort_by(|a, b| a.total_cmp(b));
    rows.push((
        "warm sign: median (p90)",
        format!(
            "{:.2} ms ({:.2} ms), {reads:.2} reads of {holder_bytes} B",
            took[took.len() / 2],
            took[took.len() * 9 / 10]
        ),
    ));
    eprintln!("signed with {sign_id} held in {holder}");
    if rotated_once != endpoints {
        eprintln!(
            "FAILED ({}): {} endpoints not rotated exactly once",
            layout.as_str(),
            endpoints - rotated_once
        );
    }
    (rows, rotated_once == endpoints)
}
