//! Announcing the vault's writes: every create, rotation and delete publishes its event after
//! the write took effect and before the caller is answered.
//!
//! An event is never lost to a failed publish. One that cannot be published (the bus throttles,
//! is down, or times out) is kept as a record in the vault's outbox (`_outbox/{event_id}`, one
//! write, only on failure), and every sweep run publishes what the outbox holds and then deletes
//! it. A request replayed under its `Idempotency-Key` publishes its event again, with the same
//! id, which covers a process that died between its write and its publish. So an event may
//! arrive more than once, never with a different id: consumers deduplicate on `event_id`.

use super::records::Records;
use super::VaultError;
use crate::domain::clock::Clock;
use crate::domain::endpoint::EndpointRecord;
use crate::events::{EventAction, EventSink, Origin, SecretEvent};
use crate::store::{SecretStore, StoreError};
use serde::Serialize;
use std::sync::Arc;

const OUTBOX: &str = "outbox";
/// EventBridge takes at most 10 entries per `PutEvents`.
const BATCH: usize = 10;

/// Publishes the vault's events to a sink, with the outbox for those it cannot.
pub struct Announcer {
    sink: Arc<dyn EventSink>,
    outbox: Records,
    clock: Arc<dyn Clock>,
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxSummary {
    pub republished: usize,
    /// Still in the outbox: the bus failed again; the next run tries again.
    pub left: usize,
}

impl Announcer {
    /// Events to `sink`; the outbox in `store` under `prefix`.
    pub fn new(
        sink: Arc<dyn EventSink>,
        store: Arc<dyn SecretStore>,
        prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            sink,
            outbox: Records::new(store, prefix),
            clock,
        }
    }

    /// Publishes the event of a write that left `record` (for a delete, the record deleted);
    /// on failure keeps it in the outbox. Never fails the write: it already took effect.
    pub async fn announce(&self, action: EventAction, record: &EndpointRecord) {
        let event = SecretEvent::describe(action, record, &Origin::current(), self.clock.now());
        let Err(publish) = self.sink.publish(std::slice::from_ref(&event)).await else {
            return;
        };
        let path = format!("{OUTBOX}/{}", event.event_id);
        match self.outbox.create(&path, &event, &[]).await {
            Ok(()) | Err(VaultError::Store(StoreError::AlreadyExists)) => {
                tracing::warn!(
                    event_id = %event.event_id,
                    error = %publish,
                    "event not published; kept in the outbox for the next sweep"
                );
            }
            Err(kept) => {
                // Both the bus and the vault failed. The event's whole detail goes to the log
                // (it holds no secret).
                let detail = serde_json::to_string(&event).unwrap_or_default();
                tracing::error!(
                    event_id = %event.event_id,
                    error = %publish,
                    outbox_error = %kept,
                    %detail,
                    "event lost: not published and not kept in the outbox"
                );
            }
        }
    }

    /// Publishes every event in the outbox, ten at a time, deleting each batch once published.
    pub async fn republish_outbox(&self) -> Result<OutboxSummary, VaultError> {
        let events: Vec<SecretEvent> = self.outbox.list(OUTBOX).await?;
        let mut summary = OutboxSummary::default();
        for batch in events.chunks(BATCH) {
            if let Err(err) = self.sink.publish(batch).await {
                tracing::warn!(error = %err, events = batch.len(), "outbox events not published; kept for the next run");
                summary.left += batch.len();
                continue;
            }
            for event in batch {
                self.outbox
                    .delete(&format!("{OUTBOX}/{}", event.event_id))
                    .await?;
            }
            summary.republished += batch.len();
        }
        Ok(summary)
    }
}
