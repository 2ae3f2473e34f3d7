//! The embedded store: SQLite on local disk, for development with no AWS account.
//!
//! Under `cargo lambda watch` every function is its own process, so the file is shared: WAL
//! journaling lets readers and a writer run at once, every write takes the database lock up
//! front (`BEGIN IMMEDIATE`) so a compare-and-swap reads and writes under one lock, and a busy
//! timeout makes a second writer wait instead of failing.

use super::{
    decode_cursor, encode_cursor, ListFilter, ListPage, ListedSecret, SecretName, SecretStore,
    StoreError, StoredValue, StoredVersion, VersionStages, VERSIONS_PER_DAY,
};
use crate::domain::clock::Clock;
use crate::domain::ids::VersionId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Secrets Manager keeps at most about 100 versions of a secret and drops the oldest unlabelled
/// ones; the embedded store does the same so both hold the same history.
const MAX_VERSIONS: i64 = 100;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS secrets (
    name             TEXT PRIMARY KEY,
    created_at       TEXT NOT NULL,
    last_changed_at  TEXT NOT NULL,
    current_version  TEXT NOT NULL,
    previous_version TEXT,
    pending_version  TEXT,
    tags             TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    name       TEXT NOT NULL,
    version_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, version_id)
);
CREATE INDEX IF NOT EXISTS versions_by_seq ON versions (name, seq);
";

pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database at `path` and its parent directory.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_error)?;
        // FULL: a rotation reported as done survives a crash of the machine, not only of the
        // process.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(sqlite_error)?;
        conn.execute_batch(SCHEMA).map_err(sqlite_error)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            clock,
        })
    }

    async fn with_conn<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, DateTime<Utc>) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let now = self.clock.now();
        tokio::task::spawn_blocking(move || {
            let mut conn = crate::domain::lock(&conn);
            work(&mut conn, now)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("embedded store task failed: {e}")))?
    }
}

fn sqlite_error(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {err}"))
}

fn parse_version(raw: String) -> Result<VersionId, StoreError> {
    VersionId::parse(&raw).map_err(|e| StoreError::Unavailable(format!("corrupt version id: {e}")))
}

fn read_value(raw: String) -> Result<StoredValue, StoreError> {
    StoredValue::new(raw)
}

fn version_value(
    conn: &Connection,
    name: &str,
    version: &str,
) -> Result<Option<String>, StoreError> {
    conn.query_row(
        "SELECT value FROM versions WHERE name = ?1 AND version_id = ?2",
        params![name, version],
        |row| row.get(0),
    )
    .optional()
    .map_err(sqlite_error)
}

/// Refuses a new version past Secrets Manager's version quota, as `PutSecretValue` does with
/// `LimitExceededException`: it never removes a version less than 24 hours old, so a secret
/// can take at most [`VERSIONS_PER_DAY`] new versions in any 24 hours.
fn check_version_quota(conn: &Connection, name: &str, now: &str) -> Result<(), StoreError> {
    let Ok(now) = DateTime::parse_from_rfc3339(now) else {
        return Ok(());
    };
    let horizon = now - chrono::Duration::hours(24);
    let mut statement = conn
        .prepare("SELECT created_at FROM versions WHERE name = ?1")
        .map_err(sqlite_error)?;
    let recent = statement
        .query_map([name], |row| row.get::<_, String>(0))
        .map_err(sqlite_error)?
        .filter_map(Result::ok)
        .filter_map(|at| DateTime::parse_from_rfc3339(&at).ok())
        .filter(|at| *at > horizon)
        .count();
    if recent >= VERSIONS_PER_DAY {
        return Err(StoreError::VersionQuota);
    }
    Ok(())
}

fn insert_version(
    conn: &Connection,
    name: &str,
    token: &str,
    value: &str,
    now: &str,
) -> Result<(), StoreError> {
    check_version_quota(conn, name, now)?;
    conn.execute(
        "INSERT INTO versions (name, version_id, seq, value, created_at)
         VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM versions WHERE name = ?1), ?3, ?4)",
        params![name, token, value, now],
    )
    .map_err(sqlite_error)?;
    Ok(())
}

