//! Events to an EventBridge bus with `PutEvents`.

use super::{EventSink, PublishError, SecretEvent, EVENT_SOURCE};
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use std::sync::OnceLock;
use std::time::Duration;

/// Publishes to one bus (a name or an ARN). The caller is waiting for its answer, so a publish
/// gives up after 3 attempts and 3 seconds; what fails goes to the outbox.
pub struct EventBridgeSink {
    /// The function's AWS configuration, shared with its other clients.
    config: SdkConfig,
    /// Built on the first publish: most functions never write, and their cold start should not
    /// pay for a client they will not use.
    client: OnceLock<Client>,
    bus: String,
}

impl EventBridgeSink {
    /// A sink whose client shares `config` (credentials, region, `AWS_ENDPOINT_URL`, the HTTP
    /// client) with the function's other clients.
    pub fn from_sdk_config(config: &SdkConfig, bus: impl Into<String>) -> Self {
        Self {
            config: config.clone(),
            client: OnceLock::new(),
            bus: bus.into(),
        }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| {
            let config = aws_sdk_eventbridge::config::Builder::from(&self.config)
                .retry_config(RetryConfig::standard().with_max_attempts(3))
                .timeout_config(
                    TimeoutConfig::builder()
                        .operation_attempt_timeout(Duration::from_secs(1))
                        .operation_timeout(Duration::from_secs(3))
                        .build(),
                )
                .build();
            Client::from_conf(config)
        })
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn publish(&self, events: &[SecretEvent]) -> Result<(), PublishError> {
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            entries.push(
                PutEventsRequestEntry::builder()
                    .source(EVENT_SOURCE)
                    .detail_type(event.action.detail_type())
                    .detail(serde_json::to_string(event)?)
                    .event_bus_name(&self.bus)
                    .build(),
            );
        }
        let answer = self
            .client()
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| {
                PublishError::Unavailable(
                    aws_sdk_eventbridge::error::DisplayErrorContext(err).to_string(),
                )
            })?;
        let failed = usize::try_from(answer.failed_entry_count()).unwrap_or(usize::MAX);
        if failed == 0 {
            return Ok(());
        }
        let reason = answer
            .entries()
            .iter()
            .find_map(|entry| {
                entry
                    .error_code()
                    .map(|code| format!("{code}: {}", entry.error_message().unwrap_or("")))
            })
            .unwrap_or_default();
        Err(PublishError::Rejected { failed, reason })
    }
}
