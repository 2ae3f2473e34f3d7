//! Bad input refused at the edge, on both backends: control characters and whitespace in urls
//! and delivery headers, cursors the API never issued, path ids parsed only after the caller
//! is authenticated (and every attempt audited), duplicate JSON keys, the reserved account
//! secrets, and seed contracts that answer only the statuses their documents list. Every
//! case asserts the status and the error body.

use async_trait::async_trait;
use integration_tests::interposed::{BeforeReplace, Interposed};
use integration_tests::{
    assert_error, face, invoke, on_every_backend, start_of_test_time, Answer, Backend, Call,
    TestApp,
};
use lambda_http::http::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use webhook_secrets::audit::AuditRecord;
use webhook_secrets::compat::SWAP_ATTEMPTS;
use webhook_secrets::domain::ids::{TenantId, VersionId};
use webhook_secrets::store::{SecretName, SecretStore, StoreError, StoredValue};
use webhook_secrets::vault::AccountSecret;
use webhook_secrets::vault::EndpointRepository;

fn patch(path: &str) -> Call {
    Call::new(Method::PATCH, path)
}

fn message(answer: &Answer) -> &str {
    answer.body["error"]["message"].as_str().unwrap_or_default()
}

/// Asserts the native error and that its message says `says`.
fn assert_refused(answer: &Answer, status: u16, code: &str, says: &str) {
    assert_error(answer, status, code);
    assert!(
        message(answer).contains(says),
        "expected a message about {says:?}: {}",
        answer.body
    );
}

/// The one audit record the request that got `answer` wrote.
fn audit_of(app: &TestApp, answer: &Answer) -> AuditRecord {
    let request_id = answer.request_id.as_deref().expect("a request id");
    let mut records: Vec<AuditRecord> = app
        .audit
        .records()
        .into_iter()
        .filter(|r| r.request_id == request_id)
        .collect();
    assert_eq!(
        records.len(),
        1,
        "one audit record per attempt: {records:?}"
    );
    records.remove(0)
}

async fn listed_ids(app: &TestApp) -> Vec<String> {
    let listed = invoke!(
        list_endpoints,
        app,
        Call::get("/v1/endpoints").bearer(&app.owner)
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---- urls ----

async fn urls_with_control_characters_or_whitespace_are_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    let cases = [
        (
            "https://example.com/\r\nX-Injected: 1",
            "control characters",
        ),
        ("https://example.com/\nX-Injected: 1", "control characters"),
        ("https://example.com/a\tb", "control characters"),
        ("https://example.com/\0", "control characters"),
        ("https://exa\rmple.com/", "control characters"),
        ("https://example.com/\u{7f}", "control characters"),
        ("https://example.com/\u{85}", "control characters"),
        (" https://example.com/", "whitespace"),
        ("https://example.com/ ", "whitespace"),
        ("https://example.com/\u{a0}", "whitespace"),
        ("\u{2003}https://example.com/", "whitespace"),
    ];
    for (url, says) in cases {
        let refused = invoke!(
            create_endpoint,
            app,
            Call::post("/v1/endpoints")
                .bearer(&app.owner)
                .json(json!({"id": "hook", "url": url}))
        );
        assert_refused(&refused, 400, "invalid_request", says);
    }
    assert_eq!(listed_ids(&app).await, Vec::<String>::new());

    app.create(json!({"id": "hook", "url": "https://example.com/hook"}))
        .await;
    for (url, says) in cases {
        let refused = invoke!(
            update_endpoint,
            app,
            patch("/x")
                .bearer(&app.owner)
                .id("hook")
                .json(json!({"url": url}))
        );
        assert_refused(&refused, 400, "invalid_request", says);
    }
    let got = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.owner).id("hook")
    );
    assert_eq!(got.body["url"], "https://example.com/hook");
}

