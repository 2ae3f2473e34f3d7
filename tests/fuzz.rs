//! Property-based fuzzing of every parser at the edge: ids, secrets, API keys, signature
//! headers, cursors, JWTs, urls and delivery headers, JSON bodies, and the routes that put
//! them together. Each property runs thousands of generated cases (random text, near-valid
//! values, and real values with one character changed) and checks both that nothing panics
//! and what the parser must answer.
//!
//! This is a test binary with its own `main` (`harness = false`), so `cargo test` shows its
//! counts: one line per property, then `fuzz: N passed, N failed`. `FUZZ_SEED=<n>` replays a
//! run (every run prints its seed); `FUZZ_SCALE=<n>` multiplies the case counts.
//! `cargo fuzz` needs a nightly compiler, so proptest stands in for it.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use integration_tests::{answer, start_of_test_time, Answer, Backend, Call};
use lambda_http::http::Method;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use webhook_secrets::api::http::strict_json;
use webhook_secrets::audit::{AuditRecord, AuditSink};
use webhook_secrets::auth::{ApiKey, Role};
use webhook_secrets::domain::clock::ManualClock;
use webhook_secrets::domain::endpoint::{NewEndpoint, RequestConfig, SecretVersion, MAX_URL_CHARS};
use webhook_secrets::domain::idempotency::IdempotencyKey;
use webhook_secrets::domain::ids::{EndpointId, KeyId, TenantId, VersionId};
use webhook_secrets::domain::secret::{SecretFormat, SecretSpec, WebhookSecret};
use webhook_secrets::domain::signature::{self, VerifyFailure};
use webhook_secrets::store::{decode_cursor, encode_cursor, ListFilter};
use webhook_secrets::vault::VaultLayout;
use webhook_secrets::App;

/// Panics seen by the hook, whether or not a property caught them.
static PANICS: AtomicU64 = AtomicU64::new(0);

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OBJECT_ID: &str = "507f1f77bcf86cd799439011";

struct Suite {
    seed: u64,
    scale: u32,
    rows: Vec<(String, u64, f64, Option<String>)>,
    /// Put before each property's name (the layout the routes run on).
    label: &'static str,
}

impl Suite {
    /// Runs one property for `cases` generated values; records how many ran and any failure.
    fn check<S: Strategy>(
        &mut self,
        name: &str,
        cases: u32,
        strategy: S,
        property: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.seed.to_le_bytes());
        seed[8..16].copy_from_slice(&(self.rows.len() as u64).to_le_bytes());
        let config = Config {
            cases: cases * self.scale,
            failure_persistence: None,
            max_shrink_iters: 2_000,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        let ran = AtomicU64::new(0);
        let started = Instant::now();
        let outcome = runner.run(&strategy, |value| {
            ran.fetch_add(1, Ordering::Relaxed);
            property(value)
        });
        let failure = match outcome {
            Ok(()) => None,
            Err(TestError::Fail(reason, value)) => {
                Some(format!("{reason}; minimal input: {value:?}"))
            }
            Err(TestError::Abort(reason)) => Some(format!("aborted: {reason}")),
        };
        let seconds = started.elapsed().as_secs_f64();
        let count = ran.load(Ordering::Relaxed);
        let name = format!("{}{name}", self.label);
        match &failure {
            None => println!("fuzz {name:<44} {count:>7} cases  ok  ({seconds:.2} s)"),
            Some(why) => println!("fuzz {name:<44} {count:>7} cases  FAILED: {why}"),
        }
        self.rows.push((name, count, seconds, failure));
    }
}

fn main() {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap())
        });
    let scale = std::env::var("FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    println!("fuzz: seed {seed} (replay with FUZZ_SEED={seed}), scale {scale}");
    let mut suite = Suite {
        seed,
        scale,
        rows: Vec::new(),
        label: "",
    };
    let started = Instant::now();
    parsers(&mut suite);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // The routes on each storage layout: the keyrings' placement, splits and idempotency
    // records are parsed and written by code of their own.
    for layout in [VaultLayout::PerEndpoint, VaultLayout::Keyrings] {
        let app = runtime.block_on(fixture(layout));
        suite.label = match layout {
            VaultLayout::PerEndpoint => "",
            VaultLayout::Keyrings => "keyrings: ",
        };
        routes(&mut suite, &runtime, &app);
    }

    let cases: u64 = suite.rows.iter().map(|r| r.1).sum();
    let failed = suite.rows.iter().filter(|r| r.3.is_some()).count();
    let panics = PANICS.load(Ordering::SeqCst);
    println!(
        "fuzz: {cases} cases over {} properties in {:.1} s, {panics} panics",
        suite.rows.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "fuzz: {} passed, {failed} failed",
        suite.rows.len() - failed
    );
    if failed > 0 || panics > 0 {
        std::process::exit(1);
    }
}

// ---- strategies ----

/// Strings matching `pattern`. Compiled once: a pattern given as a bare `&str` strategy is
/// parsed again for every value.
fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern)
        .expect("a valid pattern")
        .boxed()
}

/// Text a parser at the edge may be handed: anything, printable ASCII, and near-valid shapes.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        // Any Unicode, control characters and surrogates' neighbours included.
        prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        re("[ -~]{0,80}"),
        re("[A-Za-z0-9_.-]{0,70}"),
        re("[\\x00-\\x20\\x7f\\u{85}\\u{a0}\\u{2028}a-z/:.]{0,20}"),
    ]
    .boxed()
}

