//! The five seed contracts, on both backends: every documented success and error response,
//! validated against a schema written from the seed document (for seeds 000 and 001, from
//! their own OpenAPI; see tests/contracts/), and checked to change the state it claims to
//! change: after a rotation through any contract, the native reveal shows the new secret, it
//! signs and verifies, and the old one no longer does.

use integration_tests::{face, invoke, on_every_backend, Answer, Backend, Call, TestApp};
use serde_json::{json, Value};
use webhook_secrets::auth::Role;
use webhook_secrets::domain::clock::Clock;

fn schema(file: &str, response: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contracts")
        .join(file);
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&all[response])
        .expect("a valid schema")
}

fn assert_matches(file: &str, response: &str, answer: &Answer) {
    let validator = schema(file, response);
    let errors: Vec<String> = validator
        .iter_errors(&answer.body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{file} {response}: {errors:?}\nbody: {}",
        answer.body
    );
    assert!(
        answer.request_id.is_some(),
        "every response carries x-request-id"
    );
}

async fn create(app: &TestApp, id: &str, extra: Value) -> Value {
    let mut body =
        json!({"id": id, "url": "https://example.com/hooks", "name": "Production Webhook"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    app.create(body).await
}

/// What the native API says of an endpoint after a contract rotated it: the revealed secret
/// is `secret`, nothing older still verifies, and a delivery signed now verifies.
async fn assert_now_current(app: &TestApp, id: &str, secret: &str) {
    let revealed = invoke!(
        reveal_secret,
        app,
        Call::get("/x").bearer(&app.owner).id(id)
    );
    assert_eq!(revealed.status, 200, "{}", revealed.body);
    assert_eq!(revealed.body["secret"]["value"], secret);
    assert_eq!(
        revealed.body["previous_secrets"],
        json!([]),
        "the old secret still verifies"
    );
    let signed = app.sign(id, "{}", None).await;
    assert_eq!(
        signed["headers"]["webhook-signature"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    let verified = app.verify(id, &signed["headers"], "{}").await;
    assert_eq!(verified["valid"], true);
    assert_eq!(
        verified["version_id"],
        revealed.body["secret"]["version_id"]
    );
}

// ---- 000: POST /v1/webhook/secret, X-API-KEY, uuid account secret ----

async fn openformat_contract(backend: Backend) {
    let app = TestApp::new(backend).await;
    let call = |key: &str| Call::post("/v1/webhook/secret").header("x-api-key", key);
    let first = face!(openformat::generate_webhook_secret, app, call(&app.owner));
    assert_eq!(first.status, 200, "{}", first.body);
    assert_matches("000_openformat.json", "200", &first);
    assert_eq!(first.body["status"], "success");
    let secret = first.body["webhook_secret"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(secret).unwrap().get_version_num(), 4);
    assert_now_current(&app, "_account-uuid", secret).await;

    let second = face!(openformat::generate_webhook_secret, app, call(&app.admin));
    assert_eq!(second.status, 200);
    assert_ne!(second.body["webhook_secret"], first.body["webhook_secret"]);
    assert_now_current(
        &app,
        "_account-uuid",
        second.body["webhook_secret"].as_str().unwrap(),
    )
    .await;

    // Its one documented error response, for every failure.
    for call in [
        Call::post("/v1/webhook/secret"),
        call("ak_00000000000000000000.nope"),
        call(&app.member),
        Call::post("/v1/webhook/secret").bearer(&app.owner),
    ] {
        let refused = face!(openformat::generate_webhook_secret, app, call);
        assert_eq!(refused.status, 500, "{}", refused.body);
        assert_matches("000_openformat.json", "500", &refused);
        assert_eq!(refused.body["status"], "failed");
    }
    // Accounts are per tenant.
    let other = app.mint("globex", Role::Owner).await;
    let theirs = face!(openformat::generate_webhook_secret, app, call(&other));
    assert_ne!(theirs.body["webhook_secret"], second.body["webhook_secret"]);
    assert_now_current(
        &app,
        "_account-uuid",
        second.body["webhook_secret"].as_str().unwrap(),
    )
    .await;
}

// ---- 001: POST /api/v1/webhook/endpoints/{id}/rotate-secret, api-key ----

async fn inklink_contract(backend: Backend) {
    let app = TestApp::new(backend).await;
    create(&app, "wh_end_orders", json!({})).await;
    let call = |key: &str, id: &str| {
        Call::post(&format!("/api/v1/webhook/endpoints/{id}/rotate-secret"))
            .header("api-key", key)
            .id(id)
    };
    let rotated = face!(
        inklink::rotate_endpoint_secret,
        app,
        call(&app.admin, "wh_end_orders")
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_matches("001_inklink.json", "200", &rotated);
    assert_eq!(
        rotated.body.as_object().unwrap().len(),
        1,
        "only the secret"
    );
    assert_now_current(
        &app,
        "wh_end_orders",
        rotated.body["secret"].as_str().unwrap(),
    )
    .await;

    for unauthenticated in [
        Call::post("/x").id("wh_end_orders"),
        call("ak_00000000000000000000.nope", "wh_end_orders"),
        Call::post("/x").bearer(&app.owner).id("wh_end_orders"),
    ] {
        let refused = face!(inklink::rotate_endpoint_secret, app, unauthenticated);
        assert_eq!(refused.status, 401, "{}", refused.body);
        assert_matches("001_inklink.json", "401", &refused);
    }
    // Not found and permission denied are 500 INTERNAL_ERROR, as the document says.
    let other = app.mint("globex", Role::Owner).await;
    create(&app, "orders", json!({})).await;
    for refused_call in [
        call(&app.owner, "wh_end_missing"),
        call(&app.member, "wh_end_orders"),
        call(&other, "wh_end_orders"),
        call(&app.owner, "orders"),
    ] {
        let refused = face!(inklink::rotate_endpoint_secret, app, refused_call);
        assert_eq!(refused.status, 500, "{}", refused.body);
        assert_matches("001_inklink.json", "500", &refused);
    }
    assert_now_current(
        &app,
        "wh_end_orders",
        rotated.body["secret"].as_str().unwrap(),
    )
    .await;
}

// ---- 002: POST /api/v3/webhook_subscriptions/{id}/rotate_secret, x-api-key | x-user-api-key ----

async fn composio_contract(backend: Backend) {
    let app = TestApp::new(backend).await;
    create(&app, "sub_1", json!({})).await;
    for header in ["x-api-key", "x-user-api-key"] {
        let rotated = face!(
            composio::rotate_subscription_secret,
            app,
            Call::post("/x").header(header, &app.owner).id("sub_1")
        );
        assert_eq!(rotated.status, 200, "{}", rotated.body);
        assert_matches("002_composio.json", "200", &rotated);
        assert_eq!(rotated.body["id"], "sub_1");
        assert!(rotated.body["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"));
        assert_now_current(&app, "sub_1", rotated.body["secret"].as_str().unwrap()).await;
    }
    let other = app.mint("globex", Role::Owner).await;
    let cases = [
        (Call::post("/x").id("sub_1"), 401, "unauthorized"),
        (
            Call::post("/x").header("x-api-key", "garbage").id("sub_1"),
            401,
            "unauthorized",
        ),
        (
            Call::post("/x")
                .header("x-api-key", &app.member)
                .id("sub_1"),
            401,
            "insufficient_permissions",
        ),
        (
            Call::post("/x")
                .header("x-api-key", &app.owner)
                .id("sub_missing"),
            404,
            "webhook_subscription_not_found",
        ),
        (
            Call::post("/x").header("x-api-key", &other).id("sub_1"),
            404,
            "webhook_subscription_not_found",
        ),
        (
            Call::post("/x")
                .header("x-api-key", &app.owner)
                .id("bad.id"),
            404,
            "webhook_subscription_not_found",
        ),
    ];
    for (call, status, slug) in cases {
        let refused = face!(composio::rotate_subscription_secret, app, call);
        assert_eq!(refused.status, status, "{}", refused.body);
        assert_matches("002_composio.json", "error", &refused);
        assert_eq!(refused.body["error"]["slug"], slug);
        assert_eq!(refused.body["error"]["status"], status);
        assert_eq!(
            refused.body["error"]["request_id"].as_str(),
            refused.request_id.as_deref()
        );
    }
}

// ---- 003: POST /api/v3/auth/token, POST /api/v3/webhooks/secret/regenerate ----

async fn token(app: &TestApp, key: &str, scopes: Option<Value>) -> Answer {
    let (app_id, secret_key) = key.split_once('.').unwrap();
    let mut body =
        json!({"appId": app_id, "secretKey": secret_key, "grantType": "client_credentials"});
    if let Some(scopes) = scopes {
        body["scopes"] = scopes;
    }
    face!(
        fyatu::issue_token,
        app,
        Call::post("/api/v3/auth/token").json(body)
    )
}

fn regenerate_with(bearer: &str) -> Call {
    Call::post("/api/v3/webhooks/secret/regenerate").bearer(bearer)
}

async fn fyatu_contract(backend: Backend) {
    let app = TestApp::new(backend).await;
    let issued = token(&app, &app.owner, None).await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert_matches("003_fyatu.json", "token", &issued);
    assert_eq!(issued.body["data"]["expiresIn"], 86_400);
    assert_eq!(
        issued.body["data"]["scopes"],
        json!(["webhooks:read", "webhooks:write"])
    );
    let jwt = issued.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let first = face!(fyatu::regenerate_secret, app, regenerate_with(&jwt));
    assert_eq!(first.status, 200, "{}", first.body);
    assert_matches("003_fyatu.json", "regenerate", &first);
    assert_eq!(
        first.body["message"],
        "Webhook secret regenerated successfully"
    );
    let secret = first.body["data"]["webhookSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_now_current(&app, "_account-whsec", &secret).await;
    let second = face!(fyatu::regenerate_secret, app, regenerate_with(&jwt));
    assert_ne!(
        second.body["data"]["webhookSecret"],
        first.body["data"]["webhookSecret"]
    );
    assert_now_current(
        &app,
        "_account-whsec",
        second.body["data"]["webhookSecret"].as_str().unwrap(),
    )
    .await;

    // Token errors.
    let (app_id, _) = app.owner.split_once('.').unwrap();
    for (body, status, code) in [
        (
            json!({"appId": app_id, "secretKey": "wrong", "grantType": "client_credentials"}),
            401,
            "AUTH_INVALID_CREDENTIALS",
        ),
        (
            json!({"appId": "ak_00000000000000000000", "secretKey": "x", "grantType": "client_credentials"}),
            401,
            "AUTH_INVALID_CREDENTIALS",
        ),
        (
            json!({"appId": "not-a-key", "secretKey": "x", "grantType": "client_credentials"}),
            401,
            "AUTH_INVALID_CREDENTIALS",
        ),
        (
            json!({"appId": app_id, "grantType": "client_credentials"}),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"appId": app_id, "secretKey": "x", "grantType": "password"}),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"appId": app_id, "secretKey": "x", "grantType": "client_credentials", "extra": 1}),
            400,
            "VALIDATION_ERROR",
        ),
    ] {
        let refused = face!(
            fyatu::issue_token,
            app,
            Call::post("/api/v3/auth/token").json(body)
        );
        assert_eq!(refused.status, status, "{}", refused.body);
        assert_matches("003_fyatu.json", "error", &refused);
        assert_eq!(refused.body["error"]["code"], code);
    }
    let too_much = token(&app, &app.member, Some(json!(["webhooks:write"]))).await;
    assert_eq!(
        (too_much.status, too_much.body["error"]["code"].clone()),
        (400, json!("VALIDATION_ERROR"))
    );

    // Regenerate errors: no token, a bad one, one without the write scope, an expired one.
    let read_only = token(&app, &app.owner, Some(json!(["webhooks:read"]))).await;
    let read_only = read_only.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let member = token(&app, &app.member, None).await;
    let member = member.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let tampered = format!("{}x", &jwt[..jwt.len() - 1]);
    for (call, status, code) in [
        (
            Call::post("/api/v3/webhooks/secret/regenerate"),
            401,
            "AUTH_INVALID_TOKEN",
        ),
        (regenerate_with("not-a-jwt"), 401, "AUTH_INVALID_TOKEN"),
        (regenerate_with(&tampered), 401, "AUTH_INVALID_TOKEN"),
        (regenerate_with(&app.owner), 401, "AUTH_INVALID_TOKEN"),
        (regenerate_with(&read_only), 403, "AUTH_INSUFFICIENT_SCOPE"),
        (regenerate_with(&member), 403, "AUTH_INSUFFICIENT_SCOPE"),
    ] {
        let refused = face!(fyatu::regenerate_secret, app, call);
        assert_eq!(refused.status, status, "{}", refused.body);
        assert_matches("003_fyatu.json", "error", &refused);
        assert_eq!(refused.body["error"]["code"], code);
    }

    // Rotating the signing key keeps earlier tokens working until they expire.
    app.app.tokens.rotate_signing_key().await.unwrap();
    let after_rotation = face!(fyatu::regenerate_secret, app, regenerate_with(&jwt));
    assert_eq!(after_rotation.status, 200, "{}", after_rotation.body);
    let fresh = token(&app, &app.admin, None).await;
    let fresh = fresh.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        face!(fyatu::regenerate_secret, app, regenerate_with(&fresh)).status,
        200
    );
    app.clock.advance(chrono::Duration::hours(24));
    let expired = face!(fyatu::regenerate_secret, app, regenerate_with(&jwt));
    assert_eq!(expired.status, 401);
    assert_eq!(expired.body["error"]["code"], "AUTH_TOKEN_EXPIRED");
}

async fn fyatu_tokens_die_with_their_key(backend: Backend) {
    let app = TestApp::new(backend).await;
    let key = app.mint("acme", Role::Admin).await;
    let jwt = token(&app, &key, None).await.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        face!(fyatu::regenerate_secret, app, regenerate_with(&jwt)).status,
        200
    );
    let key_id =
        webhook_secrets::domain::ids::KeyId::parse(key.split_once('.').unwrap().0).unwrap();
    app.app.auth.keys().revoke(&key_id).await.unwrap();
    app.clock.advance(chrono::Duration::seconds(61));
    let refused = face!(fyatu::regenerate_secret, app, regenerate_with(&jwt));
    assert_eq!(refused.status, 401, "{}", refused.body);
    // Another process that never saw the signing key reads it from the vault and agrees.
    let other = webhook_secrets::auth::tokens::TokenService::new(
        webhook_secrets::vault::records::Records::new(app.store.clone(), &app.prefix),
        app.app.clock.clone(),
    );
    let fresh = token(&app, &app.owner, None).await.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let (claims, principal) = other.verify(&fresh, &app.app.auth).await.unwrap();
    assert_eq!(claims.tenant, "acme");
    assert_eq!(principal.role, Role::Owner);
    assert!(claims.exp - claims.iat == 86_400 && claims.iat == app.clock.now().timestamp());
}