async fn urls_are_stored_normalised(backend: Backend) {
    let app = TestApp::new(backend).await;
    let created = app
        .create(json!({"id": "norm", "url": "HTTPS://Example.COM:443/a b/../c?q=1 2#frag"}))
        .await;
    let normalised = "https://example.com/c?q=1%202#frag";
    assert_eq!(created["url"], normalised);
    let got = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.owner).id("norm")
    );
    assert_eq!(got.body["url"], normalised);
    let changed = invoke!(
        update_endpoint,
        app,
        patch("/x")
            .bearer(&app.owner)
            .id("norm")
            .json(json!({"url": "http://EXAMPLE.org"}))
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["url"], "http://example.org/");
    // A url that percent-encoding pushes past the limit is refused, not stored longer.
    let long = format!("https://example.com/{}", "é".repeat(1000));
    let refused = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .json(json!({"url": long}))
    );
    assert_refused(&refused, 400, "invalid_request", "once normalised");
}

// ---- delivery headers ----

async fn headers_a_sender_owns_or_with_control_characters_are_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    let cases = [
        (json!({"Host": "evil.example"}), "may not set Host"),
        (json!({"content-length": "0"}), "may not set content-length"),
        (
            json!({"Transfer-Encoding": "chunked"}),
            "may not set Transfer-Encoding",
        ),
        (json!({"CONNECTION": "close"}), "may not set CONNECTION"),
        (json!({"Upgrade": "h2c"}), "may not set Upgrade"),
        (
            json!({"webhook-signature": "v1,Zm9yZ2Vk"}),
            "may not set webhook-signature",
        ),
        (json!({"Webhook-Id": "msg_1"}), "may not set Webhook-Id"),
        (
            json!({"WEBHOOK-TIMESTAMP": "1"}),
            "may not set WEBHOOK-TIMESTAMP",
        ),
        (json!({"X-A": "1\r\nX-Injected: 1"}), "printable ASCII"),
        (json!({"X-A": "a\tb"}), "printable ASCII"),
        (json!({"X-A": "a\u{0}b"}), "printable ASCII"),
        (json!({"X-A": "a\nb"}), "printable ASCII"),
        (json!({"X-A\r\nX-B": "1"}), "printable ASCII"),
        (json!({"X-A": " padded"}), "whitespace"),
        (json!({"X-A": "padded "}), "whitespace"),
        (json!({"X-Tenant": "a", "x-tenant": "b"}), "twice"),
    ];
    for (headers, says) in &cases {
        let refused = invoke!(
            create_endpoint,
            app,
            Call::post("/v1/endpoints").bearer(&app.owner).json(
                json!({"id": "hook", "url": "https://example.com", "request_config": {"headers": headers}})
            )
        );
        assert_refused(&refused, 400, "invalid_request", says);
    }
    assert_eq!(listed_ids(&app).await, Vec::<String>::new());

    let created = app
        .create(json!({"id": "hook", "url": "https://example.com",
                       "request_config": {"headers": {"X-Webhook-Token": "t", "Authorization": "Bearer x"}}}))
        .await;
    for (headers, says) in &cases {
        let refused = invoke!(
            update_endpoint,
            app,
            patch("/x")
                .bearer(&app.owner)
                .id("hook")
                .json(json!({"request_config": {"headers": headers}}))
        );
        assert_refused(&refused, 400, "invalid_request", says);
    }
    let got = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.owner).id("hook")
    );
    assert_eq!(got.body["request_config"], created["request_config"]);
}

// ---- cursors ----

