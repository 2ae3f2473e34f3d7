//! The throttling proxy in front of the moto server: AWS's request-rate quotas enforced, and
//! throttled calls answered so that the real SDK, and the product's store on it, see exactly
//! what they would see from AWS.

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
use aws_sdk_secretsmanager::operation::RequestId;
use aws_sdk_secretsmanager::Client;
use bytes::Bytes;
use futures::future::join_all;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use integration_tests::require_emulator;
use integration_tests::throttle::{QuotaGroup, Quotas, Strictness, ThrottleProxy, THROTTLING_BODY};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use webhook_secrets::domain::ids::VersionId;
use webhook_secrets::store::secrets_manager::{ClientSettings, SecretsManagerStore};
use webhook_secrets::store::{SecretName, SecretStore, StoreError, StoredValue};

// Tests whose assertions depend on the emulator keeping up take turns with it (and with the
// cross-process races, which load it most) through crate::LOAD_TESTS: one moto process is
// easily saturated, and these tests bound rates or rely on retries landing within the SDK's
// backoff windows.

fn moto_url() -> String {
    require_emulator();
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL")
}

/// A proxy in front of the emulator for the tests of rates: a burst must reach the buckets
/// within a fraction of a second, and strict mode's token look-ups (an upstream call per
/// write, on the test's own runtime) spread the arrivals past that on a loaded machine. Every
/// write here has a token and a value of its own, so strict mode would have nothing to
/// enforce; tests/it/strict_proxy.rs covers it, throttling included.
async fn rate_proxy(quotas: Quotas) -> ThrottleProxy {
    ThrottleProxy::start_with(&moto_url(), quotas, Strictness::off()).await
}

/// The product's client configuration (retries, timeouts) aimed at `endpoint`.
async fn client(endpoint: &str, settings: ClientSettings) -> Client {
    integration_tests::sdk_client(endpoint, settings).await
}

/// No retries, so every throttled attempt surfaces to the caller.
fn single_attempt() -> ClientSettings {
    ClientSettings {
        max_attempts: 1,
        ..ClientSettings::default()
    }
}

fn unique_prefix() -> String {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("throttle-{}", &unique[..12])
}

fn value(text: &str) -> StoredValue {
    StoredValue::new(text.to_owned()).unwrap()
}

/// Creates `count` secrets straight on moto, outside any proxy's quotas; returns each name
/// with its current version.
async fn seed(prefix: &str, count: usize) -> Vec<(SecretName, VersionId)> {
    let direct = SecretsManagerStore::new(client(&moto_url(), ClientSettings::default()).await);
    let mut seeded = Vec::new();
    for i in 0..count {
        let name = SecretName::parse(&format!("{prefix}/acme/ep{i}")).unwrap();
        let token = VersionId::generate();
        direct
            .create(&name, &token, &value("initial"), &[])
            .await
            .unwrap();
        seeded.push((name, token));
    }
    seeded
}

async fn put(client: &Client, name: &SecretName, text: String) -> Result<(), PutFailure> {
    client
        .put_secret_value()
        .secret_id(name.as_str())
        .client_request_token(uuid::Uuid::new_v4().to_string())
        .secret_string(text)
        .send()
        .await
        .map(|_| ())
        .map_err(PutFailure::from)
}

/// A failed `PutSecretValue`, reduced to what the SDK made of the answer.
#[derive(Debug)]
struct PutFailure {
    // Read only by `Debug`, for the failure messages.
    #[allow(dead_code)]
    error: String,
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
    status: Option<u16>,
    content_type: Option<String>,
}

impl From<SdkError<PutSecretValueError, HttpResponse>> for PutFailure {
    fn from(err: SdkError<PutSecretValueError, HttpResponse>) -> Self {
        let raw = err.raw_response();
        Self {
            error: error_chain(&err),
            code: err.code().map(str::to_owned),
            message: err.message().map(str::to_owned),
            request_id: err.request_id().map(str::to_owned),
            status: raw.map(|r| r.status().as_u16()),
            content_type: raw
                .and_then(|r| r.headers().get("content-type"))
                .map(str::to_owned),
        }
    }
}

/// The error with its sources, which is where the SDK says what kind of failure it was.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

