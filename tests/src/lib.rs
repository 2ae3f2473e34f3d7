//! Test harness: a store of either backend, an app on it with a hand-driven clock, and
//! requests shaped like the ones API Gateway sends.

pub mod interposed;
pub mod throttle;

use chrono::{TimeZone, Utc};
use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use webhook_secrets::audit::MemoryAudit;
use webhook_secrets::auth::{Principal, Role, Writer};
use webhook_secrets::domain::clock::{Clock, ManualClock};
use webhook_secrets::domain::ids::TenantId;
use webhook_secrets::store::embedded::EmbeddedStore;
use webhook_secrets::store::secrets_manager::{ClientSettings, SecretsManagerStore};
use webhook_secrets::store::SecretStore;
use webhook_secrets::vault::VaultLayout;
use webhook_secrets::App;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Embedded,
    SecretsManager,
}

/// A store and the layout of endpoints in it: every suite runs on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    pub store: Store,
    pub layout: VaultLayout,
}

#[allow(non_upper_case_globals)]
impl Backend {
    /// The embedded store, one secret per endpoint.
    pub const Embedded: Self = Self {
        store: Store::Embedded,
        layout: VaultLayout::PerEndpoint,
    };
    /// Secrets Manager (moto behind the strict proxy), one secret per endpoint.
    pub const SecretsManager: Self = Self {
        store: Store::SecretsManager,
        layout: VaultLayout::PerEndpoint,
    };

    /// The same store with the one-secret-per-endpoint layout.
    pub const fn per_endpoint(self) -> Self {
        Self {
            store: self.store,
            layout: VaultLayout::PerEndpoint,
        }
    }

    /// The same store with the tenant-keyrings layout.
    pub const fn keyrings(self) -> Self {
        Self {
            store: self.store,
            layout: VaultLayout::Keyrings,
        }
    }

    pub fn name(self) -> &'static str {
        match (self.store, self.layout) {
            (Store::Embedded, VaultLayout::PerEndpoint) => "embedded",
            (Store::SecretsManager, VaultLayout::PerEndpoint) => "secretsmanager",
            (Store::Embedded, VaultLayout::Keyrings) => "embedded, keyrings",
            (Store::SecretsManager, VaultLayout::Keyrings) => "secretsmanager, keyrings",
        }
    }
}

/// A store of `backend`, isolated from every other test: its own file, or (on the shared
/// Secrets Manager emulator) its own name prefix, returned alongside.
pub async fn store(backend: Backend, clock: Arc<dyn Clock>) -> (Arc<dyn SecretStore>, String) {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("t{}", &unique[..12]);
    let store: Arc<dyn SecretStore> = match backend.store {
        Store::Embedded => Arc::new(
            EmbeddedStore::open(&temp_db(&unique), clock).expect("open the embedded store"),
        ),
        Store::SecretsManager => {
            require_emulator();
            Arc::new(
                SecretsManagerStore::from_env(ClientSettings::default())
                    .await
                    .expect("the Secrets Manager client"),
            )
        }
    };
    (store, prefix)
}

/// The product's Secrets Manager client configuration (its retries and timeouts) aimed at
/// `endpoint`: a fault injector, a quota proxy or the emulator.
pub async fn sdk_client(
    endpoint: &str,
    settings: ClientSettings,
) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{Credentials, Region};
    let config = SecretsManagerStore::config_loader(settings)
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}

/// Whether a receiver holding only `secret` accepts the delivery `/sign` answered with
/// (`signed`) for `payload`, checked with this crate's verifier at `now`.
pub fn receiver_accepts(
    secret: &str,
    signed: &Value,
    payload: &str,
    now: chrono::DateTime<Utc>,
) -> bool {
    let version = webhook_secrets::domain::endpoint::SecretVersion {
        version_id: webhook_secrets::domain::ids::VersionId::generate(),
        value: webhook_secrets::domain::secret::WebhookSecret::parse(secret).unwrap(),
        created_at: now,
        replaces: None,
        expires_at: None,
    };
    let headers = &signed["headers"];
    webhook_secrets::domain::signature::verify(
        &[&version],
        headers["webhook-id"].as_str().unwrap(),
        headers["webhook-timestamp"].as_str().unwrap(),
        headers["webhook-signature"].as_str().unwrap(),
        payload.as_bytes(),
        now,
        300,
    )
    .is_ok()
}

