//! Zero-downtime rotation on both backends: grace periods and their cap, signing with every
//! valid secret, verification and its rejections, reveal, retry-safe create and rotate, and
//! the audit trail.

use async_trait::async_trait;
use chrono::Duration;
use integration_tests::interposed::{BeforeReplace, Interposed};
use integration_tests::{
    assert_error, invoke, on_every_backend, receiver_accepts, start_of_test_time, Backend, Call,
    TestApp,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use webhook_secrets::domain::clock::Clock;
use webhook_secrets::domain::ids::VersionId;
use webhook_secrets::store::{SecretName, SecretStore, StoreError, StoredValue};

async fn endpoint(app: &TestApp, id: &str) -> Value {
    app.create(json!({"id": id, "url": "https://example.com/hook"}))
        .await
}

async fn rotate(app: &TestApp, id: &str, body: Value) -> integration_tests::Answer {
    invoke!(
        rotate_secret,
        app,
        Call::post("/x").bearer(&app.owner).id(id).json(body)
    )
}

async fn grace_keeps_the_old_secret_until_it_expires(backend: Backend) {
    let app = TestApp::new(backend).await;
    let created = endpoint(&app, "orders").await;
    let old = created["secret"]["value"].as_str().unwrap().to_owned();
    let rotated = rotate(&app, "orders", json!({"grace_period_seconds": 3600})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = rotated.body["secret"]["value"].as_str().unwrap().to_owned();
    let previous = rotated.body["previous_secrets"].as_array().unwrap();
    assert_eq!(previous.len(), 1);
    assert_eq!(previous[0]["version_id"], created["secret"]["version_id"]);
    let expiry = app.clock.now() + Duration::seconds(3600);
    assert_eq!(previous[0]["expires_at"], json!(expiry));
    assert!(
        previous[0].get("value").is_none(),
        "rotate shows only the new secret's value"
    );
    assert!(previous[0]["masked"].as_str().is_some());

    let payload = r#"{"type":"order.paid","id":42}"#;
    let signed = app.sign("orders", payload, None).await;
    assert_eq!(
        signed["headers"]["webhook-signature"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    assert_eq!(signed["version_ids"].as_array().unwrap().len(), 2);
    let now = app.clock.now();
    assert!(
        receiver_accepts(&old, &signed, payload, now),
        "old-secret receiver"
    );
    assert!(
        receiver_accepts(&new, &signed, payload, now),
        "new-secret receiver"
    );
    let verified = app.verify("orders", &signed["headers"], payload).await;
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["version_id"], rotated.body["secret"]["version_id"]);

    // One second before expiry both still verify; at expiry only the new one does.
    app.clock.advance(Duration::seconds(3599));
    let signed = app.sign("orders", payload, None).await;
    assert!(receiver_accepts(&old, &signed, payload, app.clock.now()));
    app.clock.advance(Duration::seconds(1));
    let signed = app.sign("orders", payload, None).await;
    let now = app.clock.now();
    assert!(
        !receiver_accepts(&old, &signed, payload, now),
        "expired secret still signs"
    );
    assert!(receiver_accepts(&new, &signed, payload, now));
    let got = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.member).id("orders")
    );
    assert_eq!(got.body["previous_secrets"], json!([]));
}

async fn zero_grace_stops_only_the_replaced_secret(backend: Backend) {
    let app = TestApp::new(backend).await;
    endpoint(&app, "ep").await;
    let first = rotate(&app, "ep", json!({"grace_period_seconds": 600})).await;
    let second = rotate(&app, "ep", json!({"grace_period_seconds": 0})).await;
    assert_eq!(second.status, 200);
    // The secret the zero-grace rotation replaced is gone; the one before keeps its expiry.
    let previous = second.body["previous_secrets"].as_array().unwrap();
    assert_eq!(previous.len(), 1);
    assert_ne!(
        previous[0]["version_id"],
        first.body["secret"]["version_id"]
    );
    let payload = "x";
    let signed = app.sign("ep", payload, None).await;
    let now = app.clock.now();
    let replaced = first.body["secret"]["value"].as_str().unwrap();
    assert!(!receiver_accepts(replaced, &signed, payload, now));
}

async fn the_eleventh_rotation_in_a_window_is_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    endpoint(&app, "busy").await;
    for i in 0..10 {
        let rotated = rotate(&app, "busy", json!({"grace_period_seconds": 3600})).await;
        assert_eq!(rotated.status, 200, "rotation {i}: {}", rotated.body);
        app.clock.advance(Duration::seconds(60));
    }
    let before = invoke!(
        reveal_secret,
        app,
        Call::get("/x").bearer(&app.owner).id("busy")
    );
    assert_eq!(
        before.body["previous_secrets"].as_array().unwrap().len(),
        10
    );
    let refused = rotate(&app, "busy", json!({"grace_period_seconds": 3600})).await;
    assert_error(&refused, 409, "too_many_valid_secrets");
    // The oldest old secret was kept by the first rotation, 600 s ago, for an hour.
    let oldest = app.clock.now() - Duration::seconds(600) + Duration::seconds(3600);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&oldest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "{message}"
    );
    let after = invoke!(
        reveal_secret,
        app,
        Call::get("/x").bearer(&app.owner).id("busy")
    );
    assert_eq!(
        before.body, after.body,
        "a refused rotation changed something"
    );
    // Once the oldest expires it is pruned at the next write, and rotation works again.
    app.clock.advance(Duration::seconds(3600 - 600 + 1));
    let rotated = rotate(&app, "busy", json!({"grace_period_seconds": 3600})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(
        rotated.body["previous_secrets"].as_array().unwrap().len(),
        10
    );
    // A zero-grace rotation adds no old secret, so it is never refused for this reason.
    let zero = rotate(&app, "busy", json!({"grace_period_seconds": 0})).await;
    assert_eq!(zero.status, 200, "{}", zero.body);
}