/// `value` with the character at `at` (modulo its length) replaced by `with`.
fn mutate(value: &str, at: usize, with: char) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    if chars.is_empty() {
        return with.to_string();
    }
    let at = at % chars.len();
    chars[at] = with;
    chars.into_iter().collect()
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
        select(vec![
            json!("https://example.com/hooks"),
            json!("HTTP://Example.com:80/a b"),
            json!("https://example.com/\r\nX-Injected: 1"),
            json!(SECRET),
            json!("7be555a9-be3b-4049-9361-664842821721"),
            json!("whsec"),
            json!("uuid"),
            json!("active"),
            json!("paused"),
            json!("1.0"),
            json!("ep-a"),
            json!("_account-uuid"),
            json!(0),
            json!(24),
            json!(32),
            json!(64),
            json!(3600),
            json!(86_400),
            json!(604_801),
            json!(["order.created", "a b"]),
            json!({"period_days": 30}),
            json!({"period_days": 1, "grace_period_seconds": 0}),
            json!({"timeout_ms": 5000, "headers": {"X-A": "1"}}),
            json!({"headers": {"Host": "evil"}}),
            json!({"webhook-id": "msg_1", "webhook-timestamp": "1767268800", "webhook-signature": "v1,AAAA"}),
        ]),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((json_key(), inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
        .boxed()
}

/// Field names the routes know, and others.
fn json_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(vec![
            "id", "url", "name", "description", "topics", "status", "request_config", "version",
            "rotation_policy", "secret_format", "secret_bytes", "secret", "grace_period_seconds",
            "payload", "msg_id", "timestamp", "headers", "tolerance_seconds", "timeout_ms",
            "period_days", "appId", "secretKey", "grantType", "scopes",
        ])
        .prop_map(str::to_owned),
        1 => text(),
    ]
    .boxed()
}

/// An object with each of `fields` left out, given a value of its kind, or given any value,
/// so that the routes' success paths are walked as well as their refusals.
/// The first field is required: it is left out or given any value only now and then.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<String> {
    let names: Vec<&'static str> = fields.iter().map(|(name, _)| *name).collect();
    let values: Vec<BoxedStrategy<Option<Value>>> = fields
        .into_iter()
        .enumerate()
        .map(|(i, (_, valid))| {
            let absent = if i == 0 { 1 } else { 12 };
            prop_oneof![
                absent => Just(None),
                6 => valid.prop_map(Some),
                1 => json_leaf().prop_map(Some),
            ]
            .boxed()
        })
        .collect();
    values
        .prop_map(move |values| {
            let object: serde_json::Map<String, Value> = names
                .iter()
                .zip(values)
                .filter_map(|(name, value)| Some(((*name).to_owned(), value?)))
                .collect();
            Value::Object(object).to_string()
        })
        .boxed()
}

fn as_json<S>(strategy: S) -> BoxedStrategy<Value>
where
    S: Strategy + 'static,
    S::Value: Into<Value>,
{
    strategy.prop_map(Into::into).boxed()
}

fn url_value() -> BoxedStrategy<Value> {
    as_json(prop_oneof![
        6 => re("(https?|HTTPS?)://[a-z]{1,10}\\.example(:[0-9]{2,5})?(/[!-~]{0,30})?"),
        1 => re("https?://[a-z.]{1,10}/[ -~\\t\\r\\n\\x00\\u{a0}]{0,20}"),
        1 => text(),
    ])
}

fn headers_value() -> BoxedStrategy<Value> {
    prop::collection::btree_map(
        prop_oneof![
            8 => re("X-[A-Za-z0-9-]{1,10}"),
            1 => select(vec!["Host", "Content-Length", "webhook-signature", "x-a"]).prop_map(str::to_owned),
        ],
        prop_oneof![8 => re("[!-~]{0,20}"), 1 => text()],
        0..4,
    )
    .prop_map(|headers| json!(headers))
    .boxed()
}

fn secret_fields() -> Vec<(&'static str, BoxedStrategy<Value>)> {
    vec![
        (
            "secret_format",
            as_json(select(vec!["whsec", "whsec", "uuid", "hex"])),
        ),
        ("secret_bytes", as_json(20u64..66)),
        (
            "secret",
            as_json(select(vec![
                SECRET,
                "whsec_c2Vjb25kIHNlY3JldCBvZiAyNCsgYnl0ZXMh",
                "7be555a9-be3b-4049-9361-664842821721",
                "whsec_short",
            ])),
        ),
    ]
}

