//! The tenant-keyrings layout: the endpoints of one tenant share stored secrets, called
//! keyrings, named `{prefix}/{tenant}/_kr/{number}`. A keyring never holds two tenants.
//!
//! **Placement** is extendible hashing, per tenant. An endpoint's hash `h` (SHA-256 of its
//! id) places it in the keyring whose number is `h mod 2^depth`, where `depth` is that
//! keyring's own. A tenant starts with keyring 0 at depth 0, which holds everything, so a
//! tenant with a few endpoints costs one secret. A keyring that grows past [`SPLIT_BYTES`],
//! or whose writes run hot, splits: its depth grows by one and the endpoints whose next hash
//! bit is set move to a new sibling, number `number + 2^(old depth)`. Nothing else moves.
//!
//! **Finding an endpoint** needs no directory: from a keyring that does not own `h`, the
//! owner is down the sibling chain, at `h mod 2^(j+1)` for the lowest bit `j` of `h` that the
//! keyring's depth covers and its number does not. Each process remembers the depths it has
//! seen, so a warm lookup is one read; a stale memory costs a hop per split since. A sibling
//! that was never created holds nothing (a split that moved no endpoint creates none).
//!
//! **A split** is three writes, each safe to interrupt and finished by whoever comes next:
//! the keyring is swapped to its new depth with `splitting` set (the moving endpoints stay in
//! it, frozen: no one writes them there); the sibling is created from those frozen copies
//! (an existing sibling means another process created it, from the same frozen copies); the
//! keyring is swapped again without them. A writer that meets a splitting keyring finishes
//! the split before it writes; a reader whose sibling does not exist yet reads the frozen copy.
//!
//! **Writes** are compare-and-swaps of the keyring. A lost swap is retried from a fresh read,
//! by asking the change again what it makes of the endpoint's new state: a patch or a create
//! of another endpoint goes through, a rotation whose endpoint moved on is a conflict.
//!
//! **The version budget.** Secrets Manager keeps about 100 versions of a secret written within
//! 24 hours. A keyring records the time of each of its writes; it takes [`WRITE_BUDGET`] a
//! day and then answers 429 until the oldest turns 24 hours old, keeping the rest for the
//! versions that lost swaps leave behind. A keyring holding more than one endpoint that has
//! spent [`HOT_WRITES`] splits, so a busy tenant's writes spread over more keyrings.

use super::endpoints::replay_from;
use super::events::Announcer;
use super::{
    decode, EndpointPage, EndpointRepository, Rotation, StoredEndpoint, VaultError, Written,
};
use crate::domain::access::Writer;
use crate::domain::clock::Clock;
use crate::domain::endpoint::{
    Endpoint, EndpointPatch, EndpointRecord, NewEndpoint, SecretSource, SecretVersion,
    RECORD_SCHEMA,
};
use crate::domain::idempotency::Idempotency;
use crate::domain::ids::{EndpointId, TenantId, VersionId};
use crate::domain::rotation::rotated;
use crate::domain::secret::{SecretSpec, WebhookSecret};
use crate::events::{EventAction, EventSink, LogSink};
use crate::store::{
    decode_cursor, encode_cursor, ListFilter, SecretName, SecretStore, StoreError, StoredValue,
    MAX_VALUE_BYTES,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const KEYRING_SCHEMA: u32 = 1;
/// The tag every keyring carries, valued with its tenant: the sweep lists keyrings by it.
pub const KEYRING_TAG: &str = "webhook-secrets:keyring";
/// A keyring splits rather than grow past this: the rest of Secrets Manager's 65,536 bytes is
/// room for its largest record to grow on rotation before the next write splits it.
pub const SPLIT_BYTES: usize = 56 * 1024;
/// Writes a keyring takes in 24 hours. Secrets Manager keeps about 100 versions written in 24
/// hours; the other 30 are for versions the keyring cannot count (lost swaps leave one each).
pub const WRITE_BUDGET: usize = 70;
/// A keyring of more than one endpoint with this many writes in 24 hours is hot: it splits,
/// if at least [`WRITES_BETWEEN_SPLITS`] of them came after its last split.
pub const HOT_WRITES: usize = 35;
pub const WRITES_BETWEEN_SPLITS: usize = 4;
/// Depth at most: 2^24 keyrings per tenant is far past any tenant's need, and it keeps a
/// pathological run of equal hash bits from splitting forever.
const MAX_DEPTH: u8 = 24;
/// Compare-and-swap attempts of one write: each lost one means another write of the same
/// keyring went through.
pub const WRITE_ATTEMPTS: u32 = 16;
/// When to look whether a rival's version written under this write's token became current
/// (milliseconds, each after the last): a swap is one call after the put, so after these
/// its writer is taken to have stopped.
const TAKEN_TOKEN_CHECKS: [u64; 5] = [0, 20, 40, 80, 160];
const DAY_SECONDS: i64 = 86_400;
/// Tenants whose keyring depths a process remembers.
const REMEMBERED_TENANTS: usize = 10_000;

/// One keyring as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keyring {
    pub schema: u32,
    pub tenant: TenantId,
    pub number: u32,
    pub depth: u8,
    /// Mid-split: the endpoints of the newest sibling are still here, frozen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub splitting: bool,
    /// Unix seconds of this keyring's writes in the last 24 hours, oldest first.
    #[serde(default)]
    pub writes: Vec<i64>,
    /// Unix seconds of its last split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_at: Option<i64>,
    /// On a version staged by Secrets Manager's rotation protocol: the version it rotates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_of: Option<VersionId>,
    pub endpoints: BTreeMap<EndpointId, Entry>,
}

/// One endpoint in a keyring: its record, and the keyring version that last wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub version: VersionId,
    pub record: EndpointRecord,
    /// Set by a migration: the version of the endpoint's own secret this entry copies. Any
    /// later write of the entry drops it, so it also says the copy is untouched since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<VersionId>,
}