// ---- 004: POST /v2/webhooks/{id}/secret, Bearer api key, Featurebase-Version ----

async fn featurebase_contract(backend: Backend) {
    let app = TestApp::new(backend).await;
    let id = "507f1f77bcf86cd799439011";
    create(
        &app,
        id,
        json!({"description": "Handles all production events", "topics": ["post.created", "post.updated"],
               "request_config": {"timeout_ms": 5000, "headers": {"X-Custom-Header": "value"}}, "version": "1.0"}),
    )
    .await;
    let call = |key: &str, id: &str| {
        Call::post(&format!("/v2/webhooks/{id}/secret"))
            .bearer(key)
            .id(id)
    };
    for version in [None, Some("2026-01-01.nova")] {
        let mut request = call(&app.owner, id);
        if let Some(version) = version {
            request = request.header("Featurebase-Version", version);
        }
        let refreshed = face!(featurebase::refresh_webhook_secret, app, request);
        assert_eq!(refreshed.status, 200, "{}", refreshed.body);
        assert_matches("004_featurebase.json", "200", &refreshed);
        let body = &refreshed.body;
        assert_eq!(body["object"], "webhook");
        assert_eq!(body["id"], id);
        assert_eq!(body["name"], "Production Webhook");
        assert_eq!(body["topics"], json!(["post.created", "post.updated"]));
        assert_eq!(body["status"], "active");
        assert_eq!(
            body["requestConfig"],
            json!({"timeoutMs": 5000, "headers": {"X-Custom-Header": "value"}})
        );
        assert_now_current(&app, id, body["secret"].as_str().unwrap()).await;
    }
    let other = app.mint("globex", Role::Owner).await;
    for (request, status) in [
        (
            call(&app.owner, id).header("Featurebase-Version", "2025-12-12.clover"),
            400,
        ),
        (
            call(&app.owner, id).header("Featurebase-Version", "2027-01-01.future"),
            400,
        ),
        (call(&app.owner, "not-an-object-id"), 400),
        (call(&app.owner, "507f1f77bcf86cd799439012"), 404),
        (call(&other, id), 404),
        (call(&app.member, id), 403),
        (Call::post("/x").id(id), 401),
        (Call::post("/x").bearer("garbage").id(id), 401),
    ] {
        let refused = face!(featurebase::refresh_webhook_secret, app, request);
        assert_eq!(refused.status, status, "{}", refused.body);
        assert_eq!(refused.body["object"], "error");
        assert_eq!(refused.body["status"], status);
        assert!(refused.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

/// Native creates may not take the ids reserved for account-level secrets.
async fn account_ids_are_reserved(backend: Backend) {
    let app = TestApp::new(backend).await;
    let refused = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .json(json!({"id": "_account-uuid", "url": "https://example.com"}))
    );
    integration_tests::assert_error(&refused, 400, "invalid_request");
}

on_every_backend!(
    openformat_contract,
    inklink_contract,
    composio_contract,
    fyatu_contract,
    fyatu_tokens_die_with_their_key,
    featurebase_contract,
    account_ids_are_reserved,
);
