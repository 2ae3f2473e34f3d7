//! Strict mode of the quota proxy: the Secrets Manager semantics moto lacks (a reused
//! `ClientRequestToken`, the 65,536-byte value limit, the version quota), each shown with the
//! raw SDK against moto through the proxy, then as the product's store and HTTP face meet
//! them.

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::Client;
use futures::future::join;
use futures::StreamExt;
use integration_tests::throttle::{
    QuotaGroup, Quotas, StrictOutcome, Strictness, ThrottleProxy, LIMIT_EXCEEDED_MESSAGE,
    MAX_SECRET_VALUE_BYTES, VERSION_WINDOW,
};
use integration_tests::{
    assert_error, invoke, require_emulator, start_of_test_time, Backend, Call, TestApp,
};
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use webhook_secrets::domain::clock::Clock;
use webhook_secrets::domain::ids::VersionId;
use webhook_secrets::store::secrets_manager::{ClientSettings, SecretsManagerStore};
use webhook_secrets::store::{SecretName, SecretStore, StoreError, StoredValue};

const PENDING: &str = "AWSPENDING";
const CURRENT: &str = "AWSCURRENT";

fn moto_url() -> String {
    require_emulator();
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL")
}

/// A strict proxy in front of the emulator, not rate-limited: only strictness is under test.
async fn strict_proxy(version_budget: u32) -> ThrottleProxy {
    let strictness = Strictness::aws().with_version_budget(version_budget);
    ThrottleProxy::start_with(&moto_url(), Quotas::unlimited(), strictness).await
}

/// The product's client settings without retries, so that each refusal reaches the caller
/// once (the SDK retries `LimitExceededException` as throttling).
async fn client(proxy: &ThrottleProxy) -> Client {
    let settings = ClientSettings {
        max_attempts: 1,
        ..ClientSettings::default()
    };
    integration_tests::sdk_client(&proxy.url(), settings).await
}

fn unique_name() -> String {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("strict-{}/acme/ep", &unique[..12])
}

fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What a refused call came back with.
#[derive(Debug)]
struct Refusal {
    code: Option<String>,
    message: Option<String>,
    status: Option<u16>,
}

fn refusal<E: ProvideErrorMetadata>(err: SdkError<E, HttpResponse>) -> Refusal {
    Refusal {
        code: err.code().map(str::to_owned),
        message: err.message().map(str::to_owned),
        status: err.raw_response().map(|r| r.status().as_u16()),
    }
}

async fn create(client: &Client, name: &str, token: &str, value: &str) -> Result<String, Refusal> {
    client
        .create_secret()
        .name(name)
        .client_request_token(token)
        .secret_string(value)
        .send()
        .await
        .map(|out| out.version_id().unwrap_or_default().to_owned())
        .map_err(refusal)
}

/// PutSecretValue with `stages` (none: AWS's default, which moves `AWSCURRENT` to it).
async fn put(
    client: &Client,
    secret_id: &str,
    token: &str,
    value: &str,
    stages: &[&str],
) -> Result<(String, Vec<String>), Refusal> {
    let mut call = client
        .put_secret_value()
        .secret_id(secret_id)
        .client_request_token(token)
        .secret_string(value);
    for stage in stages {
        call = call.version_stages(*stage);
    }
    call.send()
        .await
        .map(|out| {
            (
                out.version_id().unwrap_or_default().to_owned(),
                out.version_stages().to_vec(),
            )
        })
        .map_err(refusal)
}

async fn value_of(client: &Client, name: &str, version: &str) -> String {
    client
        .get_secret_value()
        .secret_id(name)
        .version_id(version)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned()
}

/// Each version's labels, sorted.
async fn labels(client: &Client, name: &str) -> HashMap<String, Vec<String>> {
    let described = client
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .unwrap();
    described
        .version_ids_to_stages()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(version, mut stages)| {
            stages.sort();
            (version, stages)
        })
        .collect()
}

