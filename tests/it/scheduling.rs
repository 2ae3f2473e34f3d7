//! Scheduled rotation on both backends: rotation policies through the API, the sweep with an
//! injected clock (day 30, not day 29; grace; untouched endpoints; overlapping sweeps;
//! pruning; abandoned pending versions; deadlines), and Secrets Manager's rotation protocol
//! replayed in and out of order.

use chrono::{Duration, Utc};
use integration_tests::{
    assert_error, invoke, on_every_backend, receiver_accepts, Backend, Call, TestApp,
};
use serde_json::{json, Value};
use std::time::Instant;
use webhook_secrets::domain::clock::Clock;
use webhook_secrets::domain::ids::{EndpointId, TenantId, VersionId};
use webhook_secrets::store::StoredValue;
use webhook_secrets::vault::protocol::{ProtocolError, RotationEvent, Step, StepOutcome};
use webhook_secrets::vault::sweep::{sweep, SweepSettings};
use webhook_secrets::vault::EndpointRepository;
use webhook_secrets::vault::StoredEndpoint;

/// Listing dates on the emulator come from the real clock, so these tests start the
/// injected clock at the real time and move it forward from there.
async fn app(backend: Backend) -> TestApp {
    TestApp::starting_at(backend, Utc::now()).await
}

fn settings() -> SweepSettings {
    SweepSettings {
        writes_per_second: 50.0,
        stop_margin: std::time::Duration::from_secs(1),
        ..SweepSettings::default()
    }
}

async fn scheduled(app: &TestApp, id: &str, period_days: u64, grace: u64) -> Value {
    app.create(json!({
        "id": id,
        "url": "https://example.com/hook",
        "rotation_policy": {"period_days": period_days, "grace_period_seconds": grace},
    }))
    .await
}

async fn stored(app: &TestApp, id: &str) -> StoredEndpoint {
    app.app
        .endpoints
        .get_endpoint(
            &TenantId::parse("acme").unwrap(),
            &EndpointId::parse(id).unwrap(),
        )
        .await
        .unwrap()
}

async fn patch(app: &TestApp, id: &str, body: Value) -> integration_tests::Answer {
    invoke!(
        update_endpoint,
        app,
        Call::new(lambda_http::http::Method::PATCH, "/x")
            .bearer(&app.owner)
            .id(id)
            .json(body)
    )
}

/// Whether a receiver holding only `secret` accepts what `/sign` produces now.
async fn verifies_with(app: &TestApp, id: &str, secret: &str) -> bool {
    let signed = app.sign(id, "{}", None).await;
    receiver_accepts(secret, &signed, "{}", app.clock.now())
}