async fn grace_periods_are_validated(backend: Backend) {
    let app = TestApp::new(backend).await;
    endpoint(&app, "ep").await;
    for grace in [json!(-1), json!(604_801), json!("an hour"), json!(1.5)] {
        let refused = rotate(&app, "ep", json!({"grace_period_seconds": grace})).await;
        assert_error(&refused, 400, "invalid_request");
    }
    let longest = rotate(&app, "ep", json!({"grace_period_seconds": 604_800})).await;
    assert_eq!(longest.status, 200);
    // The default is 24 hours.
    let default = rotate(&app, "ep", json!({})).await;
    let expiry = app.clock.now() + Duration::seconds(86_400);
    assert_eq!(
        default.body["previous_secrets"][0]["expires_at"],
        json!(expiry)
    );
}

async fn verify_rejects_with_reasons(backend: Backend) {
    let app = TestApp::new(backend).await;
    endpoint(&app, "ep").await;
    let payload = "hello";
    let signed = app.sign("ep", payload, None).await;
    let headers = signed["headers"].clone();
    assert_eq!(app.verify("ep", &headers, payload).await["valid"], true);

    let mut cases: Vec<(Value, &str, &str)> = Vec::new();
    cases.push((headers.clone(), "tampered", "no_matching_signature"));
    let mut wrong = headers.clone();
    wrong["webhook-signature"] = json!("v1,dGhpcyBpcyBub3QgdGhlIHNpZ25hdHVyZSBhdCBhbGwh");
    cases.push((wrong, payload, "no_matching_signature"));
    let mut malformed = headers.clone();
    malformed["webhook-signature"] = json!("sha256=abcdef");
    cases.push((malformed, payload, "malformed_signature"));
    let mut dotted = headers.clone();
    dotted["webhook-id"] = json!("msg.1");
    cases.push((dotted, payload, "malformed_id"));
    let mut bad_time = headers.clone();
    bad_time["webhook-timestamp"] = json!("1.7e9");
    cases.push((bad_time, payload, "malformed_timestamp"));
    let mut missing = headers.clone();
    missing.as_object_mut().unwrap().remove("webhook-signature");
    cases.push((missing, payload, "malformed_signature"));
    for (headers, payload, reason) in cases {
        let verdict = app.verify("ep", &headers, payload).await;
        assert_eq!(verdict["valid"], false, "{verdict}");
        assert_eq!(verdict["reason"], reason, "{verdict}");
        assert!(verdict["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let now = app.clock.now().timestamp();
    for (timestamp, reason) in [
        (now - 301, "stale_timestamp"),
        (now + 301, "future_timestamp"),
    ] {
        let signed = invoke!(
            sign_message,
            app,
            Call::post("/x")
                .bearer(&app.owner)
                .id("ep")
                .json(json!({"payload": payload, "timestamp": timestamp}))
        );
        let verdict = app.verify("ep", &signed.body["headers"], payload).await;
        assert_eq!(
            (verdict["valid"].clone(), verdict["reason"].clone()),
            (json!(false), json!(reason))
        );
    }
    // The tolerance is configurable per request.
    let old = invoke!(
        sign_message,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("ep")
            .json(json!({"payload": payload, "timestamp": now - 600}))
    );
    let lenient = invoke!(
        verify_message,
        app,
        Call::post("/x").bearer(&app.owner).id("ep").json(
            json!({"headers": old.body["headers"], "payload": payload, "tolerance_seconds": 900})
        )
    );
    assert_eq!(lenient.body["valid"], true);

    for bad in [
        json!({"payload": "x", "msg_id": "has.dot"}),
        json!({"payload": "x", "timestamp": -1}),
        json!({"msg_id": "m"}),
        json!({"payload": 5}),
    ] {
        let refused = invoke!(
            sign_message,
            app,
            Call::post("/x").bearer(&app.owner).id("ep").json(bad)
        );
        assert_error(&refused, 400, "invalid_request");
    }
    let mut ambiguous = headers.clone();
    ambiguous["Webhook-Signature"] = json!("v1,AAAA");
    let refused = invoke!(
        verify_message,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("ep")
            .json(json!({"headers": ambiguous, "payload": payload}))
    );
    assert_error(&refused, 400, "invalid_request");
    let refused = invoke!(
        verify_message,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("ep")
            .json(json!({"headers": {}, "payload": "x", "tolerance_seconds": 86_401}))
    );
    assert_error(&refused, 400, "invalid_request");
    let foreign = app.mint("globex", webhook_secrets::auth::Role::Owner).await;
    let hidden = invoke!(
        sign_message,
        app,
        Call::post("/x")
            .bearer(&foreign)
            .id("ep")
            .json(json!({"payload": "x"}))
    );
    assert_error(&hidden, 404, "not_found");
}

async fn reveal_shows_every_valid_secret_to_owners_and_admins(backend: Backend) {
    let app = TestApp::new(backend).await;
    let created = endpoint(&app, "ep").await;
    let rotated = rotate(&app, "ep", json!({"grace_period_seconds": 60})).await;
    for key in [&app.owner, &app.admin] {
        let revealed = invoke!(reveal_secret, app, Call::get("/x").bearer(key).id("ep"));
        assert_eq!(revealed.status, 200);
        assert_eq!(
            revealed.body["secret"]["value"],
            rotated.body["secret"]["value"]
        );
        assert_eq!(
            revealed.body["previous_secrets"][0]["value"],
            created["secret"]["value"]
        );
    }
    let member = invoke!(
        reveal_secret,
        app,
        Call::get("/x").bearer(&app.member).id("ep")
    );
    assert_error(&member, 403, "forbidden");
    app.clock.advance(Duration::seconds(60));
    let later = invoke!(
        reveal_secret,
        app,
        Call::get("/x").bearer(&app.owner).id("ep")
    );
    assert_eq!(
        later.body["previous_secrets"],
        json!([]),
        "expired secrets are not revealed"
    );
    let reveals: Vec<_> = app
        .audit
        .records()
        .into_iter()
        .filter(|r| r.action == "secret.reveal")
        .collect();
    assert_eq!(reveals.len(), 4);
    assert_eq!(reveals.iter().filter(|r| r.outcome == "success").count(), 3);
    assert_eq!(
        reveals.iter().filter(|r| r.outcome == "forbidden").count(),
        1
    );
}

async fn retried_rotation_returns_the_same_secret(backend: Backend) {
    let app = TestApp::new(backend).await;
    endpoint(&app, "ep").await;
    let name = app.holder("ep").await;
    let versions_before = app.store.stages(&name).await.unwrap().version_count;
    let call = || {
        Call::post("/x")
            .bearer(&app.owner)
            .id("ep")
            .header("idempotency-key", "rotate-2026-11-24-001")
            .json(json!({"grace_period_seconds": 120}))
    };
    let first = invoke!(rotate_secret, app, call());
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    app.clock.advance(Duration::seconds(5));
    let retry = invoke!(rotate_secret, app, call());
    assert_eq!(retry.status, 200);
    assert_eq!(retry.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(
        retry.body, first.body,
        "a retry answers exactly what the first attempt did"
    );
    let stages = app.store.stages(&name).await.unwrap();
    assert_eq!(
        stages.version_count,
        versions_before + 1,
        "one new version, not two"
    );
    assert_eq!(stages.pending, None);

    // The same body in another key order and spacing is the same request.
    let reordered = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("ep")
            .header("idempotency-key", "rotate-2026-11-24-001")
            .raw_body("{ \"grace_period_seconds\" : 120 }")
    );
    assert_eq!(reordered.body, first.body);

    let different = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("ep")
            .header("idempotency-key", "rotate-2026-11-24-001")
            .json(json!({"grace_period_seconds": 0}))
    );
    assert_error(&different, 422, "idempotency_key_reused");
    for bad in ["short", "has spaces in it", &"k".repeat(65)] {
        let refused = invoke!(
            rotate_secret,
            app,
            Call::post("/x")
                .bearer(&app.owner)
                .id("ep")
                .header("idempotency-key", bad)
        );
        assert_error(&refused, 400, "invalid_request");
    }
    // A new key is a new rotation.
    let next = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("ep")
            .header("idempotency-key", "rotate-2026-11-24-002")
    );
    assert_eq!(next.status, 200);
    assert_ne!(next.body["secret"]["value"], first.body["secret"]["value"]);
    let audited: Vec<_> = app
        .audit
        .records()
        .into_iter()
        .filter(|r| r.action == "secret.rotate")
        .collect();
    assert!(audited.iter().any(|r| r.replayed && r.outcome == "success"));
}

/// Concurrent attempts of one request: one rotation takes effect, and every attempt that
/// answers 200 names its secret, which is current.
async fn concurrent_retries_of_one_rotation_agree(backend: Backend) {
    let app = Arc::new(TestApp::new(backend).await);
    endpoint(&app, "ep").await;
    let attempts = (0..6).map(|_| {
        let app = app.clone();
        tokio::spawn(async move {
            invoke!(
                rotate_secret,
                app,
                Call::post("/x")
                    .bearer(&app.owner)
                    .id("ep")
                    .header("idempotency-key", "same-request-key")
            )
        })
    });
    let answers: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let secrets: HashSet<_> = answers
        .iter()
        .map(|a| a.body["secret"]["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        secrets.len(),
        1,
        "every answer carries the one rotated secret"
    );
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.headers.get("idempotent-replayed").is_none())
            .count(),
        1,
        "exactly one attempt rotated"
    );
    assert!(secrets.contains(&current_secret(&app, "ep").await));
}

