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
//!
//! # Strict mode
//!
//! moto is more lenient than AWS in ways a product can come to depend on without noticing.
//! With [`Strictness::aws`] (the default) the proxy also enforces, on the write path, the
//! semantics AWS documents and moto lacks, answering each refusal in AWS's JSON error shape
//! without forwarding it:
//!
//! - **`ClientRequestToken` reuse** (PutSecretValue, CreateSecret). "If a version with this
//!   value already exists and the version's SecretString and SecretBinary values are the same
//!   as those in the request, then the request is ignored"; if they differ, "the request
//!   fails because you cannot modify an existing secret version" (the `ClientRequestToken`
//!   parameter of both operations in the Secrets Manager API reference). moto instead
//!   overwrites a version still labelled `AWSPENDING`. The proxy looks the token up with a
//!   `GetSecretValue(VersionId)` to the upstream: the same value is answered with the
//!   operation's success body and not forwarded (so no label moves), another value with
//!   `ResourceExistsException` and moto's rendering of AWS's message. Writes with the same
//!   secret and token take turns, so two racing writers cannot both pass the look-up.
//! - **One CreateSecret per name.** Of two concurrent CreateSecret calls for one name, AWS
//!   answers one with `ResourceExistsException`. moto checks for the name and inserts it
//!   without a lock, so under concurrency both can succeed, the second overwriting the first.
//!   Creates of one name take turns through the proxy, whatever their tokens.
//! - **The value size limit.** `SecretString` and `SecretBinary` are at most 65,536 bytes
//!   (the "Secret value size" quota, L-2F24C883, not adjustable; `max: 65536` on
//!   `SecretStringType` and `SecretBinaryType` in the service model) on CreateSecret,
//!   PutSecretValue and UpdateSecret. A longer one is refused as AWS refuses a member over its
//!   modelled length: `ValidationException`, "1 validation error detected: Value at
//!   'secretString' failed to satisfy constraint: Member must have length less than or equal
//!   to 65536".
//! - **The version quota.** "Secrets Manager removes unlabeled versions when there are more
//!   than 100, but it does not remove versions created less than 24 hours ago" (quotas
//!   page): a secret written more than about 100 times within 24 hours cannot take another
//!   version, and the write fails with `LimitExceededException` ("The request failed because
//!   it would exceed one of the Secrets Manager quotas.", its documented description). The
//!   proxy counts the versions each secret was given through it (CreateSecret, PutSecretValue
//!   and UpdateSecret carrying a value, answered 2xx upstream) over a rolling 24 hours and
//!   refuses the one past [`Strictness::version_budget`] (100 by default). A successful
//!   CreateSecret starts a secret's count afresh and DeleteSecret forgets it. A `SecretId`
//!   given as an ARN counts as the name it carries. Tests lower the budget
//!   ([`ThrottleProxy::set_version_budget`]) and move the window
//!   ([`ThrottleProxy::advance_version_clock`]) rather than write 100 versions or wait a day.
//!
//! The AWS SDK's standard retry treats `LimitExceededException` as throttling, so a client
//! with retries sees the quota refusal once per attempt.

use base64::Engine;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedMutexGuard;
use tokio::task::{JoinHandle, JoinSet};

/// The body AWS sends with a throttled JSON-protocol call; the SDK reads the error code from
/// `__type`.
pub const THROTTLING_BODY: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

/// The longest `SecretString` (in bytes) or `SecretBinary` (decoded) Secrets Manager stores.
pub const MAX_SECRET_VALUE_BYTES: usize = 65_536;

/// The span over which AWS keeps every version it created: none younger is removed to make
/// room, so at most about [`AWS_VERSIONS_PER_WINDOW`] can be created within it.
pub const VERSION_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The versions per secret AWS keeps before removing unlabelled ones older than a day.
pub const AWS_VERSIONS_PER_WINDOW: u32 = 100;

/// The documented description of `LimitExceededException`, sent as its message.
pub const LIMIT_EXCEEDED_MESSAGE: &str =
    "The request failed because it would exceed one of the Secrets Manager quotas.";

