//! Interoperability with verifiers written by others: the official `standardwebhooks` Python
//! package and the `svix` package (both installed into `.venv` by `make test`) accept what
//! `/sign` produces, during a grace period too, and `/verify` accepts what they sign. Ed25519
//! (`v1a`) signatures are checked with the `cryptography` package, an implementation of its own,
//! holding only the public key the endpoint publishes.

use chrono::{Duration, Utc};
use integration_tests::{invoke, Backend, Call, TestApp};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use webhook_secrets::domain::clock::Clock;

const LIBRARIES: [&str; 2] = ["standardwebhooks", "svix"];

fn python() -> std::path::PathBuf {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.exists(),
        "the interop tests need the project's .venv: run `make test`, which installs it"
    );
    python
}

/// Runs tests/interop/webhook_libs.py; returns its exit status and stdout.
fn webhook_libs(action: &str, lib: &str, secret: &str, request: &Value) -> (bool, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/webhook_libs.py");
    let mut child = Command::new(python())
        .arg(script)
        .args([action, lib, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Python helper");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("Traceback"),
        "the Python helper failed: {stderr}"
    );
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    )
}

fn accepts(lib: &str, secret: &str, signed: &Value, payload: &str) -> bool {
    let headers = &signed["headers"];
    let request = json!({
        "id": headers["webhook-id"],
        "timestamp": headers["webhook-timestamp"],
        "signature": headers["webhook-signature"],
        "payload": payload,
    });
    webhook_libs("verify", lib, secret, &request).0
}

async fn sign_at(app: &TestApp, id: &str, payload: &str, timestamp: i64) -> Value {
    app.sign(id, payload, Some(timestamp)).await
}

/// The acceptance case: rotate with a one-hour grace and sign. A receiver holding only the old
/// secret and one holding only the new both verify with the official library. Once the
/// injected clock passes the expiry, only the new one does.
async fn libraries_accept_signatures_through_a_grace_period(backend: Backend) {
    // The libraries check the timestamp against the real time, so the app starts there.
    let app = TestApp::starting_at(backend, Utc::now()).await;
    let created = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .json(json!({"id": "interop", "url": "https://example.com/hook"}))
    );
    let old = created.body["secret"]["value"].as_str().unwrap().to_owned();
    let rotated = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("interop")
            .json(json!({"grace_period_seconds": 3600}))
    );
    let new = rotated.body["secret"]["value"].as_str().unwrap().to_owned();
    let payload = r#"{"type":"invoice.paid","data":{"id":"in_1","amount":4200}}"#;

    let signed = sign_at(&app, "interop", payload, Utc::now().timestamp()).await;
    for lib in LIBRARIES {
        assert!(
            accepts(lib, &old, &signed, payload),
            "{lib} refused the old secret in grace"
        );
        assert!(
            accepts(lib, &new, &signed, payload),
            "{lib} refused the new secret"
        );
        assert!(
            !accepts(lib, &new, &signed, "tampered"),
            "{lib} accepted a tampered payload"
        );
    }

    app.clock.advance(Duration::seconds(3601));
    // Signed with the secrets valid at the injected time, stamped with the real time.
    let signed = sign_at(&app, "interop", payload, Utc::now().timestamp()).await;
    assert_eq!(signed["version_ids"].as_array().unwrap().len(), 1);
    for lib in LIBRARIES {
        assert!(
            !accepts(lib, &old, &signed, payload),
            "{lib} accepted an expired secret"
        );
        assert!(
            accepts(lib, &new, &signed, payload),
            "{lib} refused the new secret"
        );
    }
}