async fn policies_are_set_shown_changed_and_removed(backend: Backend) {
    let app = app(backend).await;
    let created = scheduled(&app, "orders", 30, 3600).await;
    assert_eq!(
        created["rotation_policy"],
        json!({"period_days": 30, "grace_period_seconds": 3600})
    );
    let issued: chrono::DateTime<Utc> =
        serde_json::from_value(created["secret"]["created_at"].clone()).unwrap();
    let next: chrono::DateTime<Utc> =
        serde_json::from_value(created["next_rotation_at"].clone()).unwrap();
    assert_eq!(next - issued, Duration::days(30));

    let plain = app
        .create(json!({"id": "plain", "url": "https://example.com/hook"}))
        .await;
    assert_eq!(plain["rotation_policy"], Value::Null);
    assert_eq!(plain["next_rotation_at"], Value::Null);

    // The grace period defaults to a day; other fields stay as they were.
    let changed = patch(
        &app,
        "plain",
        json!({"rotation_policy": {"period_days": 7}, "name": "Plain"}),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        changed.body["rotation_policy"],
        json!({"period_days": 7, "grace_period_seconds": 86400})
    );
    assert_eq!(changed.body["name"], "Plain");
    assert_eq!(changed.body["url"], "https://example.com/hook");
    assert_eq!(
        changed.body["secret"]["version_id"],
        plain["secret"]["version_id"]
    );
    assert!(
        changed.body["secret"].get("value").is_none(),
        "PATCH never shows the secret"
    );

    let off = patch(&app, "orders", json!({"rotation_policy": null})).await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.body["rotation_policy"], Value::Null);
    assert_eq!(off.body["next_rotation_at"], Value::Null);
    let read = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.member).id("orders")
    );
    assert_eq!(read.body["rotation_policy"], Value::Null);

    for bad in [
        json!({"rotation_policy": {"period_days": 0}}),
        json!({"rotation_policy": {"period_days": 1001}}),
        json!({"rotation_policy": {"period_days": 30, "grace_period_seconds": 604801}}),
        json!({"rotation_policy": {"grace_period_seconds": 60}}),
        json!({"rotation_policy": {"period_days": 30, "extra": 1}}),
        json!({"url": "ftp://example.com"}),
        json!({"secret": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}),
    ] {
        let refused = patch(&app, "plain", bad.clone()).await;
        assert_error(&refused, 400, "invalid_request");
    }
    let missing = patch(&app, "nope", json!({"name": "x"})).await;
    assert_error(&missing, 404, "not_found");
    let member = invoke!(
        update_endpoint,
        app,
        Call::new(lambda_http::http::Method::PATCH, "/x")
            .bearer(&app.member)
            .id("plain")
            .json(json!({"name": "x"}))
    );
    assert_error(&member, 403, "forbidden");
    let audited = app.audit.records();
    assert!(audited
        .iter()
        .any(|r| r.action == "endpoint.update" && r.outcome == "success"));
}

/// The acceptance case: a 30-day policy rotates on day 30, not day 29; the old secret still
/// verifies until its grace ends; an endpoint without a policy is untouched.
async fn rotates_on_day_thirty_not_twenty_nine(backend: Backend) {
    let app = app(backend).await;
    let created = scheduled(&app, "orders", 30, 7200).await;
    let old_secret = created["secret"]["value"].as_str().unwrap().to_owned();
    let plain = app
        .create(json!({"id": "plain", "url": "https://example.com/hook"}))
        .await;
    let plain_before = stored(&app, "plain").await;

    app.clock.advance(Duration::days(29));
    let day29 = app.sweep("run-test").await;
    assert_eq!(
        (day29.scheduled, day29.due, day29.rotated),
        (1, 0, 0),
        "{day29:?}"
    );
    assert_eq!(
        stored(&app, "orders")
            .await
            .record
            .secret
            .version_id
            .as_str(),
        created["secret"]["version_id"].as_str().unwrap()
    );

    app.clock.advance(Duration::days(1));
    let day30 = app.sweep("run-test").await;
    assert_eq!(
        (day30.due, day30.rotated, day30.failed),
        (1, 1, 0),
        "{day30:?}"
    );
    assert!(day30.complete);
    let after = stored(&app, "orders").await;
    assert_eq!(
        after.record.secret.replaces.as_ref().map(|v| v.as_str()),
        created["secret"]["version_id"].as_str()
    );
    assert_eq!(after.record.secret.created_at, app.clock.now());
    let new_secret = after.record.secret.value.expose().to_owned();
    assert_ne!(new_secret, old_secret);
    let rotations = app
        .audit
        .records()
        .into_iter()
        .filter(|r| r.action == "secret.rotate" && r.trigger == Some("schedule"))
        .collect::<Vec<_>>();
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0].endpoint_id.as_deref(), Some("orders"));
    assert_eq!(rotations[0].outcome, "success");
    assert_eq!(rotations[0].request_id, "run-test");

    // Both secrets verify during the grace period; only the new one after it.
    assert!(verifies_with(&app, "orders", &old_secret).await);
    assert!(verifies_with(&app, "orders", &new_secret).await);
    app.clock.advance(Duration::seconds(7200));
    assert!(!verifies_with(&app, "orders", &old_secret).await);
    assert!(verifies_with(&app, "orders", &new_secret).await);

    // Not due again within the new period.
    let again = app.sweep("run-test").await;
    assert_eq!(again.rotated, 0, "{again:?}");

    let plain_after = stored(&app, "plain").await;
    assert_eq!(plain_after.record_version, plain_before.record_version);
    assert_eq!(
        plain_after.record.secret.version_id.as_str(),
        plain["secret"]["version_id"].as_str().unwrap()
    );
}