fn endpoint_fields() -> Vec<(&'static str, BoxedStrategy<Value>)> {
    vec![
        ("url", url_value()),
        (
            "name",
            as_json(prop_oneof![4 => re("[ -~]{0,30}"), 1 => text()]),
        ),
        (
            "description",
            as_json(prop_oneof![4 => re("[ -~\\n]{0,30}"), 1 => text()]),
        ),
        (
            "topics",
            as_json(prop::collection::vec(re("[a-z.:*/]{1,12}"), 0..4)),
        ),
        (
            "status",
            as_json(select(vec![
                "active",
                "paused",
                "suspended",
                "active",
                "deleted",
            ])),
        ),
        (
            "request_config",
            (prop::option::of(800u64..32_000), headers_value())
                .prop_map(|(timeout, headers)| match timeout {
                    Some(timeout) => json!({"timeout_ms": timeout, "headers": headers}),
                    None => json!({"headers": headers}),
                })
                .boxed(),
        ),
        ("version", as_json(re("[A-Za-z0-9._-]{1,10}"))),
        (
            "rotation_policy",
            (0u64..1_050, prop::option::of(0u64..640_000))
                .prop_map(|(days, grace)| match grace {
                    Some(grace) => json!({"period_days": days, "grace_period_seconds": grace}),
                    None => json!({"period_days": days}),
                })
                .boxed(),
        ),
    ]
}

fn create_body() -> BoxedStrategy<String> {
    // `url` first: the required field.
    let mut fields = endpoint_fields();
    fields.push((
        "id",
        as_json(prop_oneof![
            4 => re("[A-Za-z0-9_-]{1,12}"),
            1 => select(vec!["ep-a", "_account-uuid", "a.b"]).prop_map(str::to_owned),
        ]),
    ));
    fields.extend(secret_fields());
    prop_oneof![4 => object(fields), 1 => body()].boxed()
}

/// A body for `route`: mostly its own fields, sometimes anything.
fn route_body(route: &'static str) -> BoxedStrategy<String> {
    let fields = match route {
        "update" => {
            // No field is required; a rare url change stands first.
            let mut fields = endpoint_fields();
            fields.insert(0, ("status", as_json(select(vec!["active", "paused"]))));
            fields
        }
        "rotate" => {
            let mut fields = secret_fields();
            fields.insert(0, ("grace_period_seconds", as_json(0u64..640_000)));
            fields
        }
        "sign" => vec![
            ("payload", as_json(text())),
            (
                "msg_id",
                as_json(prop_oneof![re("[A-Za-z0-9_]{1,20}"), text()]),
            ),
            ("timestamp", as_json(any::<i64>())),
        ],
        _ => vec![
            (
                "headers",
                prop::collection::btree_map(
                    select(vec![
                        "webhook-id",
                        "webhook-timestamp",
                        "webhook-signature",
                        "Webhook-Id",
                        "x",
                    ]),
                    prop_oneof![text(), re("v1,[A-Za-z0-9+/]{43}="), re("[0-9]{10}")],
                    0..4,
                )
                .prop_map(|headers| json!(headers))
                .boxed(),
            ),
            ("payload", as_json(text())),
            ("tolerance_seconds", as_json(0u64..100_000)),
        ],
    };
    prop_oneof![4 => object(fields), 1 => body()].boxed()
}

/// A request body: an object of known fields, any JSON, raw text, or an object whose text
/// holds one key twice.
fn body() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::collection::btree_map(json_key(), json_value(), 0..6)
            .prop_map(|fields| Value::Object(fields.into_iter().collect()).to_string()),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => text(),
        1 => (json_key(), json_value(), json_value(), json_value()).prop_map(|(key, a, b, rest)| {
            let key = Value::from(key);
            format!("{{{key}: {a}, \"filler\": {rest}, {key}: {b}}}")
        }),
    ]
    .boxed()
}

