//! Races between processes, as production has them: two `route-server` processes (each a
//! stand-in for Lambda execution environments serving every function) on one vault, the same
//! SQLite file or the same Secrets Manager, with requests fired at both at once.
//!
//! Every round races on a fresh endpoint, then an invariant checker reads the final state back
//! (`GET /v1/endpoints/{id}` and the reveal) and holds every answer to it:
//!
//! - every secret a create or rotate answered with 201/200, first answer or replay, is current
//!   or still valid, or a later successful grace-0 rotation (or a delete) replaced it: never a
//!   secret that never became current;
//! - a replay (`idempotent-replayed: true`) repeats a write an attempt with that key reported;
//!   one key never executes twice;
//! - every 200 write is in the final record (a PATCH's field unless a later PATCH overwrote it;
//!   a 204 delete means the endpoint is gone), and everything in the record was answered 2xx:
//!   a 409 or 422 changed nothing;
//! - nothing half-written: the record reads, the reveal agrees with it, at most 10 older
//!   secrets, every id appears in the listing exactly when it exists;
//! - each scenario's contract: one of two rotations wins, the loser's retry with its own key
//!   executes again, the same key and body answer one secret, another body is 422, ...
//!
//! `CROSS_PROCESS_ROUNDS` sets the rounds per scenario (default 25 embedded, 10 on Secrets
//! Manager). Each backend prints one summary line,
//! `cross-process races (embedded): N rounds, V violations`, then one line per scenario.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use integration_tests::{require_emulator, temp_db, Backend, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhook_secrets::auth::Role;
use webhook_secrets::domain::clock::SystemClock;
use webhook_secrets::domain::ids::TenantId;
use webhook_secrets::Config;

const TENANT: &str = "acme";
/// The value every created endpoint starts with in the fields PATCH races on.
const INITIAL: &str = "initial";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

