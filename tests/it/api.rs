//! The native API, route by route, on both backends: statuses, bodies, roles, tenants,
//! validation, and concurrent rotation.

use integration_tests::{assert_error, invoke, on_every_backend, Backend, Call, TestApp};
use serde_json::json;
use std::collections::HashSet;
use webhook_secrets::auth::Role;
use webhook_secrets::domain::ids::{EndpointId, TenantId, VersionId};
use webhook_secrets::vault::EndpointRepository;
use webhook_secrets::vault::VaultLayout;

async fn create_get_rotate_get_delete(backend: Backend) {
    let app = TestApp::new(backend).await;
    let created = app
        .create(
            json!({"id": "orders", "url": "https://example.com/hooks", "name": "Orders",
               "description": "order events", "topics": ["order.created", "order.paid"]}),
        )
        .await;
    assert_eq!(created["id"], "orders");
    assert_eq!(created["url"], "https://example.com/hooks");
    assert_eq!(created["topics"], json!(["order.created", "order.paid"]));
    let first_secret = created["secret"]["value"].as_str().unwrap().to_owned();
    assert!(first_secret.starts_with("whsec_"));
    assert_eq!(created["secret"]["format"], "whsec");

    let got = invoke!(
        get_endpoint,
        app,
        Call::get("/v1/endpoints/orders")
            .bearer(&app.member)
            .id("orders")
    );
    assert_eq!(got.status, 200);
    assert!(
        got.body["secret"].get("value").is_none(),
        "GET must mask the secret"
    );
    assert!(!got.body.to_string().contains(&first_secret));
    assert_eq!(got.body["secret"]["masked"], created["secret"]["masked"]);
    assert_eq!(
        got.body["secret"]["version_id"],
        created["secret"]["version_id"]
    );

    let rotated = invoke!(
        rotate_secret,
        app,
        Call::post("/v1/endpoints/orders/secret/rotate")
            .bearer(&app.admin)
            .id("orders")
            .json(json!({"grace_period_seconds": 0}))
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.body["previous_secrets"], json!([]));
    let second_secret = rotated.body["secret"]["value"].as_str().unwrap().to_owned();
    assert_ne!(second_secret, first_secret);
    assert_eq!(rotated.body["endpoint_id"], "orders");
    // Same format and length as the secret it replaced.
    assert_eq!(second_secret.len(), first_secret.len());

    let got = invoke!(
        get_endpoint,
        app,
        Call::get("/v1/endpoints/orders")
            .bearer(&app.owner)
            .id("orders")
    );
    assert_eq!(
        got.body["secret"]["version_id"],
        rotated.body["secret"]["version_id"]
    );
    assert_ne!(got.body["secret"]["masked"], created["secret"]["masked"]);

    // With no grace period the old secret is no longer held at all: it stops verifying at once.
    let record = app
        .app
        .endpoints
        .get_endpoint(
            &TenantId::parse("acme").unwrap(),
            &EndpointId::parse("orders").unwrap(),
        )
        .await
        .unwrap()
        .record;
    assert_eq!(record.secret.value.expose(), second_secret);
    assert!(record.previous_secrets.is_empty());

    let deleted = invoke!(
        delete_endpoint,
        app,
        Call::delete("/v1/endpoints/orders")
            .bearer(&app.owner)
            .id("orders")
    );
    assert_eq!(deleted.status, 204);
    assert!(deleted.request_id.is_some());
    let gone = invoke!(
        get_endpoint,
        app,
        Call::get("/v1/endpoints/orders")
            .bearer(&app.owner)
            .id("orders")
    );
    assert_error(&gone, 404, "not_found");
    let again = invoke!(
        delete_endpoint,
        app,
        Call::delete("/v1/endpoints/orders")
            .bearer(&app.owner)
            .id("orders")
    );
    assert_error(&again, 404, "not_found");
}