/// Where an endpoint's id hashes to.
pub fn endpoint_hash(id: &EndpointId) -> u64 {
    let digest = Sha256::digest(id.as_str().as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// The keyring number `h` falls in at `depth`.
pub fn bucket(h: u64, depth: u8) -> u32 {
    (h & ((1u64 << depth) - 1)) as u32
}

/// The depth a keyring was created at: the bits its number needs.
fn creation_depth(number: u32) -> u8 {
    (u32::BITS - number.leading_zeros()) as u8
}

impl Keyring {
    fn new(tenant: &TenantId, number: u32, depth: u8) -> Self {
        Self {
            schema: KEYRING_SCHEMA,
            tenant: tenant.clone(),
            number,
            depth,
            splitting: false,
            writes: Vec::new(),
            split_at: None,
            rotation_of: None,
            endpoints: BTreeMap::new(),
        }
    }

    pub fn owns(&self, h: u64) -> bool {
        bucket(h, self.depth) == self.number
    }

    /// The next keyring towards the owner of `h`, which this one does not own: the sibling
    /// split off at the lowest bit where `h` leaves this keyring's range.
    fn next_hop(&self, h: u64) -> u32 {
        let from = creation_depth(self.number);
        let range = (h >> from) & ((1u64 << (self.depth - from)) - 1);
        let j = from + range.trailing_zeros() as u8;
        bucket(h, j + 1)
    }

    /// The sibling the newest split created.
    fn newest_sibling(&self) -> u32 {
        self.number + (1u32 << (self.depth - 1))
    }

    fn forget_old_writes(&mut self, now: i64) {
        self.writes.retain(|at| at + DAY_SECONDS > now);
    }

    fn record_write(&mut self, now: i64) {
        self.forget_old_writes(now);
        self.writes.push(now);
        self.rotation_of = None;
    }

    /// This keyring as the pending version of a protocol rotation of `current` (read as
    /// `version`), within `current`'s write budget.
    pub(super) fn staged_rotation(
        mut self,
        current: &Keyring,
        version: &VersionId,
        now: DateTime<Utc>,
    ) -> Result<Self, VaultError> {
        if let Some(retry_after) = current.budget_wait(now.timestamp()) {
            return Err(VaultError::WriteBudget { retry_after });
        }
        self.record_write(now.timestamp());
        self.rotation_of = Some(version.clone());
        Ok(self)
    }

    fn is_hot(&self, now: i64) -> bool {
        let today = self.writes.iter().filter(|at| *at + DAY_SECONDS > now);
        let since_split = today
            .clone()
            .filter(|at| self.split_at.is_none_or(|split| **at >= split))
            .count();
        self.endpoints.len() > 1
            && today.count() >= HOT_WRITES
            && since_split >= WRITES_BETWEEN_SPLITS
            && self.depth < MAX_DEPTH
    }

    /// Seconds until the budget has room again, if it has none now.
    fn budget_wait(&self, now: i64) -> Option<u32> {
        let today: Vec<i64> = self
            .writes
            .iter()
            .copied()
            .filter(|at| at + DAY_SECONDS > now)
            .collect();
        if today.len() < WRITE_BUDGET {
            return None;
        }
        let frees_at = today[today.len() - WRITE_BUDGET] + DAY_SECONDS;
        Some(u32::try_from((frees_at - now).max(1)).unwrap_or(u32::MAX))
    }

    /// The endpoints this keyring owns (a splitting one still holds its sibling's).
    pub fn owned(&self) -> impl Iterator<Item = (&EndpointId, &Entry)> {
        self.endpoints
            .iter()
            .filter(|(id, _)| self.owns(endpoint_hash(id)))
    }
}

/// Where a lookup ended.
enum Owner {
    /// The keyring that owns the endpoint's hash, as read.
    Read {
        name: SecretName,
        keyring: Keyring,
        version: VersionId,
    },
    /// The owner was never created: nothing of this tenant hashes there yet.
    Missing {
        name: SecretName,
        number: u32,
        depth: u8,
    },
    /// The owner is the new sibling of a keyring mid-split, not created yet: the endpoint is
    /// frozen in that keyring.
    Frozen {
        name: SecretName,
        keyring: Keyring,
        version: VersionId,
    },
}

/// What a write makes of an endpoint, given its current entry.
pub(super) enum Change<T> {
    /// Write this record (or, with `None`, remove the endpoint) and answer `T`.
    Write(Option<Box<EndpointRecord>>, T),
    /// Write nothing and answer `T`.
    Done(T),
}

/// The tokens of successive attempts to write one keyring: each attempt from a version uses
/// that version's successor, and the next candidate only once the previous one was found
/// written by an attempt that never made it current (its writer stopped).
#[derive(Default)]
pub(super) struct Tokens {
    last: Option<(VersionId, u32)>,
    taken: bool,
}

impl Tokens {
    pub(super) fn next(&mut self, name: &SecretName, version: &VersionId) -> VersionId {
        let n = match &self.last {
            Some((last, n)) if last == version => n + u32::from(self.taken),
            _ => 0,
        };
        self.last = Some((version.clone(), n));
        self.taken = false;
        VersionId::successor(name.as_str(), version, n)
    }

    fn taken(&mut self) {
        self.taken = true;
    }
}

/// How a swap of a keyring ended.
enum Swap {
    Done,
    /// Another write made its version current first.
    Lost,
    /// The token was written by an attempt that never made it current.
    Taken,
}

/// The tenant-keyrings layout (module documentation).
pub struct TenantKeyrings {
    pub(super) store: Arc<dyn SecretStore>,
    pub(super) prefix: String,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) announcer: Announcer,
    /// Keyring depths seen, per tenant: where lookups start.
    depths: Mutex<HashMap<TenantId, BTreeMap<u32, u8>>>,
}

impl TenantKeyrings {
    pub fn new(
        store: Arc<dyn SecretStore>,
        prefix: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let prefix = prefix.into();
        Self {
            announcer: Announcer::new(
                Arc::new(LogSink),
                Arc::clone(&store),
                &prefix,
                Arc::clone(&clock),
            ),
            store,
            prefix,
            clock,
            depths: Mutex::new(HashMap::new()),
        }
    }

    /// The same layout on the same store, announcing to `sink`.
    pub fn announcing_to(&self, sink: Arc<dyn EventSink>) -> Self {
        Self {
            announcer: Announcer::new(
                sink,
                Arc::clone(&self.store),
                &self.prefix,
                Arc::clone(&self.clock),
            ),
            store: Arc::clone(&self.store),
            prefix: self.prefix.clone(),
            clock: Arc::clone(&self.clock),
            depths: Mutex::new(HashMap::new()),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn keyring_name(&self, tenant: &TenantId, number: u32) -> Result<SecretName, VaultError> {
        keyring_name(&self.prefix, tenant, number)
    }

    pub fn keyring_of(&self, name: &SecretName) -> Option<(TenantId, u32)> {
        keyring_of(&self.prefix, name)
    }

    fn tags(tenant: &TenantId) -> Vec<(String, String)> {
        vec![(KEYRING_TAG.to_owned(), tenant.to_string())]
    }

    pub(super) async fn read_keyring(
        &self,
        name: &SecretName,
    ) -> Result<(Keyring, VersionId), VaultError> {
        let stored = self.store.read_current(name).await?;
        let keyring: Keyring = decode(&stored)?;
        Ok((keyring, stored.version_id))
    }

    fn remember(&self, tenant: &TenantId, keyring: &Keyring) {
        let mut depths = crate::domain::lock(&self.depths);
        if depths.len() >= REMEMBERED_TENANTS && !depths.contains_key(tenant) {
            depths.clear();
        }
        depths
            .entry(tenant.clone())
            .or_default()
            .insert(keyring.number, keyring.depth);
    }

    /// The deepest keyring remembered whose range holds `h`: where a lookup starts.
    fn start(&self, tenant: &TenantId, h: u64) -> u32 {
        let depths = crate::domain::lock(&self.depths);
        depths
            .get(tenant)
            .and_then(|known| {
                known
                    .iter()
                    .filter(|(number, depth)| bucket(h, **depth) == **number)
                    .max_by_key(|(_, depth)| **depth)
                    .map(|(number, _)| *number)
            })
            .unwrap_or(0)
    }

    /// The keyring that holds endpoint `id` now (the one it would be created in, if none).
    pub async fn keyring_holding(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<SecretName, VaultError> {
        Ok(match self.locate(tenant, endpoint_hash(id)).await? {
            Owner::Read { name, .. } | Owner::Frozen { name, .. } | Owner::Missing { name, .. } => {
                name
            }
        })
    }

    /// Follows the sibling chain to the keyring that owns `h`.
    async fn locate(&self, tenant: &TenantId, h: u64) -> Result<Owner, VaultError> {
        let mut number = self.start(tenant, h);
        let mut parent: Option<(SecretName, Keyring, VersionId)> = None;
        for _ in 0..=2 * MAX_DEPTH {
            let name = self.keyring_name(tenant, number)?;
            match self.read_keyring(&name).await {
                Ok((keyring, version)) => {
                    if keyring.tenant != *tenant || keyring.number != number {
                        return Err(VaultError::Store(StoreError::Invalid(format!(
                            "{name} does not hold keyring {number} of tenant {tenant}"
                        ))));
                    }
                    self.remember(tenant, &keyring);
                    if keyring.owns(h) {
                        return Ok(Owner::Read {
                            name,
                            keyring,
                            version,
                        });
                    }
                    number = keyring.next_hop(h);
                    parent = Some((name, keyring, version));
                }
                Err(VaultError::Store(StoreError::NotFound)) => match parent {
                    Some((name, keyring, version))
                        if keyring.splitting && keyring.newest_sibling() == number =>
                    {
                        return Ok(Owner::Frozen {
                            name,
                            keyring,
                            version,
                        });
                    }
                    None if number != 0 => {
                        // A remembered start that does not exist: start again from the root.
                        crate::domain::lock(&self.depths).remove(tenant);
                        number = 0;
                    }
                    _ => {
                        return Ok(Owner::Missing {
                            name,
                            number,
                            depth: creation_depth(number),
                        })
                    }
                },
                Err(other) => return Err(other),
            }
        }
        Err(VaultError::Store(StoreError::Invalid(format!(
            "the keyrings of tenant {tenant} chain deeper than {MAX_DEPTH}"
        ))))
    }

    /// Writes the change `change` makes to endpoint `id`, as a compare-and-swap of its
    /// keyring, retried from a fresh read when another write of the keyring got there first.
    /// `change` sees the endpoint's current entry, the version the write will have and the
    /// time; it is asked again on every attempt.
    pub(super) async fn write_entry<T>(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        mut change: impl FnMut(Option<&Entry>, &VersionId, DateTime<Utc>) -> Result<Change<T>, VaultError>
            + Send,
    ) -> Result<T, VaultError>
    where
        T: Send,
    {
        let h = endpoint_hash(id);
        let mut tokens = Tokens::default();
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(jitter(attempt)).await;
            }
            let now = self.clock.now();
            let (name, keyring, version) = match self.locate(tenant, h).await? {
                Owner::Frozen {
                    name,
                    keyring,
                    version,
                } => {
                    self.finish_split(tenant, &name, keyring, &version, &mut tokens)
                        .await?;
                    continue;
                }
                Owner::Missing {
                    name,
                    number,
                    depth,
                } => {
                    let token = VersionId::stamped(now);
                    let (record, answer) = match change(None, &token, now)? {
                        Change::Done(answer) | Change::Write(None, answer) => return Ok(answer),
                        Change::Write(Some(record), answer) => (*record, answer),
                    };
                    let mut keyring = Keyring::new(tenant, number, depth);
                    keyring.endpoints.insert(
                        id.clone(),
                        Entry {
                            version: token.clone(),
                            record,
                            copied_from: None,
                        },
                    );
                    if self
                        .create_keyring(tenant, &name, &mut keyring, &token, now)
                        .await?
                    {
                        return Ok(answer);
                    }
                    continue;
                }
                Owner::Read {
                    name,
                    keyring,
                    version,
                } => (name, keyring, version),
            };
            if keyring.splitting {
                self.finish_split(tenant, &name, keyring, &version, &mut tokens)
                    .await?;
                continue;
            }
            let token = tokens.next(&name, &version);
            let (record, answer) = match change(keyring.endpoints.get(id), &token, now)? {
                Change::Done(answer) => return Ok(answer),
                Change::Write(record, answer) => (record, answer),
            };
            let mut next = keyring.clone();
            match record {
                Some(record) => {
                    next.endpoints.insert(
                        id.clone(),
                        Entry {
                            version: token.clone(),
                            record: *record,
                            copied_from: None,
                        },
                    );
                }
                None => {
                    next.endpoints.remove(id);
                }
            }
            if self
                .commit(
                    tenant,
                    &name,
                    &keyring,
                    &version,
                    next,
                    &mut tokens,
                    SPLIT_BYTES,
                )
                .await?
            {
                return Ok(answer);
            }
        }
        Err(VaultError::conflict())
    }

    /// Swaps `read` (current as `version`) for `next`, or splits `read` first when `next`
    /// would be too large or `read` runs hot. `Ok(false)`: nothing was written for the
    /// caller (a split happened, or another write won the swap); read again and retry.
    ///
    /// The version written is `tokens.next(name, version)`, the one `next` was built for:
    /// every write of a keyring from one version races for that one token, so only the first
    /// writer's version is ever written, and Secrets Manager's version budget pays for
    /// successful writes only. A write that would pass `split_bytes` splits first.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn commit(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        read: &Keyring,
        version: &VersionId,
        mut next: Keyring,
        tokens: &mut Tokens,
        split_bytes: usize,
    ) -> Result<bool, VaultError> {
        let token = &tokens.next(name, version);
        let now = self.clock.now().timestamp();
        if let Some(retry_after) = read.budget_wait(now) {
            return Err(VaultError::WriteBudget { retry_after });
        }
        next.record_write(now);
        let json = serde_json::to_string(&next).map_err(VaultError::Encode)?;
        let splittable = next.endpoints.len() > 1 && read.depth < MAX_DEPTH;
        if splittable && (json.len() > split_bytes || read.is_hot(now)) {
            self.split(tenant, name, read, version, tokens).await?;
            return Ok(false);
        }
        if json.len() > MAX_VALUE_BYTES {
            return Err(StoreError::TooLarge(json.len()).into());
        }
        match self
            .swap(name, version, token, &StoredValue::new(json)?)
            .await?
        {
            Swap::Done => {
                self.remember(tenant, &next);
                Ok(true)
            }
            Swap::Lost => Ok(false),
            Swap::Taken => {
                tokens.taken();
                Ok(false)
            }
        }
    }

    /// Replaces version `version` of keyring `name` with `value` as version `token` (its
    /// successor). A token already written is most often a rival's write from the same
    /// version, about to be made current: after a moment either it is, and this write lost, or
    /// it is not, and its writer stopped: the token is taken, and the next attempt uses the
    /// next candidate. A version whose writer stopped is never made current by another, so a
    /// write that answered an error never takes effect later.
    async fn swap(
        &self,
        name: &SecretName,
        version: &VersionId,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<Swap, VaultError> {
        match self
            .store
            .replace_current(name, version, token, value)
            .await
        {
            Ok(()) => Ok(Swap::Done),
            Err(StoreError::Conflict) => Ok(Swap::Lost),
            Err(StoreError::VersionExists) => {
                for wait in TAKEN_TOKEN_CHECKS {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    if self.store.stages(name).await?.current.as_ref() != Some(version) {
                        return Ok(Swap::Lost);
                    }
                }
                Ok(Swap::Taken)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Starts a split of `read` and finishes it; a lost swap leaves it to the next reader.
    async fn split(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        read: &Keyring,
        version: &VersionId,
        tokens: &mut Tokens,
    ) -> Result<(), VaultError> {
        let now = self.clock.now().timestamp();
        let mut next = read.clone();
        next.depth += 1;
        next.split_at = Some(now);
        let sibling = next.newest_sibling();
        next.splitting = next
            .endpoints
            .keys()
            .any(|id| bucket(endpoint_hash(id), next.depth) == sibling);
        next.record_write(now);
        let token = tokens.next(name, version);
        match self
            .swap(name, version, &token, &encode_keyring(&next)?)
            .await?
        {
            Swap::Done => {}
            Swap::Lost => return Ok(()),
            Swap::Taken => {
                tokens.taken();
                return Ok(());
            }
        }
        tracing::info!(%tenant, keyring = read.number, depth = next.depth, "keyring split");
        self.remember(tenant, &next);
        if next.splitting {
            self.finish_split(tenant, name, next, &token, tokens)
                .await?;
        }
        Ok(())
    }

    /// Creates the newest sibling of a splitting keyring from its frozen endpoints, then
    /// takes them out of the keyring. Safe to repeat, and to run from several processes.
    pub(super) async fn finish_split(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        keyring: Keyring,
        version: &VersionId,
        tokens: &mut Tokens,
    ) -> Result<(), VaultError> {
        let now = self.clock.now();
        let number = keyring.newest_sibling();
        let mut sibling = Keyring::new(tenant, number, keyring.depth);
        sibling.endpoints = keyring
            .endpoints
            .iter()
            .filter(|(id, _)| bucket(endpoint_hash(id), keyring.depth) == number)
            .map(|(id, entry)| (id.clone(), entry.clone()))
            .collect();
        sibling.record_write(now.timestamp());
        let sibling_name = self.keyring_name(tenant, number)?;
        match self
            .store
            .create(
                &sibling_name,
                &VersionId::stamped(now),
                &encode_keyring(&sibling)?,
                &Self::tags(tenant),
            )
            .await
        {
            // Another process created it, from the same frozen endpoints.
            Ok(()) | Err(StoreError::AlreadyExists) => {}
            Err(other) => return Err(other.into()),
        }
        let mut next = keyring;
        next.endpoints
            .retain(|id, _| bucket(endpoint_hash(id), next.depth) == next.number);
        next.splitting = false;
        next.record_write(now.timestamp());
        let token = tokens.next(name, version);
        // A lost swap: another process finished it, or wrote the keyring's own endpoints
        // meanwhile; the next read sees which.
        match self
            .swap(name, version, &token, &encode_keyring(&next)?)
            .await?
        {
            Swap::Done => self.remember(tenant, &next),
            Swap::Lost => {}
            Swap::Taken => tokens.taken(),
        }
        Ok(())
    }

    /// The endpoints `keyring` answers for: those it owns and, while it is mid-split, the
    /// frozen ones until their new sibling exists.
    async fn counted<'k>(
        &self,
        tenant: &TenantId,
        keyring: &'k Keyring,
    ) -> Result<impl Iterator<Item = (&'k EndpointId, &'k Entry)>, VaultError> {
        let frozen_count = keyring.splitting && {
            let sibling = self.keyring_name(tenant, keyring.newest_sibling())?;
            matches!(
                self.store.read_current(&sibling).await,
                Err(StoreError::NotFound)
            )
        };
        Ok(keyring
            .endpoints
            .iter()
            .filter(move |(id, _)| frozen_count || keyring.owns(endpoint_hash(id))))
    }

    /// Every endpoint of `tenant` once, with its entry, and the names of the tenant's
    /// keyrings: what a migration back to one secret per endpoint reads.
    pub async fn tenant_entries(
        &self,
        tenant: &TenantId,
    ) -> Result<(Vec<SecretName>, Vec<Entry>), VaultError> {
        let mut names = Vec::new();
        let mut entries = Vec::new();
        for (_, name) in self.tenant_keyrings(tenant).await? {
            let keyring = match self.read_keyring(&name).await {
                Ok((keyring, _)) => keyring,
                Err(VaultError::Store(StoreError::NotFound)) => continue,
                Err(other) => return Err(other),
            };
            entries.extend(
                self.counted(tenant, &keyring)
                    .await?
                    .map(|(_, entry)| entry.clone()),
            );
            names.push(name);
        }
        Ok((names, entries))
    }

    /// Creates keyring `name` as `keyring`, recording the write; `false` if another writer
    /// created it first.
    async fn create_keyring(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        keyring: &mut Keyring,
        token: &VersionId,
        now: DateTime<Utc>,
    ) -> Result<bool, VaultError> {
        keyring.record_write(now.timestamp());
        match self
            .store
            .create(name, token, &encode_keyring(keyring)?, &Self::tags(tenant))
            .await
        {
            Ok(()) => {
                self.remember(tenant, keyring);
                Ok(true)
            }
            Err(StoreError::AlreadyExists) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// Every keyring of `tenant`, by number.
    async fn tenant_keyrings(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(u32, SecretName)>, VaultError> {
        let prefix = format!("{}/{}/_kr/", self.prefix, tenant);
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list(ListFilter::prefix(&prefix), cursor.as_deref(), 100)
                .await?;
            names.extend(
                page.names()
                    .filter_map(|name| Some((self.keyring_of(name)?.1, name.clone()))),
            );
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        names.sort_by_key(|(number, _)| *number);
        Ok(names)
    }
}

/// What an [`TenantKeyrings::import`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Imported {
    /// Endpoints written into keyrings.
    pub added: usize,
    /// Endpoints already in a keyring, left as they were.
    pub present: usize,
    /// Keyring writes (creates and swaps) the import made, splits included.
    pub writes: usize,
}

impl TenantKeyrings {
    /// Endpoint `id`'s entry, if a keyring holds it.
    pub async fn entry(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Entry>, VaultError> {
        Ok(match self.locate(tenant, endpoint_hash(id)).await? {
            Owner::Read { keyring, .. } | Owner::Frozen { keyring, .. } => {
                keyring.endpoints.get(id).cloned()
            }
            Owner::Missing { .. } => None,
        })
    }

    /// Removes endpoint `id` from its keyring, if one holds it (one read when the tenant has
    /// no keyrings).
    pub async fn remove_entry(&self, tenant: &TenantId, id: &EndpointId) -> Result<(), VaultError> {
        self.write_entry(tenant, id, |current, _, _| {
            Ok(match current {
                Some(_) => Change::Write(None, ()),
                None => Change::Done(()),
            })
        })
        .await
    }

    /// Replaces an entry that is still the copy of version `stale` (nothing wrote it since)
    /// with `record`, a copy of version `from`; `false` if the entry is not that copy.
    pub async fn replace_copy(
        &self,
        record: EndpointRecord,
        from: &VersionId,
        stale: &VersionId,
    ) -> Result<bool, VaultError> {
        let (tenant, id) = (record.endpoint.tenant.clone(), record.endpoint.id.clone());
        let mut tokens = Tokens::default();
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(jitter(attempt)).await;
            }
            let (name, keyring, version) = match self.locate(&tenant, endpoint_hash(&id)).await? {
                Owner::Read {
                    name,
                    keyring,
                    version,
                } if !keyring.splitting => (name, keyring, version),
                Owner::Read {
                    name,
                    keyring,
                    version,
                }
                | Owner::Frozen {
                    name,
                    keyring,
                    version,
                } => {
                    self.finish_split(&tenant, &name, keyring, &version, &mut tokens)
                        .await?;
                    continue;
                }
                Owner::Missing { .. } => return Ok(false),
            };
            if keyring
                .endpoints
                .get(&id)
                .and_then(|e| e.copied_from.as_ref())
                != Some(stale)
            {
                return Ok(false);
            }
            let mut next = keyring.clone();
            next.endpoints.insert(
                id.clone(),
                Entry {
                    version: tokens.next(&name, &version),
                    record: record.clone(),
                    copied_from: Some(from.clone()),
                },
            );
            if self
                .commit(
                    &tenant,
                    &name,
                    &keyring,
                    &version,
                    next,
                    &mut tokens,
                    SPLIT_BYTES,
                )
                .await?
            {
                return Ok(true);
            }
        }
        Err(VaultError::conflict())
    }

    /// Adds `records`, endpoints of `tenant` kept elsewhere (a migration brings them), to the
    /// tenant's keyrings many at a time: each keyring takes as many as keep it under
    /// [`SPLIT_BYTES`] in one write, and splits when full. An endpoint already in a keyring
    /// is left as it is, so a re-run resumes. The writes are the layout's own (compare-and-swap,
    /// splits), so live traffic on the same keyrings stays safe.
    pub async fn import(
        &self,
        tenant: &TenantId,
        records: Vec<EndpointRecord>,
    ) -> Result<Imported, VaultError> {
        self.import_copies(tenant, records.into_iter().map(|r| (r, None)).collect())
            .await
    }

    /// [`Self::import`] of records each copied from a version of another secret, which its
    /// entry remembers (a migration's copies).
    pub async fn import_copies(
        &self,
        tenant: &TenantId,
        records: Vec<(EndpointRecord, Option<VersionId>)>,
    ) -> Result<Imported, VaultError> {
        let mut pending: BTreeMap<EndpointId, (EndpointRecord, Option<VersionId>)> = records
            .into_iter()
            .filter(|(record, _)| record.endpoint.tenant == *tenant)
            .map(|copy| (copy.0.endpoint.id.clone(), copy))
            .collect();
        let mut report = Imported::default();
        let mut tokens = Tokens::default();
        let mut stalls = 0;
        while let Some(first) = pending.keys().next().cloned() {
            if stalls > 4 * WRITE_ATTEMPTS {
                return Err(VaultError::conflict());
            }
            let now = self.clock.now();
            match self.locate(tenant, endpoint_hash(&first)).await? {
                Owner::Frozen {
                    name,
                    keyring,
                    version,
                }
                | Owner::Read {
                    name,
                    keyring,
                    version,
                } if keyring.splitting => {
                    self.finish_split(tenant, &name, keyring, &version, &mut tokens)
                        .await?;
                    stalls += 1;
                }
                // A lookup reports a frozen owner only inside a splitting keyring.
                Owner::Frozen { name, .. } => {
                    return Err(VaultError::Store(StoreError::Invalid(format!(
                        "{name} holds frozen endpoints without splitting"
                    ))))
                }
                Owner::Missing {
                    name,
                    number,
                    depth,
                } => {
                    let token = VersionId::stamped(now);
                    let mut keyring = Keyring::new(tenant, number, depth);
                    let taken = fill(&mut keyring, &pending, &token, |h| {
                        bucket(h, depth) == number
                    })?;
                    if self
                        .create_keyring(tenant, &name, &mut keyring, &token, now)
                        .await?
                    {
                        report.writes += 1;
                        report.added += taken.len();
                        for id in taken {
                            pending.remove(&id);
                        }
                    } else {
                        stalls += 1;
                    }
                }
                Owner::Read {
                    name,
                    keyring,
                    version,
                } => {
                    let present: Vec<EndpointId> = pending
                        .keys()
                        .filter(|id| keyring.endpoints.contains_key(*id))
                        .filter(|id| keyring.owns(endpoint_hash(id)))
                        .cloned()
                        .collect();
                    report.present += present.len();
                    for id in &present {
                        pending.remove(id);
                    }
                    if !present.is_empty() {
                        continue;
                    }
                    let token = tokens.next(&name, &version);
                    let mut next = keyring.clone();
                    let taken = fill(&mut next, &pending, &token, |h| keyring.owns(h))?;
                    if taken.is_empty() {
                        // Full: split it, and fill the halves on the next turns.
                        if keyring.endpoints.len() < 2 || keyring.depth >= MAX_DEPTH {
                            return Err(StoreError::TooLarge(MAX_VALUE_BYTES + 1).into());
                        }
                        self.split(tenant, &name, &keyring, &version, &mut tokens)
                            .await?;
                        report.writes += 3;
                        continue;
                    }
                    if self
                        .commit(
                            tenant,
                            &name,
                            &keyring,
                            &version,
                            next,
                            &mut tokens,
                            SPLIT_BYTES,
                        )
                        .await?
                    {
                        report.writes += 1;
                        report.added += taken.len();
                        for id in taken {
                            pending.remove(&id);
                        }
                    } else {
                        stalls += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}

/// Adds to `keyring` as many of the `pending` records its range holds (`owns`) as keep its
/// value under [`SPLIT_BYTES`], as written by version `token`; returns their ids.
fn fill(
    keyring: &mut Keyring,
    pending: &BTreeMap<EndpointId, (EndpointRecord, Option<VersionId>)>,
    token: &VersionId,
    owns: impl Fn(u64) -> bool,
) -> Result<Vec<EndpointId>, VaultError> {
    // Room for the write times the keyring will record.
    let mut bytes = serde_json::to_string(keyring)
        .map_err(VaultError::Encode)?
        .len()
        + 12 * (WRITE_BUDGET - keyring.writes.len().min(WRITE_BUDGET));
    let mut taken = Vec::new();
    for (id, (record, copied_from)) in pending {
        if !owns(endpoint_hash(id)) || keyring.endpoints.contains_key(id) {
            continue;
        }
        let entry = Entry {
            version: token.clone(),
            record: record.clone(),
            copied_from: copied_from.clone(),
        };
        let size = serde_json::to_string(&entry)
            .map_err(VaultError::Encode)?
            .len()
            + id.as_str().len()
            + 4;
        if bytes + size > SPLIT_BYTES {
            // A record alone larger than a keyring's split size still gets a keyring.
            if keyring.endpoints.is_empty() && bytes + size <= MAX_VALUE_BYTES {
                keyring.endpoints.insert(id.clone(), entry);
                taken.push(id.clone());
            }
            break;
        }
        bytes += size;
        keyring.endpoints.insert(id.clone(), entry);
        taken.push(id.clone());
    }
    Ok(taken)
}

/// The secret that holds keyring `number` of `tenant`.
pub fn keyring_name(
    prefix: &str,
    tenant: &TenantId,
    number: u32,
) -> Result<SecretName, VaultError> {
    Ok(SecretName::parse(&format!(
        "{prefix}/{tenant}/_kr/{number}"
    ))?)
}

/// The tenant and number of a keyring's secret name; `None` for any other name.
pub fn keyring_of(prefix: &str, name: &SecretName) -> Option<(TenantId, u32)> {
    let rest = name.as_str().strip_prefix(prefix)?.strip_prefix('/')?;
    let (tenant, digits) = rest.split_once("/_kr/")?;
    let number: u32 = digits.parse().ok()?;
    // One spelling per number: `007` or `+7` is not a keyring this product wrote.
    (number.to_string() == digits).then_some(())?;
    Some((TenantId::parse(tenant).ok()?, number))
}

pub(super) fn encode_keyring(keyring: &Keyring) -> Result<StoredValue, VaultError> {
    let json = serde_json::to_string(keyring).map_err(VaultError::Encode)?;
    Ok(StoredValue::new(json)?)
}

/// A short random wait before retrying a lost swap, so racing writers fall out of step.
fn jitter(attempt: u32) -> Duration {
    let mut random = [0u8; 2];
    let spread = match getrandom::fill(&mut random) {
        Ok(()) => u64::from(u16::from_le_bytes(random)) % 20,
        Err(_) => 10,
    };
    Duration::from_millis(u64::from(attempt.min(8)) * 5 + spread)
}

#[async_trait]
impl EndpointRepository for TenantKeyrings {
    async fn create_endpoint(
        &self,
        writer: &Writer,
        new: NewEndpoint,
        idempotency: Option<&Idempotency>,
    ) -> Result<Written, VaultError> {
        let tenant = writer.tenant();
        let id = match (new.id.clone(), idempotency) {
            (Some(id), _) => id,
            (None, Some(idempotency)) => idempotency.endpoint_id(tenant),
            (None, None) => EndpointId::generate(),
        };
        let value = match &new.secret {
            SecretSource::Supplied(secret) => secret.clone(),
            SecretSource::Generate(spec) => WebhookSecret::generate(*spec)?,
            SecretSource::LikeCurrent => WebhookSecret::generate(SecretSpec::default())?,
        };
        let build = |token: &VersionId, now: DateTime<Utc>| EndpointRecord {
            schema: RECORD_SCHEMA,
            endpoint: Endpoint {
                id: id.clone(),
                tenant: tenant.clone(),
                url: new.url.clone(),
                name: new.name.clone(),
                description: new.description.clone(),
                topics: new.topics.clone(),
                created_at: now,
                updated_at: now,
                status: new.status,
                request_config: new.request_config.clone(),
                version: new.version.clone(),
                rotation_policy: new.rotation_policy,
            },
            secret: SecretVersion {
                version_id: token.clone(),
                value: value.clone(),
                created_at: now,
                replaces: None,
                expires_at: None,
            },
            previous_secrets: Vec::new(),
            keyed_writes: idempotency
                .map(|i| i.keyed_write(token, now))
                .into_iter()
                .collect(),
        };
        let outcome = self
            .write_entry(tenant, &id, |current, token, now| match current {
                None => {
                    let record = build(token, now);
                    Ok(Change::Write(Some(Box::new(record.clone())), Ok(record)))
                }
                Some(entry) => Ok(Change::Done(Err(StoredEndpoint {
                    record: entry.record.clone(),
                    record_version: entry.version.clone(),
                }))),
            })
            .await?;
        let written = match outcome {
            Ok(record) => Written {
                record,
                replayed: false,
            },
            // The endpoint exists: a replay if an earlier attempt of this request made it.
            Err(existing) => match idempotency {
                Some(idempotency) => {
                    replay_from(self, tenant, &id, &existing, idempotency, self.clock.now())
                        .await?
                        .ok_or(VaultError::Store(StoreError::AlreadyExists))?
                }
                None => return Err(StoreError::AlreadyExists.into()),
            },
        };
        self.announcer
            .announce(EventAction::EndpointCreated, &written.record)
            .await;
        Ok(written)
    }

    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<StoredEndpoint, VaultError> {
        let keyring = match self.locate(tenant, endpoint_hash(id)).await? {
            Owner::Read { keyring, .. } | Owner::Frozen { keyring, .. } => keyring,
            Owner::Missing { .. } => return Err(VaultError::not_found()),
        };
        let entry = keyring
            .endpoints
            .get(id)
            .filter(|entry| {
                entry.record.endpoint.tenant == *tenant && entry.record.endpoint.id == *id
            })
            .ok_or_else(VaultError::not_found)?;
        Ok(StoredEndpoint {
            record: entry.record.clone(),
            record_version: entry.version.clone(),
        })
    }

    /// The record as keyring version `version` held it: in the keyring that owns the
    /// endpoint now, or, if it moved there by a split since, in the ones it came from.
    async fn endpoint_version(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        version: &VersionId,
    ) -> Result<EndpointRecord, VaultError> {
        let h = endpoint_hash(id);
        let owner = match self.locate(tenant, h).await? {
            Owner::Read { keyring, .. } | Owner::Frozen { keyring, .. } => keyring.number,
            Owner::Missing { number, .. } => number,
        };
        let mut number = owner;
        loop {
            let name = self.keyring_name(tenant, number)?;
            match self.store.read_version(&name, version).await {
                Ok(stored) => {
                    let keyring: Keyring = decode(&stored)?;
                    return keyring
                        .endpoints
                        .get(id)
                        .map(|entry| entry.record.clone())
                        .ok_or_else(VaultError::not_found);
                }
                Err(StoreError::NotFound) if number != 0 => {
                    // The parent it was split from: the number without its top bit.
                    number &= !(1u32 << (creation_depth(number) - 1));
                }
                Err(other) => return Err(other.into()),
            }
        }
    }

    /// A tenant's endpoints, keyring by keyring in number order and by id within each; the
    /// cursor is the last keyring and id a page returned.
    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EndpointPage, VaultError> {
        let scope = format!("{}/{}/_kr/", self.prefix, tenant);
        let filter = ListFilter::prefix(&scope);
        let after: Option<(u32, EndpointId)> = match cursor {
            None => None,
            Some(cursor) => {
                let position = decode_cursor(filter, cursor)?;
                let parsed = position.split_once('/').and_then(|(number, id)| {
                    Some((number.parse().ok()?, EndpointId::parse(id).ok()?))
                });
                Some(parsed.ok_or(StoreError::InvalidCursor)?)
            }
        };
        let limit = limit.max(1);
        let mut endpoints: Vec<(u32, EndpointRecord)> = Vec::new();
        let mut more = false;
        for (number, name) in self.tenant_keyrings(tenant).await? {
            if after.as_ref().is_some_and(|(last, _)| number < *last) {
                continue;
            }
            let keyring = match self.read_keyring(&name).await {
                Ok((keyring, _)) => keyring,
                Err(VaultError::Store(StoreError::NotFound)) => continue,
                Err(other) => return Err(other),
            };
            for (id, entry) in self.counted(tenant, &keyring).await? {
                if after
                    .as_ref()
                    .is_some_and(|(last, last_id)| number == *last && id <= last_id)
                {
                    continue;
                }
                if endpoints.len() == limit {
                    more = true;
                    break;
                }
                endpoints.push((number, entry.record.clone()));
            }
            if more {
                break;
            }
        }
        let next_cursor = more
            .then(|| endpoints.last())
            .flatten()
            .map(|(number, record)| {
                encode_cursor(filter, &format!("{number}/{}", record.endpoint.id))
            });
        Ok(EndpointPage {
            endpoints: endpoints.into_iter().map(|(_, record)| record).collect(),
            next_cursor,
        })
    }

    async fn delete_endpoint(
        &self,
        writer: &Writer,
        id: &EndpointId,
    ) -> Result<EndpointRecord, VaultError> {
        let tenant = writer.tenant();
        let deleted = self
            .write_entry(tenant, id, |current, _, _| match current {
                Some(entry) => Ok(Change::Write(None, entry.record.clone())),
                None => Err(VaultError::not_found()),
            })
            .await?;
        self.announcer
            .announce(EventAction::EndpointDeleted, &deleted)
            .await;
        Ok(deleted)
    }

    /// Rotates as a compare-and-swap on the endpoint's entry as read: a lost swap of the
    /// keyring is retried if the entry did not change, and is a conflict if it did (another
    /// rotation or update of this endpoint won), so the loser's secret is never current.
    async fn rotate_secret(
        &self,
        writer: &Writer,
        id: &EndpointId,
        rotation: Rotation<'_>,
    ) -> Result<Written, VaultError> {
        let written: Result<Written, VaultError> = async {
            let tenant = writer.tenant();
            let Rotation {
                source,
                grace,
                idempotency,
                invalidate_older,
            } = rotation;
            let current = self.get_endpoint(tenant, id).await?;
            if let Some(idempotency) = idempotency {
                if let Some(replayed) =
                    replay_from(self, tenant, id, &current, idempotency, self.clock.now()).await?
                {
                    return Ok(replayed);
                }
            }
            let read_version = current.record_version.clone();
            let outcome = self
                .write_entry(tenant, id, |entry, token, now| {
                    let Some(entry) = entry.filter(|entry| entry.version == read_version) else {
                        return Ok(Change::Done(None));
                    };
                    let mut record = rotated(
                        entry.record.clone(),
                        source.clone(),
                        grace,
                        invalidate_older,
                        token.clone(),
                        now,
                    )?;
                    record
                        .remember_keyed_write(now, idempotency.map(|i| i.keyed_write(token, now)));
                    Ok(Change::Write(Some(Box::new(record.clone())), Some(record)))
                })
                .await;
            match outcome {
                Ok(Some(record)) => Ok(Written {
                    record,
                    replayed: false,
                }),
                // The endpoint changed (or went) since it was read: a retry of an earlier
                // attempt that took effect is a replay; anything else lost the race.
                Ok(None) | Err(VaultError::Store(StoreError::Conflict)) => match idempotency {
                    Some(idempotency) => {
                        let current = self.get_endpoint(tenant, id).await?;
                        replay_from(self, tenant, id, &current, idempotency, self.clock.now())
                            .await?
                            .ok_or_else(VaultError::conflict)
                    }
                    None => Err(VaultError::conflict()),
                },
                Err(other) => Err(other),
            }
        }
        .await;
        let written = written?;
        self.announcer
            .announce(EventAction::SecretRotated, &written.record)
            .await;
        Ok(written)
    }

    async fn update_endpoint(
        &self,
        writer: &Writer,
        id: &EndpointId,
        patch: EndpointPatch,
    ) -> Result<EndpointRecord, VaultError> {
        let tenant = writer.tenant();
        self.write_entry(tenant, id, |current, _, now| {
            let Some(entry) = current else {
                return Err(VaultError::not_found());
            };
            let mut record = entry.record.clone();
            let mut endpoint = record.endpoint.clone();
            if !patch.clone().apply(&mut endpoint) {
                return Ok(Change::Done(record));
            }
            endpoint.updated_at = now;
            record.endpoint = endpoint;
            record.previous_secrets.retain(|old| old.is_valid_at(now));
            record.remember_keyed_write(now, None);
            Ok(Change::Write(Some(Box::new(record.clone())), record))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sibling_chain_leads_to_the_owner() {
        // Root split to depth 3; keyring 1 to depth 2 (sibling 3); keyring 2 never split.
        let mut root = Keyring::new(&TenantId::parse("acme").unwrap(), 0, 3);
        let mut one = Keyring::new(&root.tenant, 1, 2);
        for h in 0..64u64 {
            if root.owns(h) {
                assert_eq!(h % 8, 0);
                continue;
            }
            // From the root, the first hop is the sibling at h's lowest set bit.
            let hop = root.next_hop(h);
            assert_eq!(hop, bucket(h, h.trailing_zeros() as u8 + 1), "h={h}");
            if hop == 1 && !one.owns(h) {
                assert_eq!(one.next_hop(h), 3, "h={h}");
            }
        }
        root.depth = 1;
        one.depth = 1;
        assert!(one.owns(5) && root.owns(6));
    }

    #[test]
    fn the_budget_refuses_the_write_past_it_and_says_when_room_returns() {
        let mut keyring = Keyring::new(&TenantId::parse("acme").unwrap(), 0, 0);
        let start = 1_000_000;
        for n in 0..WRITE_BUDGET as i64 {
            assert_eq!(keyring.budget_wait(start + n), None);
            keyring.record_write(start + n);
        }
        assert_eq!(
            keyring.budget_wait(start + 100),
            Some((DAY_SECONDS - 100) as u32)
        );
        // A day after the first write, its slot is free again.
        assert_eq!(keyring.budget_wait(start + DAY_SECONDS), None);
    }

    #[test]
    fn keyring_names_round_trip_and_nothing_else_parses() {
        let acme = TenantId::parse("acme").unwrap();
        let name = keyring_name("p", &acme, 12).unwrap();
        assert_eq!(name.as_str(), "p/acme/_kr/12");
        assert_eq!(keyring_of("p", &name), Some((acme, 12)));
        for other in [
            "p/acme/_kr/012",
            "p/acme/_kr/x",
            "p/acme/orders",
            "q/acme/_kr/1",
        ] {
            assert_eq!(
                keyring_of("p", &SecretName::parse(other).unwrap()),
                None,
                "{other}"
            );
        }
    }
}