fn current_version(conn: &Connection, name: &str) -> Result<String, StoreError> {
    conn.query_row(
        "SELECT current_version FROM secrets WHERE name = ?1",
        [name],
        |row| row.get(0),
    )
    .optional()
    .map_err(sqlite_error)?
    .ok_or(StoreError::NotFound)
}

/// Moves the current label to `token` (the old current becomes previous, as on Secrets
/// Manager), takes the pending label off it, and drops the oldest unlabelled versions.
fn make_current(conn: &Connection, name: &str, token: &str, now: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE secrets SET previous_version = current_version, current_version = ?2,
                pending_version = CASE WHEN pending_version = ?2 THEN NULL ELSE pending_version END,
                last_changed_at = ?3
         WHERE name = ?1",
        params![name, token, now],
    )
    .map_err(sqlite_error)?;
    conn.execute(
        "DELETE FROM versions WHERE name = ?1
           AND version_id NOT IN (SELECT current_version FROM secrets WHERE name = ?1)
           AND version_id NOT IN (SELECT COALESCE(previous_version, '') FROM secrets WHERE name = ?1)
           AND version_id NOT IN (SELECT COALESCE(pending_version, '') FROM secrets WHERE name = ?1)
           AND seq <= (SELECT MAX(seq) FROM versions WHERE name = ?1) - ?2",
        params![name, MAX_VERSIONS],
    )
    .map_err(sqlite_error)?;
    Ok(())
}

fn parse_tags(raw: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Unavailable(format!("corrupt tags: {e}")))
}

/// A secret's labels as its row holds them.
struct StagesRow {
    current: String,
    previous: Option<String>,
    pending: Option<String>,
    last_changed: String,
    count: i64,
}

impl StagesRow {
    fn parse(self) -> Result<VersionStages, StoreError> {
        Ok(VersionStages {
            current: Some(parse_version(self.current)?),
            previous: self.previous.map(parse_version).transpose()?,
            pending: self.pending.map(parse_version).transpose()?,
            version_count: usize::try_from(self.count).unwrap_or_default(),
            last_changed: DateTime::parse_from_rfc3339(&self.last_changed)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        })
    }
}