async fn secrets_follow_the_requested_format(backend: Backend) {
    let app = TestApp::new(backend).await;
    let uuid = app
        .create(json!({"url": "https://example.com/a", "secret_format": "uuid"}))
        .await;
    let value = uuid["secret"]["value"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(value).unwrap().get_version_num(), 4);
    let id = uuid["id"].as_str().unwrap();
    assert!(EndpointId::parse(id).is_ok());
    // Rotation keeps the format.
    let rotated = invoke!(
        rotate_secret,
        app,
        Call::post("/x").bearer(&app.owner).id(id)
    );
    assert!(uuid::Uuid::parse_str(rotated.body["secret"]["value"].as_str().unwrap()).is_ok());

    let long = app
        .create(json!({"url": "https://example.com/b", "secret_bytes": 64}))
        .await;
    let encoded = long["secret"]["value"]
        .as_str()
        .unwrap()
        .strip_prefix("whsec_")
        .unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap()
            .len(),
        64
    );

    let own = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let supplied = app
        .create(json!({"url": "https://example.com/c", "secret": own}))
        .await;
    assert_eq!(supplied["secret"]["value"], own);
    let own_next = "whsec_c2Vjb25kIHNlY3JldCBvZiAyNCsgYnl0ZXMh";
    let rotated = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id(supplied["id"].as_str().unwrap())
            .json(json!({"secret": own_next}))
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.body["secret"]["value"], own_next);
}

async fn invalid_input_is_400_and_changes_nothing(backend: Backend) {
    let app = TestApp::new(backend).await;
    let cases = [
        json!({"url": "https://example.com", "secret": "whsec_short"}),
        json!({"url": "https://example.com", "secret": "not-a-secret"}),
        json!({"url": "https://example.com", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secret_format": "uuid"}),
        json!({"url": "https://example.com", "secret_bytes": 16}),
        json!({"url": "https://example.com", "secret_bytes": 65}),
        json!({"url": "https://example.com", "secret_format": "hex"}),
        json!({"url": "https://example.com", "secret_format": "uuid", "secret_bytes": 32}),
        json!({"url": "ftp://example.com"}),
        json!({"url": "not a url"}),
        json!({"name": "no url"}),
        json!({"url": "https://example.com", "id": "bad/id"}),
        json!({"url": "https://example.com", "id": "x".repeat(65)}),
        json!({"url": "https://example.com", "topics": ["has space"]}),
        json!({"url": "https://example.com", "unknown": true}),
        json!({"url": "https://example.com", "secret_bytes": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    ];
    for body in cases {
        let answer = invoke!(
            create_endpoint,
            app,
            Call::post("/v1/endpoints")
                .bearer(&app.owner)
                .json(body.clone())
        );
        assert_error(&answer, 400, "invalid_request");
        assert!(
            !answer
                .body
                .to_string()
                .contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "error echoes a secret: {}",
            answer.body
        );
    }
    for raw in ["", "{", "[]", "null"] {
        let answer = invoke!(
            create_endpoint,
            app,
            Call::post("/v1/endpoints").bearer(&app.owner).raw_body(raw)
        );
        assert_error(&answer, 400, "invalid_request");
    }
    let listed = invoke!(
        list_endpoints,
        app,
        Call::get("/v1/endpoints").bearer(&app.owner)
    );
    assert_eq!(
        listed.body["data"],
        json!([]),
        "a refused create left state behind"
    );

    app.create(json!({"id": "ep", "url": "https://example.com"}))
        .await;
    let before = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.owner).id("ep")
    );
    for body in [
        json!({"secret": "whsec_short"}),
        json!({"grace": 1}),
        json!({"secret_bytes": 8}),
    ] {
        let answer = invoke!(
            rotate_secret,
            app,
            Call::post("/x").bearer(&app.owner).id("ep").json(body)
        );
        assert_error(&answer, 400, "invalid_request");
    }
    let bad_id = invoke!(
        rotate_secret,
        app,
        Call::post("/x").bearer(&app.owner).id("a.b")
    );
    assert_error(&bad_id, 400, "invalid_request");
    let after = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.owner).id("ep")
    );
    assert_eq!(before.body["secret"], after.body["secret"]);

    let duplicate = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .json(json!({"id": "ep", "url": "https://example.org"}))
    );
    assert_error(&duplicate, 409, "already_exists");
    let huge = format!(
        r#"{{"url": "https://example.com", "description": "{}"}}"#,
        "x".repeat(70_000)
    );
    let too_large = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .raw_body(&huge)
    );
    assert_error(&too_large, 413, "too_large");
    let long = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .json(json!({"url": "https://example.com", "description": "x".repeat(1025)}))
    );
    assert_error(&long, 400, "invalid_request");
}