const TARGET_PREFIX: &str = "secretsmanager.";
const JSON_1_1: &str = "application/x-amz-json-1.1";
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

    /// No rate limit on any group: for a proxy that is there for [`Strictness`] alone.
    pub fn unlimited() -> Self {
        Self {
            per_second: [u32::MAX; QuotaGroup::ALL.len()],
        }
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

/// Which of AWS's write-path semantics the proxy enforces on top of moto (see the module
/// documentation, "Strict mode").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strictness {
    enabled: bool,
    version_budget: u32,
}

impl Strictness {
    /// Token reuse, the value size limit and the version quota, as AWS enforces them.
    pub fn aws() -> Self {
        Self {
            enabled: true,
            version_budget: AWS_VERSIONS_PER_WINDOW,
        }
    }

    /// moto's own behaviour: every request within its rate quota is forwarded as it is.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::aws()
        }
    }

    /// The same, with `versions` new versions allowed per secret within [`VERSION_WINDOW`].
    pub fn with_version_budget(mut self, versions: u32) -> Self {
        self.version_budget = versions;
        self
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn version_budget(&self) -> u32 {
        self.version_budget
    }
}

impl Default for Strictness {
    fn default() -> Self {
        Self::aws()
    }
}

/// What strict mode answered in moto's place, one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StrictOutcome {
    /// A `ClientRequestToken` reused with its version's own value: answered with the
    /// operation's success body, nothing forwarded.
    TokenReplayed,
    /// A `ClientRequestToken` reused with another value: `ResourceExistsException`.
    TokenConflict,
    /// A value over [`MAX_SECRET_VALUE_BYTES`]: `ValidationException`.
    ValueTooLarge,
    /// A new version past the secret's budget: `LimitExceededException`.
    VersionQuota,
}

