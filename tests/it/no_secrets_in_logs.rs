//! With every log at debug level captured (this product's, the AWS SDK's, the HTTP stack's),
//! a create + rotate + read + list + delete run on both backends writes no webhook secret and
//! no API-key secret anywhere.

use integration_tests::{invoke, Backend, Call, TestApp};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// Runs its closure when dropped, also when the test panics.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

async fn run_and_collect_secrets(backend: Backend) -> Vec<String> {
    let app = TestApp::new(backend).await;
    let mut secrets: Vec<String> = [&app.owner, &app.admin, &app.member]
        .iter()
        .map(|key| key.split_once('.').unwrap().1.to_owned())
        .collect();
    let created = invoke!(
        create_endpoint,
        app,
        Call::post("/v1/endpoints")
            .bearer(&app.owner)
            .json(json!({"id": "logged", "url": "https://example.com"}))
    );
    assert_eq!(created.status, 201);
    secrets.push(created.body["secret"]["value"].as_str().unwrap().to_owned());
    for _ in 0..2 {
        let rotated = invoke!(
            rotate_secret,
            app,
            Call::post("/x").bearer(&app.admin).id("logged")
        );
        assert_eq!(rotated.status, 200);
        secrets.push(rotated.body["secret"]["value"].as_str().unwrap().to_owned());
    }
    let supplied = "whsec_c3VwcGxpZWQtYnktdGhlLWNhbGxlci0yNC1ieXRlcw==";
    let rotated = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("logged")
            .json(json!({"secret": supplied}))
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    secrets.push(supplied.to_owned());
    let asymmetric = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("logged")
            .json(json!({"secret_format": "ed25519"}))
    );
    assert_eq!(asymmetric.status, 200, "{}", asymmetric.body);
    secrets.push(
        asymmetric.body["secret"]["value"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    app.sign("logged", "{}", None).await;
    let refused = invoke!(
        rotate_secret,
        app,
        Call::post("/x")
            .bearer(&app.owner)
            .id("logged")
            .json(json!({"secret_bytes": "whsec_bm90LWEtbnVtYmVyLWJ1dC1hLXNlY3JldA=="}))
    );
    assert_eq!(refused.status, 400);
    secrets.push("whsec_bm90LWEtbnVtYmVyLWJ1dC1hLXNlY3JldA==".to_owned());
    assert_eq!(
        invoke!(
            get_endpoint,
            app,
            Call::get("/x").bearer(&app.member).id("logged")
        )
        .status,
        200
    );
    assert_eq!(
        invoke!(
            list_endpoints,
            app,
            Call::get("/v1/endpoints").bearer(&app.member)
        )
        .status,
        200
    );
    assert_eq!(
        invoke!(
            delete_endpoint,
            app,
            Call::delete("/x").bearer(&app.owner).id("logged")
        )
        .status,
        204
    );
    // The seed contracts: their rotations, and the access tokens of the JWT contract.
    let face =
        |response: lambda_http::Response<lambda_http::Body>| integration_tests::answer(response);
    let uuid = face(
        webhook_secrets::compat::openformat::generate_webhook_secret(
            &app.app,
            Call::post("/v1/webhook/secret")
                .header("x-api-key", &app.owner)
                .build(),
        )
        .await
        .unwrap(),
    );
    secrets.push(uuid.body["webhook_secret"].as_str().unwrap().to_owned());
    let (app_id, secret_key) = app.owner.split_once('.').unwrap();
    let token = face(
        webhook_secrets::compat::fyatu::issue_token(
            &app.app,
            Call::post("/api/v3/auth/token")
                .json(json!({"appId": app_id, "secretKey": secret_key, "grantType": "client_credentials"}))
                .build(),
        )
        .await
        .unwrap(),
    );
    let jwt = token.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let regenerated = face(
        webhook_secrets::compat::fyatu::regenerate_secret(
            &app.app,
            Call::post("/api/v3/webhooks/secret/regenerate")
                .bearer(&jwt)
                .build(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(regenerated.status, 200, "{}", regenerated.body);
    secrets.push(
        regenerated.body["data"]["webhookSecret"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    // An access token is a bearer credential: neither it nor its signature may be logged.
    secrets.push(jwt.rsplit('.').next().unwrap().to_owned());
    secrets.push(jwt);
    secrets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line() {
    let captured = Captured::default();
    // The subscriber is the process's global one, and every suite shares this process (one
    // test binary): it captures only while this test runs, then is turned off, so that the
    // other suites neither log at debug level into memory nor slow down for it. Lines of
    // other tests running meanwhile are captured too; they hold none of these secrets.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter("debug")
        .with_writer(captured.clone())
        .with_filter_reloading();
    let filter = subscriber.reload_handle();
    subscriber.init();
    let capturing = OnDrop(move || {
        let _ = filter.reload(tracing_subscriber::EnvFilter::new("off"));
    });

    let mut secrets = run_and_collect_secrets(Backend::Embedded).await;
    secrets.extend(run_and_collect_secrets(Backend::SecretsManager).await);
    drop(capturing);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines = logs.lines().count();
    assert!(lines > 50, "expected a full debug log, got {lines} lines");
    assert!(
        logs.contains("request finished"),
        "our own request log lines were captured"
    );
    assert!(
        logs.contains("secret rotated"),
        "debug lines about secrets were captured"
    );
    for secret in &secrets {
        // Also the base64 body without its prefix, in case something strips `whsec_` or `whsk_`.
        let body = secret
            .trim_start_matches("whsec_")
            .trim_start_matches("whsk_");
        assert!(
            !logs.contains(body),
            "a secret reached the logs ({} lines captured)",
            lines
        );
    }
}