async fn cursors_the_api_never_issued_are_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    for i in 0..3 {
        app.create(json!({"id": format!("ep-{i}"), "url": "https://example.com"}))
            .await;
    }
    let page = |key: &str, cursor: Option<&str>| {
        let mut call = Call::get("/v1/endpoints").bearer(key).query("limit", "1");
        if let Some(cursor) = cursor {
            call = call.query("cursor", cursor);
        }
        call
    };
    let first = invoke!(list_endpoints, app, page(&app.owner, None));
    assert_eq!(first.status, 200, "{}", first.body);
    let issued = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = invoke!(list_endpoints, app, page(&app.owner, Some(&issued)));
    assert_eq!(second.status, 200, "{}", second.body);
    assert_ne!(second.body["data"], first.body["data"]);

    use base64::Engine;
    let b64 = |raw: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let mut altered = issued.clone().into_bytes();
    let last = altered.len() - 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let mut garbage = vec![
        "!!".to_owned(),
        "not-a-cursor".to_owned(),
        b64("garbage"),
        // What a cursor used to be: the bare position, with no tag.
        b64(&format!("{}/acme/ep-0", app.prefix)),
        altered,
        issued[..issued.len() - 4].to_owned(),
        format!("{issued}AAAA"),
        "A".repeat(7_000),
    ];
    // A Secrets Manager NextToken it never gave out, wrapped in a cursor-like shape.
    garbage.push(b64(&"x".repeat(40)));
    for cursor in &garbage {
        let refused = invoke!(list_endpoints, app, page(&app.owner, Some(cursor)));
        assert_refused(&refused, 400, "invalid_request", "cursor");
        assert!(refused.headers.get("retry-after").is_none());
    }
    // Another tenant's cursor does not page through this tenant's listing.
    let globex = app.mint("globex", webhook_secrets::auth::Role::Owner).await;
    let theirs = invoke!(list_endpoints, app, page(&globex, Some(&issued)));
    assert_refused(&theirs, 400, "invalid_request", "cursor");
}

// ---- ids: authenticate first, audit every attempt ----

/// Puts an id (and a body, where the route takes one) on a call.
type WithId = fn(&str, Call) -> Call;

/// The audited routes taking `{id}`: name, audit action, and how to call it.
fn id_routes() -> Vec<(&'static str, &'static str, WithId)> {
    vec![
        ("delete", "endpoint.delete", |id, call| call.id(id)),
        ("update", "endpoint.update", |id, call| {
            call.id(id).json(json!({"name": "x"}))
        }),
        ("rotate", "secret.rotate", |id, call| call.id(id)),
        ("reveal", "secret.reveal", |id, call| call.id(id)),
    ]
}

async fn call_id_route(app: &TestApp, route: &str, call: Call) -> Answer {
    match route {
        "delete" => invoke!(delete_endpoint, app, call),
        "update" => invoke!(update_endpoint, app, call),
        "rotate" => invoke!(rotate_secret, app, call),
        "reveal" => invoke!(reveal_secret, app, call),
        other => unreachable!("{other}"),
    }
}