/// The same key with two different bodies at once: one rotates, the other is refused as a
/// reused key, whichever order their reads and swaps interleave in.
async fn one_key_with_two_bodies_at_once(backend: Backend) {
    let app = Arc::new(TestApp::new(backend).await);
    endpoint(&app, "ep").await;
    let attempts = [0, 60].map(|grace| {
        let app = app.clone();
        tokio::spawn(async move {
            invoke!(
                rotate_secret,
                app,
                Call::post("/x")
                    .bearer(&app.owner)
                    .id("ep")
                    .header("idempotency-key", "one-key-two-bodies")
                    .json(json!({"grace_period_seconds": grace}))
            )
        })
    });
    let mut answers: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    answers.sort_by_key(|a| a.status);
    assert_eq!(answers[0].status, 200, "{}", answers[0].body);
    assert_error(&answers[1], 422, "idempotency_key_reused");
    assert_eq!(
        answers[0].body["secret"]["value"].as_str().unwrap(),
        current_secret(&app, "ep").await
    );
}

/// Section 1 of the hardening work: a rotation that lost its compare-and-swap never took
/// effect, so its retry under the same key rotates now instead of replaying a secret that
/// never became current.
async fn a_lost_rotation_is_run_again_by_its_retry(backend: Backend) {
    let (app, strike) = interfered_app(backend).await;
    endpoint(&app, "ep").await;
    let call = || {
        Call::post("/x")
            .bearer(&app.owner)
            .id("ep")
            .header("idempotency-key", "lost-then-retried")
            .json(json!({"grace_period_seconds": 3600}))
    };
    strike.arm(Strike::RivalWritesFirst);
    let lost = invoke!(rotate_secret, app, call());
    assert_error(&lost, 409, "conflict");

    let retry = invoke!(rotate_secret, app, call());
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert!(
        retry.headers.get("idempotent-replayed").is_none(),
        "the lost attempt did not happen, so the retry is no replay"
    );
    let secret = retry.body["secret"]["value"].as_str().unwrap();
    assert_eq!(secret, current_secret(&app, "ep").await);
    let signed = app.sign("ep", "{}", None).await;
    assert!(receiver_accepts(secret, &signed, "{}", app.clock.now()));

    let again = invoke!(rotate_secret, app, call());
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.body, retry.body);
}

