//! The tenant-keyrings layout's own behaviour, on both stores: splits under Secrets Manager's
//! size limit, the version budget (a busy tenant's day fits it; an abusive tenant gets 429s
//! that its neighbours never see), and Secrets Manager's rotation protocol on a keyring. Every
//! other suite also runs on this layout (`on_every_backend!`).

use integration_tests::throttle::{Quotas, StrictOutcome, Strictness, ThrottleProxy};
use integration_tests::{assert_error, invoke, on_both_stores, Backend, Call, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use webhook_secrets::auth::Role;
use webhook_secrets::domain::clock::Clock;
use webhook_secrets::domain::endpoint::{ROTATION_GRACE_TAG, ROTATION_PERIOD_TAG};
use webhook_secrets::domain::ids::{EndpointId, TenantId};
use webhook_secrets::store::{ListFilter, SecretName, MAX_VALUE_BYTES};
use webhook_secrets::vault::keyrings::{SPLIT_BYTES, WRITE_BUDGET};
use webhook_secrets::vault::migrate::{self, MigrationOptions, MigrationReport};
use webhook_secrets::vault::protocol::{rotation_step, ProtocolError, RotationEvent, Step};
use webhook_secrets::vault::{EndpointRepository, Endpoints};

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// The names and sizes of a tenant's keyrings, as the store lists and holds them.
async fn keyrings_of(app: &TestApp, tenant: &str) -> Vec<(SecretName, usize)> {
    let mut found = Vec::new();
    for name in app.secrets_under(&format!("{tenant}/_kr/")).await {
        let value = app.store.read_current(&name).await.unwrap().value;
        found.push((name, value.expose().len()));
    }
    found
}

/// An endpoint whose record is about 9 KB: a long url and 64 long topics.
fn large_endpoint(id: &str) -> Value {
    let topics: Vec<String> = (0..64)
        .map(|t| format!("{t:03}.{}", "t".repeat(96)))
        .collect();
    json!({
        "id": id,
        "url": format!("https://example.com/{}", "u".repeat(1_900)),
        "topics": topics,
        "name": id,
    })
}

/// Large records fill a keyring past its split size: it splits (again and again), no value
/// ever passes Secrets Manager's limit, and every endpoint stays readable, listed exactly
/// once, and rotatable, also by a process that has never seen the tenant.
async fn full_keyrings_split_and_every_endpoint_stays_reachable(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ids: Vec<String> = (0..24).map(|i| format!("big-{i}")).collect();
    for id in &ids {
        app.create(large_endpoint(id)).await;
    }
    let keyrings = keyrings_of(&app, "acme").await;
    assert!(keyrings.len() >= 4, "{} keyrings", keyrings.len());
    for (name, bytes) in &keyrings {
        assert!(*bytes <= MAX_VALUE_BYTES, "{name}: {bytes} bytes");
    }
    // Every endpoint rotates (each record grows by its replaced secret) and reads back.
    for id in &ids {
        let rotated = invoke!(
            rotate_secret,
            app,
            Call::post("/x")
                .bearer(&app.owner)
                .id(id)
                .json(json!({"grace_period_seconds": 3600}))
        );
        assert_eq!(rotated.status, 200, "{id}: {}", rotated.body);
    }
    for (name, bytes) in keyrings_of(&app, "acme").await {
        assert!(bytes <= MAX_VALUE_BYTES, "{name}: {bytes} bytes");
    }
    // A fresh process (no remembered depths) finds every endpoint from the tenant's root.
    let cold = Endpoints::new(
        backend.layout,
        Arc::clone(&app.store),
        &app.prefix,
        app.clock.clone(),
    );
    for id in &ids {
        let stored = cold
            .get_endpoint(&acme(), &EndpointId::parse(id).unwrap())
            .await
            .unwrap();
        assert_eq!(stored.record.previous_secrets.len(), 1, "{id}");
    }
    // The listing, in pages of 5, holds every endpoint once (and the API keys' owner has
    // nothing else in this tenant).
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut call = Call::get("/x").bearer(&app.owner).query("limit", "5");
        if let Some(cursor) = &cursor {
            call = call.query("cursor", cursor);
        }
        let page = invoke!(list_endpoints, app, call);
        assert_eq!(page.status, 200, "{}", page.body);
        for endpoint in page.body["data"].as_array().unwrap() {
            listed.push(endpoint["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "listed twice: {listed:?}");
    assert_eq!(unique, ids.iter().collect(), "{listed:?}");
}

/// A stated busy day, on the hour for 30 hours: a tenant with 30 endpoints under a daily
/// rotation policy adds one endpoint every two hours, and 12 of its endpoints are patched or
/// rotated every hour (one in three a rotation; ten endpoints are left to the sweep). That is about 9 writes per endpoint per day,
/// three times AWS's guidance of one write per secret every 10 minutes shared by a whole
/// keyring; a tenant rotating every endpoint daily by hand is the busiest we expect. The
/// scheduled sweep runs every hour and rotates whatever falls due. The store refuses a
/// secret's 101st version in a rolling 24 hours as Secrets Manager does (on Secrets Manager,
/// a strict proxy whose clock moves with the test's): every write answers 200 or 201, every
/// sweep completes with nothing failed, and the store never refuses a version.
async fn a_stated_day_with_the_sweep_fits_the_version_budget(backend: Backend) {
    let (proxy, app) = day_app(backend).await;
    let hour = chrono::Duration::hours(1);
    let mut ids: Vec<String> = (0..20).map(|i| format!("busy-{i:02}")).collect();
    // Ten endpoints nobody touches by hand: the sweep rotates them when they fall due.
    let quiet: Vec<String> = (0..10).map(|i| format!("quiet-{i:02}")).collect();
    let daily = json!({"period_days": 1});
    for id in ids.iter().chain(&quiet) {
        app.create(json!({"id": id, "url": "https://example.com/hook", "rotation_policy": daily}))
            .await;
    }
    let (mut writes, mut swept) = (0, 0);
    for h in 0..30 {
        app.clock.advance(hour);
        if let Some(proxy) = &proxy {
            proxy.advance_version_clock(std::time::Duration::from_secs(3600));
        }
        if h % 2 == 0 {
            let id = format!("late-{h:02}");
            app.create(
                json!({"id": id, "url": "https://example.com/hook", "rotation_policy": daily}),
            )
            .await;
            ids.push(id);
        }
        for k in 0..12 {
            let id = &ids[(h * 12 + k) % ids.len()];
            let answer = if k % 3 == 0 {
                invoke!(
                    rotate_secret,
                    app,
                    Call::post("/x")
                        .bearer(&app.owner)
                        .id(id)
                        .json(json!({"grace_period_seconds": 600}))
                )
            } else {
                invoke!(
                    update_endpoint,
                    app,
                    Call::new(lambda_http::http::Method::PATCH, "/x")
                        .bearer(&app.owner)
                        .id(id)
                        .json(json!({"description": format!("hour {h}")}))
                )
            };
            assert_eq!(answer.status, 200, "hour {h}, {id}: {}", answer.body);
            writes += 1;
        }
        let summary = app.sweep(&format!("day-{h}")).await;
        assert!(
            summary.complete && summary.failed == 0,
            "hour {h}: {summary:?}"
        );
        swept += summary.rotated;
    }
    assert_eq!(writes, 360);
    assert!(
        swept >= quiet.len(),
        "the sweep rotated what fell due: {swept}"
    );
    ids.extend(quiet);
    let keyrings = keyrings_of(&app, "acme").await.len();
    assert!(
        keyrings > 1,
        "the busy tenant's writes spread over {keyrings} keyrings"
    );
    if let Some(proxy) = &proxy {
        let refused = proxy.stats().strict(StrictOutcome::VersionQuota);
        assert_eq!(refused, 0, "versions refused by the store");
        let busiest = futures::future::join_all(
            keyrings_of(&app, "acme")
                .await
                .iter()
                .map(async |(name, _)| proxy.versions_counted(name.as_str())),
        )
        .await;
        eprintln!(
            "stated day: {writes} interactive writes, {} creates, {swept} sweep rotations, {keyrings} keyrings, at most {} versions in a keyring's last 24 hours",
            ids.len(),
            busiest.iter().max().unwrap_or(&0)
        );
    }
    for id in &ids {
        let stored = app
            .app
            .endpoints
            .get_endpoint(&acme(), &EndpointId::parse(id).unwrap())
            .await
            .unwrap();
        assert!(stored.record.secret.created_at > app.clock.now() - chrono::Duration::days(1));
    }
}

/// An app for a simulated day. On Secrets Manager its store talks to moto through a strict
/// proxy of its own, whose version window the test moves with its clock (the run's shared
/// proxy counts versions in real time, where the whole day takes a minute).
async fn day_app(backend: Backend) -> (Option<ThrottleProxy>, TestApp) {
    let start = chrono::Utc::now();
    if backend.store != integration_tests::Store::SecretsManager {
        return (None, TestApp::starting_at(backend, start).await);
    }
    integration_tests::require_emulator();
    let moto = std::env::var("MOTO_ENDPOINT_URL")
        .expect("MOTO_ENDPOINT_URL: the moto server itself (scripts/test.sh sets it)");
    let proxy = ThrottleProxy::start_with(&moto, Quotas::unlimited(), Strictness::aws()).await;
    let client = integration_tests::sdk_client(&proxy.url(), Default::default()).await;
    let store: Arc<dyn webhook_secrets::store::SecretStore> =
        Arc::new(webhook_secrets::store::secrets_manager::SecretsManagerStore::new(client));
    let app = TestApp::with_store(backend, start, move |_| store).await;
    (Some(proxy), app)
}

/// One tenant rotating one endpoint without pause spends its keyring's day of writes and then
/// gets 429 with the wait in Retry-After; a neighbour tenant, in its own keyring, is never
/// refused, and nothing reaches a caller as the store's own quota error.
async fn an_abusive_tenant_gets_429_and_its_neighbours_do_not(backend: Backend) {
    let app = TestApp::starting_at(backend, chrono::Utc::now()).await;
    let abuser = app.mint("abuser", Role::Owner).await;
    let created = invoke!(
        create_endpoint,
        app,
        Call::post("/x")
            .bearer(&abuser)
            .json(json!({"id": "spam", "url": "https://example.com/hook"}))
    );
    assert_eq!(created.status, 201, "{}", created.body);
    app.create(json!({"id": "calm", "url": "https://example.com/hook"}))
        .await;
    let rotate_spam = || {
        Call::post("/x")
            .bearer(&abuser)
            .id("spam")
            .json(json!({"grace_period_seconds": 0}))
    };
    let mut accepted = 0;
    let refused = loop {
        let answer = invoke!(rotate_secret, app, rotate_spam());
        if answer.status != 200 {
            break answer;
        }
        accepted += 1;
        assert!(accepted < WRITE_BUDGET, "never refused");
        // The neighbour keeps working throughout.
        if accepted % 10 == 0 {
            let calm = invoke!(
                rotate_secret,
                app,
                Call::post("/x").bearer(&app.owner).id("calm")
            );
            assert_eq!(calm.status, 200, "{}", calm.body);
        }
    };
    // The create was the keyring's first write.
    assert_eq!(accepted, WRITE_BUDGET - 1);
    assert_error(&refused, 429, "version_quota_exceeded");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("keyring"), "{message}");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    // Nothing changed for the refused endpoint; the neighbour still rotates and signs.
    let calm = invoke!(
        rotate_secret,
        app,
        Call::post("/x").bearer(&app.owner).id("calm")
    );
    assert_eq!(calm.status, 200, "{}", calm.body);
    app.sign("calm", "{}", None).await;
    // A day later the abuser's budget has room again.
    app.clock
        .advance(chrono::Duration::seconds(retry_after as i64 + 1));
    let later = invoke!(rotate_secret, app, rotate_spam());
    if backend.store == integration_tests::Store::Embedded {
        // The embedded store dates versions by the same clock; the emulator by the real one.
        assert_eq!(later.status, 200, "{}", later.body);
    }
}

/// Secrets Manager's rotation protocol on a keyring rotates every endpoint in it, each with
/// its policy's grace period (or the default), leaves account secrets alone, and refuses to
/// finish if any endpoint of the keyring was written after `createSecret`.
async fn the_rotation_protocol_rotates_a_whole_keyring(backend: Backend) {
    let app = TestApp::new(backend).await;
    let a = app
        .create(json!({
            "id": "proto-a", "url": "https://example.com/hook",
            "rotation_policy": {"period_days": 30, "grace_period_seconds": 600},
        }))
        .await;
    let b = app
        .create(json!({"id": "proto-b", "url": "https://example.com/hook"}))
        .await;
    let account = integration_tests::answer(
        webhook_secrets::compat::openformat::generate_webhook_secret(
            &app.app,
            Call::post("/v1/webhook/secret")
                .header("x-api-key", &app.owner)
                .build(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(account.status, 200, "{}", account.body);
    let keyring = app.holder("proto-a").await;
    assert_eq!(keyring, app.holder("proto-b").await, "one keyring");
    let token = uuid::Uuid::new_v4().to_string();
    let step = |step: Step| RotationEvent {
        step,
        secret_id: keyring.to_string(),
        client_request_token: token.clone(),
    };
    for s in [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ] {
        rotation_step(&app.app.endpoints, &step(s)).await.unwrap();
    }
    let now = app.clock.now();
    for (id, created, grace) in [("proto-a", &a, 600), ("proto-b", &b, 86_400)] {
        let stored = app
            .app
            .endpoints
            .get_endpoint(&acme(), &EndpointId::parse(id).unwrap())
            .await
            .unwrap()
            .record;
        assert_eq!(stored.secret.version_id.as_str(), token, "{id}");
        let previous = &stored.previous_secrets[0];
        assert_eq!(
            previous.version_id.as_str(),
            created["secret"]["version_id"].as_str().unwrap()
        );
        assert_eq!(
            previous.expires_at,
            Some(now + chrono::Duration::seconds(grace)),
            "{id}"
        );
    }
    let account_now = app
        .app
        .endpoints
        .get_endpoint(&acme(), &EndpointId::parse("_account-uuid").unwrap())
        .await
        .unwrap()
        .record;
    assert_eq!(
        account_now.secret.value.expose(),
        account.body["webhook_secret"].as_str().unwrap(),
        "account secrets change only through their own contracts"
    );
    assert_eq!(app.store.stages(&keyring).await.unwrap().pending, None);

    // A write to any endpoint of the keyring between createSecret and finishSecret makes the
    // staged keyring stale: finishing would undo it.
    let token = uuid::Uuid::new_v4().to_string();
    let step = |step: Step| RotationEvent {
        step,
        secret_id: keyring.to_string(),
        client_request_token: token.clone(),
    };
    rotation_step(&app.app.endpoints, &step(Step::CreateSecret))
        .await
        .unwrap();
    let patched = invoke!(
        update_endpoint,
        app,
        Call::new(lambda_http::http::Method::PATCH, "/x")
            .bearer(&app.owner)
            .id("proto-b")
            .json(json!({"name": "renamed"}))
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    let finish = rotation_step(&app.app.endpoints, &step(Step::FinishSecret)).await;
    assert!(matches!(finish, Err(ProtocolError::Stale(_))), "{finish:?}");
    assert_eq!(app.store.stages(&keyring).await.unwrap().pending, None);
    let b_now = app
        .app
        .endpoints
        .get_endpoint(&acme(), &EndpointId::parse("proto-b").unwrap())
        .await
        .unwrap()
        .record;
    assert_eq!(b_now.endpoint.name, "renamed");
    assert_ne!(b_now.secret.version_id.as_str(), token);

    // An endpoint's own name is not a keyring: refused, whatever the step.
    let per_endpoint_name = RotationEvent {
        step: Step::CreateSecret,
        secret_id: format!("{}/acme/proto-a", app.prefix),
        client_request_token: token.clone(),
    };
    assert!(matches!(
        rotation_step(&app.app.endpoints, &per_endpoint_name).await,
        Err(ProtocolError::NotAnEndpoint(..))
    ));
}

/// A record of tenant `tenant`, as another layout or a migration source holds it.
fn record(tenant: &TenantId, id: &str) -> webhook_secrets::domain::endpoint::EndpointRecord {
    use webhook_secrets::domain::endpoint::{Endpoint, EndpointRecord, SecretVersion};
    let now = chrono::Utc::now();
    EndpointRecord {
        schema: webhook_secrets::domain::endpoint::RECORD_SCHEMA,
        endpoint: Endpoint {
            id: EndpointId::parse(id).unwrap(),
            tenant: tenant.clone(),
            url: format!("https://example.com/hooks/{id}"),
            name: id.to_owned(),
            description: String::new(),
            topics: vec!["order.created".into()],
            created_at: now,
            updated_at: now,
            status: Default::default(),
            request_config: Default::default(),
            version: "1.0".into(),
            rotation_policy: None,
        },
        secret: SecretVersion {
            version_id: webhook_secrets::domain::ids::VersionId::generate(),
            value: webhook_secrets::domain::secret::WebhookSecret::generate(Default::default())
                .unwrap(),
            created_at: now,
            replaces: None,
            expires_at: None,
        },
        previous_secrets: Vec::new(),
        keyed_writes: Vec::new(),
    }
}

/// A bulk import (the migration's path) packs a tenant's endpoints many to a write, into
/// keyrings each under the split size; a re-run finds them all and writes nothing.
async fn an_import_packs_keyrings_and_a_rerun_writes_nothing(backend: Backend) {
    let app = TestApp::new(backend).await;
    let Endpoints::Keyrings(keyrings) = app.app.endpoints.as_ref() else {
        panic!("a keyrings app");
    };
    let tenant = TenantId::parse("bulk").unwrap();
    let records: Vec<_> = (0..400)
        .map(|i| record(&tenant, &format!("imp-{i:03}")))
        .collect();
    let first = keyrings.import(&tenant, records.clone()).await.unwrap();
    assert_eq!((first.added, first.present), (400, 0), "{first:?}");
    let stored = keyrings_of(&app, "bulk").await;
    let bytes: usize = stored.iter().map(|(_, b)| b).sum();
    assert!(stored.iter().all(|(_, b)| *b <= SPLIT_BYTES), "{stored:?}");
    // Packed: no more keyrings than twice what the bytes need.
    assert!(
        stored.len() <= 2 * bytes.div_ceil(SPLIT_BYTES),
        "{} keyrings for {bytes} bytes",
        stored.len()
    );
    assert!(first.writes < 400 / 4, "{first:?}");
    for record in &records {
        let read = app
            .app
            .endpoints
            .get_endpoint(&tenant, &record.endpoint.id)
            .await
            .unwrap();
        assert_eq!(
            read.record.secret.value.expose(),
            record.secret.value.expose()
        );
    }
    let again = keyrings.import(&tenant, records).await.unwrap();
    assert_eq!(
        (again.added, again.present, again.writes),
        (0, 400, 0),
        "{again:?}"
    );
}

on_both_stores!(
    keyrings: full_keyrings_split_and_every_endpoint_stays_reachable,
    a_deployment_migrates_to_keyrings,
    a_deployment_migrates_back_to_one_secret_per_endpoint,
    an_import_packs_keyrings_and_a_rerun_writes_nothing,
    a_stated_day_with_the_sweep_fits_the_version_budget,
    an_abusive_tenant_gets_429_and_its_neighbours_do_not,
    the_rotation_protocol_rotates_a_whole_keyring,
);

/// Fails the `n`th compare-and-swap from now with `Unavailable`, as a migration interrupted
/// mid-write would see.
#[derive(Default)]
struct FailNth(std::sync::atomic::AtomicI64);

#[async_trait::async_trait]
impl integration_tests::interposed::BeforeReplace for FailNth {
    async fn before_replace(
        &self,
        _: &dyn webhook_secrets::store::SecretStore,
        _: &SecretName,
        _: &webhook_secrets::domain::ids::VersionId,
        _: &webhook_secrets::store::StoredValue,
    ) -> Result<(), webhook_secrets::store::StoreError> {
        if self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            return Err(webhook_secrets::store::StoreError::Unavailable(
                "injected: the migration is interrupted".into(),
            ));
        }
        Ok(())
    }
}

/// What each endpoint signs one message to, with every secret it holds valid.
async fn signatures(app: &TestApp, tenants: &[(&str, Vec<String>)]) -> Vec<String> {
    let mut all = Vec::new();
    for (tenant, ids) in tenants {
        for id in ids {
            let record = app
                .app
                .endpoints
                .get_endpoint(
                    &TenantId::parse(tenant).unwrap(),
                    &EndpointId::parse(id).unwrap(),
                )
                .await
                .unwrap()
                .record;
            let now = app.clock.now();
            let signed: Vec<String> = record
                .valid_secrets(now)
                .iter()
                .map(|s| {
                    webhook_secrets::domain::signature::sign(&[s], "msg_check", 1, b"{}").signature
                })
                .collect();
            all.push(format!("{tenant}/{id}: {}", signed.join(" ")));
        }
    }
    all
}

/// A deployment moves from one secret per endpoint to keyrings: a dry run writes nothing; an
/// interrupted copy resumes; an endpoint written on the old layout after its copy is copied
/// again; the deployment on keyrings then signs exactly as before with every secret (current
/// and in grace); the finishing pass deletes every endpoint's own secret and a re-run finds
/// nothing left.
async fn a_deployment_migrates_to_keyrings(backend: Backend) {
    let (old, interposed) = interruptible(backend.per_endpoint()).await;
    let big = old.mint("big", Role::Owner).await;
    let mut tenants: Vec<(&str, Vec<String>)> = vec![("acme", Vec::new()), ("big", Vec::new())];
    for i in 0..6 {
        let id = format!("small-{i}");
        old.create(json!({"id": id, "url": "https://example.com/hook"}))
            .await;
        tenants[0].1.push(id);
    }
    for i in 0..120 {
        let id = format!("big-{i:03}");
        let created = invoke!(
            create_endpoint,
            old,
            Call::post("/x").bearer(&big).json(json!({
                "id": id, "url": format!("https://example.com/{}", "p".repeat(200)),
                "topics": ["order.created", "order.paid", "invoice.sent"],
            }))
        );
        assert_eq!(created.status, 201, "{}", created.body);
        tenants[1].1.push(id);
    }
    // Some endpoints hold an older secret in its grace period.
    for id in ["small-0", "small-1"] {
        let rotated = invoke!(
            rotate_secret,
            old,
            Call::post("/x")
                .bearer(&old.owner)
                .id(id)
                .json(json!({"grace_period_seconds": 3600}))
        );
        assert_eq!(rotated.status, 200, "{}", rotated.body);
    }
    let before = signatures(&old, &tenants).await;

    let dry = migrate_to_keyrings(&old, false, true).await.unwrap();
    assert_eq!(
        (dry.endpoints, dry.copied, dry.tenants),
        (126, 126, 2),
        "{dry:?}"
    );
    assert!(
        keyrings_of(&old, "big").await.is_empty(),
        "a dry run writes nothing"
    );

    // Interrupted at its third swap (the big tenant's keyrings split as they fill).
    interposed
        .hook
        .0
        .store(3, std::sync::atomic::Ordering::SeqCst);
    assert!(migrate_to_keyrings(&old, false, false).await.is_err());
    let resumed = migrate_to_keyrings(&old, false, false).await.unwrap();
    assert!(resumed.problems.is_empty(), "{resumed:?}");
    assert_eq!(resumed.verified, 126, "{resumed:?}");
    assert!(resumed.already > 0 && resumed.copied > 0, "{resumed:?}");

    // The deployment still runs on its own secrets, and lists exactly its endpoints beside
    // the keyrings now holding their copies.
    let listed = invoke!(
        list_endpoints,
        old,
        Call::get("/x").bearer(&old.owner).query("limit", "100")
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        6,
        "{}",
        listed.body
    );
    // A rotation there is copied again.
    let rotated = invoke!(
        rotate_secret,
        old,
        Call::post("/x").bearer(&old.owner).id("small-2")
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let before = {
        let mut before = before;
        let now = signatures(&old, &tenants).await;
        before[2] = now[2].clone();
        before
    };
    let again = migrate_to_keyrings(&old, false, false).await.unwrap();
    assert_eq!(
        (again.copied, again.already, again.verified),
        (1, 125, 126),
        "{again:?}"
    );
    // A delete on the old layout whose second step (removing the keyring copy) fails answers
    // an error; its retry answers 404 and still removes the copy.
    interposed
        .hook
        .0
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let failed = invoke!(
        delete_endpoint,
        old,
        Call::delete("/x").bearer(&old.owner).id("small-5")
    );
    assert_error(&failed, 503, "unavailable");
    let retried = invoke!(
        delete_endpoint,
        old,
        Call::delete("/x").bearer(&old.owner).id("small-5")
    );
    assert_error(&retried, 404, "not_found");
    tenants[0].1.retain(|id| id != "small-5");
    let before: Vec<String> = before
        .into_iter()
        .filter(|line| !line.starts_with("acme/small-5:"))
        .collect();

    // The deployment switches to keyrings and signs as before with every valid secret.
    let switched = switch(old, webhook_secrets::vault::VaultLayout::Keyrings);
    assert_eq!(signatures(&switched, &tenants).await, before);
    let deleted = invoke!(
        get_endpoint,
        switched,
        Call::get("/x").bearer(&switched.owner).id("small-5")
    );
    assert_error(&deleted, 404, "not_found");
    // A delete on keyrings also deletes the endpoint's own secret, so the finishing pass
    // cannot bring it back.
    let gone = invoke!(
        delete_endpoint,
        switched,
        Call::delete("/x").bearer(&big).id("big-119")
    );
    assert_eq!(gone.status, 204, "{}", gone.body);
    tenants[1].1.pop();
    let before = before[..before.len() - 1].to_vec();
    let finished = migrate_to_keyrings(&switched, true, false).await.unwrap();
    assert_eq!(
        (finished.verified, finished.deleted),
        (124, 124),
        "{finished:?}"
    );
    assert_eq!(signatures(&switched, &tenants).await, before);
    let deleted = invoke!(
        get_endpoint,
        switched,
        Call::get("/x").bearer(&big).id("big-119")
    );
    assert_error(&deleted, 404, "not_found");
    let rerun = migrate_to_keyrings(&switched, true, false).await.unwrap();
    assert_eq!(rerun.endpoints, 0, "{rerun:?}");
}

/// And back: a deployment on keyrings moves to one secret per endpoint. A dry run writes
/// nothing; the copy pass verifies every endpoint; a rotation on keyrings after its copy is
/// copied again (by a pass interrupted mid-write and resumed); a delete on either layout is never undone by a later pass; the deployment on
/// its own secrets signs as before, and a rotation there is kept by the finishing pass, which
/// deletes the keyrings.
async fn a_deployment_migrates_back_to_one_secret_per_endpoint(backend: Backend) {
    let (old, interposed) = interruptible(backend.keyrings()).await;
    let big = old.mint("big", Role::Owner).await;
    let mut tenants: Vec<(&str, Vec<String>)> = vec![("acme", Vec::new()), ("big", Vec::new())];
    for i in 0..4 {
        let id = format!("small-{i}");
        old.create(json!({"id": id, "url": "https://example.com/hook", "rotation_policy": {"period_days": 30}}))
            .await;
        tenants[0].1.push(id);
    }
    for i in 0..150 {
        let id = format!("big-{i:03}");
        let created = invoke!(
            create_endpoint,
            old,
            Call::post("/x").bearer(&big).json(json!({
                "id": id, "url": format!("https://example.com/{}", "p".repeat(300)),
            }))
        );
        assert_eq!(created.status, 201, "{}", created.body);
        tenants[1].1.push(id);
    }
    let keyrings = keyrings_of(&old, "big").await.len() + keyrings_of(&old, "acme").await.len();
    assert!(keyrings > 2, "the big tenant's keyrings split: {keyrings}");
    let rotated = invoke!(
        rotate_secret,
        old,
        Call::post("/x")
            .bearer(&old.owner)
            .id("small-0")
            .json(json!({"grace_period_seconds": 3600}))
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let dry = migrate_back(&old, false, true).await.unwrap();
    assert_eq!(
        (dry.endpoints, dry.copied, dry.tenants),
        (154, 154, 2),
        "{dry:?}"
    );
    assert_eq!(
        own_secrets(&old, &tenants).await,
        0,
        "a dry run writes nothing"
    );

    let copied = migrate_back(&old, false, false).await.unwrap();
    assert!(copied.problems.is_empty(), "{copied:?}");
    assert_eq!((copied.copied, copied.verified), (154, 154), "{copied:?}");
    assert_eq!(own_secrets(&old, &tenants).await, 154);

    // The deployment still runs on keyrings: a rotation there is copied again, and a delete
    // there deletes the copy too.
    let rotated = invoke!(
        rotate_secret,
        old,
        Call::post("/x").bearer(&old.owner).id("small-1")
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let gone = invoke!(
        delete_endpoint,
        old,
        Call::delete("/x").bearer(&big).id("big-149")
    );
    assert_eq!(gone.status, 204, "{}", gone.body);
    tenants[1].1.pop();
    assert_eq!(own_secrets(&old, &tenants).await, 153);
    // A copy whose policy tags were lost (a pass interrupted between its record and its tags)
    // gets them back from the next pass, or the per-endpoint sweep would never select it.
    let small3 = SecretName::parse(&format!("{}/acme/small-3", old.prefix)).unwrap();
    let policy_tags = [
        ROTATION_PERIOD_TAG.to_owned(),
        ROTATION_GRACE_TAG.to_owned(),
    ];
    old.store
        .set_tags(&small3, &[], &policy_tags)
        .await
        .unwrap();
    // Interrupted as it writes the fresh copy (a compare-and-swap of the own secret), then
    // resumed.
    interposed
        .hook
        .0
        .store(1, std::sync::atomic::Ordering::SeqCst);
    assert!(migrate_back(&old, false, false).await.is_err());
    let again = migrate_back(&old, false, false).await.unwrap();
    assert_eq!(
        (again.endpoints, again.copied, again.already, again.verified),
        (153, 1, 152, 153),
        "{again:?}"
    );
    let listed = old
        .store
        .list(ListFilter::prefix(small3.as_str()), None, 10)
        .await
        .unwrap();
    assert_eq!(
        listed.secrets[0]
            .tags
            .get(ROTATION_PERIOD_TAG)
            .map(String::as_str),
        Some("30"),
        "{:?}",
        listed.secrets[0].tags
    );
    let before = signatures(&old, &tenants).await;

    // The deployment switches to one secret per endpoint and signs as before.
    let switched = switch(old, webhook_secrets::vault::VaultLayout::PerEndpoint);
    assert_eq!(signatures(&switched, &tenants).await, before);
    // Its sweep sees the policies the keyrings held.
    let policy = invoke!(
        get_endpoint,
        switched,
        Call::get("/x").bearer(&switched.owner).id("small-3")
    );
    assert_eq!(
        policy.body["rotation_policy"]["period_days"], 30,
        "{}",
        policy.body
    );
    // A rotation and a delete on the new layout: the finishing pass keeps the one and does
    // not undo the other.
    let rotated = invoke!(
        rotate_secret,
        switched,
        Call::post("/x").bearer(&switched.owner).id("small-2")
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let gone = invoke!(
        delete_endpoint,
        switched,
        Call::delete("/x").bearer(&big).id("big-148")
    );
    assert_eq!(gone.status, 204, "{}", gone.body);
    tenants[1].1.pop();
    let before = {
        let now = signatures(&switched, &tenants).await;
        let mut before = before[..before.len() - 1].to_vec();
        before[2] = now[2].clone();
        before
    };
    let finished = migrate_back(&switched, true, false).await.unwrap();
    assert!(finished.problems.is_empty(), "{finished:?}");
    assert_eq!(
        (finished.endpoints, finished.verified, finished.deleted),
        (152, 152, keyrings),
        "{finished:?}"
    );
    assert!(keyrings_of(&switched, "big").await.is_empty());
    assert!(keyrings_of(&switched, "acme").await.is_empty());
    assert_eq!(signatures(&switched, &tenants).await, before);
    for deleted in ["big-148", "big-149"] {
        let answer = invoke!(
            get_endpoint,
            switched,
            Call::get("/x").bearer(&big).id(deleted)
        );
        assert_error(&answer, 404, "not_found");
    }
    let rerun = migrate_back(&switched, true, false).await.unwrap();
    assert_eq!((rerun.tenants, rerun.endpoints), (0, 0), "{rerun:?}");
}

/// An app whose store fails the `n`th compare-and-swap once told `n`, to interrupt a
/// migration mid-write.
async fn interruptible(
    backend: Backend,
) -> (
    TestApp,
    Arc<integration_tests::interposed::Interposed<FailNth>>,
) {
    let failing = Arc::new(std::sync::Mutex::new(None));
    let hook = failing.clone();
    let app = TestApp::with_store(backend, chrono::Utc::now(), move |store| {
        let wrapped = integration_tests::interposed::Interposed::wrap(store, FailNth::default());
        *hook.lock().unwrap() = Some(wrapped.clone());
        wrapped as Arc<dyn webhook_secrets::store::SecretStore>
    })
    .await;
    let interposed = failing.lock().unwrap().clone().unwrap();
    (app, interposed)
}

/// The same deployment, store and keys, redeployed with `layout`.
fn switch(app: TestApp, layout: webhook_secrets::vault::VaultLayout) -> TestApp {
    let redeployed = webhook_secrets::App::with_audit(
        app.store.clone(),
        &app.prefix,
        layout,
        app.clock.clone(),
        chrono::Duration::seconds(60),
        app.audit.clone(),
    );
    TestApp {
        app: redeployed,
        ..app
    }
}

type Migrated = Result<MigrationReport, webhook_secrets::vault::VaultError>;

async fn migrate_to_keyrings(app: &TestApp, delete_old: bool, dry_run: bool) -> Migrated {
    let options = MigrationOptions {
        delete_old,
        dry_run,
    };
    migrate::to_keyrings(
        app.store.clone(),
        &app.prefix,
        app.clock.clone(),
        options,
        &|_, _| {},
    )
    .await
}

async fn migrate_back(app: &TestApp, delete_old: bool, dry_run: bool) -> Migrated {
    let options = MigrationOptions {
        delete_old,
        dry_run,
    };
    migrate::to_per_endpoint(
        app.store.clone(),
        &app.prefix,
        app.clock.clone(),
        options,
        &|_, _| {},
    )
    .await
}

/// How many of `tenants`' endpoints have their own secret.
async fn own_secrets(app: &TestApp, tenants: &[(&str, Vec<String>)]) -> usize {
    let mut found = 0;
    for (tenant, ids) in tenants {
        for id in ids {
            let name = SecretName::parse(&format!("{}/{tenant}/{id}", app.prefix)).unwrap();
            found += usize::from(app.store.read_current(&name).await.is_ok());
        }
    }
    found
}