// One backend at a time, and neither during the quota proxy's rate tests: four servers and
// moto on two cores would race the machine, not the vault (crate::LOAD_TESTS).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_between_processes_embedded() {
    let _turn = crate::LOAD_TESTS.lock().await;
    races(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_between_processes_secrets_manager() {
    let _turn = crate::LOAD_TESTS.lock().await;
    races(Backend::SecretsManager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_between_processes_embedded_keyrings() {
    let _turn = crate::LOAD_TESTS.lock().await;
    races(Backend::Embedded.keyrings()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_between_processes_secrets_manager_keyrings() {
    let _turn = crate::LOAD_TESTS.lock().await;
    races(Backend::SecretsManager.keyrings()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbours_in_one_keyring_all_succeed_across_processes_embedded() {
    let _turn = crate::LOAD_TESTS.lock().await;
    neighbours(Backend::Embedded.keyrings()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbours_in_one_keyring_all_succeed_across_processes_secrets_manager() {
    let _turn = crate::LOAD_TESTS.lock().await;
    neighbours(Backend::SecretsManager.keyrings()).await;
}

/// Writers in two processes to different endpoints of one keyring, all at once: creates,
/// then PATCHes and rotations. Every one succeeds (a swap lost to a neighbour is retried
/// inside the write) and every change is in the final records.
async fn neighbours(backend: Backend) {
    const ENDPOINTS: usize = 12;
    let cluster = Cluster::start(backend).await;
    let ids: Vec<String> = (0..ENDPOINTS)
        .map(|i| format!("nb-{}-{i}", cluster.run))
        .collect();
    let creates = ids.iter().enumerate().map(|(i, id)| {
        let body = json!({"id": id, "url": "https://example.com/hook", "name": INITIAL});
        let cluster = &cluster;
        async move {
            cluster
                .send(i % 2, Method::POST, "/v1/endpoints", None, Some(&body))
                .await
        }
    });
    for (id, (status, _, body)) in ids.iter().zip(futures::future::join_all(creates).await) {
        assert_eq!(
            status,
            201,
            "create {id}: {body}\nserver logs: {}",
            cluster.logs()
        );
    }
    // Even endpoints get a new name, odd ones a new secret, from both processes at once.
    let writes = ids.iter().enumerate().map(|(i, id)| {
        let cluster = &cluster;
        async move {
            if i % 2 == 0 {
                let body = json!({"name": format!("patched-{i}")});
                let path = format!("/v1/endpoints/{id}");
                cluster
                    .send(i % 2, Method::PATCH, &path, None, Some(&body))
                    .await
            } else {
                let body = json!({"grace_period_seconds": 3600});
                let path = format!("/v1/endpoints/{id}/secret/rotate");
                cluster
                    .send((i / 2) % 2, Method::POST, &path, None, Some(&body))
                    .await
            }
        }
    });
    let answers = futures::future::join_all(writes).await;
    for (i, (id, (status, _, body))) in ids.iter().zip(&answers).enumerate() {
        assert_eq!(
            *status,
            200,
            "write {i} to {id}: {body}\nserver logs: {}",
            cluster.logs()
        );
    }
    for (i, (id, (_, _, answered))) in ids.iter().zip(&answers).enumerate() {
        let (status, _, fin) = cluster
            .send(
                i % 2,
                Method::GET,
                &format!("/v1/endpoints/{id}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{id}: {fin}");
        if i % 2 == 0 {
            assert_eq!(
                fin["name"],
                format!("patched-{i}"),
                "{id} lost its PATCH: {fin}"
            );
        } else {
            assert_eq!(fin["name"], INITIAL, "{fin}");
            let (status, _, revealed) = cluster
                .send(
                    (i + 1) % 2,
                    Method::GET,
                    &format!("/v1/endpoints/{id}/secret"),
                    None,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{revealed}");
            assert_eq!(
                revealed["secret"]["value"], answered["secret"]["value"],
                "{id} lost its rotation"
            );
        }
    }
    cluster.remove_logs();
}

async fn races(backend: Backend) {
    // A Secrets Manager round costs tens of emulator calls; an embedded one, milliseconds.
    let rounds: usize = std::env::var("CROSS_PROCESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(match backend.store {
            Store::Embedded => 25,
            Store::SecretsManager => 10,
        });
    let started = Instant::now();
    let cluster = Cluster::start(backend).await;
    let mut report = Report::default();
    for scenario in Scenario::ALL {
        for n in 0..rounds {
            let round = scenario.run(&cluster, n).await;
            let fin = cluster.final_state(&round.id, n % 2).await;
            let mut violations = check(&round, &fin);
            violations.extend(scenario.expect(&round));
            report.add(&round, fin.as_ref().ok(), violations);
        }
    }
    let listing = cluster.listing_matches(&report.present).await;
    report.violation_count += listing.len();
    report.violations.extend(listing);
    let summary = report.summary(backend.name(), started.elapsed());
    println!("{summary}");
    assert!(
        report.violations.is_empty(),
        "{summary}\n\n{}\n\nserver logs: {}",
        report.violations.join("\n\n"),
        cluster.logs()
    );
    cluster.remove_logs();
}

// ---------------------------------------------------------------------------------------------
// The two processes and a client for them.

/// A `route-server` child process, killed when dropped (even when the test panics); it also
/// exits by itself when the test process dies, because its stdin closes.
struct RouteServer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl RouteServer {
    async fn start(env: &[(&str, String)], log: PathBuf) -> Self {
        let addr_file = log.with_extension("addr");
        let _ = std::fs::remove_file(&addr_file);
        let out = std::fs::File::create(&log).expect("create the server log");
        let err = out.try_clone().expect("clone the server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_route-server"))
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--exit-on-stdin-eof")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start route-server");
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(raw) = std::fs::read_to_string(&addr_file) {
                break raw.trim().parse().expect("the server's address");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("route-server exited ({status}): {}", tail(&log));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("route-server did not start in 30 s: {}", tail(&log));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Self { child, addr, log }
    }
}

impl Drop for RouteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

struct Cluster {
    servers: Vec<RouteServer>,
    client: Client<HttpConnector, Full<Bytes>>,
    owner: String,
    epoch: Instant,
    /// Keeps the run's ids apart from earlier runs on the same emulator.
    run: String,
}

impl Cluster {
    async fn start(backend: Backend) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let mut env = vec![
            ("VAULT_PREFIX", format!("xp{}", &unique[..12])),
            ("RUST_LOG", "warn".to_owned()),
            ("VAULT_LAYOUT", backend.layout.as_str().to_owned()),
        ];
        match backend.store {
            Store::Embedded => {
                env.push(("VAULT_BACKEND", "embedded".to_owned()));
                env.push(("VAULT_PATH", temp_db(&unique).display().to_string()));
            }
            Store::SecretsManager => {
                require_emulator();
                env.push(("VAULT_BACKEND", "secretsmanager".to_owned()));
            }
        }
        // The key is minted through the same configuration the servers read, into the same
        // vault; both servers find it there on first use.
        let settings: HashMap<&str, String> = env.iter().cloned().collect();
        let config = Config::from_lookup(|name| {
            settings
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        })
        .expect("the test's vault configuration");
        let app = config
            .build(Arc::new(SystemClock))
            .await
            .expect("the test's vault");
        let (key, _) = app
            .auth
            .keys()
            .mint(TenantId::parse(TENANT).unwrap(), Role::Owner)
            .await
            .expect("mint an owner key");
        let owner = key.expose().to_string();

        let dir = std::env::temp_dir().join("webhook-secrets-tests");
        let mut servers = Vec::new();
        for name in ["a", "b"] {
            let log = dir.join(format!("route-server-{}-{name}.log", &unique[..12]));
            servers.push(RouteServer::start(&env, log).await);
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let cluster = Self {
            servers,
            client,
            owner,
            epoch: Instant::now(),
            run: unique[..6].to_owned(),
        };
        // Warm both: a connection each in the pool, the key in each server's cache.
        for server in 0..cluster.servers.len() {
            let op = cluster
                .send(server, Method::GET, "/v1/endpoints?limit=1", None, None)
                .await;
            assert_eq!(op.0, 200, "warm-up on server {server}: {}", op.2);
        }
        cluster
    }

    fn remove_logs(&self) {
        for server in &self.servers {
            let _ = std::fs::remove_file(&server.log);
            let _ = std::fs::remove_file(server.log.with_extension("addr"));
        }
    }

    fn logs(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.log.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One request: (status, idempotent-replayed, JSON body or Null). Status 0 is no answer.
    async fn send(
        &self,
        server: usize,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, bool, Value) {
        self.send_as(
            server,
            method,
            path,
            key,
            body,
            ("authorization", &self.bearer()),
        )
        .await
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.owner)
    }

    async fn send_as(
        &self,
        server: usize,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        auth: (&str, &str),
    ) -> (u16, bool, Value) {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.servers[server].addr))
            .header(auth.0, auth.1);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let payload = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(payload)).expect("a valid request");
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .is_some_and(|v| v == "true");
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| json!({"unparsed": String::from_utf8_lossy(&bytes)}))
            };
            Ok::<_, String>((status, replayed, body))
        })
        .await;
        match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(err)) => (0, false, json!({"transport_error": err})),
            Err(_) => (0, false, json!({"transport_error": "timed out"})),
        }
    }

    /// Runs `action` on `server` and records what it answered, and when.
    async fn op(&self, label: String, server: usize, action: Action, key: Option<&str>) -> Op {
        let (method, path, body) = action.request();
        let start = self.epoch.elapsed();
        let (status, replayed, answer) = match action {
            // Seed 001 authenticates with its own header.
            Action::ContractRotate { .. } => {
                self.send_as(
                    server,
                    method,
                    &path,
                    key,
                    body.as_ref(),
                    ("api-key", &self.owner),
                )
                .await
            }
            _ => self.send(server, method, &path, key, body.as_ref()).await,
        };
        let end = self.epoch.elapsed();
        Op {
            label,
            server,
            action,
            key: key.map(str::to_owned),
            start,
            end,
            status,
            replayed,
            answer,
        }
    }

    /// The endpoint as both reads see it afterwards, or why it cannot be read.
    async fn final_state(&self, id: &str, server: usize) -> Result<Final, String> {
        let path = format!("/v1/endpoints/{id}");
        let (get_status, _, record) = self.send(server, Method::GET, &path, None, None).await;
        let (reveal_status, _, secrets) = self
            .send(server, Method::GET, &format!("{path}/secret"), None, None)
            .await;
        match (get_status, reveal_status) {
            (404, 404) => Ok(Final::Gone),
            (200, 200) => Final::present(record, secrets),
            _ => Err(format!(
                "half-written: GET answered {get_status} ({record}) and reveal {reveal_status}"
            )),
        }
    }

    /// Every endpoint that exists is listed, once, and no other.
    async fn listing_matches(&self, present: &HashSet<String>) -> Vec<String> {
        let mut listed = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(cursor) => format!("/v1/endpoints?limit=100&cursor={cursor}"),
                None => "/v1/endpoints?limit=100".to_owned(),
            };
            let (status, _, page) = self.send(0, Method::GET, &path, None, None).await;
            if status != 200 {
                return vec![format!("listing answered {status}: {page}")];
            }
            for endpoint in page["data"].as_array().into_iter().flatten() {
                listed.push(endpoint["id"].as_str().unwrap_or_default().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(percent_encode(next)),
                None => break,
            }
        }
        let unique: HashSet<String> = listed.iter().cloned().collect();
        let mut violations = Vec::new();
        if unique.len() != listed.len() {
            violations.push("the listing names an endpoint twice".to_owned());
        }
        if &unique != present {
            violations.push(format!(
                "the listing disagrees with the endpoints' reads: listed only {:?}, read only {:?}",
                unique.difference(present).collect::<Vec<_>>(),
                present.difference(&unique).collect::<Vec<_>>()
            ));
        }
        violations
    }
}

fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What a round does and saw.

#[derive(Debug, Clone)]
enum Action {
    Create {
        id: String,
        url: String,
    },
    Rotate {
        id: String,
        grace: u64,
    },
    /// Seed 001's rotation: immediate, and it ends every older secret too.
    ContractRotate {
        id: String,
    },
    Patch {
        id: String,
        field: &'static str,
        value: String,
    },
    Delete {
        id: String,
    },
}

impl Action {
    fn request(&self) -> (Method, String, Option<Value>) {
        match self {
            Self::Create { id, url } => (
                Method::POST,
                "/v1/endpoints".to_owned(),
                Some(json!({"id": id, "url": url, "name": INITIAL, "description": INITIAL})),
            ),
            Self::Rotate { id, grace } => (
                Method::POST,
                format!("/v1/endpoints/{id}/secret/rotate"),
                Some(json!({"grace_period_seconds": grace})),
            ),
            Self::ContractRotate { id } => (
                Method::POST,
                format!("/api/v1/webhook/endpoints/{id}/rotate-secret"),
                None,
            ),
            Self::Patch { id, field, value } => (
                Method::PATCH,
                format!("/v1/endpoints/{id}"),
                Some(json!({ *field: value })),
            ),
            Self::Delete { id } => (Method::DELETE, format!("/v1/endpoints/{id}"), None),
        }
    }

    /// The status a successful call answers.
    fn success(&self) -> u16 {
        match self {
            Self::Create { .. } => 201,
            Self::Delete { .. } => 204,
            _ => 200,
        }
    }

    /// Whether this write, when it succeeds, leaves the secret it replaced valid for no time.
    fn ends_the_old_secret(&self) -> bool {
        matches!(
            self,
            Self::Rotate { grace: 0, .. } | Self::ContractRotate { .. }
        )
    }
}

#[derive(Debug)]
struct Op {
    label: String,
    server: usize,
    action: Action,
    key: Option<String>,
    start: Duration,
    end: Duration,
    status: u16,
    replayed: bool,
    answer: Value,
}

impl Op {
    fn succeeded(&self) -> bool {
        self.status == self.action.success()
    }

    /// The secret value (and its version id, where the answer shows it) this op was answered.
    fn issued(&self) -> Option<(String, Option<String>)> {
        if !self.succeeded() {
            return None;
        }
        match self.action {
            Action::Create { .. } | Action::Rotate { .. } => Some((
                self.answer["secret"]["value"].as_str()?.to_owned(),
                self.answer["secret"]["version_id"]
                    .as_str()
                    .map(str::to_owned),
            )),
            Action::ContractRotate { .. } => {
                Some((self.answer["secret"].as_str()?.to_owned(), None))
            }
            _ => None,
        }
    }