async fn keys_roles_and_tenants(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create(json!({"id": "shared-id", "url": "https://example.com"}))
        .await;

    // Tenant B sees tenant A's endpoint exactly as a missing one.
    let other = app.mint("globex", Role::Owner).await;
    let foreign = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&other).id("shared-id")
    );
    let missing = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&other).id("never-made")
    );
    assert_error(&foreign, 404, "not_found");
    assert_eq!(
        foreign.body["error"]["message"],
        missing.body["error"]["message"]
    );
    let foreign_rotate = invoke!(
        rotate_secret,
        app,
        Call::post("/x").bearer(&other).id("shared-id")
    );
    assert_error(&foreign_rotate, 404, "not_found");
    let foreign_delete = invoke!(
        delete_endpoint,
        app,
        Call::delete("/x").bearer(&other).id("shared-id")
    );
    assert_error(&foreign_delete, 404, "not_found");
    let listed = invoke!(
        list_endpoints,
        app,
        Call::get("/v1/endpoints").bearer(&other)
    );
    assert_eq!(listed.body["data"], json!([]));
    // The same id is free in another tenant.
    let theirs = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&other)
            .json(json!({"id": "shared-id", "url": "https://globex.example"}))
    );
    assert_eq!(theirs.status, 201);

    // Members read but may not write.
    let read = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.member).id("shared-id")
    );
    assert_eq!(read.status, 200);
    let rotate = invoke!(
        rotate_secret,
        app,
        Call::post("/x").bearer(&app.member).id("shared-id")
    );
    assert_error(&rotate, 403, "forbidden");
    let create = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.member)
            .json(json!({"url": "https://example.com"}))
    );
    assert_error(&create, 403, "forbidden");
    let delete = invoke!(
        delete_endpoint,
        app,
        Call::delete("/x").bearer(&app.member).id("shared-id")
    );
    assert_error(&delete, 403, "forbidden");

    // X-API-Key works as well as Bearer, also beside an Authorization header of another scheme.
    let beside_basic = invoke!(
        get_endpoint,
        app,
        Call::get("/x")
            .header("authorization", "Basic dXNlcjpwYXNz")
            .header("x-api-key", &app.owner)
            .id("shared-id")
    );
    assert_eq!(beside_basic.status, 200, "{}", beside_basic.body);
    let by_header = invoke!(
        get_endpoint,
        app,
        Call::get("/x")
            .header("x-api-key", &app.owner)
            .id("shared-id")
    );
    assert_eq!(by_header.status, 200);

    // Missing, malformed, unknown and tampered keys are 401.
    let (key_id, _) = app.owner.split_once('.').unwrap();
    for call in [
        Call::get("/x").id("shared-id"),
        Call::get("/x").bearer("garbage").id("shared-id"),
        Call::get("/x")
            .header("authorization", "Basic abc")
            .id("shared-id"),
        Call::get("/x")
            .bearer("ak_00000000000000000000.abc")
            .id("shared-id"),
        Call::get("/x")
            .bearer(&format!("{key_id}.wrong-secret"))
            .id("shared-id"),
    ] {
        let answer = invoke!(get_endpoint, app, call);
        assert_error(&answer, 401, "unauthorized");
        assert_eq!(answer.headers.get("www-authenticate").unwrap(), "Bearer");
    }
}