impl StrictOutcome {
    pub const ALL: [StrictOutcome; 4] = [
        StrictOutcome::TokenReplayed,
        StrictOutcome::TokenConflict,
        StrictOutcome::ValueTooLarge,
        StrictOutcome::VersionQuota,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// What the proxy has done so far. Counters are read one by one, so a snapshot taken while
/// requests are in flight need not add up exactly; one taken after they finish does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThrottleStats {
    forwarded: BTreeMap<QuotaGroup, u64>,
    throttled: BTreeMap<QuotaGroup, u64>,
    strict: BTreeMap<StrictOutcome, u64>,
    unclassified: u64,
    upstream_failures: u64,
    lookups: u64,
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

    /// Requests strict mode answered itself with `outcome`, instead of forwarding them.
    pub fn strict(&self, outcome: StrictOutcome) -> u64 {
        self.strict.get(&outcome).copied().unwrap_or(0)
    }

    /// Requests with no or an unknown `X-Amz-Target`, forwarded without metering.
    pub fn unclassified(&self) -> u64 {
        self.unclassified
    }

    /// Forwarded requests the upstream did not answer (the proxy answered 502 instead).
    pub fn upstream_failures(&self) -> u64 {
        self.upstream_failures
    }

    /// `GetSecretValue` calls strict mode made to the upstream on its own account, to look a
    /// `ClientRequestToken` up; not counted in any other figure.
    pub fn lookups(&self) -> u64 {
        self.lookups
    }

    /// Every request forwarded, metered or not.
    pub fn total_forwarded(&self) -> u64 {
        self.forwarded.values().sum::<u64>() + self.unclassified
    }

    pub fn total_throttled(&self) -> u64 {
        self.throttled.values().sum()
    }

    /// Every request strict mode answered itself, whatever the outcome.
    pub fn total_strict(&self) -> u64 {
        self.strict.values().sum()
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
    strict: [AtomicU64; StrictOutcome::ALL.len()],
    unclassified: AtomicU64,
    upstream_failures: AtomicU64,
    lookups: AtomicU64,
    total: AtomicU64,
}

/// The versions each secret was given through the proxy within the window, by secret name.
struct VersionLedger {
    budget: u32,
    /// How far tests have moved the ledger's clock ahead of the real one.
    advanced: Duration,
    next_ticket: u64,
    /// Oldest first. A write in flight holds its place (its ticket) so that concurrent writes
    /// cannot all pass the check; a write the upstream refuses gives it back.
    created: HashMap<String, VecDeque<(u64, Instant)>>,
}

impl VersionLedger {
    fn new(budget: u32) -> Self {
        Self {
            budget,
            advanced: Duration::ZERO,
            next_ticket: 0,
            created: HashMap::new(),
        }
    }

    fn now(&self) -> Instant {
        Instant::now() + self.advanced
    }

    /// The secret's versions still within the window, after dropping the older ones.
    fn recent(&mut self, secret: &str) -> usize {
        let now = self.now();
        let Some(times) = self.created.get_mut(secret) else {
            return 0;
        };
        times.retain(|(_, at)| now.duration_since(*at) < VERSION_WINDOW);
        let count = times.len();
        if count == 0 {
            self.created.remove(secret);
        }
        count
    }

    /// A place for one more version of `secret`, or `None` past the budget.
    fn reserve(&mut self, secret: &str) -> Option<u64> {
        if self.recent(secret) >= self.budget as usize {
            return None;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let now = self.now();
        self.created
            .entry(secret.to_owned())
            .or_default()
            .push_back((ticket, now));
        Some(ticket)
    }

    fn release(&mut self, secret: &str, ticket: u64) {
        if let Some(times) = self.created.get_mut(secret) {
            times.retain(|(held, _)| *held != ticket);
        }
    }

    /// A secret just created: only the version `ticket` holds counts against it.
    fn restart(&mut self, secret: &str, ticket: u64) {
        if let Some(times) = self.created.get_mut(secret) {
            times.retain(|(held, _)| *held == ticket);
        }
    }

    fn forget(&mut self, secret: &str) {
        self.created.remove(secret);
    }
}

/// One writer at a time per (secret, `ClientRequestToken`): from the token's look-up until
/// the upstream has answered the write, so the second of two racing writers sees the first
/// one's version.
type TokenTurns = Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>;

struct TokenTurn<'a> {
    turns: &'a TokenTurns,
    key: (String, String),
    queue: Arc<tokio::sync::Mutex<()>>,
    held: Option<OwnedMutexGuard<()>>,
}

impl<'a> TokenTurn<'a> {
    async fn take(turns: &'a TokenTurns, secret: &str, token: &str) -> TokenTurn<'a> {
        let key = (secret.to_owned(), token.to_owned());
        let queue = lock(turns).entry(key.clone()).or_default().clone();
        let held = Some(queue.clone().lock_owned().await);
        TokenTurn {
            turns,
            key,
            queue,
            held,
        }
    }
}

impl Drop for TokenTurn<'_> {
    fn drop(&mut self) {
        self.held.take();
        let mut turns = lock(self.turns);
        // Only the map and this turn hold the queue: nobody is waiting, so the entry goes.
        // Waiters take their clone under the same lock, so none can appear meanwhile.
        if Arc::strong_count(&self.queue) == 2 {
            turns.remove(&self.key);
        }
    }
}

/// A poisoned lock only means a panicking test thread held it; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    client: Client<HttpConnector, ProxyBody>,
    strict: bool,
    ledger: Mutex<VersionLedger>,
    token_turns: TokenTurns,
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
    /// runtime, with strict mode on ([`Strictness::aws`]). Every bucket starts full.
    ///
    /// # Panics
    /// If `upstream_url` is not an `http://` URL with a host, or no local port can be bound:
    /// either is a broken test setup.
    pub async fn start(upstream_url: &str, quotas: Quotas) -> ThrottleProxy {
        Self::start_with(upstream_url, quotas, Strictness::aws()).await
    }

    /// [`ThrottleProxy::start`] with the given strictness.
    ///
    /// # Panics
    /// As [`ThrottleProxy::start`].
    pub async fn start_with(
        upstream_url: &str,
        quotas: Quotas,
        strictness: Strictness,
    ) -> ThrottleProxy {
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::listen_on(local, upstream_url, quotas, strictness)
            .await
            .unwrap_or_else(|reason| panic!("the throttle proxy did not start: {reason}"))
    }

    /// Starts a proxy listening on `listen` (port 0 for an ephemeral one), or says why not.
    pub async fn listen_on(
        listen: SocketAddr,
        upstream_url: &str,
        quotas: Quotas,
        strictness: Strictness,
    ) -> Result<ThrottleProxy, String> {
        let upstream = parse_upstream(upstream_url)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("bind {listen}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the proxy's local address: {e}"))?;
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
            strict: strictness.is_enabled(),
            ledger: Mutex::new(VersionLedger::new(strictness.version_budget())),
            token_turns: Mutex::default(),
        });
        let server = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(ThrottleProxy {
            addr,
            shared,
            server,
        })
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
        lock(&self.shared.buckets[group.index()]).set_rate(per_second);
    }

    /// Changes the versions each secret may be given within [`VERSION_WINDOW`], from now on;
    /// versions already counted stay counted. Without effect when strict mode is off.
    pub fn set_version_budget(&self, versions: u32) {
        lock(&self.shared.ledger).budget = versions;
    }

    /// Moves the version quota's clock `by` ahead: versions older than [`VERSION_WINDOW`] on
    /// it stop counting. Rate quotas keep the real time.
    pub fn advance_version_clock(&self, by: Duration) {
        lock(&self.shared.ledger).advanced += by;
    }

    /// The versions counted against `secret_id` (a name or an ARN) within the window.
    pub fn versions_counted(&self, secret_id: &str) -> usize {
        lock(&self.shared.ledger).recent(&secret_key(secret_id))
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
            strict: StrictOutcome::ALL
                .iter()
                .map(|outcome| {
                    let count = counters.strict[outcome.index()].load(Ordering::SeqCst);
                    (*outcome, count)
                })
                .filter(|(_, count)| *count > 0)
                .collect(),
            unclassified: counters.unclassified.load(Ordering::SeqCst),
            upstream_failures: counters.upstream_failures.load(Ordering::SeqCst),
            lookups: counters.lookups.load(Ordering::SeqCst),
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

fn parse_upstream(upstream_url: &str) -> Result<Upstream, String> {
    let uri: Uri = upstream_url
        .parse()
        .map_err(|e| format!("upstream URL {upstream_url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "the throttle proxy forwards plain http only; got {upstream_url:?}"
        ));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("upstream URL {upstream_url:?} has no host"))?;
    Ok(Upstream {
        authority,
        base_path: uri.path().trim_end_matches('/').to_owned(),
    })
}