impl PutFailure {
    fn is_throttling(&self) -> bool {
        self.code.as_deref() == Some("ThrottlingException")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_burst_over_quota_is_throttled_the_way_aws_throttles() {
    let _turn = crate::LOAD_TESTS.lock().await;
    let proxy = rate_proxy(Quotas::aws()).await;
    let (name, _) = seed(&unique_prefix(), 1).await.remove(0);
    let via_proxy = client(&proxy.url(), single_attempt()).await;

    const BURST: usize = 120;
    let started = Instant::now();
    let results = join_all((0..BURST).map(|i| put(&via_proxy, &name, format!("v{i}")))).await;
    let elapsed = started.elapsed();

    let mut throttled = 0u64;
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        // Anything else was forwarded and failed in the emulator, whose concurrency is not
        // the subject here.
        if !err.is_throttling() {
            continue;
        }
        assert_eq!(err.message.as_deref(), Some("Rate exceeded"), "{err:?}");
        assert_eq!(err.status, Some(400), "{err:?}");
        assert_eq!(
            err.content_type.as_deref(),
            Some("application/x-amz-json-1.1")
        );
        assert!(
            err.request_id.as_deref().is_some_and(|id| !id.is_empty()),
            "{err:?}"
        );
        throttled += 1;
    }
    let forwarded = BURST as u64 - throttled;
    let stats = proxy.stats();
    assert!(throttled > 0, "no throttling in a burst of {BURST}");
    assert_eq!(stats.throttled(QuotaGroup::Writes), throttled, "{stats:?}");
    assert_eq!(stats.forwarded(QuotaGroup::Writes), forwarded, "{stats:?}");
    // A full bucket lets one second's worth through at once; beyond it only the refill.
    let quota = f64::from(Quotas::aws().per_second(QuotaGroup::Writes));
    assert!(forwarded as f64 >= quota, "{forwarded} of {BURST} passed");
    assert!(
        forwarded as f64 <= quota * (1.0 + elapsed.as_secs_f64()) + 1.0,
        "{forwarded} passed in {elapsed:?}"
    );
    assert_eq!(stats.total(), BURST as u64);
    assert_eq!(stats.total_throttled(), throttled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_reports_each_throttled_call_as_throttled() {
    let _turn = crate::LOAD_TESTS.lock().await;
    let proxy = rate_proxy(Quotas::aws()).await;
    let store = SecretsManagerStore::new(client(&proxy.url(), single_attempt()).await);
    let prefix = unique_prefix();

    const BURST: usize = 90;
    let names: Vec<SecretName> = (0..BURST)
        .map(|i| SecretName::parse(&format!("{prefix}/acme/new{i}")).unwrap())
        .collect();
    let results = join_all(names.iter().map(|name| async {
        store
            .create(name, &VersionId::generate(), &value("v"), &[])
            .await
    }))
    .await;
    let throttled = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Throttled)))
        .count() as u64;
    // The emulator's own failures under concurrent creates come back as `Unavailable`; they
    // were forwarded like the successes.
    assert!(
        results.iter().all(|r| matches!(
            r,
            Ok(()) | Err(StoreError::Throttled | StoreError::Unavailable(_))
        )),
        "{results:?}"
    );
    assert!(throttled > 0);
    let stats = proxy.stats();
    assert_eq!(stats.throttled(QuotaGroup::CreateSecret), throttled);
    assert_eq!(
        stats.forwarded(QuotaGroup::CreateSecret),
        BURST as u64 - throttled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_the_quota_never_admits_is_retried_by_the_sdk_then_throttled() {
    let proxy = ThrottleProxy::start(&moto_url(), Quotas::aws().with_writes_per_second(0)).await;
    let (name, current) = seed(&unique_prefix(), 1).await.remove(0);
    let settings = ClientSettings::default();
    let store = SecretsManagerStore::new(client(&proxy.url(), settings).await);

    let replaced = store
        .replace_current(&name, &current, &VersionId::generate(), &value("next"))
        .await;
    assert!(
        matches!(replaced, Err(StoreError::Throttled)),
        "{replaced:?}"
    );
    let stats = proxy.stats();
    // Standard retry treats the answer as throttling: every attempt it allows is made.
    assert_eq!(
        stats.throttled(QuotaGroup::Writes),
        u64::from(settings.max_attempts),
        "{stats:?}"
    );
    assert_eq!(stats.forwarded(QuotaGroup::Writes), 0);

    // Other groups keep their own buckets.
    let read = store.read_current(&name).await.unwrap();
    assert_eq!(read.version_id, current);
    assert!(proxy.stats().forwarded(QuotaGroup::Reads) >= 1);
    assert_eq!(proxy.stats().throttled(QuotaGroup::Reads), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standard_retries_carry_a_modest_write_burst_through() {
    let _turn = crate::LOAD_TESTS.lock().await;
    let proxy = rate_proxy(Quotas::aws()).await;
    let (name, _) = seed(&unique_prefix(), 1).await.remove(0);
    let via_proxy = client(&proxy.url(), ClientSettings::default()).await;

    // Half again the bucket: the excess (less what refills while the burst is being sent)
    // waits out the SDK's backoff while the bucket refills.
    const BURST: usize = 75;
    let results = join_all((0..BURST).map(|i| put(&via_proxy, &name, format!("v{i}")))).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}");

    let stats = proxy.stats();
    // Each put got through once; an attempt the emulator was too slow to answer in time is
    // forwarded again.
    assert!(
        stats.forwarded(QuotaGroup::Writes) >= BURST as u64,
        "{stats:?}"
    );
    assert!(
        stats.throttled(QuotaGroup::Writes) > 0,
        "the excess over the bucket must have been throttled, then retried: {stats:?}"
    );
    assert_eq!(
        stats.total(),
        stats.forwarded(QuotaGroup::Writes) + stats.throttled(QuotaGroup::Writes)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_completes_replacements_through_throttling() {
    let _turn = crate::LOAD_TESTS.lock().await;
    const REPLACEMENTS: usize = 10;
    // Closed until every replacement has had its first call refused, however fast the
    // emulator and this machine are; then open at AWS's rate.
    let proxy = ThrottleProxy::start(&moto_url(), Quotas::aws().with_writes_per_second(0)).await;
    let seeded = seed(&unique_prefix(), REPLACEMENTS).await;
    let store = Arc::new(SecretsManagerStore::new(
        client(&proxy.url(), ClientSettings::default()).await,
    ));

    let next: Vec<VersionId> = seeded.iter().map(|_| VersionId::generate()).collect();
    let replacing = tokio::spawn({
        let (store, seeded, next) = (store.clone(), seeded.clone(), next.clone());
        async move {
            join_all(seeded.iter().zip(&next).map(|((name, current), token)| {
                let store = &store;
                async move {
                    store
                        .replace_current(name, current, token, &value("next"))
                        .await
                }
            }))
            .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.stats().throttled(QuotaGroup::Writes) < REPLACEMENTS as u64 {
        assert!(Instant::now() < deadline, "{:?}", proxy.stats());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    proxy.set_quota(
        QuotaGroup::Writes,
        Quotas::aws().per_second(QuotaGroup::Writes),
    );
    let results = replacing.await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    for ((name, _), token) in seeded.iter().zip(&next) {
        let read = store.read_current(name).await.unwrap();
        assert_eq!(&read.version_id, token);
        assert_eq!(read.value.expose(), "next");
        let stages = store.stages(name).await.unwrap();
        assert_eq!(stages.pending, None, "a pending label was left on {name}");
    }
    let stats = proxy.stats();
    assert!(
        stats.forwarded(QuotaGroup::Writes) >= 2 * REPLACEMENTS as u64,
        "{stats:?}"
    );
    assert_eq!(stats.throttled(QuotaGroup::Reads), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_at_a_few_hundred_per_second_are_never_throttled() {
    let _turn = crate::LOAD_TESTS.lock().await;
    let proxy = rate_proxy(Quotas::aws()).await;
    let (name, _) = seed(&unique_prefix(), 1).await.remove(0);
    let via_proxy = client(&proxy.url(), single_attempt()).await;

    // Drain the write bucket first: reads draw on their own.
    let drained = join_all((0..80).map(|i| put(&via_proxy, &name, format!("v{i}")))).await;
    assert!(drained.iter().any(Result::is_err));

    let store = Arc::new(SecretsManagerStore::new(via_proxy));
    const PER_TICK: usize = 3;
    const TICKS: usize = 200; // 3 every 10 ms for 2 s: 300 per second.
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut reads = Vec::new();
    for _ in 0..TICKS {
        ticker.tick().await;
        for _ in 0..PER_TICK {
            let store = store.clone();
            let name = name.clone();
            reads.push(tokio::spawn(async move { store.read_current(&name).await }));
        }
    }
    for read in join_all(reads).await {
        // `Unavailable` is the emulator failing under other tests' concurrent creates.
        let read = read.unwrap();
        assert!(
            matches!(read, Ok(_) | Err(StoreError::Unavailable(_))),
            "{read:?}"
        );
    }
    let stats = proxy.stats();
    assert_eq!(stats.throttled(QuotaGroup::Reads), 0, "{stats:?}");
    assert_eq!(
        stats.forwarded(QuotaGroup::Reads),
        (PER_TICK * TICKS) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sustained_write_rate_stays_within_the_quota() {
    let _turn = crate::LOAD_TESTS.lock().await;
    const QUOTA: u32 = 30;
    const WORKERS: usize = 12;
    let window = Duration::from_millis(2500);
    let proxy = rate_proxy(Quotas::aws().with_writes_per_second(QUOTA)).await;
    let seeded = Arc::new(seed(&unique_prefix(), 3).await);
    let via_proxy = client(&proxy.url(), single_attempt()).await;

    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let client = via_proxy.clone();
            let seeded = seeded.clone();
            tokio::spawn(async move {
                let (mut forwarded, mut throttled, mut i) = (0u64, 0u64, 0usize);
                while started.elapsed() < window {
                    let (name, _) = &seeded[(worker + i) % seeded.len()];
                    i += 1;
                    match put(&client, name, format!("w{worker}-{i}")).await {
                        Err(err) if err.is_throttling() => {
                            throttled += 1;
                            // A client that backs off a little rather than spinning.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        // Forwarded, whatever the emulator made of it.
                        _ => forwarded += 1,
                    }
                }
                (forwarded, throttled)
            })
        })
        .collect();

    // Once the initial burst is spent, the rate over the rest is held to the refill rate.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let midway = proxy.stats().forwarded(QuotaGroup::Writes);
    let midway_at = started.elapsed();

    let (mut forwarded, mut throttled) = (0, 0);
    for worker in join_all(workers).await {
        let (f, t) = worker.unwrap();
        forwarded += f;
        throttled += t;
    }
    let elapsed = started.elapsed();
    let stats = proxy.stats();
    assert_eq!(stats.forwarded(QuotaGroup::Writes), forwarded, "{stats:?}");
    assert_eq!(stats.throttled(QuotaGroup::Writes), throttled, "{stats:?}");
    assert!(throttled > 0);

    let quota = f64::from(QUOTA);
    let ceiling = quota * (1.0 + elapsed.as_secs_f64()) + 1.0;
    assert!(
        forwarded as f64 <= ceiling,
        "{forwarded} writes in {elapsed:?}: more than the burst plus the refill ({ceiling})"
    );
    let late = (forwarded - midway) as f64;
    let late_span = (elapsed - midway_at).as_secs_f64();
    // What the bucket held at the midway mark (at most one second's worth) plus the refill.
    assert!(
        late <= quota * (1.0 + late_span) + 1.0,
        "{late} writes in the last {late_span:.2} s at {QUOTA}/s"
    );
    assert!(
        late >= 0.6 * quota * late_span,
        "only {late} writes in the last {late_span:.2} s: the quota is not being let through"
    );
}

/// An upstream that answers every request with what it received: method, URI, Host and
/// target in headers, the body as the body.
async fn echo_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: Request<Incoming>| async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    let header = |name: &str| {
                        parts
                            .headers
                            .get(name)
                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                            .unwrap_or_default()
                    };
                    let response = Response::builder()
                        .status(201)
                        .header("x-echo-method", parts.method.as_str())
                        .header("x-echo-uri", parts.uri.to_string())
                        .header("x-echo-host", header("host"))
                        .header("x-echo-target", header("x-amz-target"))
                        .header("x-echo-signature", header("authorization"))
                        .body(Full::new(body))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_traffic_is_forwarded_verbatim_over_one_kept_alive_connection() {
    let proxy = ThrottleProxy::start(&echo_upstream().await, Quotas::aws()).await;
    let stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);

    // A metered request with a large body of known length.
    let large = pattern(300 * 1024, 7);
    let request = Request::post("/some/path?x=1&y=%2F")
        .header("host", "secretsmanager.us-east-1.amazonaws.com")
        .header("x-amz-target", "secretsmanager.GetSecretValue")
        .header("authorization", "AWS4-HMAC-SHA256 Credential=test/...")
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(large.clone()).boxed())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 201);
    let headers = response.headers().clone();
    assert_eq!(headers["x-echo-method"], "POST");
    assert_eq!(headers["x-echo-uri"], "/some/path?x=1&y=%2F");
    assert_eq!(
        headers["x-echo-host"], "secretsmanager.us-east-1.amazonaws.com",
        "the Host header is part of the signature and must reach the upstream as sent"
    );
    assert_eq!(headers["x-echo-target"], "secretsmanager.GetSecretValue");
    assert_eq!(
        headers["x-echo-signature"],
        "AWS4-HMAC-SHA256 Credential=test/..."
    );
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        large
    );

    // On the same connection: a chunked body and no target at all.
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> =
        (0..50).map(|i| Ok(Frame::data(pattern(4096, i)))).collect();
    let expected: Vec<u8> = (0..50).flat_map(|i| pattern(4096, i)).collect();
    sender.ready().await.unwrap();
    let request = Request::put("/moto-api/whatever")
        .header("host", "127.0.0.1")
        .body(StreamBody::new(futures::stream::iter(chunks)).boxed())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-echo-method"], "PUT");
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        expected
    );

    // An operation no quota names, and another service's target: forwarded, unmetered.
    for target in [
        &b"secretsmanager.NoSuchOperation"[..],
        b"kms.Encrypt",
        b"secretsmanager.\xffGetSecretValue",
    ] {
        sender.ready().await.unwrap();
        let request = Request::post("/")
            .header("host", "127.0.0.1")
            .header("x-amz-target", HeaderValue::from_bytes(target).unwrap())
            .body(Full::new(Bytes::from_static(b"{}")).boxed())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 201, "{target:?}");
    }

    let stats = proxy.stats();
    assert_eq!(stats.forwarded(QuotaGroup::Reads), 1, "{stats:?}");
    assert_eq!(stats.unclassified(), 4, "{stats:?}");
    assert_eq!(stats.total(), 5);
    assert_eq!(stats.total_forwarded(), 5);
    assert_eq!(stats.upstream_failures(), 0);
    drop(sender);
    let _ = connection.await;
}

/// Reads one response with a Content-Length body off `stream`: the head, lowercased, and the
/// body.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .expect("a content-length")
                .trim()
                .parse()
                .unwrap();
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                return (head, body);
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_throttled_answer_is_the_aws_json_error_on_a_kept_alive_connection() {
    let proxy = ThrottleProxy::start(
        &echo_upstream().await,
        Quotas::aws().with(QuotaGroup::Tagging, 0),
    )
    .await;
    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let body = format!(r#"{{"SecretId":"x","Tags":"{}"}}"#, "t".repeat(200 * 1024));
    for _ in 0..2 {
        let head = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: secretsmanager.TagResource\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let (head, answer) = read_response(&mut stream).await;
        assert!(head.starts_with("http/1.1 400 "), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/x-amz-json-1.1"),
            "{head}"
        );
        assert!(head.contains("\r\nx-amzn-requestid: "), "{head}");
        assert!(!head.contains("\r\nconnection: close"), "{head}");
        assert_eq!(answer, THROTTLING_BODY);
    }
    let stats = proxy.stats();
    assert_eq!(stats.throttled(QuotaGroup::Tagging), 2);
    assert_eq!(stats.total_forwarded(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_input_does_not_stop_the_proxy_and_dropping_it_does() {
    let proxy = ThrottleProxy::start(&echo_upstream().await, Quotas::aws()).await;
    let addr = proxy.local_addr();

    for garbage in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nContent-Length: banana\r\n\r\n",
        b"\x00\xff\xfe\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort",
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let _ = stream.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
        // Hyper refuses what it cannot parse; a body cut short fails upstream (502).
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 400")
                || answer.starts_with("HTTP/1.1 502"),
            "{answer}"
        );
    }

    // Still serving.
    let via_proxy = client(&proxy.url(), single_attempt()).await;
    // The echo upstream's answer is no ListSecrets output; that the call got through is the
    // point.
    let _ = via_proxy.list_secrets().send().await;
    assert_eq!(proxy.stats().forwarded(QuotaGroup::ListSecrets), 1);

    drop(proxy);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match TcpStream::connect(addr).await {
            Err(_) => break,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Ok(_) => panic!("the proxy still accepts connections after being dropped"),
        }
    }
}