// ---- pure parsers ----

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn parsers(suite: &mut Suite) {
    suite.check(
        "ids: endpoint, tenant, key, version",
        2_000,
        text(),
        |raw| {
            let endpoint = EndpointId::parse(&raw);
            let expected = (1..=64).contains(&raw.len()) && raw.chars().all(is_id_char);
            prop_assert_eq!(endpoint.is_ok(), expected);
            let via_serde = serde_json::from_value::<EndpointId>(json!(raw));
            prop_assert_eq!(via_serde.ok(), endpoint.ok());

            let tenant = TenantId::parse(&raw);
            if let Ok(tenant) = &tenant {
                prop_assert!(!tenant.as_str().starts_with(['_', '-']));
                prop_assert!(tenant.as_str().len() <= 63);
            }
            let key = KeyId::parse(&raw);
            if key.is_ok() {
                prop_assert!(raw.len() == 23 && raw.starts_with("ak_"));
            }
            if let Ok(version) = VersionId::parse(&raw) {
                prop_assert!((32..=64).contains(&raw.len()));
                let _ = version.stamp();
            }
            Ok(())
        },
    );

    suite.check(
        "ids: near-valid key and version ids",
        1_000,
        (
            re("ak_[0-9a-fA-F]{18,22}"),
            re("[0-9a-f-]{30,40}"),
            any::<usize>(),
            any::<char>(),
        ),
        |(key, version, at, with)| {
            let expected = key.len() == 23
                && key[3..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            prop_assert_eq!(KeyId::parse(&key).is_ok(), expected);
            let _ = KeyId::parse(&mutate(&key, at, with));
            if let Ok(parsed) = VersionId::parse(&version) {
                let _ = parsed.stamp();
            }
            if let Ok(parsed) = VersionId::parse(&mutate(&version, at, with)) {
                let _ = parsed.stamp();
            }
            Ok(())
        },
    );

    let near_whsec = (
        prop::collection::vec(any::<u8>(), 0..80),
        any::<usize>(),
        any::<char>(),
        any::<bool>(),
    )
        .prop_map(|(bytes, at, with, mutated)| {
            let value = format!("whsec_{}", STANDARD.encode(&bytes));
            if mutated {
                mutate(&value, at, with)
            } else {
                value
            }
        });
    let near_uuid = (any::<u128>(), any::<usize>(), any::<char>(), any::<bool>()).prop_map(
        |(bits, at, with, mutated)| {
            let value = uuid::Builder::from_random_bytes(bits.to_le_bytes())
                .into_uuid()
                .hyphenated()
                .to_string();
            if mutated {
                mutate(&value, at, with)
            } else {
                value
            }
        },
    );
    suite.check(
        "secrets: whsec_ and uuid values",
        3_000,
        prop_oneof![text(), near_whsec, near_uuid],
        |raw| {
            let parsed = WebhookSecret::parse(&raw);
            let expected = match raw.strip_prefix("whsec_") {
                Some(encoded) => STANDARD
                    .decode(encoded)
                    .is_ok_and(|bytes| (24..=64).contains(&bytes.len())),
                None => uuid::Uuid::try_parse(&raw)
                    .is_ok_and(|u| u.get_version_num() == 4 && u.hyphenated().to_string() == raw),
            };
            prop_assert_eq!(parsed.is_ok(), expected, "{:?}", raw);
            if let Ok(secret) = parsed {
                prop_assert_eq!(secret.expose(), raw.as_str());
                let shown = format!("{secret:?} {secret}");
                let body = raw.trim_start_matches("whsec_");
                prop_assert!(!shown.contains(body), "a secret printed itself");
                let reparsed = serde_json::from_value::<WebhookSecret>(json!(raw));
                prop_assert!(reparsed.is_ok());
            }
            let _ = SecretFormat::parse(&raw);
            Ok(())
        },
    );

    suite.check(
        "secrets: whsk_ key pairs whose halves disagree",
        300,
        (0usize..70, any::<u8>()),
        |(at, with)| {
            let spec = SecretSpec::new(SecretFormat::Ed25519, None).unwrap();
            let key = WebhookSecret::generate(spec).unwrap();
            let mut raw = STANDARD.decode(&key.expose()["whsk_".len()..]).unwrap();
            let unchanged = at < raw.len() && raw[at] == with;
            if at < raw.len() {
                raw[at] = with;
            } else {
                raw.truncate(at % 64);
            }
            let candidate = format!("whsk_{}", STANDARD.encode(&raw));
            // Any changed byte of the seed or of the public key, or any other length, is a
            // pair that is not one: refused.
            prop_assert_eq!(
                WebhookSecret::parse(&candidate).is_ok(),
                unchanged,
                "{}",
                at
            );
            Ok(())
        },
    );

    suite.check(
        "secrets: format and byte count",
        500,
        (any::<usize>(), any::<bool>()),
        |(bytes, uuid)| {
            let format = if uuid {
                SecretFormat::Uuid
            } else {
                SecretFormat::Whsec
            };
            let spec = SecretSpec::new(format, Some(bytes));
            prop_assert_eq!(spec.is_ok(), (24..=64).contains(&bytes));
            if let Ok(spec) = spec {
                let secret = WebhookSecret::generate(spec).unwrap();
                prop_assert!(WebhookSecret::parse(secret.expose()).is_ok());
            }
            Ok(())
        },
    );

    let real_key = ApiKey::generate().unwrap().expose().to_string();
    let near_keys =
        (any::<usize>(), any::<char>()).prop_map(move |(at, with)| mutate(&real_key, at, with));
    suite.check(
        "API keys: ak_<id>.<secret>",
        2_000,
        prop_oneof![text(), near_keys, re("ak_[0-9a-f]{20}\\.[ -~]{0,140}")],
        |raw| {
            if let Ok(key) = ApiKey::parse(&raw) {
                prop_assert!(KeyId::parse(key.key_id().as_str()).is_ok());
                let secret = raw.trim().split_once('.').unwrap().1;
                prop_assert!(!secret.is_empty() && secret.len() <= 128);
                // Longer than everything the Debug form holds, so only a leak could match.
                if secret.len() > 40 {
                    let shown = format!("{key:?}");
                    prop_assert!(!shown.contains(secret), "a key printed its secret");
                }
            }
            let _ = IdempotencyKey::parse(&raw);
            Ok(())
        },
    );

    let now = chrono::DateTime::from_timestamp(1_767_268_800, 0).unwrap();
    let version = |secret: &str| SecretVersion {
        version_id: VersionId::generate(),
        value: WebhookSecret::parse(secret).unwrap(),
        created_at: now,
        replaces: None,
        expires_at: None,
    };
    let whsec = version(SECRET);
    let uuid_secret = version("7be555a9-be3b-4049-9361-664842821721");
    suite.check(
        "signature headers: arbitrary id, timestamp, signature",
        1_500,
        (
            text(),
            prop_oneof![text(), re("[0-9]{0,25}"), re("-?[0-9]{1,12}(\\.[0-9])?")],
            prop_oneof![text(), re("(v[0-9],[A-Za-z0-9+/=]{0,60} ?){0,4}")],
            prop::collection::vec(any::<u8>(), 0..64),
            0u32..=86_400,
        ),
        |(id, timestamp, header, payload, tolerance)| {
            let verdict = signature::verify(
                &[&whsec, &uuid_secret],
                &id,
                &timestamp,
                &header,
                &payload,
                now,
                tolerance,
            );
            prop_assert!(verdict.is_err(), "a made-up signature verified");
            if signature::validate_id(&id).is_err() {
                prop_assert_eq!(verdict, Err(VerifyFailure::MalformedId));
            }
            Ok(())
        },
    );

    suite.check(
        "signature headers: signed deliveries, altered or not",
        1_000,
        (
            re("[A-Za-z0-9_:-]{1,40}"),
            -300i64..=300,
            prop::collection::vec(any::<u8>(), 0..256),
            any::<usize>(),
            any::<char>(),
            any::<bool>(),
        ),
        |(id, skew, payload, at, with, altered)| {
            let timestamp = now.timestamp() + skew;
            let signed = signature::sign(&[&uuid_secret, &whsec], &id, timestamp, &payload);
            let header = if altered {
                mutate(&signed.signature, at, with)
            } else {
                signed.signature.clone()
            };
            let verdict = signature::verify(
                &[&whsec],
                &id,
                &timestamp.to_string(),
                &header,
                &payload,
                now,
                300,
            );
            // The whsec signature is the second entry. It verifies exactly while that entry is
            // still there, whole (standard base64 has one spelling of 32 bytes).
            let entry = signed.signature.split(' ').nth(1).unwrap();
            let present = header.split(' ').any(|e| e == entry);
            prop_assert_eq!(verdict.is_ok(), present, "{:?}", header);
            if present {
                prop_assert_eq!(verdict, Ok(whsec.version_id.clone()));
            }
            Ok(())
        },
    );

    suite.check(
        "cursors: arbitrary text",
        2_000,
        (text(), re("[a-z0-9/-]{1,30}")),
        |(cursor, prefix)| {
            let decoded = decode_cursor(ListFilter::prefix(&prefix), &cursor);
            prop_assert!(decoded.is_err(), "a cursor never issued decoded");
            Ok(())
        },
    );

    suite.check(
        "cursors: issued, then altered or replayed elsewhere",
        1_500,
        (
            re("[A-Za-z0-9/_+=.@-]{1,200}"),
            re("[a-z0-9/-]{1,30}"),
            re("[a-z0-9/-]{1,30}"),
            any::<usize>(),
            prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. "
                    .chars()
                    .collect::<Vec<_>>(),
            ),
        ),
        |(position, prefix, other, at, with)| {
            let filter = ListFilter::prefix(&prefix);
            let cursor = encode_cursor(filter, &position);
            prop_assert!(cursor.len() < 1_000);
            prop_assert_eq!(decode_cursor(filter, &cursor).ok(), Some(position.clone()));
            let altered = mutate(&cursor, at, with);
            if altered != cursor {
                prop_assert!(
                    decode_cursor(filter, &altered).is_err(),
                    "an altered cursor decoded"
                );
            }
            if other != prefix {
                prop_assert!(decode_cursor(ListFilter::prefix(&other), &cursor).is_err());
            }
            let tagged = ListFilter {
                prefix: &prefix,
                tag_key: Some("webhook-secrets:rotation-period-days"),
            };
            prop_assert!(decode_cursor(tagged, &cursor).is_err());
            Ok(())
        },
    );

    suite.check(
        "urls: validate and normalise",
        3_000,
        prop_oneof![
            text(),
            re("(https?|HTTPS?|ftp)://[A-Za-z0-9.:@\\[\\]%-]{0,30}(/[ -~]{0,40})?"),
            re("[ \\t\\r\\n]?https://[a-z.]{1,20}/[ -~\\t\\r\\n\\x00]{0,30}[ \\t\\r\\n]?"),
        ],
        |raw| {
            if let Ok(url) = NewEndpoint::validate_url(&raw) {
                prop_assert!(
                    url.starts_with("http://") || url.starts_with("https://"),
                    "{url}"
                );
                prop_assert!(url.chars().count() <= MAX_URL_CHARS);
                prop_assert!(
                    !url.chars().any(|c| c.is_control() || c.is_whitespace()),
                    "{url:?}"
                );
                prop_assert!(!raw.chars().any(char::is_control));
                prop_assert_eq!(raw.trim(), raw.as_str());
                // What is stored is a fixed point: validating it again changes nothing.
                prop_assert_eq!(NewEndpoint::validate_url(&url).ok(), Some(url.clone()));
            }
            Ok(())
        },
    );

    suite.check(
        "delivery headers: names and values",
        1_000,
        {
            let name = prop_oneof![
                re("[A-Za-z0-9-]{1,20}"),
                select(vec![
                    "Host",
                    "content-LENGTH",
                    "Transfer-Encoding",
                    "Connection",
                    "webhook-id",
                    "Webhook-Signature",
                    "X-A",
                    "x-a",
                    "TE",
                ])
                .prop_map(str::to_owned),
                text(),
            ]
            .boxed();
            let value = prop_oneof![text(), re("[ -~]{0,30}")].boxed();
            // Mostly a few headers; sometimes more than the 20 allowed.
            prop_oneof![
                4 => prop::collection::btree_map(name.clone(), value.clone(), 0..6),
                1 => prop::collection::btree_map(name, value, 18..24),
            ]
        },
        |headers: BTreeMap<String, String>| {
            if let Ok(config) = RequestConfig::validate(None, headers.clone()) {
                let mut seen = std::collections::HashSet::new();
                for (name, value) in &config.headers {
                    let lower = name.to_ascii_lowercase();
                    prop_assert!(seen.insert(lower.clone()), "{name} twice");
                    prop_assert!(!lower.starts_with("webhook-"));
                    prop_assert!(![
                        "host",
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "te"
                    ]
                    .contains(&lower.as_str()));
                    prop_assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)));
                    prop_assert_eq!(value.trim(), value.as_str());
                }
                prop_assert!(config.headers.len() <= 20);
            }
            Ok(())
        },
    );

    suite.check("JSON bodies: strict parser", 1_000, json_value(), |value| {
        // Serialised JSON never repeats a key, so the strict parser reads it exactly as
        // serde_json does (compared with serde_json's own reading, whose float parsing may
        // differ from the generated value in the last bit).
        for text in [
            value.to_string(),
            serde_json::to_string_pretty(&value).unwrap(),
        ] {
            let lenient: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(strict_json(text.as_bytes()).ok(), Some(lenient));
        }
        Ok(())
    });

    suite.check(
        "JSON bodies: raw text and repeated keys",
        1_500,
        prop_oneof![
            body(),
            prop::collection::vec(any::<u8>(), 0..64)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
        ],
        |raw| {
            let strict = strict_json(raw.as_bytes());
            let lenient = serde_json::from_str::<Value>(&raw);
            match (&strict, &lenient) {
                (Ok(strict), Ok(lenient)) => prop_assert_eq!(strict, lenient),
                (Ok(_), Err(_)) => prop_assert!(false, "strict accepted what serde_json refuses"),
                (Err(err), Ok(_)) => {
                    prop_assert!(err.to_string().contains("same key twice"), "{err}")
                }
                (Err(_), Err(_)) => {}
            }
            Ok(())
        },
    );
}