/// The secret a `SecretId` names: a full ARN
/// (`arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>`) stands
/// for its name, so writes by name and by ARN count against one secret. A partial ARN (no
/// random suffix) is taken as given.
fn secret_key(secret_id: &str) -> String {
    let Some(("arn", rest)) = secret_id.split_once(':') else {
        return secret_id.to_owned();
    };
    let Some((_, name)) = rest.split_once(":secret:") else {
        return secret_id.to_owned();
    };
    let bytes = name.as_bytes();
    let suffixed = bytes.len() > 7
        && bytes[bytes.len() - 7] == b'-'
        && bytes[bytes.len() - 6..]
            .iter()
            .all(u8::is_ascii_alphanumeric);
    // The suffix is ASCII, so the cut falls on a character boundary.
    if suffixed {
        name[..name.len() - 7].to_owned()
    } else {
        name.to_owned()
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

/// The writes strict mode looks into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    CreateSecret,
    PutSecretValue,
    UpdateSecret,
    DeleteSecret,
}

impl Write {
    fn of_operation(operation: &str) -> Option<Write> {
        Some(match operation {
            "CreateSecret" => Write::CreateSecret,
            "PutSecretValue" => Write::PutSecretValue,
            "UpdateSecret" => Write::UpdateSecret,
            "DeleteSecret" => Write::DeleteSecret,
            _ => return None,
        })
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    let counters = &shared.counters;
    counters.total.fetch_add(1, Ordering::SeqCst);
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX));
    let Some(group) = operation.and_then(QuotaGroup::of_operation) else {
        counters.unclassified.fetch_add(1, Ordering::SeqCst);
        return forward_or_bad_gateway(shared, request.map(BodyExt::boxed)).await;
    };
    let write = operation
        .and_then(Write::of_operation)
        .filter(|_| shared.strict);
    let admitted = lock(&shared.buckets[group.index()]).try_take();
    if !admitted {
        counters.throttled[group.index()].fetch_add(1, Ordering::SeqCst);
        // Read the body as AWS does: a response sent over an unread body makes hyper close
        // the connection, and the SDK's pooled keep-alive connection with it.
        let _ = request.into_body().collect().await;
        return throttled();
    }
    match write {
        Some(write) => strict_write(shared, group, write, request).await,
        None => {
            counters.forwarded[group.index()].fetch_add(1, Ordering::SeqCst);
            forward_or_bad_gateway(shared, request.map(BodyExt::boxed)).await
        }
    }
}