/// A first attempt that put its version and then failed before the swap (throttled, or the
/// store went away) left nothing current; its retry rotates, and no version is left pending.
async fn a_retry_after_a_failure_between_put_and_swap_rotates(backend: Backend) {
    let (app, strike) = interfered_app(backend).await;
    endpoint(&app, "ep").await;
    let name = app.holder("ep").await;
    for (fault, status, key) in [
        (
            Strike::FailsAfterPut(|| StoreError::Throttled),
            429,
            "died-throttled",
        ),
        (
            Strike::FailsAfterPut(|| StoreError::Unavailable("injected".into())),
            503,
            "died-unavailable",
        ),
    ] {
        let call = || {
            Call::post("/x")
                .bearer(&app.owner)
                .id("ep")
                .header("idempotency-key", key)
        };
        strike.arm(fault);
        let failed = invoke!(rotate_secret, app, call());
        assert_eq!(failed.status, status, "{}", failed.body);
        assert!(failed.headers.contains_key("retry-after"));
        let retry = invoke!(rotate_secret, app, call());
        assert_eq!(retry.status, 200, "{}", retry.body);
        assert!(retry.headers.get("idempotent-replayed").is_none());
        assert_eq!(
            retry.body["secret"]["value"].as_str().unwrap(),
            current_secret(&app, "ep").await
        );
        let stages = app.store.stages(&name).await.unwrap();
        assert_eq!(stages.pending, None, "no version left pending");
    }
}

