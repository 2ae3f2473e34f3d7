//! Interoperability with verifiers written by others: the official `standardwebhooks` Python
//! package and the `svix` package (both installed into `.venv` by `make test`) accept what
//! `/sign` produces, during a grace period too, and `/verify` accepts what they sign.

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
);