/// The members of a write strict mode reads, from its JSON body.
struct WriteFields {
    /// `SecretId`, or `Name` for CreateSecret, as sent.
    secret_id: Option<String>,
    token: Option<String>,
    secret_string: Option<String>,
    secret_binary: Option<String>,
}

impl WriteFields {
    fn parse(write: Write, body: &Map<String, Value>) -> Self {
        let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        let id_member = if write == Write::CreateSecret {
            "Name"
        } else {
            "SecretId"
        };
        Self {
            secret_id: text(id_member),
            token: text("ClientRequestToken"),
            secret_string: text("SecretString"),
            secret_binary: text("SecretBinary"),
        }
    }

    fn has_value(&self) -> bool {
        self.secret_string.is_some() || self.secret_binary.is_some()
    }

    /// The member AWS's validation would name, if the value is over the size limit.
    fn oversize_member(&self) -> Option<&'static str> {
        if self
            .secret_string
            .as_ref()
            .is_some_and(|text| text.len() > MAX_SECRET_VALUE_BYTES)
        {
            return Some("secretString");
        }
        // The JSON carries the binary as base64; the limit is on the bytes. An undecodable
        // one is left for the upstream to refuse.
        let binary_len = self.secret_binary.as_ref().and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .map(|bytes| bytes.len())
        });
        binary_len
            .filter(|len| *len > MAX_SECRET_VALUE_BYTES)
            .map(|_| "secretBinary")
    }

    fn same_value_as(&self, existing: &Map<String, Value>) -> bool {
        let existing_text = |name: &str| existing.get(name).and_then(Value::as_str);
        existing_text("SecretString") == self.secret_string.as_deref()
            && existing_text("SecretBinary") == self.secret_binary.as_deref()
    }
}