async fn revoked_keys_stop_working_within_a_minute(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create(json!({"id": "ep", "url": "https://example.com"}))
        .await;
    let key = app.mint("acme", Role::Admin).await;
    let ok = invoke!(get_endpoint, app, Call::get("/x").bearer(&key).id("ep"));
    assert_eq!(ok.status, 200);
    let key_id =
        webhook_secrets::domain::ids::KeyId::parse(key.split_once('.').unwrap().0).unwrap();
    app.app.auth.keys().revoke(&key_id).await.unwrap();
    // Within the cache lifetime a warm process may still accept it...
    app.clock.advance(chrono::Duration::seconds(30));
    let cached = invoke!(get_endpoint, app, Call::get("/x").bearer(&key).id("ep"));
    assert_eq!(cached.status, 200);
    // ...but never past 60 seconds.
    app.clock.advance(chrono::Duration::seconds(31));
    let revoked = invoke!(get_endpoint, app, Call::get("/x").bearer(&key).id("ep"));
    assert_error(&revoked, 401, "unauthorized");
    // A fresh process (no cache) refuses it at once.
    let fresh = webhook_secrets::auth::Authenticator::new(
        webhook_secrets::auth::keys::ApiKeys::new(
            webhook_secrets::vault::records::Records::new(app.store.clone(), &app.prefix),
            app.app.clock.clone(),
        ),
        chrono::Duration::seconds(60),
    );
    assert!(matches!(
        fresh.authenticate(&key).await,
        Err(webhook_secrets::auth::AuthError::Invalid)
    ));
    let listed = app
        .app
        .auth
        .keys()
        .list(Some(&TenantId::parse("acme").unwrap()))
        .await
        .unwrap();
    assert!(listed
        .iter()
        .any(|k| k.key_id == key_id && k.revoked_at.is_some()));
    assert_eq!(listed.len(), 4);
}

async fn list_paginates_with_a_cursor(backend: Backend) {
    let app = TestApp::new(backend).await;
    let mut expected = HashSet::new();
    for i in 0..5 {
        let id = format!("ep-{i}");
        app.create(json!({"id": id, "url": "https://example.com"}))
            .await;
        expected.insert(id);
    }
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut call = Call::get("/v1/endpoints")
            .bearer(&app.member)
            .query("limit", "2");
        if let Some(cursor) = &cursor {
            call = call.query("cursor", cursor);
        }
        let page = invoke!(list_endpoints, app, call);
        assert_eq!(page.status, 200, "{}", page.body);
        let data = page.body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        for endpoint in data {
            assert!(endpoint["secret"].get("value").is_none());
            assert!(seen.insert(endpoint["id"].as_str().unwrap().to_owned()));
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    for (name, value) in [
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "ten"),
        ("cursor", "!!"),
    ] {
        let answer = invoke!(
            list_endpoints,
            app,
            Call::get("/v1/endpoints")
                .bearer(&app.owner)
                .query(name, value)
        );
        assert_error(&answer, 400, "invalid_request");
    }
}

/// Eight rotations of one endpoint at once: every 200's secret was current at some point
/// (it is on the chain of versions that each replaced the one before), the others are 409
/// and their secrets were never current, and the endpoint ends with one current secret.
async fn concurrent_rotations_are_safe(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::new(backend).await);
    let created = app
        .create(json!({"id": "busy", "url": "https://example.com"}))
        .await;
    let first_version = created["secret"]["version_id"].as_str().unwrap().to_owned();
    let rotations = (0..8).map(|_| {
        let app = app.clone();
        tokio::spawn(async move {
            invoke!(
                rotate_secret,
                app,
                Call::post("/x").bearer(&app.owner).id("busy")
            )
        })
    });
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for answer in futures::future::join_all(rotations).await {
        let answer = answer.unwrap();
        match answer.status {
            200 => winners.push((
                answer.body["secret"]["version_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                answer.body["secret"]["value"].as_str().unwrap().to_owned(),
            )),
            409 => {
                assert_error(&answer, 409, "conflict");
                losers.push(answer);
            }
            other => panic!("unexpected status {other}: {}", answer.body),
        }
    }
    assert!(!winners.is_empty(), "at least one rotation succeeds");
    assert_eq!(winners.len() + losers.len(), 8);

    let tenant = TenantId::parse("acme").unwrap();
    let id = EndpointId::parse("busy").unwrap();
    let current = app.app.endpoints.get_endpoint(&tenant, &id).await.unwrap();
    let mut chain = HashSet::new();
    let mut record = current.record.clone();
    loop {
        chain.insert((
            record.secret.version_id.to_string(),
            record.secret.value.expose().to_owned(),
        ));
        match &record.secret.replaces {
            Some(previous) => {
                record = app
                    .app
                    .endpoints
                    .endpoint_version(&tenant, &id, previous)
                    .await
                    .unwrap();
            }
            None => break,
        }
    }
    assert!(chain.iter().any(|(v, _)| *v == first_version));
    assert_eq!(
        chain.len(),
        winners.len() + 1,
        "the history is the creation and each winning rotation"
    );
    for winner in &winners {
        assert!(
            chain.contains(winner),
            "a 200 answered a secret that was never current"
        );
    }
    let holder = app
        .app
        .endpoints
        .secret_holding(&tenant, &id)
        .await
        .unwrap();
    let stages = app.store.stages(&holder).await.unwrap();
    if app.backend.layout == VaultLayout::PerEndpoint {
        assert_eq!(stages.current, Some(current.record_version.clone()));
    }
    assert_eq!(stages.pending, None, "no AWSPENDING left behind");
    for (version, _) in &winners {
        assert!(VersionId::parse(version).is_ok());
    }
}

