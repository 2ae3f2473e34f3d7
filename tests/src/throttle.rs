//! A local HTTP proxy that puts AWS Secrets Manager's request-rate quotas in front of the moto
//! server, which never throttles. Tests and benchmarks aim the SDK at [`ThrottleProxy::url`];
//! a request within its quota is forwarded to moto untouched, one over it is answered the way
//! AWS's JSON protocol answers a throttled call, so the SDK's own retry machinery reacts to it
//! as it would in AWS.
//!
//! [`Quotas::aws`] holds the defaults of "AWS Secrets Manager quotas",
//! <https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html>. Each
//! row there is one rate shared by the operations it names, so each row is one bucket here
//! ([`QuotaGroup`]):
//!
//! - DeleteResourcePolicy, GetResourcePolicy, PutResourcePolicy, ValidateResourcePolicy: 50/s
//! - DescribeSecret, GetSecretValue: 10,000/s
//! - PutSecretValue, RemoveRegionsFromReplication, ReplicateSecretToRegions,
//!   StopReplicationToReplica, UpdateSecret, UpdateSecretVersionStage: 50/s
//! - RestoreSecret: 50/s; RotateSecret, CancelRotateSecret: 50/s (rows of their own, not
//!   part of the write row above)
//! - TagResource, UntagResource: 50/s
//! - BatchGetSecretValue: 100/s
//! - ListSecrets: 100/s since November 2022,
//!   <https://aws.amazon.com/about-aws/whats-new/2022/11/aws-secrets-manager-increases-api-requests-per-second-limits/>
//! - CreateSecret, DeleteSecret, GetRandomPassword, ListSecretVersionIds: 50/s, as in the
//!   page's earlier revision (`doc_source/reference_limits.md` in
//!   `awsdocs/aws-secrets-manager-docs`)
//!
//! A March 2025 announcement gives DescribeSecret 40,000/s apart from GetSecretValue; the
//! page's combined 10,000/s row is kept, being the stricter of the two.
//!
//! Each group is a token bucket holding one second's worth of requests and refilled
//! continuously, so a burst of up to the quota passes at once and the sustained rate is the
//! quota. Only requests carrying `X-Amz-Target: secretsmanager.<Operation>` are metered;
//! anything else is forwarded and counted as unclassified.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The body AWS sends with a throttled JSON-protocol call; the SDK reads the error code from
/// `__type`.
pub const THROTTLING_BODY: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

const TARGET_PREFIX: &str = "secretsmanager.";

/// One shared request rate of the quotas page: the operations of a group draw on one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaGroup {
    /// DescribeSecret and GetSecretValue, combined.
    Reads,
    /// PutSecretValue, RemoveRegionsFromReplication, ReplicateSecretToRegions,
    /// StopReplicationToReplica, UpdateSecret and UpdateSecretVersionStage, combined.
    Writes,
    CreateSecret,
    DeleteSecret,
    RestoreSecret,
    /// RotateSecret and CancelRotateSecret, combined.
    Rotation,
    /// TagResource and UntagResource, combined.
    Tagging,
    /// DeleteResourcePolicy, GetResourcePolicy, PutResourcePolicy and ValidateResourcePolicy,
    /// combined.
    ResourcePolicy,
    ListSecrets,
    ListSecretVersionIds,
    BatchGetSecretValue,
    GetRandomPassword,
}

impl QuotaGroup {
    pub const ALL: [QuotaGroup; 12] = [
        QuotaGroup::Reads,
        QuotaGroup::Writes,
        QuotaGroup::CreateSecret,
        QuotaGroup::DeleteSecret,
        QuotaGroup::RestoreSecret,
        QuotaGroup::Rotation,
        QuotaGroup::Tagging,
        QuotaGroup::ResourcePolicy,
        QuotaGroup::ListSecrets,
        QuotaGroup::ListSecretVersionIds,
        QuotaGroup::BatchGetSecretValue,
        QuotaGroup::GetRandomPassword,
    ];

    /// The group of a Secrets Manager operation name (`PutSecretValue`), if it is one.
    pub fn of_operation(operation: &str) -> Option<QuotaGroup> {
        use QuotaGroup::*;
        Some(match operation {
            "DescribeSecret" | "GetSecretValue" => Reads,
            "PutSecretValue"
            | "RemoveRegionsFromReplication"
            | "ReplicateSecretToRegions"
            | "StopReplicationToReplica"
            | "UpdateSecret"
            | "UpdateSecretVersionStage" => Writes,
            "CreateSecret" => CreateSecret,
            "DeleteSecret" => DeleteSecret,
            "RestoreSecret" => RestoreSecret,
            "RotateSecret" | "CancelRotateSecret" => Rotation,
            "TagResource" | "UntagResource" => Tagging,
            "DeleteResourcePolicy"
            | "GetResourcePolicy"
            | "PutResourcePolicy"
            | "ValidateResourcePolicy" => ResourcePolicy,
            "ListSecrets" => ListSecrets,
            "ListSecretVersionIds" => ListSecretVersionIds,
            "BatchGetSecretValue" => BatchGetSecretValue,
            "GetRandomPassword" => GetRandomPassword,
            _ => return None,
        })
    }