/// A replay answers what the write that happened answered, even after later rotations
/// replaced its secret; after the idempotency window the key is a new request.
async fn a_replay_outlives_later_rotations_within_the_window(backend: Backend) {
    let app = TestApp::new(backend).await;
    endpoint(&app, "ep").await;
    let call = || {
        Call::post("/x")
            .bearer(&app.owner)
            .id("ep")
            .header("idempotency-key", "kept-for-a-day")
            .json(json!({"grace_period_seconds": 0}))
    };
    let first = invoke!(rotate_secret, app, call());
    assert_eq!(first.status, 200, "{}", first.body);
    app.clock.advance(Duration::minutes(1));
    let later = rotate(&app, "ep", json!({"grace_period_seconds": 0})).await;
    assert_eq!(later.status, 200, "{}", later.body);
    let patched = invoke!(
        update_endpoint,
        app,
        Call::new(lambda_http::http::Method::PATCH, "/x")
            .bearer(&app.owner)
            .id("ep")
            .json(json!({"name": "renamed"}))
    );
    assert_eq!(patched.status, 200, "{}", patched.body);

    let replay = invoke!(rotate_secret, app, call());
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(replay.body, first.body);

    app.clock.advance(Duration::hours(24));
    let fresh = invoke!(rotate_secret, app, call());
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert!(fresh.headers.get("idempotent-replayed").is_none());
    assert_eq!(
        fresh.body["secret"]["value"].as_str().unwrap(),
        current_secret(&app, "ep").await
    );
}