/// The Secrets Manager tests talk to a moto server through the real SDK; `make test` starts
/// one and sets `AWS_ENDPOINT_URL`. Without it they fail rather than pass vacuously.
pub fn require_emulator() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| v.starts_with("http://127.0.0.1")),
        "Secrets Manager tests need the local moto server: run `make test` (it starts one and sets AWS_ENDPOINT_URL=http://127.0.0.1:<port>)"
    );
}

pub fn temp_db(unique: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("webhook-secrets-tests");
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir.join(format!("{unique}.sqlite3"))
}

pub fn start_of_test_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

/// An app on one backend, a manual clock, and keys of each role for tenant `acme`.
pub struct TestApp {
    pub app: App,
    /// The app's store, for tests that look beneath the repository (labels, versions).
    pub store: Arc<dyn SecretStore>,
    pub prefix: String,
    pub clock: Arc<ManualClock>,
    pub audit: Arc<MemoryAudit>,
    pub backend: Backend,
    pub owner: String,
    pub admin: String,
    pub member: String,
}

impl TestApp {
    pub async fn new(backend: Backend) -> Self {
        Self::starting_at(backend, start_of_test_time()).await
    }

    /// An app whose clock starts at `now`: tests that hand signatures to third-party
    /// verifiers, which check timestamps against the real time, start at the real time.
    pub async fn starting_at(backend: Backend, now: chrono::DateTime<Utc>) -> Self {
        Self::with_store(backend, now, |store| store).await
    }