// ---- the routes, end to end on the embedded store ----

/// Counts audit records (a memory sink would be copied whole to be read, once per case).
#[derive(Default)]
struct CountedAudit(AtomicU64);

impl AuditSink for CountedAudit {
    fn record(&self, _: &AuditRecord) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The app every route property calls: the embedded store, an owner and a member key of
/// tenant `acme`, and a few endpoints.
struct Fixture {
    app: App,
    owner: String,
    member: String,
    audited: Arc<CountedAudit>,
}

async fn fixture(layout: VaultLayout) -> Fixture {
    let clock = Arc::new(ManualClock::new(start_of_test_time()));
    let (store, prefix) = integration_tests::store(Backend::Embedded, clock.clone()).await;
    let audited = Arc::new(CountedAudit::default());
    let app = App::with_audit(
        store,
        &prefix,
        layout,
        clock,
        chrono::Duration::seconds(60),
        audited.clone(),
    );
    let acme = TenantId::parse("acme").unwrap();
    let keys = app.auth.keys();
    let (owner, _) = keys.mint(acme.clone(), Role::Owner).await.unwrap();
    let (member, _) = keys.mint(acme, Role::Member).await.unwrap();
    let owner = owner.expose().to_string();
    for id in ["ep-a", "ep-b", OBJECT_ID, "wh_end_a", "sub_a"] {
        let call = Call::post("/v1/endpoints")
            .bearer(&owner)
            .json(json!({"id": id, "url": "https://example.com/hooks"}));
        let created = answer(
            webhook_secrets::api::create_endpoint(&app, call.build())
                .await
                .expect("routes always answer Ok"),
        );
        assert_eq!(created.status, 201, "{}", created.body);
    }
    Fixture {
        app,
        owner,
        member: member.expose().to_string(),
        audited,
    }
}

fn route_error_shape(answered: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(answered.request_id.is_some());
    if answered.status >= 400 {
        let error = &answered.body["error"];
        prop_assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{}",
            answered.body
        );
        prop_assert_eq!(error["request_id"].as_str(), answered.request_id.as_deref());
        prop_assert!(
            !answered
                .body
                .to_string()
                .contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "an error echoed a secret"
        );
    }
    Ok(())
}