/// Concurrent attempts of one create: one endpoint, one secret, the current one.
async fn concurrent_retries_of_one_creation_agree(backend: Backend) {
    let app = Arc::new(TestApp::new(backend).await);
    let attempts = (0..4).map(|_| {
        let app = app.clone();
        tokio::spawn(async move {
            invoke!(
                create_endpoint,
                app,
                Call::post("/v1/endpoints")
                    .bearer(&app.owner)
                    .header("idempotency-key", "create-at-once")
                    .json(json!({"url": "https://example.com/hook"}))
            )
        })
    });
    let answers: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for answer in &answers {
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert_eq!(answer.body, answers[0].body);
    }
    let id = answers[0].body["id"].as_str().unwrap();
    assert_eq!(
        answers[0].body["secret"]["value"].as_str().unwrap(),
        current_secret(&app, id).await
    );
}

async fn current_secret(app: &TestApp, id: &str) -> String {
    let revealed = invoke!(
        reveal_secret,
        app,
        Call::get("/x").bearer(&app.owner).id(id)
    );
    assert_eq!(revealed.status, 200, "{}", revealed.body);
    revealed.body["secret"]["value"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What an armed store does to the next replace.
#[derive(Clone)]
enum Strike {
    /// Another writer moves the record on between this write's read and its swap.
    RivalWritesFirst,
    /// The write's version is put, then the call fails with this error before its swap.
    FailsAfterPut(fn() -> StoreError),
}

#[derive(Clone, Default)]
struct Armed(Arc<Mutex<Option<Strike>>>);

impl Armed {
    fn arm(&self, strike: Strike) {
        *self.0.lock().unwrap() = Some(strike);
    }
}

/// Strikes once, when armed, at an exact point of the next replace.
#[async_trait]
impl BeforeReplace for Armed {
    async fn before_replace(
        &self,
        store: &dyn SecretStore,
        name: &SecretName,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<(), StoreError> {
        let strike = self.0.lock().unwrap().take();
        match strike {
            None => Ok(()),
            Some(Strike::RivalWritesFirst) => {
                let current = store.read_current(name).await?;
                let rival = VersionId::stamped(chrono::Utc::now());
                // The rival writes the endpoint: on a keyring, each entry it holds is marked
                // as written by the rival's version (a write of another endpoint would not
                // be a conflict, only a retry).
                let mut value: serde_json::Value =
                    serde_json::from_str(current.value.expose()).unwrap();
                if let Some(entries) = value["endpoints"].as_object_mut() {
                    for entry in entries.values_mut() {
                        entry["version"] = rival.as_str().into();
                    }
                }
                let value = StoredValue::new(value.to_string()).unwrap();
                store
                    .replace_current(name, &current.version_id, &rival, &value)
                    .await
            }
            Some(Strike::FailsAfterPut(error)) => {
                store.put_pending(name, token, value).await?;
                Err(error())
            }
        }
    }
}

async fn interfered_app(backend: Backend) -> (TestApp, Armed) {
    let armed = Armed::default();
    let hook = armed.clone();
    let app = TestApp::with_store(backend, start_of_test_time(), move |inner| {
        Interposed::wrap(inner, hook)
    })
    .await;
    (app, armed)
}

async fn retried_creation_returns_the_same_endpoint(backend: Backend) {
    let app = TestApp::new(backend).await;
    let call = |url: &str| {
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .header("idempotency-key", "create-orders-hook")
            .json(json!({"url": url, "topics": ["a"]}))
    };
    let first = invoke!(create_endpoint, app, call("https://example.com/a"));
    assert_eq!(first.status, 201, "{}", first.body);
    let retry = invoke!(create_endpoint, app, call("https://example.com/a"));
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body, first.body, "same id, same secret");
    let listed = invoke!(
        list_endpoints,
        app,
        Call::get("/v1/endpoints").bearer(&app.owner)
    );
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "one endpoint, not two"
    );
    let different = invoke!(create_endpoint, app, call("https://example.com/b"));
    assert_error(&different, 422, "idempotency_key_reused");
    // Without a key, creating an existing id is a plain conflict.
    let id = first.body["id"].as_str().unwrap();
    let taken = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .json(json!({"id": id, "url": "https://example.com/a"}))
    );
    assert_error(&taken, 409, "already_exists");
}