    /// An app whose store is `wrap` of the backend's: a test puts a decorator in front of the
    /// real store to inject races and faults at exact points of a write.
    pub async fn with_store(
        backend: Backend,
        now: chrono::DateTime<Utc>,
        wrap: impl FnOnce(Arc<dyn SecretStore>) -> Arc<dyn SecretStore>,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(now));
        let (store, prefix) = store(backend, clock.clone()).await;
        let store = wrap(store);
        let audit = Arc::new(MemoryAudit::default());
        let app = App::with_audit(
            Arc::clone(&store),
            &prefix,
            backend.layout,
            clock.clone(),
            chrono::Duration::seconds(60),
            audit.clone(),
        );
        let mut test = Self {
            app,
            store,
            prefix,
            clock,
            audit,
            backend,
            owner: String::new(),
            admin: String::new(),
            member: String::new(),
        };
        test.owner = test.mint("acme", Role::Owner).await;
        test.admin = test.mint("acme", Role::Admin).await;
        test.member = test.mint("acme", Role::Member).await;
        test
    }

    /// Creates an endpoint through the native API with the owner key; expects 201 and
    /// returns the body.
    /// The same app, with its secret events going to `sink`.
    pub fn announcing_to(mut self, sink: Arc<dyn webhook_secrets::events::EventSink>) -> Self {
        self.app = self.app.with_events(sink);
        self
    }

    /// One scheduled sweep run, with two minutes before its deadline, at the full write
    /// budget; `run_id` names it in the audit records.
    pub async fn sweep(&self, run_id: &str) -> webhook_secrets::vault::sweep::SweepSummary {
        use webhook_secrets::vault::sweep::{sweep, SweepSettings};
        let settings = SweepSettings {
            writes_per_second: 50.0,
            stop_margin: std::time::Duration::from_secs(1),
            ..SweepSettings::default()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        sweep(
            &self.app.endpoints,
            self.audit.as_ref(),
            run_id,
            deadline,
            &settings,
        )
        .await
        .expect("the sweep lists endpoints")
    }

    pub async fn create(&self, body: Value) -> Value {
        let call = Call::post("/v1/endpoints").bearer(&self.owner).json(body);
        let created = answer(
            webhook_secrets::api::create_endpoint(&self.app, call.build())
                .await
                .expect("routes always answer Ok"),
        );
        assert_eq!(created.status, 201, "{}", created.body);
        created.body
    }

    /// Signs `payload` through `/sign` with a member key; `timestamp` defaults to the app's
    /// clock. Returns the answer's body.
    pub async fn sign(&self, id: &str, payload: &str, timestamp: Option<i64>) -> Value {
        let mut body = serde_json::json!({"payload": payload});
        if let Some(timestamp) = timestamp {
            body["timestamp"] = timestamp.into();
        }
        let call = Call::post("/x").bearer(&self.member).id(id).json(body);
        let signed = answer(
            webhook_secrets::api::sign_message(&self.app, call.build())
                .await
                .expect("routes always answer Ok"),
        );
        assert_eq!(signed.status, 200, "{}", signed.body);
        signed.body
    }

    /// Checks a delivery through `/verify` with a member key. Returns the answer's body.
    pub async fn verify(&self, id: &str, headers: &Value, payload: &str) -> Value {
        let call = Call::post("/x")
            .bearer(&self.member)
            .id(id)
            .json(serde_json::json!({"headers": headers, "payload": payload}));
        let verified = answer(
            webhook_secrets::api::verify_message(&self.app, call.build())
                .await
                .expect("routes always answer Ok"),
        );
        assert_eq!(verified.status, 200, "{}", verified.body);
        verified.body
    }

    /// The stored secret that holds endpoint `id` of tenant `acme` on the per-endpoint
    /// layout (`{prefix}/acme/{id}`).
    pub fn secret_name(&self, id: &str) -> webhook_secrets::store::SecretName {
        webhook_secrets::store::SecretName::parse(&format!("{}/acme/{id}", self.prefix)).unwrap()
    }

    /// The stored secret that holds endpoint `id` of tenant `acme` now, on either layout.
    pub async fn holder(&self, id: &str) -> webhook_secrets::store::SecretName {
        self.app
            .endpoints
            .secret_holding(
                &TenantId::parse("acme").unwrap(),
                &webhook_secrets::domain::ids::EndpointId::parse(id).unwrap(),
            )
            .await
            .unwrap()
    }

    /// Mints a key and returns the whole key string.
    /// Every stored secret named `{prefix}/{path}…`, across every page of the listing.
    pub async fn secrets_under(&self, path: &str) -> Vec<webhook_secrets::store::SecretName> {
        let prefix = format!("{}/{path}", self.prefix);
        let filter = webhook_secrets::store::ListFilter::prefix(&prefix);
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list(filter, cursor.as_deref(), 100)
                .await
                .expect("list the store");
            names.extend(page.names().cloned());
            match page.next {
                Some(next) => cursor = Some(next),
                None => return names,
            }
        }
    }

    pub async fn mint(&self, tenant: &str, role: Role) -> String {
        let (key, _) = self
            .app
            .auth
            .keys()
            .mint(TenantId::parse(tenant).unwrap(), role)
            .await
            .expect("mint a key");
        key.expose().to_string()
    }
}

/// The write capability of an owner of `tenant`, for tests that call the endpoints
/// repository directly.
pub fn owner_of(tenant: &str) -> Writer {
    Principal {
        tenant: TenantId::parse(tenant).unwrap(),
        key_id: webhook_secrets::domain::ids::KeyId::generate(),
        role: Role::Owner,
    }
    .writer()
    .unwrap()
}

/// A request as API Gateway (HTTP API, payload 2.0) hands it to a function.
pub struct Call {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    path_params: HashMap<String, String>,
    query: HashMap<String, String>,
}