    fn code(&self) -> &str {
        self.answer["error"]["code"]
            .as_str()
            .or_else(|| self.answer["code"].as_str())
            .unwrap_or("")
    }

    fn trace(&self) -> String {
        let mut line = format!(
            "  [{:>7.1} ms .. {:>7.1} ms] server {} {}: {}",
            self.start.as_secs_f64() * 1e3,
            self.end.as_secs_f64() * 1e3,
            ["A", "B"][self.server],
            self.label,
            self.status
        );
        if self.replayed {
            line.push_str(" idempotent-replayed");
        }
        if !self.code().is_empty() {
            let _ = write!(line, " {}", self.code());
        }
        if let Some((value, version)) = self.issued() {
            let _ = write!(
                line,
                " secret {} version {}",
                fingerprint(&value),
                version.as_deref().unwrap_or("-")
            );
        }
        line
    }
}

/// Enough of a secret to tell secrets apart in a trace, without printing one.
fn fingerprint(value: &str) -> String {
    let tail: String = value
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

struct Round {
    scenario: Scenario,
    n: usize,
    id: String,
    ops: Vec<Op>,
}

impl Round {
    fn ops(&self, prefix: &str) -> impl Iterator<Item = &Op> {
        let prefix = prefix.to_owned();
        self.ops
            .iter()
            .filter(move |op| op.label.starts_with(&prefix))
    }

    /// Whether a racing call lost to another: it failed (409, 422, a 404 after the delete,
    /// seed 001's 500) or replayed the other's write.
    fn contested(&self) -> bool {
        self.ops("race").any(|op| !op.succeeded() || op.replayed)
    }

    /// The racing calls' statuses, e.g. `200/409`, to show how often a race was contested.
    fn outcome(&self) -> String {
        let mut outcome: Vec<String> = self
            .ops
            .iter()
            .filter(|op| op.label.starts_with("race"))
            .map(|op| {
                let mut s = op.status.to_string();
                if op.replayed {
                    s.push('r');
                }
                s
            })
            .collect();
        outcome.sort();
        outcome.join("/")
    }

    /// The round's violations, then every call with its timing and answer, then the final state.
    fn trace(&self, violations: &[String], fin: Option<&Final>) -> String {
        let mut trace = format!(
            "{} #{} on endpoint {}:\n",
            self.scenario.name(),
            self.n,
            self.id
        );
        for violation in violations {
            let _ = writeln!(trace, "  VIOLATION: {violation}");
        }
        for op in &self.ops {
            trace.push_str(&op.trace());
            trace.push('\n');
        }
        match fin {
            Some(Final::Present {
                current,
                previous,
                fields,
            }) => {
                let _ = write!(
                    trace,
                    "  final: current {} version {}; older {:?}; name {:?}, description {:?}, url {:?}",
                    fingerprint(&current.0),
                    current.1,
                    previous
                        .iter()
                        .map(|(v, id)| format!("{} {id}", fingerprint(v)))
                        .collect::<Vec<_>>(),
                    fields.get("name"),
                    fields.get("description"),
                    fields.get("url"),
                );
            }
            Some(Final::Gone) => trace.push_str("  final: gone"),
            None => trace.push_str("  final: unreadable"),
        }
        trace
    }
}

/// The endpoint after a round: its secrets (value, version id) and the fields PATCH and
/// create set.
enum Final {
    Gone,
    Present {
        current: (String, String),
        previous: Vec<(String, String)>,
        fields: BTreeMap<&'static str, String>,
    },
}

impl Final {
    /// Reads the GET and the reveal, and checks they describe one whole record.
    fn present(record: Value, secrets: Value) -> Result<Self, String> {
        let broken = |why: &str| Err(format!("half-written: {why}: GET {record}"));
        let secret = |view: &Value| -> Option<(String, String)> {
            Some((
                view["value"].as_str()?.to_owned(),
                view["version_id"].as_str()?.to_owned(),
            ))
        };
        let Some(current) = secret(&secrets["secret"]) else {
            return broken("the reveal shows no current secret");
        };
        if secrets["secret"].get("expires_at").is_some() {
            return broken("the current secret has an expiry");
        }
        let Some(older) = secrets["previous_secrets"].as_array() else {
            return broken("the reveal has no previous_secrets list");
        };
        let mut previous = Vec::new();
        for view in older {
            match secret(view) {
                Some(pair) if view["expires_at"].is_string() => previous.push(pair),
                _ => return broken("an older secret without its value or expiry"),
            }
        }
        if previous.len() > 10 {
            return broken("more than 10 older secrets");
        }
        let versions: HashSet<&String> = previous
            .iter()
            .map(|(_, v)| v)
            .chain([&current.1])
            .collect();
        if versions.len() != previous.len() + 1 {
            return broken("a version listed twice");
        }
        if record["secret"]["version_id"].as_str() != Some(current.1.as_str())
            || record["secret"]["masked"] != secrets["secret"]["masked"]
            || record["id"] != secrets["endpoint_id"]
        {
            return broken("GET and reveal disagree on the current secret");
        }
        let masked_versions = |list: &Value| -> Vec<String> {
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["version_id"].as_str().map(str::to_owned))
                .collect()
        };
        if masked_versions(&record["previous_secrets"])
            != masked_versions(&secrets["previous_secrets"])
        {
            return broken("GET and reveal disagree on the older secrets");
        }
        let mut fields = BTreeMap::new();
        for field in ["name", "description", "url"] {
            match record[field].as_str() {
                Some(value) => fields.insert(field, value.to_owned()),
                None => return broken("a field is missing"),
            };
        }
        Ok(Self::Present {
            current,
            previous,
            fields,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The invariants, for any round.

/// A secret some op was answered with, and every op that named it.
struct Issue<'a> {
    version: Option<String>,
    fresh: Vec<&'a Op>,
    replays: Vec<&'a Op>,
}

impl Issue<'_> {
    /// The earliest moment this secret can have been written: its first answer's request.
    /// A replay writes nothing, so only a secret with no first answer is dated by its replays.
    fn written_from(&self) -> Duration {
        let answers = if self.fresh.is_empty() {
            &self.replays
        } else {
            &self.fresh
        };
        answers.iter().map(|op| op.start).min().unwrap_or_default()
    }
}

fn check(round: &Round, fin: &Result<Final, String>) -> Vec<String> {
    let mut violations = Vec::new();
    let ops = &round.ops;

    for op in ops {
        let expected: &[u16] = match op.action {
            Action::Create { .. } => &[201, 409, 422],
            Action::Rotate { .. } => &[200, 404, 409, 422],
            // Seed 001 answers every failure but 401 as 500 INTERNAL_ERROR, a lost race too.
            Action::ContractRotate { .. } => &[200, 500],
            Action::Patch { .. } => &[200, 404, 409],
            Action::Delete { .. } => &[204, 404],
        };
        if !expected.contains(&op.status) {
            violations.push(format!("{} answered {} {}", op.label, op.status, op.answer));
        }
    }

    // Every secret answered, grouped by value.
    let mut issues: BTreeMap<String, Issue> = BTreeMap::new();
    for op in ops {
        let Some((value, version)) = op.issued() else {
            continue;
        };
        let issue = issues.entry(value).or_insert(Issue {
            version: version.clone(),
            fresh: Vec::new(),
            replays: Vec::new(),
        });
        if version.is_some() && issue.version.is_some() && issue.version != version {
            violations.push(format!(
                "{} names a secret already answered under another version",
                op.label
            ));
        }
        issue.version = issue.version.take().or(version);
        if op.replayed {
            issue.replays.push(op);
        } else {
            issue.fresh.push(op);
        }
    }

    // Replays repeat a reported write; one key writes once.
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.succeeded() && op.key.is_some()) {
        by_key
            .entry(op.key.as_deref().unwrap())
            .or_default()
            .push(op);
    }
    for (key, answered) in &by_key {
        let fresh: Vec<&&Op> = answered.iter().filter(|op| !op.replayed).collect();
        if fresh.len() > 1 {
            violations.push(format!(
                "Idempotency-Key {key} executed {} times: {}",
                fresh.len(),
                fresh
                    .iter()
                    .map(|op| op.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let secrets: HashSet<Option<String>> = answered
            .iter()
            .map(|op| op.issued().map(|(v, _)| v))
            .collect();
        if secrets.len() > 1 {
            violations.push(format!(
                "Idempotency-Key {key} answered {} different secrets",
                secrets.len()
            ));
        }
        for op in answered.iter().filter(|op| op.replayed) {
            if fresh.is_empty() {
                violations.push(format!(
                    "{} replayed a write that no attempt with its key reported (every earlier attempt failed)",
                    op.label
                ));
            } else if fresh.iter().all(|f| f.issued() != op.issued()) {
                violations.push(format!(
                    "{} replayed another secret than its key's first answer",
                    op.label
                ));
            }
        }
    }

    let deletes: Vec<&Op> = ops
        .iter()
        .filter(|op| matches!(op.action, Action::Delete { .. }) && op.succeeded())
        .collect();
    let writes_after_delete = |delete: &Op| -> Vec<String> {
        ops.iter()
            .filter(|op| {
                op.succeeded()
                    && !matches!(op.action, Action::Delete { .. })
                    && op.start > delete.end
            })
            .map(|op| {
                format!(
                    "{} succeeded after {} deleted the endpoint",
                    op.label, delete.label
                )
            })
            .collect()
    };

    match fin {
        Err(why) => violations.push(why.clone()),
        Ok(Final::Gone) => {
            if deletes.is_empty() {
                violations.push("the endpoint reads as gone (404), but no delete succeeded".into());
            }
            for delete in &deletes {
                violations.extend(writes_after_delete(delete));
            }
        }
        Ok(Final::Present {
            current,
            previous,
            fields,
        }) => {
            for delete in &deletes {
                let recreated = ops.iter().any(|op| {
                    matches!(op.action, Action::Create { .. })
                        && op.succeeded()
                        && !op.replayed
                        && op.end > delete.start
                });
                if !recreated {
                    violations.push(format!(
                        "{} answered 204, but the endpoint is still there",
                        delete.label
                    ));
                }
            }
            // Everything in the record was answered with a success: a 409 or 422 wrote nothing.
            for (value, version) in previous.iter().chain([current]) {
                match issues.get(value) {
                    None => violations.push(format!(
                        "the record holds secret {} (version {version}) that no create or rotate answered: a failed call wrote it",
                        fingerprint(value)
                    )),
                    Some(issue) if issue.version.as_ref().is_some_and(|v| v != version) => {
                        violations.push(format!(
                            "secret {} is stored as version {version}, but was answered as version {}",
                            fingerprint(value),
                            issue.version.as_deref().unwrap_or("-")
                        ))
                    }
                    Some(_) => {}
                }
            }
            // Every secret answered is current or still valid, unless a later grace-0 rotation
            // replaced it.
            let valid: HashSet<&String> = previous
                .iter()
                .map(|(v, _)| v)
                .chain([&current.0])
                .collect();
            for (value, issue) in &issues {
                if valid.contains(value) {
                    continue;
                }
                let written_from = issue.written_from();
                let replaced = issues.iter().any(|(other, later)| {
                    other != value
                        && later
                            .fresh
                            .iter()
                            .any(|op| op.action.ends_the_old_secret() && op.end > written_from)
                });
                if !replaced {
                    let answered: Vec<&str> = issue
                        .fresh
                        .iter()
                        .chain(&issue.replays)
                        .map(|op| op.label.as_str())
                        .collect();
                    violations.push(format!(
                        "secret {} answered by {} is neither current nor still valid, and no later successful grace-0 rotation replaced it: it never became current, or was lost",
                        fingerprint(value),
                        answered.join(", ")
                    ));
                }
            }
            // Every PATCH that succeeded is in the record unless a later one overwrote it;
            // one that failed left no trace.
            for field in ["name", "description"] {
                let patched: Vec<&Op> = ops
                    .iter()
                    .filter(|op| {
                        op.succeeded()
                            && matches!(&op.action, Action::Patch { field: f, .. } if *f == field)
                    })
                    .collect();
                let value_of = |op: &Op| match &op.action {
                    Action::Patch { value, .. } => value.clone(),
                    _ => unreachable!(),
                };
                let allowed: Vec<String> = if patched.is_empty() {
                    vec![INITIAL.to_owned()]
                } else {
                    patched
                        .iter()
                        .filter(|p| !patched.iter().any(|q| q.start > p.end))
                        .map(|p| value_of(p))
                        .collect()
                };
                if !allowed.contains(&fields[field]) {
                    violations.push(format!(
                        "{field} is {:?}; the PATCHes answered 200 allow only {allowed:?}",
                        fields[field]
                    ));
                }
            }
            let urls: Vec<&str> = ops
                .iter()
                .filter(|op| op.succeeded() && !op.replayed)
                .filter_map(|op| match &op.action {
                    Action::Create { url, .. } => Some(url.as_str()),
                    _ => None,
                })
                .collect();
            if !urls.contains(&fields["url"].as_str()) {
                violations.push(format!(
                    "url is {:?}, which no create that answered 201 sent",
                    fields["url"]
                ));
            }
        }
    }
    violations
}

// ---------------------------------------------------------------------------------------------
// The scenarios: what each round races, and what each contract promises about it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    RotateRotate { grace: u64 },
    RotateRotateOwnKeys { grace: u64 },
    RotateSameKeySameBody,
    RotateSameKeyOtherBody,
    RotatePatchPatch,
    DeleteRotate,
    NativeContractRotate,
    CreateCreate,
    CreateSameKeySameBody,
    CreateSameKeyOtherBody,
}

impl Scenario {
    const ALL: [Scenario; 12] = [
        Self::RotateRotate { grace: 0 },
        Self::RotateRotate { grace: 3600 },
        Self::RotateRotateOwnKeys { grace: 0 },
        Self::RotateRotateOwnKeys { grace: 3600 },
        Self::RotateSameKeySameBody,
        Self::RotateSameKeyOtherBody,
        Self::RotatePatchPatch,
        Self::DeleteRotate,
        Self::NativeContractRotate,
        Self::CreateCreate,
        Self::CreateSameKeySameBody,
        Self::CreateSameKeyOtherBody,
    ];

    fn name(self) -> String {
        match self {
            Self::RotateRotate { grace } => format!("rotate vs rotate, no key, grace {grace}"),
            Self::RotateRotateOwnKeys { grace } => format!(
                "rotate vs rotate, a key each, grace {grace}, then each retried with its key"
            ),
            Self::RotateSameKeySameBody => "rotate vs rotate, one key, one body".into(),
            Self::RotateSameKeyOtherBody => "rotate vs rotate, one key, two bodies".into(),
            Self::RotatePatchPatch => "rotate vs PATCH name vs PATCH description".into(),
            Self::DeleteRotate => "delete vs rotate".into(),
            Self::NativeContractRotate => "native rotate (grace 3600) vs seed 001 rotate".into(),
            Self::CreateCreate => "create vs create, one id, no key".into(),
            Self::CreateSameKeySameBody => "create vs create, one key, one body".into(),
            Self::CreateSameKeyOtherBody => "create vs create, one key, two bodies".into(),
        }
    }

    fn tag(self) -> String {
        match self {
            Self::RotateRotate { grace } => format!("rr{grace}"),
            Self::RotateRotateOwnKeys { grace } => format!("rk{grace}"),
            Self::RotateSameKeySameBody => "rss".into(),
            Self::RotateSameKeyOtherBody => "rso".into(),
            Self::RotatePatchPatch => "rpp".into(),
            Self::DeleteRotate => "dr".into(),
            Self::NativeContractRotate => "nc".into(),
            Self::CreateCreate => "cc".into(),
            Self::CreateSameKeySameBody => "css".into(),
            Self::CreateSameKeyOtherBody => "cso".into(),
        }
    }

    async fn run(self, cluster: &Cluster, n: usize) -> Round {
        // Seed 001 addresses only ids that start with wh_end_.
        let id = format!("wh_end_{}-{}-{n}", cluster.run, self.tag());
        // The two sides swap servers every round, so each race runs both ways.
        let (a, b) = [(0, 1), (1, 0)][n % 2];
        let key = |side: &str| format!("{}-{}-{n}-{side}", cluster.run, self.tag());
        let url = |side: &str| format!("https://example.com/{id}/{side}");
        let create = |side: &str| Action::Create {
            id: id.clone(),
            url: url(side),
        };
        let rotate = |grace| Action::Rotate {
            id: id.clone(),
            grace,
        };
        let mut ops = Vec::new();
        if !matches!(
            self,
            Self::CreateCreate | Self::CreateSameKeySameBody | Self::CreateSameKeyOtherBody
        ) {
            ops.push(
                cluster
                    .op("setup create".into(), a, create("setup"), None)
                    .await,
            );
        }
        match self {
            Self::RotateRotate { grace } => {
                let (x, y) = tokio::join!(
                    cluster.op("race rotate 1".into(), a, rotate(grace), None),
                    cluster.op("race rotate 2".into(), b, rotate(grace), None),
                );
                ops.extend([x, y]);
            }
            Self::RotateRotateOwnKeys { grace } => {
                let (k1, k2) = (key("1"), key("2"));
                let (x, y) = tokio::join!(
                    cluster.op("race rotate key 1".into(), a, rotate(grace), Some(&k1)),
                    cluster.op("race rotate key 2".into(), b, rotate(grace), Some(&k2)),
                );
                let (first, second) = ((a, k1, x.succeeded()), (b, k2, y.succeeded()));
                ops.extend([x, y]);
                // The loser retries first, on its own server: it must execute now. Then the
                // winner's retry, on the other server, must replay its rotation.
                let mut retries = [first, second];
                retries.sort_by_key(|(_, _, won)| *won);
                for (server, key, won) in retries {
                    let (server, label) = if won {
                        (
                            1 - server,
                            format!("retry winner, key {}", &key[key.len() - 1..]),
                        )
                    } else {
                        (
                            server,
                            format!("retry loser, key {}", &key[key.len() - 1..]),
                        )
                    };
                    ops.push(cluster.op(label, server, rotate(grace), Some(&key)).await);
                }
            }
            Self::RotateSameKeySameBody => {
                let k = key("same");
                let (x, y) = tokio::join!(
                    cluster.op("race rotate key 1".into(), a, rotate(3600), Some(&k)),
                    cluster.op("race rotate key 1 again".into(), b, rotate(3600), Some(&k)),
                );
                ops.extend([x, y]);
            }
            Self::RotateSameKeyOtherBody => {
                let k = key("same");
                let (x, y) = tokio::join!(
                    cluster.op("race rotate key 1 grace 0".into(), a, rotate(0), Some(&k)),
                    cluster.op(
                        "race rotate key 1 grace 3600".into(),
                        b,
                        rotate(3600),
                        Some(&k)
                    ),
                );
                ops.extend([x, y]);
            }
            Self::RotatePatchPatch => {
                let patch = |field, value: String| Action::Patch {
                    id: id.clone(),
                    field,
                    value,
                };
                let (x, y, z) = tokio::join!(
                    cluster.op("race rotate".into(), a, rotate(3600), None),
                    cluster.op(
                        "race patch name".into(),
                        b,
                        patch("name", format!("name-{n}")),
                        None
                    ),
                    cluster.op(
                        "race patch description".into(),
                        a,
                        patch("description", format!("description-{n}")),
                        None
                    ),
                );
                ops.extend([x, y, z]);
            }
            Self::DeleteRotate => {
                // The delete starts 0 to 30 ms into the rotation, so that it lands before its
                // read, between its read and its write, or after its swap.
                let lag = [0, 1, 3, 10, 30][n % 5];
                let (x, y) = tokio::join!(
                    async {
                        if lag > 0 {
                            tokio::time::sleep(Duration::from_millis(lag)).await;
                        }
                        let delete = Action::Delete { id: id.clone() };
                        cluster.op("race delete".into(), a, delete, None).await
                    },
                    cluster.op("race rotate".into(), b, rotate(0), None),
                );
                ops.extend([x, y]);
            }
            Self::NativeContractRotate => {
                let k = key("native");
                let (x, y) = tokio::join!(
                    cluster.op("race native rotate".into(), a, rotate(3600), Some(&k)),
                    cluster.op(
                        "race 001 rotate".into(),
                        b,
                        Action::ContractRotate { id: id.clone() },
                        None
                    ),
                );
                ops.extend([x, y]);
            }
            Self::CreateCreate => {
                let (x, y) = tokio::join!(
                    cluster.op("race create 1".into(), a, create("1"), None),
                    cluster.op("race create 2".into(), b, create("2"), None),
                );
                ops.extend([x, y]);
            }
            Self::CreateSameKeySameBody => {
                let k = key("same");
                let (x, y) = tokio::join!(
                    cluster.op("race create key 1".into(), a, create("same"), Some(&k)),
                    cluster.op(
                        "race create key 1 again".into(),
                        b,
                        create("same"),
                        Some(&k)
                    ),
                );
                ops.extend([x, y]);
            }
            Self::CreateSameKeyOtherBody => {
                let k = key("same");
                let (x, y) = tokio::join!(
                    cluster.op("race create key 1 url 1".into(), a, create("1"), Some(&k)),
                    cluster.op("race create key 1 url 2".into(), b, create("2"), Some(&k)),
                );
                ops.extend([x, y]);
            }
        }
        Round {
            scenario: self,
            n,
            id,
            ops,
        }
    }

    /// What this scenario's contract promises about the racing calls' answers.
    fn expect(self, round: &Round) -> Vec<String> {
        let mut violations = Vec::new();
        let race: Vec<&Op> = round.ops("race").collect();
        let statuses: Vec<u16> = race.iter().map(|op| op.status).collect();
        let mut expect = |holds: bool, what: &str| {
            if !holds {
                violations.push(format!("expected {what}; answered {statuses:?}"));
            }
        };
        let one_each = |s1, s2| {
            let mut sorted = statuses.clone();
            sorted.sort();
            let mut wanted = vec![s1, s2];
            wanted.sort();
            sorted == wanted
        };
        let same_secret = race[0].issued().map(|i| i.0) == race[1].issued().map(|i| i.0);
        let one_replayed = race.iter().filter(|op| op.replayed).count() == 1;
        match self {
            Self::RotateRotate { .. } => expect(
                race.iter().any(|op| op.succeeded())
                    && race
                        .iter()
                        .all(|op| op.succeeded() || op.code() == "conflict"),
                "one rotation to win (200) and the other to win too or answer 409 conflict",
            ),
            Self::RotateRotateOwnKeys { .. } => {
                expect(
                    race.iter().any(|op| op.succeeded())
                        && race
                            .iter()
                            .all(|op| op.succeeded() || op.code() == "conflict"),
                    "one rotation to win (200) and the other to win too or answer 409 conflict",
                );
                for op in round.ops("retry loser") {
                    if !op.succeeded() || op.replayed {
                        violations.push(format!(
                            "expected {}, whose first attempt changed nothing, to be executed again (200, not replayed); answered {}{}",
                            op.label,
                            op.status,
                            if op.replayed { " idempotent-replayed" } else { "" }
                        ));
                    }
                }
                for op in round.ops("retry winner") {
                    if !(op.succeeded() && op.replayed) {
                        violations.push(format!(
                            "expected {} to replay its rotation (200, idempotent-replayed); answered {}",
                            op.label, op.status
                        ));
                    }
                }
            }
            Self::RotateSameKeySameBody | Self::CreateSameKeySameBody => expect(
                race.iter().all(|op| op.succeeded()) && same_secret && one_replayed,
                "both to succeed with one secret, one of them replayed",
            ),
            Self::RotateSameKeyOtherBody => expect(one_each(200, 422), "one 200 and one 422"),
            Self::CreateSameKeyOtherBody => expect(one_each(201, 422), "one 201 and one 422"),
            Self::RotatePatchPatch => expect(
                race.iter()
                    .filter(|op| matches!(op.action, Action::Patch { .. }))
                    .all(|op| op.succeeded())
                    && race
                        .iter()
                        .all(|op| op.succeeded() || op.code() == "conflict"),
                "both PATCHes to succeed, and the rotation to succeed or answer 409 conflict",
            ),
            Self::DeleteRotate => expect(
                race[0].status == 204,
                "the delete to succeed whatever the rotation does",
            ),
            Self::NativeContractRotate => expect(
                race.iter().any(|op| op.succeeded()),
                "at least one rotation to win",
            ),
            Self::CreateCreate => expect(
                one_each(201, 409) && race.iter().any(|op| op.code() == "already_exists"),
                "one 201 and one 409 already_exists",
            ),
        }
        violations
    }
}

// ---------------------------------------------------------------------------------------------
// Counting.

#[derive(Default)]
struct Report {
    rounds: usize,
    /// Rounds in which a racing call lost to another.
    contested: usize,
    violation_count: usize,
    /// Each failed round's violations with its trace, or a listing violation.
    violations: Vec<String>,
    /// Per scenario: rounds, violations, and how often each race outcome came up.
    scenarios: Vec<(String, usize, usize, BTreeMap<String, usize>)>,
    /// Endpoints that exist after their round.
    present: HashSet<String>,
}

impl Report {
    fn add(&mut self, round: &Round, fin: Option<&Final>, violations: Vec<String>) {
        self.rounds += 1;
        if round.contested() {
            self.contested += 1;
        }
        self.violation_count += violations.len();
        let name = round.scenario.name();
        if self.scenarios.last().is_none_or(|(last, ..)| *last != name) {
            self.scenarios.push((name, 0, 0, BTreeMap::new()));
        }
        let entry = self.scenarios.last_mut().unwrap();
        entry.1 += 1;
        entry.2 += violations.len();
        *entry.3.entry(round.outcome()).or_default() += 1;
        if let Some(Final::Present { .. }) = fin {
            self.present.insert(round.id.clone());
        }
        if !violations.is_empty() {
            let text = round.trace(&violations, fin);
            self.violations.push(text);
        }
    }

    fn summary(&self, backend: &str, took: Duration) -> String {
        let mut text = format!(
            "cross-process races ({backend}): {} rounds ({} contested), {} violations ({:.1} s)",
            self.rounds,
            self.contested,
            self.violation_count,
            took.as_secs_f64()
        );
        for (name, rounds, violations, outcomes) in &self.scenarios {
            let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} ×{n}")).collect();
            let _ = write!(
                text,
                "\n  {name}: {rounds} rounds, {violations} violations; race answers {}",
                outcomes.join(", ")
            );
        }
        text
    }
}