async fn strict_write(
    shared: &Shared,
    group: QuotaGroup,
    write: Write,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let counters = &shared.counters;
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // The client went away or sent a broken body: nothing to answer it with.
        Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("request body: {e}")),
    };
    let fields = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(members)) => WriteFields::parse(write, &members),
        // Not a JSON object: the upstream answers it as it answers any malformed request.
        _ => {
            counters.forwarded[group.index()].fetch_add(1, Ordering::SeqCst);
            return forward_or_bad_gateway(shared, Request::from_parts(parts, full(body))).await;
        }
    };
    let secret = fields.secret_id.as_deref().map(secret_key);
    // Which write met which rule, for the log of a run (no values, only names and tokens).
    let answered_here = |outcome: StrictOutcome| {
        counters.strict[outcome.index()].fetch_add(1, Ordering::SeqCst);
        tracing::info!(
            operation = ?write,
            secret = secret.as_deref().unwrap_or_default(),
            token = fields.token.as_deref().unwrap_or_default(),
            outcome = ?outcome,
            "strict mode answered in the emulator's place"
        );
    };
    let refuse = |outcome: StrictOutcome, kind: &str, message: &str| {
        answered_here(outcome);
        aws_error(kind, message)
    };

    if write != Write::DeleteSecret {
        if let Some(member) = fields.oversize_member() {
            let message = format!(
                "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length less than or equal to {MAX_SECRET_VALUE_BYTES}"
            );
            return refuse(
                StrictOutcome::ValueTooLarge,
                "ValidationException",
                &message,
            );
        }
    }
    let creates_version = write != Write::DeleteSecret && fields.has_value();

    // Held until the upstream has answered the write.
    let mut _turn = None;
    if let (Write::CreateSecret | Write::PutSecretValue, true, Some(secret_id), Some(token)) = (
        write,
        creates_version,
        fields.secret_id.as_deref(),
        fields.token.as_deref(),
    ) {
        let secret = secret.as_deref().unwrap_or(secret_id);
        // Secrets Manager creates a name once: of two concurrent CreateSecret calls, one is
        // ResourceExistsException. moto checks and inserts without a lock, so under
        // concurrency both can succeed (the second overwriting the first); creates of one name
        // take turns here, whatever their tokens.
        let turn = match write {
            Write::CreateSecret => "",
            _ => token,
        };
        _turn = Some(TokenTurn::take(&shared.token_turns, secret, turn).await);
        match look_up_version(shared, &parts.headers, secret_id, token).await {
            Err(reason) => {
                counters.upstream_failures.fetch_add(1, Ordering::SeqCst);
                return bad_gateway(&reason);
            }
            Ok(Some(existing)) if fields.same_value_as(&existing) => {
                answered_here(StrictOutcome::TokenReplayed);
                return ok_json(&replayed_answer(write, token, &existing));
            }
            Ok(Some(existing)) => {
                let arn = existing
                    .get("ARN")
                    .and_then(Value::as_str)
                    .unwrap_or(secret_id);
                let message = format!(
                    "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {arn}."
                );
                return refuse(
                    StrictOutcome::TokenConflict,
                    "ResourceExistsException",
                    &message,
                );
            }
            Ok(None) => {}
        }
    }

    let ticket = match (&secret, creates_version) {
        (Some(secret), true) => match lock(&shared.ledger).reserve(secret) {
            Some(ticket) => Some(ticket),
            None => {
                return refuse(
                    StrictOutcome::VersionQuota,
                    "LimitExceededException",
                    LIMIT_EXCEEDED_MESSAGE,
                )
            }
        },
        _ => None,
    };
    counters.forwarded[group.index()].fetch_add(1, Ordering::SeqCst);
    let answered = forward(shared, Request::from_parts(parts, full(body))).await;
    let succeeded = answered
        .as_ref()
        .is_ok_and(|response| response.status().is_success());
    if let Some(secret) = &secret {
        let mut ledger = lock(&shared.ledger);
        match (ticket, succeeded, write) {
            (Some(ticket), false, _) => ledger.release(secret, ticket),
            (Some(ticket), true, Write::CreateSecret) => ledger.restart(secret, ticket),
            (None, true, Write::DeleteSecret) => ledger.forget(secret),
            _ => {}
        }
    }
    answered.unwrap_or_else(|reason| {
        counters.upstream_failures.fetch_add(1, Ordering::SeqCst);
        bad_gateway(&reason)
    })
}

/// `GetSecretValue(SecretId, VersionId)` on the upstream, carrying the client's `Host` and
/// credentials headers: moto takes the region and account from them and checks no signature
/// (this proxy is for the emulator only). The version's members, or `None` when the upstream
/// has no such version (or no such secret) to show.
async fn look_up_version(
    shared: &Shared,
    client_headers: &HeaderMap,
    secret_id: &str,
    token: &str,
) -> Result<Option<Map<String, Value>>, String> {
    shared.counters.lookups.fetch_add(1, Ordering::SeqCst);
    let upstream = &shared.upstream;
    let body = json!({"SecretId": secret_id, "VersionId": token}).to_string();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(
            Uri::builder()
                .scheme(hyper::http::uri::Scheme::HTTP)
                .authority(upstream.authority.clone())
                .path_and_query(format!("{}/", upstream.base_path))
                .build()
                .map_err(|e| format!("upstream URI: {e}"))?,
        )
        .header(CONTENT_TYPE, JSON_1_1)
        .header("x-amz-target", "secretsmanager.GetSecretValue")
        .body(full(body))
        .map_err(|e| format!("look-up request: {e}"))?;
    for name in [
        "host",
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
    ] {
        if let Some(value) = client_headers.get(name) {
            request.headers_mut().insert(name, value.clone());
        }
    }
    let response = shared
        .client
        .request(request)
        .await
        .map_err(|e| format!("upstream look-up failed: {e}"))?;
    let status = response.status();
    let answer = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("upstream look-up answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Ok(None);
    }
    match serde_json::from_slice(&answer) {
        Ok(Value::Object(members)) => Ok(Some(members)),
        _ => Err("the upstream's GetSecretValue answer is not a JSON object".into()),
    }
}