async fn ids_are_parsed_after_authentication_and_every_attempt_is_audited(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (owner_key_id, _) = app.owner.split_once('.').unwrap();
    let (member_key_id, _) = app.member.split_once('.').unwrap();
    for (route, action, with_id) in id_routes() {
        for bad_id in ["a.b", "has space", "é", &"x".repeat(65)] {
            // No key: 401, whatever the id looks like.
            let refused = call_id_route(&app, route, with_id(bad_id, Call::post("/x"))).await;
            assert_refused(&refused, 401, "unauthorized", "API key");
            let record = audit_of(&app, &refused);
            assert_eq!(
                (record.action, record.outcome.as_str(), record.status),
                (action, "unauthorized", Some(401)),
                "{route}"
            );
            assert_eq!(record.actor_key_id, None);
            assert_eq!(record.endpoint_id.as_deref(), Some(bad_id));

            // A bad key: 401 as well.
            let refused = call_id_route(
                &app,
                route,
                with_id(
                    bad_id,
                    Call::post("/x").bearer("ak_00000000000000000000.nope"),
                ),
            )
            .await;
            assert_refused(&refused, 401, "unauthorized", "not valid");
            assert_eq!(audit_of(&app, &refused).outcome, "unauthorized");

            // A member key: 403, before the id is looked at.
            let refused = call_id_route(
                &app,
                route,
                with_id(bad_id, Call::post("/x").bearer(&app.member)),
            )
            .await;
            assert_refused(&refused, 403, "forbidden", "role");
            let record = audit_of(&app, &refused);
            assert_eq!(
                (record.outcome.as_str(), record.actor_key_id.as_deref()),
                ("forbidden", Some(member_key_id))
            );

            // An owner key: now the id is parsed, and refused, on record.
            let refused = call_id_route(
                &app,
                route,
                with_id(bad_id, Call::post("/x").bearer(&app.owner)),
            )
            .await;
            assert_refused(&refused, 400, "invalid_request", "endpoint id");
            let record = audit_of(&app, &refused);
            assert_eq!(
                (
                    record.action,
                    record.outcome.as_str(),
                    record.status,
                    record.tenant.as_deref(),
                    record.actor_key_id.as_deref()
                ),
                (
                    action,
                    "invalid_request",
                    Some(400),
                    Some("acme"),
                    Some(owner_key_id)
                ),
                "{route}"
            );
        }
        // No id in the path at all: still authenticated first and audited.
        let refused = call_id_route(&app, route, Call::post("/x")).await;
        assert_error(&refused, 401, "unauthorized");
        assert_eq!(audit_of(&app, &refused).endpoint_id, None);
        let refused = call_id_route(&app, route, Call::post("/x").bearer(&app.owner)).await;
        assert_refused(&refused, 400, "invalid_request", "no endpoint id");
        assert_eq!(audit_of(&app, &refused).outcome, "invalid_request");
    }
}

// ---- duplicate JSON keys ----

async fn duplicate_json_keys_are_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    let create = |raw: &str| {
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .header("content-type", "application/json")
            .raw_body(raw)
    };
    for raw in [
        r#"{"id": "a", "id": "b", "url": "https://example.com"}"#,
        r#"{"id": "a", "url": "https://example.com", "url": "https://evil.example"}"#,
        r#"{"id": "a", "url": "https://example.com", "request_config": {"headers": {"X-A": "1", "X-A": "2"}}}"#,
        r#"{"id": "a", "url": "https://example.com", "rotation_policy": {"period_days": 1, "period_days": 2}}"#,
    ] {
        let refused = invoke!(create_endpoint, app, create(raw));
        assert_refused(&refused, 400, "invalid_request", "same key twice");
    }
    assert_eq!(listed_ids(&app).await, Vec::<String>::new());

    app.create(json!({"id": "a", "url": "https://example.com"}))
        .await;
    let before = invoke!(
        reveal_secret,
        app,
        Call::get("/x").bearer(&app.owner).id("a")
    );
    let raw_call = |call: Call, raw: &str| {
        call.bearer(&app.owner)
            .id("a")
            .header("content-type", "application/json")
            .raw_body(raw)
    };
    let refused = invoke!(
        update_endpoint,
        app,
        raw_call(patch("/x"), r#"{"name": "x", "name": "y"}"#)
    );
    assert_refused(&refused, 400, "invalid_request", "same key twice");
    let refused = invoke!(
        rotate_secret,
        app,
        raw_call(
            Call::post("/x"),
            r#"{"grace_period_seconds": 0, "grace_period_seconds": 600000}"#
        )
    );
    assert_refused(&refused, 400, "invalid_request", "same key twice");
    let refused = invoke!(
        sign_message,
        app,
        raw_call(Call::post("/x"), r#"{"payload": "a", "payload": "b"}"#)
    );
    assert_refused(&refused, 400, "invalid_request", "same key twice");
    let refused = invoke!(
        verify_message,
        app,
        raw_call(
            Call::post("/x"),
            r#"{"headers": {"webhook-id": "a", "webhook-id": "b"}, "payload": "x"}"#
        )
    );
    assert_refused(&refused, 400, "invalid_request", "same key twice");
    let after = invoke!(
        reveal_secret,
        app,
        Call::get("/x").bearer(&app.owner).id("a")
    );
    assert_eq!(before.body["secret"], after.body["secret"]);
    let got = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.owner).id("a")
    );
    assert_eq!(got.body["name"], "");

    // The JWT contract's token request too, in its own error shape.
    let (app_id, secret_key) = app.owner.split_once('.').unwrap();
    let raw = format!(
        r#"{{"appId": "{app_id}", "secretKey": "{secret_key}", "grantType": "client_credentials", "grantType": "client_credentials"}}"#
    );
    let refused = face!(
        fyatu::issue_token,
        app,
        Call::post("/api/v3/auth/token")
            .header("content-type", "application/json")
            .raw_body(&raw)
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["success"], false);
    assert_eq!(refused.body["error"]["code"], "VALIDATION_ERROR");
    assert!(refused.body["message"]
        .as_str()
        .unwrap()
        .contains("same key twice"));
}

