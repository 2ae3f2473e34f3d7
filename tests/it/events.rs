//! Secret events through the whole real path: the product publishes to an EventBridge bus on
//! the emulator, a rule routes `source: webhook-secrets` to an SQS queue, and the test reads
//! the queue. Every trigger (native route, seed contract, account contract, sweep, Secrets
//! Manager's rotation protocol, delete) shows up exactly once after deduplication on
//! `event_id`, including a rotation whose first publish failed, and a replayed request. No
//! message carries a secret value.

use async_trait::async_trait;
use chrono::{Duration, Utc};
use integration_tests::{face, invoke, require_emulator, Backend, Call, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use webhook_secrets::events::{EventBridgeSink, EventSink, PublishError, SecretEvent};
use webhook_secrets::vault::protocol::{run_step, RotationEvent, Step};

/// A bus of the test's own, a rule to a queue of its own, and the queue's client.
struct Bus {
    name: String,
    config: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Bus {
    async fn new() -> Self {
        require_emulator();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let eventbridge = aws_sdk_eventbridge::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("events-{unique}");
        eventbridge
            .create_event_bus()
            .name(&name)
            .send()
            .await
            .unwrap();
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("events-{unique}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        eventbridge
            .put_rule()
            .name("secret-events")
            .event_bus_name(&name)
            .event_pattern(json!({"source": ["webhook-secrets"]}).to_string())
            .send()
            .await
            .unwrap();
        eventbridge
            .put_targets()
            .rule("secret-events")
            .event_bus_name(&name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Self {
            name,
            config,
            sqs,
            queue_url,
        }
    }

    /// The sink a function builds: its client shares the function's AWS configuration and is
    /// made on the first publish.
    fn sink(&self) -> EventBridgeSink {
        EventBridgeSink::from_sdk_config(&self.config, &self.name)
    }

    /// Every message on the queue, as the EventBridge envelopes the rule delivered.
    async fn drain(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut empty = 0;
        while empty < 2 {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                empty += 1;
                continue;
            }
            for message in messages {
                events.push(serde_json::from_str(message.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        events
    }
}

/// A sink that fails its next `failures` publishes, then passes everything to `inner`.
struct Flaky {
    inner: EventBridgeSink,
    failures: AtomicUsize,
}

#[async_trait]
impl EventSink for Flaky {
    async fn publish(&self, events: &[SecretEvent]) -> Result<(), PublishError> {
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(PublishError::Unavailable(
                "injected: the bus throttled".into(),
            ));
        }
        self.inner.publish(events).await
    }
}

async fn every_trigger_is_announced_once(backend: Backend) {
    let bus = Bus::new().await;
    let flaky = Arc::new(Flaky {
        inner: bus.sink(),
        failures: AtomicUsize::new(0),
    });
    // Listing dates on the emulator come from the real clock, so the injected one starts there.
    let app = TestApp::starting_at(backend, Utc::now())
        .await
        .announcing_to(flaky.clone());
    let mut secrets = Vec::new();

    // Secrets Manager's rotation protocol, all four steps.
    app.create(json!({"id": "ev-protocol", "url": "https://example.com/hook"}))
        .await;
    // On keyrings the protocol rotates every endpoint in the keyring, so it runs first,
    // while the keyring holds this endpoint alone.
    let protocol_secret = app
        .app
        .endpoints
        .secret_holding(
            &webhook_secrets::domain::ids::TenantId::parse("acme").unwrap(),
            &webhook_secrets::domain::ids::EndpointId::parse("ev-protocol").unwrap(),
        )
        .await
        .unwrap();
    let token = uuid::Uuid::new_v4().to_string();
    for step in [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ] {
        let event = RotationEvent {
            step,
            secret_id: protocol_secret.to_string(),
            client_request_token: token.clone(),
        };
        run_step(
            &app.app.endpoints,
            app.audit.as_ref(),
            &event,
            "protocol-request",
        )
        .await
        .unwrap();
    }

    // The native API: a create and a rotation, the rotation replayed once.
    let created = app
        .create(json!({"id": "ev-api", "url": "https://example.com/hook"}))
        .await;
    secrets.push(created["secret"]["value"].as_str().unwrap().to_owned());
    for _ in 0..2 {
        let rotated = invoke!(
            rotate_secret,
            app,
            Call::post("/x")
                .bearer(&app.owner)
                .header("idempotency-key", "rotate-ev-api-1")
                .id("ev-api")
                .json(json!({"secret_format": "ed25519", "grace_period_seconds": 600}))
        );
        assert_eq!(rotated.status, 200, "{}", rotated.body);
        secrets.push(rotated.body["secret"]["value"].as_str().unwrap().to_owned());
    }
    // A seed contract on an endpoint, and an account-level one.
    app.create(json!({"id": "wh_end_ev", "url": "https://example.com/hook"}))
        .await;
    let inklink = face!(
        inklink::rotate_endpoint_secret,
        app,
        Call::post("/x")
            .header("api-key", &app.owner)
            .id("wh_end_ev")
    );
    assert_eq!(inklink.status, 200, "{}", inklink.body);
    secrets.push(inklink.body["secret"].as_str().unwrap().to_owned());
    let account = face!(
        openformat::generate_webhook_secret,
        app,
        Call::post("/x").header("x-api-key", &app.owner)
    );
    assert_eq!(account.status, 200, "{}", account.body);
    secrets.push(account.body["webhook_secret"].as_str().unwrap().to_owned());
    // A delete.
    let deleted = invoke!(
        delete_endpoint,
        app,
        Call::delete("/x").bearer(&app.owner).id("ev-api")
    );
    assert_eq!(deleted.status, 204);
    // A rotation whose publish fails: it is kept, and the next sweep publishes it.
    app.create(json!({"id": "ev-flaky", "url": "https://example.com/hook"}))
        .await;
    flaky.failures.store(1, Ordering::SeqCst);
    let rotated = invoke!(
        rotate_secret,
        app,
        Call::post("/x").bearer(&app.owner).id("ev-flaky")
    );
    assert_eq!(
        rotated.status, 200,
        "a failed publish never fails the rotation"
    );
    let flaky_version = rotated.body["secret"]["version_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before_sweep = bus.drain().await;
    assert!(
        !before_sweep
            .iter()
            .any(|e| e["detail"]["version_id"] == flaky_version.as_str()),
        "the failed publish reached the queue"
    );
    // The sweep: one endpoint under a policy, due once the clock passes its period.
    app.create(json!({
        "id": "ev-schedule", "url": "https://example.com/hook",
        "rotation_policy": {"period_days": 1, "grace_period_seconds": 0},
    }))
    .await;
    app.clock.advance(Duration::days(2));
    let summary = app.sweep("run-events").await;
    assert_eq!(
        (summary.rotated, summary.events_republished),
        (1, 1),
        "{summary:?}"
    );
    assert_eq!(
        app.sweep("run-events").await.events_republished,
        0,
        "the outbox is emptied"
    );

    let mut received = before_sweep;
    received.extend(bus.drain().await);
    for message in &received {
        assert_eq!(message["source"], "webhook-secrets");
        let text = message.to_string();
        for secret in &secrets {
            let body = secret
                .trim_start_matches("whsec_")
                .trim_start_matches("whsk_");
            assert!(
                !text.contains(body),
                "a secret value reached an event: {text}"
            );
        }
    }
    let mut by_id: BTreeMap<String, &Value> = BTreeMap::new();
    for message in &received {
        by_id.insert(
            message["detail"]["event_id"].as_str().unwrap().to_owned(),
            message,
        );
    }
    let seen: Vec<(String, String, String, String)> = by_id
        .values()
        .map(|m| {
            let d = &m["detail"];
            (
                m["detail-type"].as_str().unwrap().to_owned(),
                d["endpoint_id"].as_str().unwrap().to_owned(),
                d["trigger"].as_str().unwrap().to_owned(),
                d["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        (
            "Webhook Endpoint Created",
            "ev-api",
            "api",
            "endpoint.created",
        ),
        ("Webhook Secret Rotated", "ev-api", "api", "secret.rotated"),
        (
            "Webhook Endpoint Created",
            "wh_end_ev",
            "api",
            "endpoint.created",
        ),
        (
            "Webhook Secret Rotated",
            "wh_end_ev",
            "contract",
            "secret.rotated",
        ),
        (
            "Webhook Endpoint Created",
            "_account-uuid",
            "contract",
            "endpoint.created",
        ),
        (
            "Webhook Endpoint Created",
            "ev-protocol",
            "api",
            "endpoint.created",
        ),
        (
            "Webhook Secret Rotated",
            "ev-protocol",
            "secretsmanager_rotation",
            "secret.rotated",
        ),
        (
            "Webhook Endpoint Deleted",
            "ev-api",
            "api",
            "endpoint.deleted",
        ),
        (
            "Webhook Endpoint Created",
            "ev-flaky",
            "api",
            "endpoint.created",
        ),
        (
            "Webhook Secret Rotated",
            "ev-flaky",
            "api",
            "secret.rotated",
        ),
        (
            "Webhook Endpoint Created",
            "ev-schedule",
            "api",
            "endpoint.created",
        ),
        (
            "Webhook Secret Rotated",
            "ev-schedule",
            "schedule",
            "secret.rotated",
        ),
    ];
    let mut expected: Vec<(String, String, String, String)> = expected
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect();
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    expected.sort();
    assert_eq!(seen_sorted, expected, "events after deduplication");

    // What a consumer needs is in the detail: tenant, versions, older secrets' expiries, the
    // request id, and the public key of an Ed25519 secret.
    let api_rotation = by_id
        .values()
        .find(|m| {
            m["detail"]["action"] == "secret.rotated" && m["detail"]["endpoint_id"] == "ev-api"
        })
        .unwrap();
    let detail = &api_rotation["detail"];
    assert_eq!(detail["tenant"], "acme");
    assert_eq!(detail["route"], "rotate-secret");
    assert_eq!(detail["format"], "ed25519");
    assert!(detail["public_key"].as_str().unwrap().starts_with("whpk_"));
    assert_eq!(
        detail["replaced_version_id"],
        created["secret"]["version_id"]
    );
    assert_eq!(
        detail["previous_secrets"][0]["version_id"],
        created["secret"]["version_id"]
    );
    assert!(detail["previous_secrets"][0]["expires_at"].is_string());
    assert!(!detail["request_id"].as_str().unwrap().is_empty());
    let protocol = by_id
        .values()
        .find(|m| m["detail"]["trigger"] == "secretsmanager_rotation")
        .unwrap();
    assert_eq!(protocol["detail"]["request_id"], "protocol-request");
    assert_eq!(protocol["detail"]["version_id"], token.as_str());
}

integration_tests::on_every_backend!(every_trigger_is_announced_once);