/// The success body AWS gives a write it ignores: the version that already holds the token.
fn replayed_answer(write: Write, token: &str, existing: &Map<String, Value>) -> Value {
    let member = |name: &str| existing.get(name).cloned().unwrap_or(Value::Null);
    match write {
        Write::PutSecretValue => json!({
            "ARN": member("ARN"),
            "Name": member("Name"),
            "VersionId": token,
            "VersionStages": member("VersionStages"),
        }),
        _ => json!({
            "ARN": member("ARN"),
            "Name": member("Name"),
            "VersionId": token,
        }),
    }
}

async fn forward_or_bad_gateway(
    shared: &Shared,
    request: Request<ProxyBody>,
) -> Response<ProxyBody> {
    forward(shared, request).await.unwrap_or_else(|reason| {
        shared
            .counters
            .upstream_failures
            .fetch_add(1, Ordering::SeqCst);
        bad_gateway(&reason)
    })
}

async fn forward(
    shared: &Shared,
    request: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, String> {
    let (mut parts, body) = request.into_parts();
    aim_at_upstream(&shared.upstream, &mut parts)?;
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

fn aim_at_upstream(upstream: &Upstream, parts: &mut Parts) -> Result<(), String> {
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
    Ok(())
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

/// A JSON 1.1 answer as Secrets Manager sends one: its content type and a request id.
fn aws_json(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// What Secrets Manager answers over quota: 400 with the JSON 1.1 error shape, which the
/// SDK's standard retry classifies as a throttling error.
fn throttled() -> Response<ProxyBody> {
    aws_json(StatusCode::BAD_REQUEST, THROTTLING_BODY)
}

/// A client error in the JSON 1.1 shape: the SDK reads the code from `__type`.
fn aws_error(kind: &str, message: &str) -> Response<ProxyBody> {
    let body = json!({"__type": kind, "message": message}).to_string();
    aws_json(StatusCode::BAD_REQUEST, body)
}

fn ok_json(body: &Value) -> Response<ProxyBody> {
    aws_json(StatusCode::OK, body.to_string())
}

fn bad_gateway(reason: &str) -> Response<ProxyBody> {
    plain(
        StatusCode::BAD_GATEWAY,
        &format!("throttle proxy: {reason}"),
    )
}

fn plain(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut response = Response::new(full(format!("{text}\n")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arn_counts_as_the_name_it_carries() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:t1/acme/ep-AbC123";
        assert_eq!(secret_key(arn), "t1/acme/ep");
        assert_eq!(secret_key("t1/acme/ep"), "t1/acme/ep");
        // A name with dashes of its own keeps them; a partial ARN keeps its whole name.
        assert_eq!(
            secret_key("arn:aws:secretsmanager:us-east-1:1:secret:a-b-c-xYz789"),
            "a-b-c"
        );
        assert_eq!(
            secret_key("arn:aws:secretsmanager:us-east-1:1:secret:web-hook"),
            "web-hook"
        );
        assert_eq!(
            secret_key("not-an-arn:secret:x-AbC123"),
            "not-an-arn:secret:x-AbC123"
        );
    }

    #[test]
    fn the_ledger_counts_within_the_window_and_gives_back_failed_writes() {
        let mut ledger = VersionLedger::new(2);
        let first = ledger.reserve("s").unwrap();
        let second = ledger.reserve("s").unwrap();
        assert_eq!(ledger.reserve("s"), None);
        assert!(ledger.reserve("other").is_some());
        ledger.release("s", second);
        assert!(ledger.reserve("s").is_some());
        ledger.restart("s", first);
        assert_eq!(ledger.recent("s"), 1);
        ledger.advanced += VERSION_WINDOW;
        assert_eq!(ledger.recent("s"), 0);
        ledger.reserve("s").unwrap();
        ledger.forget("s");
        assert_eq!(ledger.recent("s"), 0);
    }
}