#[async_trait]
impl SecretStore for EmbeddedStore {
    async fn create(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &StoredValue,
        tags: &[(String, String)],
    ) -> Result<(), StoreError> {
        let (name, token, value) = (name.to_string(), token.to_string(), value.clone());
        let tags = serde_json::to_string(
            &tags
                .iter()
                .cloned()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.with_conn(move |conn, now| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            let exists: bool = tx
                .query_row("SELECT 1 FROM secrets WHERE name = ?1", [&name], |_| Ok(()))
                .optional()
                .map_err(sqlite_error)?
                .is_some();
            if exists {
                // A retried create with the same token and value is the same create.
                return match version_value(&tx, &name, &token)? {
                    Some(stored) if stored == value.expose() => Ok(()),
                    _ => Err(StoreError::AlreadyExists),
                };
            }
            let now = now.to_rfc3339();
            tx.execute(
                "INSERT INTO secrets (name, created_at, last_changed_at, current_version, tags)
                 VALUES (?1, ?2, ?2, ?3, ?4)",
                params![name, now, token, tags],
            )
            .map_err(sqlite_error)?;
            insert_version(&tx, &name, &token, value.expose(), &now)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn read_current(&self, name: &SecretName) -> Result<StoredVersion, StoreError> {
        let name = name.to_string();
        self.with_conn(move |conn, _| {
            let row: Option<(String, String)> = conn
                .query_row(
                    "SELECT v.version_id, v.value FROM secrets s
                     JOIN versions v ON v.name = s.name AND v.version_id = s.current_version
                     WHERE s.name = ?1",
                    [&name],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(sqlite_error)?;
            let (version, value) = row.ok_or(StoreError::NotFound)?;
            Ok(StoredVersion {
                version_id: parse_version(version)?,
                value: read_value(value)?,
            })
        })
        .await
    }

    async fn read_version(
        &self,
        name: &SecretName,
        version: &VersionId,
    ) -> Result<StoredVersion, StoreError> {
        let (name, version) = (name.to_string(), version.clone());
        self.with_conn(move |conn, _| {
            let value =
                version_value(conn, &name, version.as_str())?.ok_or(StoreError::NotFound)?;
            Ok(StoredVersion {
                version_id: version,
                value: read_value(value)?,
            })
        })
        .await
    }

    async fn replace_current(
        &self,
        name: &SecretName,
        expected: &VersionId,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<(), StoreError> {
        let (name, expected, token, value) = (
            name.to_string(),
            expected.to_string(),
            token.to_string(),
            value.clone(),
        );
        self.with_conn(move |conn, now| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            let current = current_version(&tx, &name)?;
            let existing = version_value(&tx, &name, &token)?;
            if let Some(stored) = &existing {
                if stored != value.expose() {
                    return Err(StoreError::VersionExists);
                }
                if current == token {
                    return Ok(());
                }
            }
            if current != expected {
                return Err(StoreError::Conflict);
            }
            let now = now.to_rfc3339();
            if existing.is_none() {
                insert_version(&tx, &name, &token, value.expose(), &now)?;
            }
            // On Secrets Manager the swap stages its version as pending first, which takes the
            // label from any other version, and then clears it.
            tx.execute(
                "UPDATE secrets SET pending_version = NULL WHERE name = ?1",
                [&name],
            )
            .map_err(sqlite_error)?;
            make_current(&tx, &name, &token, &now)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn delete(&self, name: &SecretName) -> Result<(), StoreError> {
        let name = name.to_string();
        self.with_conn(move |conn, _| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            tx.execute("DELETE FROM secrets WHERE name = ?1", [&name])
                .map_err(sqlite_error)?;
            tx.execute("DELETE FROM versions WHERE name = ?1", [&name])
                .map_err(sqlite_error)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn list(
        &self,
        filter: ListFilter<'_>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        let after = cursor
            .map(|cursor| decode_cursor(filter, cursor))
            .transpose()?
            .unwrap_or_default();
        let prefix = filter.prefix.to_owned();
        let tag_key = filter.tag_key.map(str::to_owned);
        let limit = limit.clamp(1, 100);
        self.with_conn(move |conn, _| {
            let mut statement = conn
                .prepare(
                    "SELECT name, tags, current_version, previous_version, pending_version,
                            last_changed_at, (SELECT COUNT(*) FROM versions v WHERE v.name = s.name)
                     FROM secrets s
                     WHERE substr(name, 1, length(?1)) = ?1 AND name > ?2
                       AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(s.tags) WHERE key = ?4))
                     ORDER BY name LIMIT ?3",
                )
                .map_err(sqlite_error)?;
            let rows = statement
                .query_map(params![prefix, after, (limit + 1) as i64, tag_key], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        StagesRow {
                            current: row.get(2)?,
                            previous: row.get(3)?,
                            pending: row.get(4)?,
                            last_changed: row.get(5)?,
                            count: row.get(6)?,
                        },
                    ))
                })
                .map_err(sqlite_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sqlite_error)?;
            let more = rows.len() > limit;
            let secrets = rows
                .into_iter()
                .take(limit)
                .map(|(name, tags, stages)| {
                    Ok(ListedSecret {
                        name: SecretName::parse(&name)?,
                        tags: parse_tags(&tags)?,
                        stages: stages.parse()?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let next = more.then(|| {
                encode_cursor(
                    ListFilter {
                        prefix: &prefix,
                        tag_key: tag_key.as_deref(),
                    },
                    secrets.last().map(|s| s.name.as_str()).unwrap_or_default(),
                )
            });
            Ok(ListPage { secrets, next })
        })
        .await
    }

    async fn stages(&self, name: &SecretName) -> Result<VersionStages, StoreError> {
        let name = name.to_string();
        self.with_conn(move |conn, _| {
            conn.query_row(
                "SELECT current_version, previous_version, pending_version, last_changed_at,
                        (SELECT COUNT(*) FROM versions WHERE name = ?1)
                 FROM secrets WHERE name = ?1",
                [&name],
                |row| {
                    Ok(StagesRow {
                        current: row.get(0)?,
                        previous: row.get(1)?,
                        pending: row.get(2)?,
                        last_changed: row.get(3)?,
                        count: row.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(sqlite_error)?
            .ok_or(StoreError::NotFound)?
            .parse()
        })
        .await
    }

    async fn set_tags(
        &self,
        name: &SecretName,
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<(), StoreError> {
        let (name, set, remove) = (name.to_string(), set.to_vec(), remove.to_vec());
        self.with_conn(move |conn, _| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            let raw: String = tx
                .query_row("SELECT tags FROM secrets WHERE name = ?1", [&name], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(sqlite_error)?
                .ok_or(StoreError::NotFound)?;
            let mut tags = parse_tags(&raw)?;
            for key in &remove {
                tags.remove(key);
            }
            tags.extend(set);
            let raw =
                serde_json::to_string(&tags).map_err(|e| StoreError::Invalid(e.to_string()))?;
            tx.execute(
                "UPDATE secrets SET tags = ?2 WHERE name = ?1",
                params![name, raw],
            )
            .map_err(sqlite_error)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn put_pending(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &StoredValue,
    ) -> Result<(), StoreError> {
        let (name, token, value) = (name.to_string(), token.to_string(), value.clone());
        self.with_conn(move |conn, now| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            tx.query_row("SELECT 1 FROM secrets WHERE name = ?1", [&name], |_| Ok(()))
                .optional()
                .map_err(sqlite_error)?
                .ok_or(StoreError::NotFound)?;
            match version_value(&tx, &name, &token)? {
                Some(stored) if stored == value.expose() => return Ok(()),
                Some(_) => return Err(StoreError::VersionExists),
                None => {}
            }
            let now = now.to_rfc3339();
            insert_version(&tx, &name, &token, value.expose(), &now)?;
            tx.execute(
                "UPDATE secrets SET pending_version = ?2, last_changed_at = ?3 WHERE name = ?1",
                params![name, token, now],
            )
            .map_err(sqlite_error)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn promote(
        &self,
        name: &SecretName,
        token: &VersionId,
        expected: &VersionId,
    ) -> Result<(), StoreError> {
        let (name, token, expected) = (name.to_string(), token.to_string(), expected.to_string());
        self.with_conn(move |conn, now| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            let current = current_version(&tx, &name)?;
            if current != token {
                if version_value(&tx, &name, &token)?.is_none() {
                    return Err(StoreError::NotFound);
                }
                if current != expected {
                    return Err(StoreError::Conflict);
                }
                make_current(&tx, &name, &token, &now.to_rfc3339())?;
            }
            tx.execute(
                "UPDATE secrets SET pending_version = NULL WHERE name = ?1 AND pending_version = ?2",
                params![name, token],
            )
            .map_err(sqlite_error)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn remove_pending(
        &self,
        name: &SecretName,
        version: &VersionId,
    ) -> Result<(), StoreError> {
        let (name, version) = (name.to_string(), version.to_string());
        self.with_conn(move |conn, _| {
            conn.execute(
                "UPDATE secrets SET pending_version = NULL WHERE name = ?1 AND pending_version = ?2",
                params![name, version],
            )
            .map_err(sqlite_error)?;
            Ok(())
        })
        .await
    }
}