// ---- reserved account secrets ----

async fn account_secrets_change_only_through_their_own_contracts(backend: Backend) {
    let app = TestApp::new(backend).await;
    let tenant = TenantId::parse("acme").unwrap();
    for account in [AccountSecret::Uuid, AccountSecret::Whsec] {
        app.app
            .endpoints
            .rotate_account_secret(&integration_tests::owner_of(tenant.as_str()), account)
            .await
            .unwrap();
    }
    for id in ["_account-uuid", "_account-whsec"] {
        let before = invoke!(
            reveal_secret,
            app,
            Call::get("/x").bearer(&app.owner).id(id)
        );
        assert_eq!(before.status, 200, "{}", before.body);
        let native: Vec<(&str, Answer)> = vec![
            (
                "rotate with a grace period",
                invoke!(
                    rotate_secret,
                    app,
                    Call::post("/x")
                        .bearer(&app.owner)
                        .id(id)
                        .json(json!({"grace_period_seconds": 3600}))
                ),
            ),
            (
                "rotate to a whsec_ value",
                invoke!(
                    rotate_secret,
                    app,
                    Call::post("/x")
                        .bearer(&app.owner)
                        .id(id)
                        .json(json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "grace_period_seconds": 0}))
                ),
            ),
            (
                "rotate",
                invoke!(rotate_secret, app, Call::post("/x").bearer(&app.admin).id(id)),
            ),
            (
                "a rotation policy",
                invoke!(
                    update_endpoint,
                    app,
                    patch("/x")
                        .bearer(&app.owner)
                        .id(id)
                        .json(json!({"rotation_policy": {"period_days": 1}}))
                ),
            ),
            (
                "a patch",
                invoke!(
                    update_endpoint,
                    app,
                    patch("/x")
                        .bearer(&app.owner)
                        .id(id)
                        .json(json!({"url": "https://example.com"}))
                ),
            ),
            (
                "delete",
                invoke!(delete_endpoint, app, Call::delete("/x").bearer(&app.owner).id(id)),
            ),
        ];
        for (what, refused) in &native {
            assert_refused(refused, 400, "invalid_request", "account-level secret");
            assert!(message(refused).contains(id), "{what}: {}", refused.body);
            assert_eq!(audit_of(&app, refused).outcome, "invalid_request", "{what}");
        }
        // A member still gets 403 first: the role check does not depend on the id.
        let member = invoke!(
            rotate_secret,
            app,
            Call::post("/x").bearer(&app.member).id(id)
        );
        assert_error(&member, 403, "forbidden");

        // The Composio contract rotates subscriptions; an account secret is not one.
        let composio = face!(
            composio::rotate_subscription_secret,
            app,
            Call::post("/x").header("x-api-key", &app.owner).id(id)
        );
        assert_eq!(composio.status, 404, "{}", composio.body);
        assert_eq!(
            composio.body["error"]["slug"],
            "webhook_subscription_not_found"
        );
        assert_eq!(composio.body["error"]["status"], 404);

        // Nothing changed, and reading, revealing, signing and verifying still work.
        let after = invoke!(
            reveal_secret,
            app,
            Call::get("/x").bearer(&app.owner).id(id)
        );
        assert_eq!(after.status, 200);
        assert_eq!(after.body, before.body);
        let got = invoke!(
            get_endpoint,
            app,
            Call::get("/x").bearer(&app.member).id(id)
        );
        assert_eq!(got.status, 200);
        assert_eq!(got.body["rotation_policy"], Value::Null);
        let signed = app.sign(id, "{}", None).await;
        assert_eq!(
            app.verify(id, &signed["headers"], "{}").await["valid"],
            true
        );
    }
    // Their own contracts still rotate them.
    let rotated = face!(
        openformat::generate_webhook_secret,
        app,
        Call::post("/v1/webhook/secret").header("x-api-key", &app.owner)
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
}