/// `/verify` accepts what the libraries sign, with either secret during a grace period, and
/// names the version that matched.
async fn verify_accepts_library_signatures(backend: Backend) {
    let app = TestApp::starting_at(backend, Utc::now()).await;
    let created = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .json(json!({"id": "interop", "url": "https://example.com/hook"}))
    );
    let rotated = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("interop")
            .json(json!({"grace_period_seconds": 600}))
    );
    let payload = r#"{"hello":"world"}"#;
    for lib in LIBRARIES {
        for answer in [&created.body, &rotated.body] {
            let secret = answer["secret"]["value"].as_str().unwrap();
            let request = json!({"id": format!("msg_{lib}"), "timestamp": app.clock.now().timestamp(), "payload": payload});
            let (ok, signature) = webhook_libs("sign", lib, secret, &request);
            assert!(
                ok && signature.starts_with("v1,"),
                "{lib} could not sign: {signature}"
            );
            let verdict = invoke!(
                verify_message,
                app,
                Call::post("/x").bearer(&app.member).id("interop").json(json!({
                    "headers": {"webhook-id": request["id"], "webhook-timestamp": request["timestamp"].to_string(), "webhook-signature": signature},
                    "payload": payload,
                }))
            );
            assert_eq!(verdict.body["valid"], true, "{lib}: {}", verdict.body);
            assert_eq!(verdict.body["version_id"], answer["secret"]["version_id"]);
        }
    }
}

/// A uuid secret signs with its text's UTF-8 bytes as the HMAC key; the libraries, given
/// those bytes as a raw key, agree.
async fn uuid_secrets_interoperate_as_raw_keys(backend: Backend) {
    let app = TestApp::starting_at(backend, Utc::now()).await;
    let created = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints").bearer(&app.owner).json(
            json!({"id": "uuid-hook", "url": "https://example.com/hook", "secret_format": "uuid"})
        )
    );
    let secret = created.body["secret"]["value"].as_str().unwrap();
    let signed = sign_at(&app, "uuid-hook", "{}", Utc::now().timestamp()).await;
    for lib in LIBRARIES {
        assert!(accepts(lib, secret, &signed, "{}"), "{lib}");
    }
}

/// The acceptance case for asymmetric keys: an endpoint created `whsec` moves to `ed25519` by a
/// rotation with a one-hour grace. During the grace `/sign` carries a `v1` and a `v1a` entry;
/// a receiver holding the old `whsec_` verifies one with the official library, and a receiver
/// holding only the public key from the published key set verifies the other with an
/// independent Ed25519. Past the grace only `v1a` is sent.
async fn an_endpoint_moves_from_hmac_to_ed25519_without_a_missed_delivery(backend: Backend) {
    let app = TestApp::starting_at(backend, Utc::now()).await;
    let created = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .json(json!({"id": "asym", "url": "https://example.com/hook"}))
    );
    let old = created.body["secret"]["value"].as_str().unwrap().to_owned();
    assert!(created.body["secret"].get("public_key").is_none());
    let jwks = || {
        Call::get("/v1/tenants/acme/endpoints/asym/jwks.json")
            .param("tenant", "acme")
            .id("asym")
    };
    // No Ed25519 key yet: the key set is the same 404 as an endpoint that does not exist.
    let none = invoke!(public_keys, app, jwks());
    assert_eq!(none.status, 404, "{}", none.body);
    let missing = invoke!(
        public_keys,
        app,
        Call::get("/x").param("tenant", "acme").id("nope")
    );
    assert_eq!(
        missing.body["error"]["message"],
        none.body["error"]["message"]
    );

    let rotated = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("asym")
            .json(json!({"secret_format": "ed25519", "grace_period_seconds": 3600}))
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let whsk = rotated.body["secret"]["value"].as_str().unwrap().to_owned();
    let whpk = rotated.body["secret"]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(whsk.starts_with("whsk_") && whpk.starts_with("whpk_"));
    assert_eq!(rotated.body["secret"]["format"], "ed25519");
    // The independent implementation derives the same public key from the secret key.
    let (ok, derived) = webhook_libs("public-key", "ed25519", &whsk, &json!({}));
    assert!(ok);
    assert_eq!(derived, whpk);

    // The key set, fetched with no credentials, publishes that key and only it.
    let published = invoke!(public_keys, app, jwks());
    assert_eq!(published.status, 200, "{}", published.body);
    let keys = published.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["whpk"], whpk.as_str());
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(keys[0]["kid"], rotated.body["secret"]["version_id"]);
    assert_eq!(published.headers["cache-control"], "public, max-age=300");
    // The endpoint's own view shows the public key in full, and the secret key masked.
    let shown = invoke!(
        get_endpoint,
        app,
        Call::get("/x").bearer(&app.member).id("asym")
    );
    assert_eq!(shown.body["secret"]["public_key"], whpk.as_str());
    assert!(shown.body["secret"].get("value").is_none());
    assert!(!shown.body.to_string().contains(&whsk[5..]));

    let payload = r#"{"type":"invoice.paid"}"#;
    let signed = sign_at(&app, "asym", payload, Utc::now().timestamp()).await;
    let entries: Vec<&str> = signed["headers"]["webhook-signature"]
        .as_str()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries[0].starts_with("v1a,") && entries[1].starts_with("v1,"));
    for lib in LIBRARIES {
        assert!(
            accepts(lib, &old, &signed, payload),
            "{lib} refused the old whsec in grace"
        );
    }
    assert!(
        accepts("ed25519", &whpk, &signed, payload),
        "the public key refused the delivery"
    );
    assert!(!accepts("ed25519", &whpk, &signed, "tampered"));

    app.clock.advance(Duration::seconds(3601));
    let signed = sign_at(&app, "asym", payload, Utc::now().timestamp()).await;
    let header = signed["headers"]["webhook-signature"].as_str().unwrap();
    assert!(
        header.starts_with("v1a,") && !header.contains(' '),
        "{header}"
    );
    for lib in LIBRARIES {
        assert!(
            !accepts(lib, &old, &signed, payload),
            "{lib} accepted an expired secret"
        );
    }
    assert!(accepts("ed25519", &whpk, &signed, payload));

    // `/verify` accepts a `v1a` signature made by the independent implementation.
    let request =
        json!({"id": "msg_ext", "timestamp": app.clock.now().timestamp(), "payload": payload});
    let (ok, signature) = webhook_libs("sign", "ed25519", &whsk, &request);
    assert!(ok && signature.starts_with("v1a,"), "{signature}");
    let verdict = invoke!(
        verify_message,
        app,
        Call::post("/x").bearer(&app.member).id("asym").json(json!({
            "headers": {"webhook-id": "msg_ext", "webhook-timestamp": request["timestamp"].to_string(), "webhook-signature": signature},
            "payload": payload,
        }))
    );
    assert_eq!(verdict.body["valid"], true, "{}", verdict.body);
    assert_eq!(
        verdict.body["version_id"],
        rotated.body["secret"]["version_id"]
    );
}