async fn every_management_action_is_audited_without_secrets(backend: Backend) {
    let app = TestApp::new(backend).await;
    let created = endpoint(&app, "audited").await;
    let rotated = rotate(&app, "audited", json!({"grace_period_seconds": 30})).await;
    let denied = invoke!(
        rotate_secret,
        app,
        Call::post("/x").bearer(&app.member).id("audited")
    );
    assert_eq!(denied.status, 403);
    invoke!(
        reveal_secret,
        app,
        Call::get("/x").bearer(&app.admin).id("audited")
    );
    let deleted = invoke!(
        delete_endpoint,
        app,
        Call::delete("/x").bearer(&app.owner).id("audited")
    );
    assert_eq!(deleted.status, 204);

    let records = app.audit.records();
    let actions: Vec<_> = records
        .iter()
        .map(|r| (r.action, r.outcome.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("endpoint.create", "success"),
            ("secret.rotate", "success"),
            ("secret.rotate", "forbidden"),
            ("secret.reveal", "success"),
            ("endpoint.delete", "success"),
        ]
    );
    let owner_key_id = app.owner.split_once('.').unwrap().0;
    let rotate_record = &records[1];
    assert_eq!(rotate_record.tenant.as_deref(), Some("acme"));
    assert_eq!(rotate_record.actor_key_id.as_deref(), Some(owner_key_id));
    assert_eq!(rotate_record.endpoint_id.as_deref(), Some("audited"));
    assert_eq!(rotate_record.status, Some(200));
    assert_eq!(
        rotate_record.secret_version_ids,
        vec![
            rotated.body["secret"]["version_id"]
                .as_str()
                .unwrap()
                .to_owned(),
            created["secret"]["version_id"].as_str().unwrap().to_owned(),
        ]
    );
    assert!(records.iter().all(|r| !r.request_id.is_empty()));
    let text = serde_json::to_string(&records).unwrap();
    for secret in [
        &created["secret"]["value"],
        &rotated.body["secret"]["value"],
    ] {
        assert!(!text.contains(secret.as_str().unwrap()));
    }
}

on_every_backend!(
    grace_keeps_the_old_secret_until_it_expires,
    zero_grace_stops_only_the_replaced_secret,
    the_eleventh_rotation_in_a_window_is_refused,
    grace_periods_are_validated,
    verify_rejects_with_reasons,
    reveal_shows_every_valid_secret_to_owners_and_admins,
    retried_rotation_returns_the_same_secret,
    retried_creation_returns_the_same_endpoint,
    every_management_action_is_audited_without_secrets,
    concurrent_retries_of_one_rotation_agree,
    one_key_with_two_bodies_at_once,
    a_lost_rotation_is_run_again_by_its_retry,
    a_retry_after_a_failure_between_put_and_swap_rotates,
    a_replay_outlives_later_rotations_within_the_window,
    concurrent_retries_of_one_creation_agree,
);