    /// The group of an `X-Amz-Target` header value (`secretsmanager.PutSecretValue`).
    pub fn of_target(target: &str) -> Option<QuotaGroup> {
        Self::of_operation(target.strip_prefix(TARGET_PREFIX)?)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Requests per second allowed in each [`QuotaGroup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    per_second: [u32; QuotaGroup::ALL.len()],
}

impl Quotas {
    /// AWS's default quotas (see the module documentation for the source).
    pub fn aws() -> Self {
        let mut per_second = [50; QuotaGroup::ALL.len()];
        per_second[QuotaGroup::Reads.index()] = 10_000;
        per_second[QuotaGroup::ListSecrets.index()] = 100;
        per_second[QuotaGroup::BatchGetSecretValue.index()] = 100;
        Self { per_second }
    }

    /// The same quotas with the combined PutSecretValue/UpdateSecretVersionStage/... rate
    /// set to `per_second`.
    pub fn with_writes_per_second(self, per_second: u32) -> Self {
        self.with(QuotaGroup::Writes, per_second)
    }

    /// The same quotas with `group`'s rate set to `per_second` (0 throttles every request).
    pub fn with(mut self, group: QuotaGroup, per_second: u32) -> Self {
        self.per_second[group.index()] = per_second;
        self
    }

    pub fn per_second(&self, group: QuotaGroup) -> u32 {
        self.per_second[group.index()]
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self::aws()
    }
}

/// What the proxy has done so far. Counters are read one by one, so a snapshot taken while
/// requests are in flight need not add up exactly; one taken after they finish does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThrottleStats {
    forwarded: BTreeMap<QuotaGroup, u64>,
    throttled: BTreeMap<QuotaGroup, u64>,
    unclassified: u64,
    upstream_failures: u64,
    total: u64,
}

impl ThrottleStats {
    /// Requests of `group` let through to the upstream.
    pub fn forwarded(&self, group: QuotaGroup) -> u64 {
        self.forwarded.get(&group).copied().unwrap_or(0)
    }

    /// Requests of `group` answered with `ThrottlingException` instead of being forwarded.
    pub fn throttled(&self, group: QuotaGroup) -> u64 {
        self.throttled.get(&group).copied().unwrap_or(0)
    }

    /// Requests with no or an unknown `X-Amz-Target`, forwarded without metering.
    pub fn unclassified(&self) -> u64 {
        self.unclassified
    }

    /// Forwarded requests the upstream did not answer (the proxy answered 502 instead).
    pub fn upstream_failures(&self) -> u64 {
        self.upstream_failures
    }

    /// Every request forwarded, metered or not.
    pub fn total_forwarded(&self) -> u64 {
        self.forwarded.values().sum::<u64>() + self.unclassified
    }

    pub fn total_throttled(&self) -> u64 {
        self.throttled.values().sum()
    }

    /// Every request received.
    pub fn total(&self) -> u64 {
        self.total
    }
}

struct Bucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn full(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            tokens: rate,
            refilled: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled = now;
    }

    /// Keeps what the bucket holds (up to the new capacity): a new rate applies from now on.
    fn set_rate(&mut self, per_second: u32) {
        self.refill();
        self.rate = f64::from(per_second);
        self.tokens = self.tokens.min(self.rate);
    }

    fn try_take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
struct Counters {
    forwarded: [AtomicU64; QuotaGroup::ALL.len()],
    throttled: [AtomicU64; QuotaGroup::ALL.len()],
    unclassified: AtomicU64,
    upstream_failures: AtomicU64,
    total: AtomicU64,
}

struct Upstream {
    authority: hyper::http::uri::Authority,
    /// The upstream URL's path without its trailing slash, put in front of each request's.
    base_path: String,
}

struct Shared {
    buckets: Vec<Mutex<Bucket>>,
    counters: Counters,
    upstream: Upstream,
    client: Client<HttpConnector, Incoming>,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The proxy: listening on 127.0.0.1 from [`ThrottleProxy::start`] until dropped.
pub struct ThrottleProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl ThrottleProxy {
    /// Starts a proxy on an ephemeral 127.0.0.1 port in front of `upstream_url`
    /// (`http://host:port`, e.g. the moto server's `AWS_ENDPOINT_URL`), on the current tokio
    /// runtime. Every bucket starts full.
    ///
    /// # Panics
    /// If `upstream_url` is not an `http://` URL with a host, or no local port can be bound:
    /// either is a broken test setup.
    pub async fn start(upstream_url: &str, quotas: Quotas) -> ThrottleProxy {
        let upstream = parse_upstream(upstream_url);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the throttle proxy to 127.0.0.1");
        let addr = listener.local_addr().expect("the proxy's local address");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            // With the server side's setting, header names reach each end spelled as sent.
            .http1_preserve_header_case(true)
            .build(connector);
        let shared = Arc::new(Shared {
            buckets: QuotaGroup::ALL
                .iter()
                .map(|group| Mutex::new(Bucket::full(quotas.per_second(*group))))
                .collect(),
            counters: Counters::default(),
            upstream,
            client,
        });
        let server = tokio::spawn(accept_loop(listener, shared.clone()));
        ThrottleProxy {
            addr,
            shared,
            server,
        }
    }

    /// The base URL to give the SDK as its endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes `group`'s quota from now on, e.g. to open a group started at 0 once a test
    /// has seen its first calls refused. The bucket keeps its tokens, up to the new capacity.
    pub fn set_quota(&self, group: QuotaGroup, per_second: u32) {
        self.shared.buckets[group.index()]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .set_rate(per_second);
    }

    pub fn stats(&self) -> ThrottleStats {
        let counters = &self.shared.counters;
        let per_group = |values: &[AtomicU64; QuotaGroup::ALL.len()]| {
            QuotaGroup::ALL
                .iter()
                .map(|group| (*group, values[group.index()].load(Ordering::SeqCst)))
                .filter(|(_, count)| *count > 0)
                .collect::<BTreeMap<_, _>>()
        };
        ThrottleStats {
            forwarded: per_group(&counters.forwarded),
            throttled: per_group(&counters.throttled),
            unclassified: counters.unclassified.load(Ordering::SeqCst),
            upstream_failures: counters.upstream_failures.load(Ordering::SeqCst),
            total: counters.total.load(Ordering::SeqCst),
        }
    }
}

impl Drop for ThrottleProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops the listener and its JoinSet, which aborts every
        // connection task; the upstream pool goes with the last reference to `Shared`.
        self.server.abort();
    }
}