fn check_status(answered: &Answer, allowed: &[u16]) -> Result<(), TestCaseError> {
    prop_assert!(
        allowed.contains(&answered.status),
        "status {} not in {:?}: {}",
        answered.status,
        allowed,
        answered.body
    );
    route_error_shape(answered)
}

fn path_id() -> BoxedStrategy<String> {
    prop_oneof![
        select(vec![
            "ep-a",
            "ep-b",
            "missing",
            "_account-uuid",
            "_account-whsec",
            "a.b",
            ""
        ])
        .prop_map(str::to_owned),
        text(),
    ]
    .boxed()
}

fn routes(suite: &mut Suite, runtime: &tokio::runtime::Runtime, app: &Fixture) {
    use webhook_secrets::api as routes;
    use webhook_secrets::compat as faces;

    let run = |call: Call, route: &str| -> Answer {
        let req = call.build();
        let response = runtime.block_on(async {
            match route {
                "create" => routes::create_endpoint(&app.app, req).await,
                "get" => routes::get_endpoint(&app.app, req).await,
                "list" => routes::list_endpoints(&app.app, req).await,
                "update" => routes::update_endpoint(&app.app, req).await,
                "delete" => routes::delete_endpoint(&app.app, req).await,
                "rotate" => routes::rotate_secret(&app.app, req).await,
                "reveal" => routes::reveal_secret(&app.app, req).await,
                "sign" => routes::sign_message(&app.app, req).await,
                "verify" => routes::verify_message(&app.app, req).await,
                "token" => faces::fyatu::issue_token(&app.app, req).await,
                "regenerate" => faces::fyatu::regenerate_secret(&app.app, req).await,
                "featurebase" => faces::featurebase::refresh_webhook_secret(&app.app, req).await,
                "composio" => faces::composio::rotate_subscription_secret(&app.app, req).await,
                other => unreachable!("{other}"),
            }
        });
        answer(response.expect("routes always answer Ok"))
    };

    suite.check(
        "route bodies: create",
        400,
        (
            create_body(),
            prop_oneof![
                6 => Just(None),
                2 => re("[!-~]{8,24}").prop_map(Some),
                1 => re("[ -~]{0,70}").prop_map(Some),
            ],
        ),
        |(raw, key)| {
            let mut call = Call::post("/v1/endpoints")
                .bearer(&app.owner)
                .raw_body(&raw);
            if let Some(key) = key {
                call = call.header("idempotency-key", &key);
            }
            let answered = run(call, "create");
            check_status(&answered, &[201, 400, 409, 413, 422])?;
            if answered.status == 201 {
                let url = answered.body["url"].as_str().unwrap();
                prop_assert!(NewEndpoint::validate_url(url).as_deref() == Ok(url));
                prop_assert!(!answered.body["id"].as_str().unwrap().starts_with('_'));
            }
            Ok(())
        },
    );

    suite.check(
        "route bodies: update, rotate, sign, verify",
        600,
        (
            select(vec!["update", "rotate", "sign", "verify"])
                .prop_flat_map(|route| (Just(route), route_body(route))),
            select(vec!["ep-a", "ep-b", "missing"]),
        ),
        |((route, raw), id)| {
            let call = Call::new(Method::POST, "/x")
                .bearer(&app.owner)
                .id(id)
                .raw_body(&raw);
            let answered = run(call, route);
            match route {
                // Every write counts against the store's daily version quota (429).
                "update" => check_status(&answered, &[200, 400, 404, 429]),
                // Rotations with a grace period fill the 10 older secrets (409), then the
                // store's daily version quota (429).
                "rotate" => check_status(&answered, &[200, 400, 404, 409, 429]),
                _ => check_status(&answered, &[200, 400, 404]),
            }
        },
    );

    suite.check(
        "route bodies: JWT token request",
        500,
        prop_oneof![
            body(),
            (
                prop::option::of(prop_oneof![
                    Just(app.owner.split_once('.').unwrap().0.to_owned()),
                    text()
                ]),
                prop::option::of(prop_oneof![
                    Just(app.owner.split_once('.').unwrap().1.to_owned()),
                    text()
                ]),
                prop::option::of(prop_oneof![Just("client_credentials".to_owned()), text()]),
                prop::option::of(prop::collection::vec(
                    prop_oneof![
                        Just("webhooks:read".to_owned()),
                        Just("webhooks:write".to_owned()),
                        text()
                    ],
                    0..3
                ))
            )
                .prop_map(|(a, s, g, scopes)| {
                    let mut body = serde_json::Map::new();
                    if let Some(a) = a {
                        body.insert("appId".into(), a.into());
                    }
                    if let Some(s) = s {
                        body.insert("secretKey".into(), s.into());
                    }
                    if let Some(g) = g {
                        body.insert("grantType".into(), g.into());
                    }
                    if let Some(scopes) = scopes {
                        body.insert("scopes".into(), scopes.into());
                    }
                    Value::Object(body).to_string()
                }),
        ],
        |raw| {
            let answered = run(Call::post("/api/v3/auth/token").raw_body(&raw), "token");
            prop_assert!(
                [200, 400, 401].contains(&answered.status),
                "{} {}",
                answered.status,
                answered.body
            );
            prop_assert_eq!(
                answered.body["status"].as_u64(),
                Some(u64::from(answered.status))
            );
            Ok(())
        },
    );

    let principal = runtime
        .block_on(app.app.auth.authenticate(&app.owner))
        .unwrap();
    let issued = runtime
        .block_on(
            app.app
                .tokens
                .issue(&principal, vec!["webhooks:read".into()]),
        )
        .unwrap();
    let token = issued.access_token.to_string();
    let (claims, _) = runtime
        .block_on(app.app.tokens.verify(&token, &app.app.auth))
        .unwrap();
    let near_tokens = (
        any::<usize>(),
        select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
                .chars()
                .collect::<Vec<_>>(),
        ),
    )
        .prop_map({
            let token = token.clone();
            move |(at, with)| mutate(&token, at, with)
        });
    let forged = (
        json_value(),
        json_value(),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(header, claims, sig)| {
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string()),
                URL_SAFE_NO_PAD.encode(sig)
            )
        });
    let headers_like = select(vec![
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"alg": "HS256", "kid": "k_unknown"}),
        json!({"alg": "RS256", "kid": "k_unknown"}),
    ])
    .prop_map(|header| {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(json!({"iss": "webhook-secrets", "sub": "ak_00000000000000000000", "tenant": "acme", "scope": "webhooks:write", "iat": 0, "exp": i64::MAX}).to_string())
        )
    });
    suite.check(
        "JWTs: arbitrary, forged, and altered tokens",
        1_000,
        prop_oneof![text(), near_tokens, forged, headers_like],
        |candidate| {
            if lambda_http::http::HeaderValue::from_str(&format!("Bearer {candidate}")).is_err() {
                // HTTP cannot carry it, so no function ever sees it.
                return Ok(());
            }
            let verdict = runtime.block_on(app.app.tokens.verify(&candidate, &app.app.auth));
            if let Ok((verified, _)) = &verdict {
                // Only the token itself, or a spelling of it that decodes to the same bytes.
                prop_assert_eq!(verified, &claims);
            }
            let answered = run(Call::post("/x").bearer(&candidate), "regenerate");
            match &verdict {
                Ok(_) => prop_assert_eq!(answered.status, 403),
                Err(_) => prop_assert_eq!(answered.status, 401, "{}", answered.body),
            }
            Ok(())
        },
    );

    suite.check(
        "API keys and ids through the routes",
        1_500,
        (
            prop_oneof![
                3 => Just(app.owner.clone()),
                1 => Just(app.member.clone()),
                2 => text(),
                1 => (any::<usize>(), any::<char>()).prop_map({
                    let owner = app.owner.clone();
                    move |(at, with)| mutate(&owner, at, with)
                }),
            ],
            select(vec!["authorization", "x-api-key", "authorization-bearer"]),
            path_id(),
            select(vec![
                "get", "delete", "update", "rotate", "reveal", "sign", "verify",
            ]),
        ),
        |(key, header, id, route)| {
            let call = Call::new(Method::POST, "/x")
                .id(&id)
                .raw_body(r#"{"payload": "{}", "headers": {}}"#);
            let call = match header {
                "authorization" => call.header("authorization", &key),
                "authorization-bearer" => call.header("authorization", &format!("Bearer {key}")),
                _ => call.header("x-api-key", &key),
            };
            // Header values that HTTP cannot carry never reach a function.
            if lambda_http::http::HeaderValue::from_str(&key).is_err()
                || lambda_http::http::HeaderValue::from_str(&format!("Bearer {key}")).is_err()
            {
                return Ok(());
            }
            let audited = ["delete", "update", "rotate", "reveal"].contains(&route);
            let before = app.audited.0.load(Ordering::SeqCst);
            let answered = run(call, route);
            // The body is one no write route accepts (unknown fields), so only delete and
            // the reads can succeed.
            check_status(&answered, &[200, 204, 400, 401, 403, 404])?;
            if audited {
                prop_assert_eq!(
                    app.audited.0.load(Ordering::SeqCst),
                    before + 1,
                    "every attempt is audited"
                );
            }
            // Only the two real keys authenticate; anything else is 401 whatever the id.
            let real = key.trim() == app.owner || key.trim() == app.member;
            let authenticated = real && header != "authorization";
            prop_assert_eq!(answered.status != 401, authenticated, "{}", answered.body);
            if !authenticated {
                prop_assert!(
                    EndpointId::parse(&id).is_ok() || answered.status == 401,
                    "a bad id answered before a bad key"
                );
            }
            Ok(())
        },
    );

    suite.check(
        "cursors and limits through the list route",
        800,
        (
            prop::option::of(text()),
            prop::option::of(prop_oneof![text(), re("[0-9]{1,4}")]),
        ),
        |(cursor, limit)| {
            let mut call = Call::get("/v1/endpoints").bearer(&app.member);
            if let Some(cursor) = &cursor {
                call = call.query("cursor", cursor);
            }
            if let Some(limit) = &limit {
                call = call.query("limit", limit);
            }
            let answered = run(call, "list");
            check_status(&answered, &[200, 400])?;
            if cursor.as_deref().is_some_and(|c| !c.is_empty()) {
                prop_assert_eq!(answered.status, 400, "a made-up cursor was accepted");
            }
            Ok(())
        },
    );

    suite.check(
        "seed contracts: ids, versions and keys",
        800,
        (
            path_id(),
            prop::option::of(prop_oneof![
                Just("2026-01-01.nova".to_owned()),
                Just("2025-12-12.clover".to_owned()),
                re("[ -~]{0,20}")
            ]),
            any::<bool>(),
        ),
        |(id, version, featurebase)| {
            if featurebase {
                let mut call = Call::post("/x").bearer(&app.owner).id(&id);
                if let Some(version) = &version {
                    call = call.header("featurebase-version", version);
                }
                let answered = run(call, "featurebase");
                prop_assert!([200, 400, 401, 403, 404, 429, 500, 503].contains(&answered.status));
                prop_assert_ne!(answered.status, 500, "{}", answered.body);
                prop_assert_eq!(
                    &answered.body["object"],
                    if answered.status == 200 {
                        "webhook"
                    } else {
                        "error"
                    }
                );
            } else {
                let answered = run(
                    Call::post("/x").header("x-api-key", &app.owner).id(&id),
                    "composio",
                );
                prop_assert!(
                    [200, 404].contains(&answered.status),
                    "{} {}",
                    answered.status,
                    answered.body
                );
                if id.starts_with('_') {
                    prop_assert_eq!(
                        answered.status,
                        404,
                        "an account secret rotated through Composio"
                    );
                }
            }
            Ok(())
        },
    );
}