/// A metadata change writes a new version but must not restart the secret's age.
async fn updates_do_not_postpone_rotation(backend: Backend) {
    let app = app(backend).await;
    scheduled(&app, "orders", 30, 60).await;
    app.clock.advance(Duration::days(10));
    let changed = patch(&app, "orders", json!({"description": "changed on day 10"})).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    app.clock.advance(Duration::days(20));
    let summary = app.sweep("run-test").await;
    assert_eq!(summary.rotated, 1, "{summary:?}");
    assert_eq!(
        stored(&app, "orders").await.record.endpoint.description,
        "changed on day 10"
    );
}

/// Two sweeps at once rotate each due endpoint exactly once.
async fn overlapping_sweeps_rotate_each_endpoint_once(backend: Backend) {
    let app = app(backend).await;
    let count = 24;
    let mut originals = Vec::new();
    for i in 0..count {
        let created = scheduled(&app, &format!("ep-{i}"), 1, 3600).await;
        originals.push(created["secret"]["version_id"].as_str().unwrap().to_owned());
    }
    app.clock.advance(Duration::days(1));
    let (first, second) = tokio::join!(app.sweep("run-test"), app.sweep("run-test"));
    assert_eq!(
        first.rotated + second.rotated,
        count,
        "{first:?} {second:?}"
    );
    assert_eq!(first.failed + second.failed, 0);
    for (i, original) in originals.iter().enumerate() {
        let record = stored(&app, &format!("ep-{i}")).await.record;
        // One rotation: the current secret replaced the original, which is the only older
        // secret kept.
        assert_eq!(
            record.secret.replaces.as_ref().map(|v| v.as_str()),
            Some(original.as_str())
        );
        assert_eq!(record.previous_secrets.len(), 1);
        assert_eq!(record.previous_secrets[0].version_id.as_str(), original);
    }
    let rotations = app
        .audit
        .records()
        .into_iter()
        .filter(|r| r.action == "secret.rotate" && r.trigger == Some("schedule"))
        .count();
    assert_eq!(rotations, count);
}

/// Once the grace period is over the sweep removes the expired secret from the record, once.
async fn expired_secrets_are_pruned(backend: Backend) {
    let app = app(backend).await;
    scheduled(&app, "orders", 2, 3600).await;
    app.clock.advance(Duration::days(2));
    assert_eq!(app.sweep("run-test").await.rotated, 1);
    assert_eq!(
        stored(&app, "orders").await.record.previous_secrets.len(),
        1
    );
    app.clock.advance(Duration::minutes(30));
    let early = app.sweep("run-test").await;
    assert_eq!((early.pruned, early.rotated), (0, 0), "{early:?}");
    app.clock.advance(Duration::minutes(31));
    let pruned = app.sweep("run-test").await;
    assert_eq!((pruned.pruned, pruned.rotated), (1, 0), "{pruned:?}");
    let after = stored(&app, "orders").await;
    assert!(after.record.previous_secrets.is_empty());
    let again = app.sweep("run-test").await;
    assert_eq!(again.pruned, 0, "{again:?}");
    assert!(app
        .audit
        .records()
        .iter()
        .any(|r| r.action == "secret.prune" && r.outcome == "success"));
}