fn parse_upstream(upstream_url: &str) -> Upstream {
    let uri: Uri = upstream_url
        .parse()
        .unwrap_or_else(|e| panic!("upstream URL {upstream_url:?}: {e}"));
    assert!(
        uri.scheme_str() == Some("http"),
        "the throttle proxy forwards plain http only; got {upstream_url:?}"
    );
    let authority = uri
        .authority()
        .cloned()
        .unwrap_or_else(|| panic!("upstream URL {upstream_url:?} has no host"));
    Upstream {
        authority,
        base_path: uri.path().trim_end_matches('/').to_owned(),
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, shared.clone()));
                }
                // Out of file descriptors and the like: pause rather than spin, keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections so the set does not grow with every one ever served.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    // Malformed requests end here: hyper answers 400 or closes the connection.
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .preserve_header_case(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    let counters = &shared.counters;
    counters.total.fetch_add(1, Ordering::SeqCst);
    let group = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .and_then(QuotaGroup::of_target);
    match group {
        Some(group) => {
            let admitted = shared.buckets[group.index()]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .try_take();
            if !admitted {
                counters.throttled[group.index()].fetch_add(1, Ordering::SeqCst);
                // Read the body as AWS does: a response sent over an unread body makes hyper
                // close the connection, and the SDK's pooled keep-alive connection with it.
                let _ = request.into_body().collect().await;
                return throttled();
            }
            counters.forwarded[group.index()].fetch_add(1, Ordering::SeqCst);
        }
        None => {
            counters.unclassified.fetch_add(1, Ordering::SeqCst);
        }
    }
    match forward(shared, request).await {
        Ok(response) => response,
        Err(reason) => {
            counters.upstream_failures.fetch_add(1, Ordering::SeqCst);
            bad_gateway(&reason)
        }
    }
}

async fn forward(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, String> {
    let (mut parts, body) = request.into_parts();
    let upstream = &shared.upstream;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    parts.uri = Uri::builder()
        .scheme(hyper::http::uri::Scheme::HTTP)
        .authority(upstream.authority.clone())
        .path_and_query(format!("{}{}", upstream.base_path, path_and_query))
        .build()
        .map_err(|e| format!("upstream URI: {e}"))?;
    // Host stays as the client sent it: it is part of the SigV4 signature. Hop-by-hop headers
    // describe the client's connection to this proxy, not the proxy's to the upstream.
    strip_hop_by_hop(&mut parts.headers);
    let response = shared
        .client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|e| format!("upstream request failed: {e}"))?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
}

/// Removes the headers RFC 9110 section 7.6.1 says a proxy must not forward: `Connection`,
/// the headers it names, and the well-known hop-by-hop ones.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// What Secrets Manager answers over quota: 400 with the JSON 1.1 error shape, which the
/// SDK's standard retry classifies as a throttling error.
fn throttled() -> Response<ProxyBody> {
    let mut response = Response::new(full(THROTTLING_BODY));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

fn bad_gateway(reason: &str) -> Response<ProxyBody> {
    let mut response = Response::new(full(format!("throttle proxy: {reason}\n")));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