async fn delivery_metadata_is_settable_at_creation(backend: Backend) {
    let app = TestApp::new(backend).await;
    let defaults = app
        .create(json!({"id": "plain", "url": "https://example.com"}))
        .await;
    assert_eq!(defaults["status"], "active");
    assert_eq!(
        defaults["request_config"],
        json!({"timeout_ms": 5000, "headers": {}})
    );
    assert_eq!(defaults["version"], "1.0");
    let custom = app.create(json!({"id": "custom", "url": "https://example.com", "status": "paused", "version": "2026-01-01",
               "request_config": {"timeout_ms": 12000, "headers": {"X-Custom-Header": "value"}}}),
    )
    .await;
    let got = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.member).id("custom")
    );
    for field in ["status", "request_config", "version"] {
        assert_eq!(got.body[field], custom[field], "{field}");
    }
    assert_eq!(
        got.body["request_config"]["headers"]["X-Custom-Header"],
        "value"
    );
    for bad in [
        json!({"url": "https://example.com", "status": "deleted"}),
        json!({"url": "https://example.com", "request_config": {"timeout_ms": 999}}),
        json!({"url": "https://example.com", "request_config": {"timeout_ms": 30001}}),
        json!({"url": "https://example.com", "request_config": {"headers": {"bad header": "x"}}}),
        json!({"url": "https://example.com", "request_config": {"retries": 3}}),
        json!({"url": "https://example.com", "version": "has space"}),
    ] {
        let answer = invoke!(
            create_endpoint,
            app,
            Call::post("/v1/endpoints").bearer(&app.owner).json(bad)
        );
        assert_error(&answer, 400, "invalid_request");
    }
}

on_every_backend!(
    delivery_metadata_is_settable_at_creation,
    create_get_rotate_get_delete,
    secrets_follow_the_requested_format,
    invalid_input_is_400_and_changes_nothing,
    keys_roles_and_tenants,
    revoked_keys_stop_working_within_a_minute,
    list_paginates_with_a_cursor,
    concurrent_rotations_are_safe,
);

/// A handler that panics is a bug, yet its caller gets the route's documented 500 with a
/// request id, not the runtime's bare error (a 502 from API Gateway).
#[tokio::test]
async fn a_panicking_handler_answers_the_documented_500() {
    use webhook_secrets::api::http::{respond, Route};
    let app = TestApp::new(Backend::Embedded).await;
    let request = Call::get("/v1/endpoints").bearer(&app.owner).build();
    let response = respond(
        &app.app,
        request,
        Route::native("list-endpoints"),
        async |_, _| -> Result<webhook_secrets::api::http::Reply, _> { panic!("a bug") },
    )
    .await
    .expect("routes always answer Ok");
    let answer = integration_tests::answer(response);
    assert_error(&answer, 500, "internal");
    assert!(
        !answer.body.to_string().contains("a bug"),
        "{}",
        answer.body
    );
}