/// A version left pending by a writer that died mid-rotation is cleared by the next sweep
/// once it is clearly abandoned, and the record is untouched.
async fn abandoned_pending_versions_are_cleared(backend: Backend) {
    let app = app(backend).await;
    scheduled(&app, "orders", 30, 60).await;
    let before = stored(&app, "orders").await;
    let name = app.holder("orders").await;
    let abandoned = VersionId::generate();
    app.store
        .put_pending(&name, &abandoned, &StoredValue::new("{}".into()).unwrap())
        .await
        .unwrap();
    let fresh = app.sweep("run-test").await;
    assert_eq!(
        fresh.pending_cleared, 0,
        "a pending version in use is left alone"
    );
    app.clock.advance(Duration::hours(2));
    let summary = app.sweep("run-test").await;
    assert_eq!(summary.pending_cleared, 1, "{summary:?}");
    let stages = app.store.stages(&name).await.unwrap();
    assert_eq!(stages.pending, None);
    assert_eq!(stages.current.as_ref(), Some(&before.record_version));
}

/// A sweep that runs out of time stops starting writes before its deadline, says what it
/// left, and the next run rotates exactly what was left.
async fn a_sweep_out_of_time_leaves_the_rest_to_the_next_run(backend: Backend) {
    let app = app(backend).await;
    // Three tenants: on keyrings each is its own write, as each endpoint is on the other layout.
    let tenants = ["acme", "beta", "gamma"];
    for (i, tenant) in tenants.iter().enumerate() {
        let key = app.mint(tenant, webhook_secrets::auth::Role::Owner).await;
        let call = Call::post("/v1/endpoints").bearer(&key).json(json!({
            "id": format!("ep-{i}"),
            "url": "https://example.com/hook",
            "rotation_policy": {"period_days": 1, "grace_period_seconds": 60},
        }));
        let created = invoke!(create_endpoint, app, call);
        assert_eq!(created.status, 201, "{}", created.body);
    }
    app.clock.advance(Duration::days(1));
    // One rotation a second, and a deadline 2.5 s away with a quarter kept free: the first
    // rotation starts at once, the second after a second, the third would start after the
    // stop time.
    let slow = SweepSettings {
        writes_per_second: 2.0,
        ..settings()
    };
    let deadline = Instant::now() + std::time::Duration::from_millis(2500);
    let first = sweep(
        &app.app.endpoints,
        app.audit.as_ref(),
        "run-1",
        deadline,
        &slow,
    )
    .await
    .unwrap();
    assert!(
        Instant::now() <= deadline,
        "the sweep ran past its deadline"
    );
    assert!(first.rotated >= 1 && first.deferred >= 1, "{first:?}");
    assert_eq!(first.rotated + first.deferred, 3, "{first:?}");
    assert!(!first.complete);
    let next = app.sweep("run-test").await;
    assert_eq!(
        (next.due, next.rotated),
        (first.deferred, first.deferred),
        "{next:?}"
    );
    assert!(next.complete);
    for (i, tenant) in tenants.iter().enumerate() {
        let record = app
            .app
            .endpoints
            .get_endpoint(
                &TenantId::parse(tenant).unwrap(),
                &EndpointId::parse(&format!("ep-{i}")).unwrap(),
            )
            .await
            .unwrap()
            .record;
        assert_eq!(record.previous_secrets.len(), 1, "ep-{i} rotated once");
    }
}

fn event(app: &TestApp, step: Step, id: &str, token: &str, as_arn: bool) -> RotationEvent {
    let name = format!("{}/acme/{id}", app.prefix);
    RotationEvent {
        step,
        secret_id: if as_arn {
            format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbC12x")
        } else {
            name
        },
        client_request_token: token.to_owned(),
    }
}