// ---- seed contracts: no undocumented status ----

/// Loses every compare-and-swap while `lose` allows (the way a rotation in another process
/// would make it lose), or refuses every new version as over the quota.
#[derive(Default)]
struct Racing {
    /// Swaps still to lose; `u32::MAX` loses them all.
    lose: AtomicU32,
    over_quota: AtomicBool,
    swaps: AtomicU32,
}

#[async_trait]
impl BeforeReplace for Racing {
    async fn before_replace(
        &self,
        _: &dyn SecretStore,
        _: &SecretName,
        _: &VersionId,
        _: &StoredValue,
    ) -> Result<(), StoreError> {
        self.swaps.fetch_add(1, Ordering::SeqCst);
        if self.over_quota.load(Ordering::SeqCst) {
            return Err(StoreError::VersionQuota);
        }
        let lost = self
            .lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                0 => None,
                u32::MAX => Some(u32::MAX),
                n => Some(n - 1),
            })
            .is_ok();
        if lost {
            Err(StoreError::Conflict)
        } else {
            Ok(())
        }
    }
}

type RacingStore = Interposed<Racing>;

const OBJECT_ID: &str = "507f1f77bcf86cd799439011";

async fn racing_app(backend: Backend) -> (TestApp, Arc<RacingStore>) {
    let mut racing = None;
    let app = TestApp::with_store(backend, start_of_test_time(), |inner| {
        let store = Interposed::wrap(inner, Racing::default());
        racing = Some(store.clone());
        store as Arc<dyn SecretStore>
    })
    .await;
    let racing = racing.unwrap();
    for id in [OBJECT_ID, "wh_end_orders", "sub_orders"] {
        app.create(json!({"id": id, "url": "https://example.com"}))
            .await;
    }
    // The account secrets exist, so the contracts that rotate them go through a swap.
    let tenant = TenantId::parse("acme").unwrap();
    for account in [AccountSecret::Uuid, AccountSecret::Whsec] {
        app.app
            .endpoints
            .rotate_account_secret(&integration_tests::owner_of(tenant.as_str()), account)
            .await
            .unwrap();
    }
    (app, racing)
}

async fn fyatu_token(app: &TestApp) -> String {
    let (app_id, secret_key) = app.owner.split_once('.').unwrap();
    let issued = face!(
        fyatu::issue_token,
        app,
        Call::post("/api/v3/auth/token").json(
            json!({"appId": app_id, "secretKey": secret_key, "grantType": "client_credentials"})
        )
    );
    issued.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

const CONTRACTS: [&str; 5] = ["openformat", "inklink", "composio", "fyatu", "featurebase"];

/// One rotation through the contract `name`, with the owner key (`jwt` for seed 003).
async fn rotate_through(app: &TestApp, jwt: &str, name: &str) -> Answer {
    match name {
        "openformat" => face!(
            openformat::generate_webhook_secret,
            app,
            Call::post("/x").header("x-api-key", &app.owner)
        ),
        "inklink" => face!(
            inklink::rotate_endpoint_secret,
            app,
            Call::post("/x")
                .header("api-key", &app.owner)
                .id("wh_end_orders")
        ),
        "composio" => face!(
            composio::rotate_subscription_secret,
            app,
            Call::post("/x")
                .header("x-api-key", &app.owner)
                .id("sub_orders")
        ),
        "fyatu" => face!(fyatu::regenerate_secret, app, Call::post("/x").bearer(jwt)),
        "featurebase" => face!(
            featurebase::refresh_webhook_secret,
            app,
            Call::post("/x").bearer(&app.owner).id(OBJECT_ID)
        ),
        other => unreachable!("{other}"),
    }
}

/// The secret a contract's answer carries.
fn secret_in(name: &str, answered: &Answer) -> Value {
    match name {
        "openformat" => answered.body["webhook_secret"].clone(),
        "fyatu" => answered.body["data"]["webhookSecret"].clone(),
        _ => answered.body["secret"].clone(),
    }
}

fn rotated_id(name: &str) -> &'static str {
    match name {
        "openformat" => "_account-uuid",
        "inklink" => "wh_end_orders",
        "composio" => "sub_orders",
        "fyatu" => "_account-whsec",
        _ => OBJECT_ID,
    }
}