/// Svix's own key format: its test key, supplied as an endpoint's secret, publishes the public
/// key Svix's server derives for it, and signs Svix's test message to Svix's signature.
async fn svix_keys_are_accepted_as_they_are(backend: Backend) {
    let app = TestApp::new(backend).await;
    let created = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints").bearer(&app.owner).json(json!({
            "id": "svix-key", "url": "https://example.com/hook",
            "secret": "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=="
        }))
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.body["secret"]["public_key"],
        "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="
    );
    let signed = invoke!(
        sign_message,
        app,
        Call::post("/x")
            .bearer(&app.member)
            .id("svix-key")
            .json(json!({
                "payload": r#"{"test": 2432232314}"#,
                "msg_id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "timestamp": 1614265330,
            }))
    )
    .body;
    assert_eq!(
        signed["headers"]["webhook-signature"],
        "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
    );
    // A key pair whose halves disagree (Svix refuses it too) is refused with the rule.
    let refused = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints").bearer(&app.owner).json(json!({
            "id": "bad-key", "url": "https://example.com/hook",
            "secret": "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kv"
        }))
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("whsk_"));
}

#[test]
fn the_libraries_agree_with_the_specification_test_vector() {
    let request = json!({"id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "timestamp": 1614265330, "payload": "{\"test\": 2432232314}"});
    for lib in LIBRARIES {
        let (ok, signature) = webhook_libs(
            "sign",
            lib,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &request,
        );
        assert!(ok);
        assert_eq!(
            signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "{lib}"
        );
    }
}

integration_tests::on_every_backend!(
    libraries_accept_signatures_through_a_grace_period,
    verify_accepts_library_signatures,
    uuid_secrets_interoperate_as_raw_keys,
    an_endpoint_moves_from_hmac_to_ed25519_without_a_missed_delivery,
    svix_keys_are_accepted_as_they_are,
);