/// Labels as Secrets Manager itself reports them, not as the store summarises them.
async fn raw_labels(app: &TestApp, id: &str) -> Option<Vec<(String, Vec<String>)>> {
    if app.backend != Backend::SecretsManager {
        return None;
    }
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let described = client
        .describe_secret()
        .secret_id(format!("{}/acme/{id}", app.prefix))
        .send()
        .await
        .unwrap();
    Some(
        described
            .version_ids_to_stages()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// After a rotation by the protocol: exactly one current version (the token's), nothing
/// pending apart from it, and the replaced secret valid for the endpoint's grace.
async fn assert_rotated_by_protocol(app: &TestApp, id: &str, token: &str, old: &Value, grace: i64) {
    let after = stored(app, id).await;
    assert_eq!(after.record_version.as_str(), token);
    assert_eq!(after.record.secret.version_id.as_str(), token);
    let previous = &after.record.previous_secrets;
    assert_eq!(previous.len(), 1, "{previous:?}");
    assert_eq!(
        previous[0].version_id.as_str(),
        old["version_id"].as_str().unwrap()
    );
    let expires = previous[0].expires_at.unwrap();
    assert!(expires > app.clock.now() && expires <= app.clock.now() + Duration::seconds(grace));
    let name = app.secret_name(id);
    let stages = app.store.stages(&name).await.unwrap();
    assert_eq!(stages.current.as_ref().map(|v| v.as_str()), Some(token));
    assert_eq!(stages.pending, None);
    if let Some(labels) = raw_labels(app, id).await {
        let current: Vec<_> = labels
            .iter()
            .filter(|(_, l)| l.iter().any(|l| l == "AWSCURRENT"))
            .collect();
        assert_eq!(current.len(), 1, "{labels:?}");
        assert_eq!(current[0].0, token);
        for (version, l) in &labels {
            if l.iter().any(|l| l == "AWSPENDING") {
                assert_eq!(
                    version, token,
                    "AWSPENDING dangles on {version}: {labels:?}"
                );
            }
        }
    }
    let old_secret = old["value"].as_str().unwrap();
    assert!(verifies_with(app, id, old_secret).await);
    assert!(verifies_with(app, id, after.record.secret.value.expose()).await);
}

async fn rotation_protocol_replayed_in_any_order(backend: Backend) {
    use Step::{CreateSecret as C, FinishSecret as F, SetSecret as S, TestSecret as T};
    let app = app(backend).await;
    let scenarios: [&[Step]; 4] = [
        &[C, S, T, F],
        &[C, C, S, S, T, T, F, F],
        &[F, T, S, C, F, S, T, C],
        &[C, F, C, S, T, F],
    ];
    for (n, steps) in scenarios.iter().enumerate() {
        let id = format!("proto-{n}");
        let created = scheduled(&app, &id, 30, 3600).await;
        let old = created["secret"].clone();
        let token = uuid::Uuid::new_v4().to_string();
        let mut finished = false;
        for (i, step) in steps.iter().enumerate() {
            let outcome = webhook_secrets::vault::protocol::rotation_step(
                &app.app.endpoints,
                &event(&app, *step, &id, &token, i % 2 == 0),
            )
            .await;
            match (step, finished, &outcome) {
                (_, true, Ok(StepOutcome::AlreadyDone)) => {}
                (Step::FinishSecret, false, Ok(StepOutcome::Finished)) => finished = true,
                (
                    Step::CreateSecret,
                    false,
                    Ok(StepOutcome::Created | StepOutcome::AlreadyDone),
                ) => {}
                (Step::SetSecret | Step::TestSecret, false, Ok(StepOutcome::Checked)) => {}
                // Before createSecret there is nothing to set, test or finish, and nothing
                // is written.
                (_, false, Err(ProtocolError::NoPendingVersion(_))) => {
                    assert_eq!(
                        stored(&app, &id).await.record_version.as_str(),
                        old["version_id"].as_str().unwrap()
                    );
                }
                other => panic!("scenario {n}, step {i}: unexpected {other:?}"),
            }
        }
        assert!(finished, "scenario {n} never finished");
        assert_rotated_by_protocol(&app, &id, &token, &old, 3600).await;
    }
}

/// If the endpoint changes between createSecret and finishSecret, finishing would undo the
/// change: it is refused and the stale pending version does not dangle.
async fn rotation_protocol_refuses_a_stale_pending_version(backend: Backend) {
    let app = app(backend).await;
    scheduled(&app, "orders", 30, 3600).await;
    let token = uuid::Uuid::new_v4().to_string();
    let created = webhook_secrets::vault::protocol::rotation_step(
        &app.app.endpoints,
        &event(&app, Step::CreateSecret, "orders", &token, true),
    )
    .await
    .unwrap();
    assert_eq!(created, StepOutcome::Created);
    let rotated = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("orders")
            .json(json!({}))
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let finish = webhook_secrets::vault::protocol::rotation_step(
        &app.app.endpoints,
        &event(&app, Step::FinishSecret, "orders", &token, true),
    )
    .await;
    assert!(matches!(finish, Err(ProtocolError::Stale(_))), "{finish:?}");
    let after = stored(&app, "orders").await;
    assert_eq!(
        after.record.secret.version_id.as_str(),
        rotated.body["secret"]["version_id"].as_str().unwrap()
    );
    let name = app.secret_name("orders");
    assert_eq!(app.store.stages(&name).await.unwrap().pending, None);

    // Secrets that are not endpoints' are refused, whatever the step.
    let foreign = RotationEvent {
        step: Step::CreateSecret,
        secret_id: "arn:aws:secretsmanager:us-east-1:123456789012:secret:other/app-secret-AbC12x"
            .into(),
        client_request_token: token.clone(),
    };
    assert!(matches!(
        webhook_secrets::vault::protocol::rotation_step(&app.app.endpoints, &foreign).await,
        Err(ProtocolError::NotAnEndpoint(..))
    ));
    let bad_token = event(&app, Step::CreateSecret, "orders", "short", false);
    assert!(matches!(
        webhook_secrets::vault::protocol::rotation_step(&app.app.endpoints, &bad_token).await,
        Err(ProtocolError::BadToken(..))
    ));
    let missing = event(&app, Step::CreateSecret, "missing", &token, false);
    assert!(matches!(
        webhook_secrets::vault::protocol::rotation_step(&app.app.endpoints, &missing).await,
        Err(ProtocolError::Vault(
            webhook_secrets::vault::VaultError::Store(webhook_secrets::store::StoreError::NotFound)
        ))
    ));
    // Account-level secrets change only through their own contracts: the protocol, which
    // would keep the old secret valid for a grace period, refuses them and writes nothing.
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
    let before = app
        .store
        .stages(&app.secret_name("_account-uuid"))
        .await
        .unwrap();
    for step in [Step::CreateSecret, Step::FinishSecret] {
        assert!(matches!(
            webhook_secrets::vault::protocol::rotation_step(
                &app.app.endpoints,
                &event(&app, step, "_account-uuid", &token, true)
            )
            .await,
            Err(ProtocolError::NotAnEndpoint(..))
        ));
    }
    let after = app
        .store
        .stages(&app.secret_name("_account-uuid"))
        .await
        .unwrap();
    assert_eq!(after, before);
}

/// A rotation by the protocol counts as a rotation for the schedule: its version carries no
/// stamp, so the sweep dates it by the secret's last change.
async fn protocol_rotations_restart_the_schedule(backend: Backend) {
    let app = app(backend).await;
    scheduled(&app, "orders", 1, 60).await;
    let token = uuid::Uuid::new_v4().to_string();
    for step in [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ] {
        webhook_secrets::vault::protocol::rotation_step(
            &app.app.endpoints,
            &event(&app, step, "orders", &token, false),
        )
        .await
        .unwrap();
    }
    let summary = app.sweep("run-test").await;
    assert_eq!((summary.due, summary.rotated), (0, 0), "{summary:?}");
    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    let summary = app.sweep("run-test").await;
    assert_eq!(summary.rotated, 1, "{summary:?}");
}

#[test]
fn sweep_settings_come_from_the_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let defaults = SweepSettings::from_lookup(env(&[])).unwrap();
    assert_eq!(defaults, SweepSettings::default());
    assert!(
        defaults.writes_per_second < 50.0,
        "the default leaves room for interactive writes"
    );
    let set = SweepSettings::from_lookup(env(&[
        ("SWEEP_WRITES_PER_SECOND", "50"),
        ("SWEEP_CONCURRENCY", "4"),
        ("SWEEP_STOP_MARGIN_SECONDS", "20"),
    ]))
    .unwrap();
    assert_eq!(set.writes_per_second, 50.0);
    assert_eq!(set.concurrency, 4);
    assert_eq!(set.stop_margin, std::time::Duration::from_secs(20));
    for bad in [
        &[("SWEEP_WRITES_PER_SECOND", "51")][..],
        &[("SWEEP_WRITES_PER_SECOND", "0")][..],
        &[("SWEEP_CONCURRENCY", "many")][..],
    ] {
        let err = SweepSettings::from_lookup(env(bad)).unwrap_err();
        assert!(err.to_string().contains(bad[0].0), "{err}");
    }
}

on_every_backend!(
    policies_are_set_shown_changed_and_removed,
    rotates_on_day_thirty_not_twenty_nine,
    updates_do_not_postpone_rotation,
    overlapping_sweeps_rotate_each_endpoint_once,
    expired_secrets_are_pruned,
    abandoned_pending_versions_are_cleared,
    a_sweep_out_of_time_leaves_the_rest_to_the_next_run,
);

// Secrets Manager's rotation protocol on an endpoint's own secret.
integration_tests::on_both_stores!(
    per_endpoint: rotation_protocol_replayed_in_any_order,
    rotation_protocol_refuses_a_stale_pending_version,
    protocol_rotations_restart_the_schedule,
);

/// Through a proxy enforcing a write quota below the sweep's budget, the sweep is throttled,
/// backs off, and still rotates every due endpoint exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_sweep_misses_nothing() {
    use integration_tests::throttle::{QuotaGroup, Quotas, ThrottleProxy};
    use webhook_secrets::store::secrets_manager::{ClientSettings, SecretsManagerStore};
    integration_tests::require_emulator();
    let app = app(Backend::SecretsManager).await;
    let count = 20;
    for i in 0..count {
        scheduled(&app, &format!("ep-{i}"), 1, 3600).await;
    }
    app.clock.advance(Duration::days(1));
    let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let proxy = ThrottleProxy::start(&moto, Quotas::aws().with_writes_per_second(10)).await;
    let store = SecretsManagerStore::new(
        integration_tests::sdk_client(&proxy.url(), ClientSettings::default()).await,
    );
    let vault = webhook_secrets::vault::Endpoints::new(
        app.backend.layout,
        std::sync::Arc::new(store),
        &app.prefix,
        app.clock.clone(),
    );
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    let summary = sweep(
        &vault,
        app.audit.as_ref(),
        "run-throttled",
        deadline,
        &settings(),
    )
    .await
    .unwrap();
    let stats = proxy.stats();
    assert!(
        stats.throttled(QuotaGroup::Writes) > 0,
        "the quota was never hit: {stats:?}"
    );
    assert_eq!(
        (summary.due, summary.rotated, summary.failed),
        (count, count, 0),
        "{summary:?}"
    );
    assert!(summary.complete, "{summary:?}");
    for i in 0..count {
        let record = stored(&app, &format!("ep-{i}")).await.record;
        assert_eq!(record.previous_secrets.len(), 1, "ep-{i} rotated once");
    }
}