/// A contract that loses its first swaps retries, up to `SWAP_ATTEMPTS` in all, and answers
/// 200 with the secret that won.
async fn contracts_retry_a_lost_race(backend: Backend) {
    let (app, racing) = racing_app(backend).await;
    let jwt = fyatu_token(&app).await;
    for name in CONTRACTS {
        racing.hook.lose.store(SWAP_ATTEMPTS - 1, Ordering::SeqCst);
        racing.hook.swaps.store(0, Ordering::SeqCst);
        let answered = rotate_through(&app, &jwt, name).await;
        assert_eq!(answered.status, 200, "{name}: {}", answered.body);
        assert_eq!(
            racing.hook.swaps.load(Ordering::SeqCst),
            SWAP_ATTEMPTS,
            "{name}"
        );
        let revealed = invoke!(
            reveal_secret,
            app,
            Call::get("/x").bearer(&app.owner).id(rotated_id(name))
        );
        assert_eq!(
            revealed.body["secret"]["value"],
            secret_in(name, &answered),
            "{name}"
        );
    }
}

async fn contracts_answer_only_documented_statuses_when_races_keep_being_lost(backend: Backend) {
    let (app, racing) = racing_app(backend).await;
    let jwt = fyatu_token(&app).await;
    racing.hook.lose.store(u32::MAX, Ordering::SeqCst);
    racing.hook.swaps.store(0, Ordering::SeqCst);
    let mut answers = Vec::new();
    for name in CONTRACTS {
        answers.push((name, rotate_through(&app, &jwt, name).await));
    }
    // On keyrings each attempt is itself a few swaps: one that loses while its endpoint
    // did not change is retried inside the write.
    let swaps_per_attempt = match backend.layout {
        webhook_secrets::vault::VaultLayout::PerEndpoint => 1,
        webhook_secrets::vault::VaultLayout::Keyrings => {
            webhook_secrets::vault::keyrings::WRITE_ATTEMPTS
        }
    };
    assert_eq!(
        racing.hook.swaps.load(Ordering::SeqCst),
        5 * SWAP_ATTEMPTS * swaps_per_attempt,
        "each contract retries a bounded number of times"
    );
    for (name, refused) in &answers {
        assert!(refused.request_id.is_some());
        match *name {
            "openformat" => {
                assert_eq!(refused.status, 500, "{}", refused.body);
                assert_eq!(refused.body["status"], "failed");
                assert!(refused.body["error"].as_str().unwrap().contains("retry"));
            }
            "inklink" => {
                assert_eq!(refused.status, 500, "{}", refused.body);
                assert_eq!(refused.body["code"], "INTERNAL_ERROR");
            }
            "composio" => {
                assert_eq!(refused.status, 500, "{}", refused.body);
                assert_eq!(refused.body["error"]["slug"], "internal_server_error");
                assert_eq!(refused.body["error"]["status"], 500);
            }
            "fyatu" => {
                assert_eq!(refused.status, 503, "{}", refused.body);
                assert_eq!(refused.body["success"], false);
                assert_eq!(refused.body["status"], 503);
                assert_eq!(refused.body["error"]["code"], "SERVICE_UNAVAILABLE");
                assert_eq!(refused.headers.get("retry-after").unwrap(), "1");
            }
            "featurebase" => {
                assert_eq!(refused.status, 503, "{}", refused.body);
                assert_eq!(refused.body["object"], "error");
                assert_eq!(refused.body["status"], 503);
                assert_eq!(refused.body["code"], "conflict");
                assert!(refused.body["message"].as_str().unwrap().contains("retry"));
                assert_eq!(refused.headers.get("retry-after").unwrap(), "1");
            }
            other => unreachable!("{other}"),
        }
    }
    // The audit trail keeps the native outcome and the status actually answered.
    let featurebase = &answers[4].1;
    let record = audit_of(&app, featurebase);
    assert_eq!(
        (record.outcome.as_str(), record.status),
        ("conflict", Some(503))
    );

    // Past the version quota: the documented throttling status where there is one.
    racing.hook.lose.store(0, Ordering::SeqCst);
    racing.hook.over_quota.store(true, Ordering::SeqCst);
    for name in CONTRACTS {
        let refused = rotate_through(&app, &jwt, name).await;
        match name {
            "fyatu" => {
                assert_eq!(refused.status, 429, "{}", refused.body);
                assert_eq!(refused.body["error"]["code"], "RATE_LIMITED");
                assert_eq!(refused.headers.get("retry-after").unwrap(), "600");
            }
            "featurebase" => {
                assert_eq!(refused.status, 429, "{}", refused.body);
                assert_eq!(refused.body["code"], "version_quota_exceeded");
                assert_eq!(refused.headers.get("retry-after").unwrap(), "600");
            }
            "composio" => assert_eq!(refused.body["error"]["status"], 500),
            _ => assert_eq!(refused.status, 500, "{name}: {}", refused.body),
        }
    }
}