async fn delete(client: &Client, name: &str) {
    client
        .delete_secret()
        .secret_id(name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}

fn assert_refused(result: Result<impl std::fmt::Debug, Refusal>, code: &str) -> Refusal {
    let refusal = result.expect_err("the call must be refused");
    assert_eq!(refusal.code.as_deref(), Some(code), "{refusal:?}");
    assert_eq!(refusal.status, Some(400), "{refusal:?}");
    assert!(
        refusal.message.as_deref().is_some_and(|m| !m.is_empty()),
        "{refusal:?}"
    );
    refusal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_token_with_the_same_value_succeeds_and_writes_nothing() {
    let proxy = strict_proxy(100).await;
    let client = client(&proxy).await;
    let name = unique_name();
    let (initial, pending) = (token(), token());
    create(&client, &name, &initial, "v1").await.unwrap();
    put(&client, &name, &pending, "v2", &[PENDING])
        .await
        .unwrap();
    let before = labels(&client, &name).await;
    assert_eq!(before[&pending], [PENDING]);

    // A retry of the staging put, as AWS answers it: the version as it stands.
    let (version, stages) = put(&client, &name, &pending, "v2", &[PENDING])
        .await
        .unwrap();
    assert_eq!(version, pending);
    assert_eq!(stages, [PENDING]);
    // The same put without stages would move AWSCURRENT onto a new version; onto an existing
    // one AWS ignores it, where moto (for a version still pending) rewrites it as current.
    let (version, _) = put(&client, &name, &pending, "v2", &[]).await.unwrap();
    assert_eq!(version, pending);
    // And CreateSecret retried with its token and value.
    let version = create(&client, &name, &initial, "v1").await.unwrap();
    assert_eq!(version, initial);

    assert_eq!(
        labels(&client, &name).await,
        before,
        "a replay moved a label"
    );
    assert_eq!(value_of(&client, &name, &pending).await, "v2");
    let current = client
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(current.version_id(), Some(initial.as_str()));

    let stats = proxy.stats();
    assert_eq!(stats.strict(StrictOutcome::TokenReplayed), 3, "{stats:?}");
    assert_eq!(
        stats.forwarded(QuotaGroup::Writes),
        1,
        "only the first put: {stats:?}"
    );
    assert_eq!(stats.forwarded(QuotaGroup::CreateSecret), 1, "{stats:?}");
    assert_eq!(
        proxy.versions_counted(&name),
        2,
        "replays create no version"
    );
    delete(&client, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_token_with_another_value_is_refused_as_existing() {
    let proxy = strict_proxy(100).await;
    let client = client(&proxy).await;
    let name = unique_name();
    let (initial, pending) = (token(), token());
    create(&client, &name, &initial, "v1").await.unwrap();
    put(&client, &name, &pending, "v2", &[PENDING])
        .await
        .unwrap();

    let refused = assert_refused(
        put(&client, &name, &pending, "another", &[PENDING]).await,
        "ResourceExistsException",
    );
    assert!(refused.message.unwrap().contains(&pending));
    assert_eq!(value_of(&client, &name, &pending).await, "v2");
    assert_refused(
        create(&client, &name, &initial, "another").await,
        "ResourceExistsException",
    );
    // An existing name under a new token stays moto's own refusal.
    assert_refused(
        create(&client, &name, &token(), "v1").await,
        "ResourceExistsException",
    );
    assert_eq!(value_of(&client, &name, &initial).await, "v1");

    let stats = proxy.stats();
    assert_eq!(stats.strict(StrictOutcome::TokenConflict), 2, "{stats:?}");
    assert_eq!(stats.forwarded(QuotaGroup::CreateSecret), 2, "{stats:?}");
    assert_eq!(
        proxy.versions_counted(&name),
        2,
        "refusals create no version"
    );
    delete(&client, &name).await;
}

/// The race of the hardening issue: two writers stage different values under one token. On
/// AWS one wins and the other is refused; through moto alone both were answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_of_one_token_with_two_values_cannot_both_succeed() {
    let proxy = strict_proxy(100).await;
    let client = client(&proxy).await;
    let name = unique_name();
    create(&client, &name, &token(), "v1").await.unwrap();
    for round in 0..8 {
        let pending = token();
        let (a, b) = join(
            put(&client, &name, &pending, "from-a", &[PENDING]),
            put(&client, &name, &pending, "from-b", &[PENDING]),
        )
        .await;
        let winner = match (&a, &b) {
            (Ok(_), Err(lost)) | (Err(lost), Ok(_)) => {
                assert_eq!(
                    lost.code.as_deref(),
                    Some("ResourceExistsException"),
                    "{lost:?}"
                );
                if a.is_ok() {
                    "from-a"
                } else {
                    "from-b"
                }
            }
            _ => panic!("round {round}: exactly one writer must win: {a:?} {b:?}"),
        };
        assert_eq!(value_of(&client, &name, &pending).await, winner);
    }
    assert_eq!(proxy.stats().strict(StrictOutcome::TokenConflict), 8);
    delete(&client, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_65536_bytes_is_refused_before_it_reaches_moto() {
    let proxy = strict_proxy(100).await;
    let client = client(&proxy).await;
    let name = unique_name();
    let largest = "x".repeat(MAX_SECRET_VALUE_BYTES);
    let over = "x".repeat(MAX_SECRET_VALUE_BYTES + 1);

    let refused = assert_refused(
        create(&client, &name, &token(), &over).await,
        "ValidationException",
    );
    assert_eq!(
        refused.message.as_deref(),
        Some("1 validation error detected: Value at 'secretString' failed to satisfy constraint: Member must have length less than or equal to 65536")
    );
    let missing = client.describe_secret().secret_id(&name).send().await;
    assert_eq!(
        missing.map_err(refusal).unwrap_err().code.as_deref(),
        Some("ResourceNotFoundException"),
        "the oversize create reached the emulator"
    );

    create(&client, &name, &token(), &largest).await.unwrap();
    assert_refused(
        put(&client, &name, &token(), &over, &[]).await,
        "ValidationException",
    );
    // The limit is in bytes: 32,769 two-byte characters are over it.
    let wide = "é".repeat(MAX_SECRET_VALUE_BYTES / 2 + 1);
    assert_refused(
        put(&client, &name, &token(), &wide, &[]).await,
        "ValidationException",
    );
    let updated = client
        .update_secret()
        .secret_id(&name)
        .client_request_token(token())
        .secret_string(&over)
        .send()
        .await;
    assert_refused(updated.map_err(refusal), "ValidationException");
    let binary = client
        .put_secret_value()
        .secret_id(&name)
        .client_request_token(token())
        .secret_binary(Blob::new(vec![7u8; MAX_SECRET_VALUE_BYTES + 1]))
        .send()
        .await;
    let refused = assert_refused(binary.map_err(refusal), "ValidationException");
    assert!(refused.message.unwrap().contains("'secretBinary'"));
    put(&client, &name, &token(), &largest, &[]).await.unwrap();

    let stats = proxy.stats();
    assert_eq!(stats.strict(StrictOutcome::ValueTooLarge), 5, "{stats:?}");
    assert_eq!(stats.lookups(), 2, "refused before any look-up: {stats:?}");
    assert_eq!(proxy.versions_counted(&name), 2);
    delete(&client, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_version_budget_writes_are_refused_until_the_window_moves_on() {
    const BUDGET: u32 = 3;
    let proxy = strict_proxy(BUDGET).await;
    let client = client(&proxy).await;
    let (a, b) = (unique_name(), unique_name());

    create(&client, &a, &token(), "a0").await.unwrap();
    for i in 1..BUDGET {
        put(&client, &a, &token(), &format!("a{i}"), &[])
            .await
            .unwrap();
    }
    let refused = assert_refused(
        put(&client, &a, &token(), "one too many", &[]).await,
        "LimitExceededException",
    );
    assert_eq!(refused.message.as_deref(), Some(LIMIT_EXCEEDED_MESSAGE));
    let current = client
        .get_secret_value()
        .secret_id(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(
        current.secret_string(),
        Some(format!("a{}", BUDGET - 1).as_str())
    );
    // By ARN it is the same secret, and the same count.
    let arn = current.arn().unwrap().to_owned();
    assert_refused(
        put(&client, &arn, &token(), "by arn", &[]).await,
        "LimitExceededException",
    );
    // A replay writes no version, so the quota does not stand in its way.
    let latest = current.version_id().unwrap().to_owned();
    put(&client, &a, &latest, &format!("a{}", BUDGET - 1), &[])
        .await
        .unwrap();

    // Other secrets keep their own count.
    create(&client, &b, &token(), "b0").await.unwrap();
    let b_arn = client
        .describe_secret()
        .secret_id(&b)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    for i in 1..BUDGET {
        put(&client, &b_arn, &token(), &format!("b{i}"), &[])
            .await
            .unwrap();
    }
    assert_eq!(proxy.versions_counted(&b), BUDGET as usize);
    assert_refused(
        put(&client, &b, &token(), "b over", &[]).await,
        "LimitExceededException",
    );

    // A day on, the first versions no longer count.
    proxy.advance_version_clock(VERSION_WINDOW);
    put(&client, &a, &token(), "next day", &[]).await.unwrap();
    // Deleting a secret forgets its count: a new secret of that name starts afresh.
    delete(&client, &b).await;
    assert_eq!(proxy.versions_counted(&b), 0);
    create(&client, &b, &token(), "b again").await.unwrap();
    for i in 1..BUDGET {
        put(&client, &b, &token(), &format!("b again {i}"), &[])
            .await
            .unwrap();
    }

    let stats = proxy.stats();
    assert_eq!(stats.strict(StrictOutcome::VersionQuota), 3, "{stats:?}");
    assert_eq!(stats.strict(StrictOutcome::TokenReplayed), 1, "{stats:?}");
    delete(&client, &a).await;
    delete(&client, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_budget_is_a_hundred_versions_a_day() {
    let proxy =
        ThrottleProxy::start_with(&moto_url(), Quotas::unlimited(), Strictness::aws()).await;
    assert_eq!(Strictness::default(), Strictness::aws());
    assert_eq!(Strictness::aws().version_budget(), 100);
    let client = client(&proxy).await;
    let name = unique_name();
    create(&client, &name, &token(), "0").await.unwrap();
    let written: Vec<_> = futures::stream::iter(1..100)
        .map(|i| {
            let (client, name) = (&client, &name);
            async move { put(client, name, &token(), &i.to_string(), &[]).await }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    assert!(written.iter().all(Result::is_ok), "{written:?}");
    assert_eq!(proxy.versions_counted(&name), 100);
    assert_refused(
        put(&client, &name, &token(), "101", &[]).await,
        "LimitExceededException",
    );
    delete(&client, &name).await;
}

fn stored(text: &str) -> StoredValue {
    StoredValue::new(text.to_owned()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reports_a_write_past_the_quota_as_version_quota() {
    let proxy = strict_proxy(2).await;
    // The product's own settings, retries included: the SDK retries the refusal as
    // throttling, then gives up with it.
    let store = SecretsManagerStore::new(
        integration_tests::sdk_client(&proxy.url(), ClientSettings::default()).await,
    );
    let name = SecretName::parse(&unique_name()).unwrap();
    let first = VersionId::generate();
    store
        .create(&name, &first, &stored("one"), &[])
        .await
        .unwrap();
    let second = VersionId::generate();
    store
        .replace_current(&name, &first, &second, &stored("two"))
        .await
        .unwrap();

    let replaced = store
        .replace_current(&name, &second, &VersionId::generate(), &stored("three"))
        .await;
    assert!(
        matches!(replaced, Err(StoreError::VersionQuota)),
        "{replaced:?}"
    );
    let staged = store
        .put_pending(&name, &VersionId::generate(), &stored("three"))
        .await;
    assert!(
        matches!(staged, Err(StoreError::VersionQuota)),
        "{staged:?}"
    );

    let current = store.read_current(&name).await.unwrap();
    assert_eq!(current.version_id, second);
    assert_eq!(current.value.expose(), "two");
    assert!(proxy.stats().strict(StrictOutcome::VersionQuota) >= 2);
    store.delete(&name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_past_the_quota_answers_429_with_retry_after() {
    let proxy = strict_proxy(100).await;
    let client = integration_tests::sdk_client(&proxy.url(), ClientSettings::default()).await;
    let app = TestApp::with_store(Backend::SecretsManager, start_of_test_time(), move |_| {
        Arc::new(SecretsManagerStore::new(client)) as Arc<dyn SecretStore>
    })
    .await;
    let created = app
        .create(json!({"id": "orders", "url": "https://example.com/hook"}))
        .await;
    let name = app.secret_name("orders");
    let written = proxy.versions_counted(name.as_str());
    assert!(written >= 1);
    // The endpoint has used up its day's versions.
    proxy.set_version_budget(written as u32);

    let rotate = || Call::post("/x").bearer(&app.owner).id("orders");
    let refused = invoke!(rotate_secret, app, rotate());
    assert_error(&refused, 429, "version_quota_exceeded");
    let retry_after = refused
        .headers
        .get("retry-after")
        .expect("a retry-after header");
    assert_eq!(
        retry_after.to_str().unwrap(),
        webhook_secrets::api::http::VERSION_QUOTA_RETRY_AFTER_SECONDS.to_string()
    );
    // Nothing changed: the endpoint still signs with its one secret.
    let signed = app.sign("orders", "{}", None).await;
    let secret = created["secret"]["value"].as_str().unwrap();
    assert!(integration_tests::receiver_accepts(
        secret,
        &signed,
        "{}",
        app.clock.now()
    ));

    proxy.advance_version_clock(VERSION_WINDOW);
    let rotated = invoke!(rotate_secret, app, rotate());
    assert_eq!(rotated.status, 200, "{}", rotated.body);
}

/// The proxy `make test` runs in front of moto: it says where it listens, and is strict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_proxy_prints_its_url_and_enforces_strictness() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sm-strict-proxy"))
        .args([&moto_url(), "--version-budget", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sm-strict-proxy");
    let stdout = child.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim().to_owned()
    })
    .await
    .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");

    let client = integration_tests::sdk_client(&url, ClientSettings::default()).await;
    let name = unique_name();
    let initial = token();
    let outcome = async move {
        create(&client, &name, &initial, "v1").await.unwrap();
        // Not rate-limited by default: a burst of reads all pass.
        let reads = futures::future::join_all(
            (0..60).map(|_| client.describe_secret().secret_id(&name).send()),
        )
        .await;
        assert!(reads.iter().all(Result::is_ok));
        assert_eq!(
            create(&client, &name, &initial, "v1").await.unwrap(),
            initial
        );
        let refused = put(&client, &name, &token(), "v2", &[]).await.unwrap_err();
        assert_eq!(refused.code.as_deref(), Some("LimitExceededException"));
        let conflict = put(&client, &name, &initial, "v3", &[]).await.unwrap_err();
        assert_eq!(conflict.code.as_deref(), Some("ResourceExistsException"));
        assert_eq!(labels(&client, &name).await[&initial], [CURRENT]);
        delete(&client, &name).await;
    };
    // Stop the child whatever happened.
    let outcome = tokio::spawn(outcome).await;
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }

    let usage = Command::new(env!("CARGO_BIN_EXE_sm-strict-proxy"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

/// AWS throttles before it looks at a request: a write over the rate quota costs the upstream
/// nothing, not even a token look-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_write_is_refused_before_strict_mode_looks_at_it() {
    let quotas = Quotas::aws().with_writes_per_second(0);
    let proxy = ThrottleProxy::start_with(&moto_url(), quotas, Strictness::aws()).await;
    let client = client(&proxy).await;
    let over = "x".repeat(MAX_SECRET_VALUE_BYTES + 1);
    for value in ["small", over.as_str()] {
        assert_refused(
            put(&client, &unique_name(), &token(), value, &[]).await,
            "ThrottlingException",
        );
    }
    let stats = proxy.stats();
    assert_eq!(stats.throttled(QuotaGroup::Writes), 2, "{stats:?}");
    assert_eq!((stats.lookups(), stats.total_strict()), (0, 0), "{stats:?}");
}