impl Call {
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            path_params: HashMap::new(),
            query: HashMap::new(),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: &str) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn delete(path: &str) -> Self {
        Self::new(Method::DELETE, path)
    }

    pub fn bearer(self, key: &str) -> Self {
        self.header("authorization", &format!("Bearer {key}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body.to_string());
        self.header("content-type", "application/json")
    }

    pub fn raw_body(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }

    pub fn id(mut self, id: &str) -> Self {
        self.path_params.insert("id".into(), id.into());
        self
    }

    /// A path parameter other than `id`.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.path_params.insert(name.into(), value.into());
        self
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.insert(name.into(), value.into());
        self
    }

    pub fn build(self) -> Request {
        let mut builder = lambda_http::http::Request::builder()
            .method(self.method)
            .uri(format!("https://api.example.com{}", self.path));
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let body = self.body.map_or(Body::Empty, Body::Text);
        let mut req = builder.body(body).expect("a valid request");
        if !self.path_params.is_empty() {
            req = req.with_path_parameters(self.path_params);
        }
        if !self.query.is_empty() {
            req = req.with_query_string_parameters(self.query);
        }
        req
    }
}

/// A response read back: status, request id header and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub request_id: Option<String>,
    pub headers: lambda_http::http::HeaderMap,
    pub body: Value,
}

pub fn answer(response: Response<Body>) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("a JSON body"),
        Body::Binary(bytes) => serde_json::from_slice(bytes).expect("a JSON body"),
        _ => Value::Null,
    };
    Answer {
        status,
        request_id,
        headers,
        body,
    }
}

/// Invokes a route function with a request and reads the answer back.
#[macro_export]
macro_rules! invoke {
    ($route:ident, $app:expr, $call:expr) => {
        $crate::answer(
            webhook_secrets::api::$route(&$app.app, $call.build())
                .await
                .expect("routes always answer Ok"),
        )
    };
}

/// Calls a seed contract's route (`face!(fyatu::regenerate_secret, app, call)`) and reads the
/// answer.
#[macro_export]
macro_rules! face {
    ($module:ident :: $route:ident, $app:expr, $call:expr) => {
        $crate::answer(
            webhook_secrets::compat::$module::$route(&$app.app, $call.build())
                .await
                .expect("routes always answer Ok"),
        )
    };
}

/// Asserts that `answer` is the documented error: the status, the code, a message, and the
/// request id both in the body and in the header.
pub fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "body: {}", answer.body);
    assert_eq!(answer.body["error"]["code"], code, "body: {}", answer.body);
    assert!(answer.body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let in_body = answer.body["error"]["request_id"].as_str();
    assert!(in_body.is_some());
    assert_eq!(in_body, answer.request_id.as_deref());
}

/// Generates one `#[tokio::test]` per backend and layout for each listed async case
/// `fn(Backend)`.
#[macro_export]
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::Backend::Embedded).await;
                }
            )*
        }
        mod secrets_manager {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::Backend::SecretsManager).await;
                }
            )*
        }
        mod embedded_keyrings {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::Backend::Embedded.keyrings()).await;
                }
            )*
        }
        mod secrets_manager_keyrings {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::Backend::SecretsManager.keyrings()).await;
                }
            )*
        }
    };
}

/// Generates one `#[tokio::test]` per store for each listed async case `fn(Backend)`, on one
/// layout (`per_endpoint` or `keyrings`): for cases about that layout's own storage.
#[macro_export]
macro_rules! on_both_stores {
    ($layout:ident: $($case:ident),* $(,)?) => {
        mod $layout {
            mod embedded {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        super::super::$case($crate::Backend::Embedded.$layout()).await;
                    }
                )*
            }
            mod secrets_manager {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        super::super::$case($crate::Backend::SecretsManager.$layout()).await;
                    }
                )*
            }
        }
    };
}