/// Real concurrency, no injected faults: concurrent contract rotations of one webhook never
/// answer 409, a status none of the documents has.
async fn concurrent_contract_rotations_never_answer_409(backend: Backend) {
    let app = Arc::new(TestApp::new(backend).await);
    app.create(json!({"id": OBJECT_ID, "url": "https://example.com"}))
        .await;
    let jwt = fyatu_token(&app).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let app = app.clone();
        let jwt = jwt.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                face!(
                    featurebase::refresh_webhook_secret,
                    app,
                    Call::post("/x").bearer(&app.owner).id(OBJECT_ID)
                )
            } else {
                face!(fyatu::regenerate_secret, app, Call::post("/x").bearer(&jwt))
            }
        }));
    }
    let mut succeeded = [0, 0];
    for (i, task) in futures::future::join_all(tasks)
        .await
        .into_iter()
        .enumerate()
    {
        let answered = task.unwrap();
        match answered.status {
            200 => succeeded[i % 2] += 1,
            503 => assert_eq!(
                answered.body["status"], 503,
                "a documented error shape: {}",
                answered.body
            ),
            other => panic!("undocumented status {other}: {}", answered.body),
        }
    }
    assert!(
        succeeded.iter().all(|n| *n >= 1),
        "at least one rotation of each secret succeeds: {succeeded:?}"
    );
}

on_every_backend!(
    urls_with_control_characters_or_whitespace_are_refused,
    urls_are_stored_normalised,
    headers_a_sender_owns_or_with_control_characters_are_refused,
    cursors_the_api_never_issued_are_400,
    ids_are_parsed_after_authentication_and_every_attempt_is_audited,
    duplicate_json_keys_are_refused,
    account_secrets_change_only_through_their_own_contracts,
    contracts_retry_a_lost_race,
    contracts_answer_only_documented_statuses_when_races_keep_being_lost,
    concurrent_contract_rotations_never_answer_409,
);
