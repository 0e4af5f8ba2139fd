//! Durable storage of callbacks, deliveries, secrets, accounts and views.
//!
//! SQLite (WAL, `synchronous=FULL`) is the embedded default; a `postgres://`
//! URL selects PostgreSQL, which several nodes can share (see
//! [`backend`] and `docs/ARCHITECTURE.md`). Reads go through a connection
//! pool; callback inserts and audit rows go through one writer task per
//! node that group-commits whatever arrived together (see [`writer`]), so
//! every 2xx is backed by a durable commit without paying one fsync per
//! request.

mod backend;
mod dashboard;
mod export;
mod feed_listener;
mod operations;
mod shared_read;
mod sources;
#[cfg(any(test, feature = "test-support"))]
pub mod test_database;
mod writer;

pub(crate) use backend::on_db;
pub use backend::{Db, DbTime, Dialect, StoreRow, pg_text};

pub use dashboard::{DEFAULT_PAGE, HistoryDirection, MAX_PAGE, clamp_limit};
pub use export::{EXPORT_GROUP_BYTES, ExportRow, payload_group_len};
pub use operations::{
    DeliveryDirection, PURGE_BATCH, PurgeReport, SecretUse, SummaryWindow, weighted_percentile,
};
pub use sources::{
    SecretActivity, SourceActivity, SourceChange, SourceRow, SourceSecretRow, StoredSource,
    next_secret_label,
};

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::delivery::DeliveryId;
use crate::fields::CallbackFields;
use crate::signature::SignatureScheme;

pub use writer::WRITER_MAX_BATCH;

/// Head notices kept for slow live streams before they get `Lagged`.
const FEED_NOTICES: usize = 64;

/// Connections per node to PostgreSQL: the writer's own, the feed
/// listener's, and the rest for reads, sign-ins and the admin API. Inserts
/// do not need more: each node's writer commits them in groups (see
/// [`writer`]), so PostgreSQL sees one transaction per group, not one per
/// request. N nodes hold N times this many; keep it under the server's
/// `max_connections`.
pub const POSTGRES_POOL_SIZE: u32 = 16;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database folder {path}: {source}")]
    CreateFolder {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "unsupported DATABASE_URL {0:?}: use sqlite://path/to/file.db or postgres://user@host/database"
    )]
    UnsupportedUrl(String),
    #[error(
        "the PostgreSQL database uses the {0} encoding; callbacks need UTF8: create it with `createdb -E UTF8 -T template0 …`"
    )]
    NotUtf8(String),
    #[error("the database writer has stopped")]
    WriterStopped,
}

/// A callback ready to be stored: verified (or flagged), parsed and keyed.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub id: Uuid,
    /// The source it arrived at; the delivery id is unique within it.
    pub source: String,
    pub callback_id: DeliveryId,
    pub signature_valid: bool,
    pub signature_scheme: Option<SignatureScheme>,
    pub verified_at_us: Option<i64>,
    /// The request body exactly as received (known to be a JSON object).
    pub payload: String,
    pub fields: CallbackFields,
    pub received_at_us: i64,
}

/// What storing a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertOutcome {
    /// The stored row's id: the new one, or the original one for a retry.
    pub id: Uuid,
    pub duplicate: bool,
    pub delivery_count: i64,
    /// Its position in the live feed.
    pub feed_seq: i64,
}

/// The `source` recorded for a request to a name that is no source.
pub const UNKNOWN_SOURCE: &str = "unknown";

/// How one webhook request ended, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Accepted,
    Duplicate,
    /// Stored in `flag` mode although its signature did not verify.
    StoredUnsigned,
    InvalidSignature,
    StaleTimestamp,
    MissingSignature,
    TooLarge,
    Malformed,
    /// The body did not arrive within the body timeout.
    BodyTimeout,
    /// Too many bodies in memory at once: answered 503 with `Retry-After`.
    Overloaded,
    /// Sent to a name that is no (enabled) source: answered 404.
    UnknownSource,
    Error,
}

impl DeliveryOutcome {
    /// How a request that stored a callback (or counted a retry of one)
    /// ended: the one statement of this rule, for the webhook's answer and
    /// both backends' audit rows.
    pub fn of_stored(authenticated: bool, duplicate: bool) -> Self {
        if !authenticated {
            Self::StoredUnsigned
        } else if duplicate {
            Self::Duplicate
        } else {
            Self::Accepted
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::StoredUnsigned => "stored_unsigned",
            Self::InvalidSignature => "invalid_signature",
            Self::StaleTimestamp => "stale_timestamp",
            Self::MissingSignature => "missing_signature",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::BodyTimeout => "body_timeout",
            Self::Overloaded => "overloaded",
            Self::UnknownSource => "unknown_source",
            Self::Error => "error",
        }
    }
}

/// One row of `webhook_deliveries`. Never holds a body or a secret.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub received_at_us: i64,
    pub request_id: Option<String>,
    pub outcome: DeliveryOutcome,
    pub http_status: u16,
    pub processing_us: i64,
    pub body_bytes: i64,
    pub remote_addr: Option<String>,
    pub callback_id: Option<DeliveryId>,
    pub llm_callback_id: Option<Uuid>,
    pub signature_scheme: Option<SignatureScheme>,
    /// The label of the secret that verified it (never the secret).
    pub secret_label: Option<String>,
    /// The source it was sent to: a configured one, or
    /// [`UNKNOWN_SOURCE`] for a name that is not (so strangers cannot
    /// add values).
    pub source: Option<String>,
    /// Whether the request proved who sent it (a verified signature).
    /// Requests that did not are counted per address, outcome and minute
    /// instead of stored one by one, so a flood cannot grow the table
    /// without bound.
    pub authenticated: bool,
    /// How many requests this row stands for (1 unless aggregated).
    pub count: i64,
}

/// An accepted request's audit row, before the writer knows its outcome.
#[derive(Debug, Clone)]
pub struct AuditedRequest {
    pub record: DeliveryRecord,
    pub started: std::time::Instant,
}

/// A webhook secret generated by the server (used when none is configured).
pub struct StoredSecret {
    pub secret: String,
    pub created_at_us: i64,
    pub expires_at_us: Option<i64>,
}

/// The database behind the whole product.
#[derive(Clone)]
pub struct Store {
    db: Db,
    writer: writer::WriterHandle,
    /// The head of the live feed after each commit that added callbacks:
    /// sent by this node's writer, and with PostgreSQL also by the feed
    /// listener, which hears every node's commits.
    feed: broadcast::Sender<i64>,
    /// This node's heavy reads, shared by every viewer for a few seconds
    /// (see [`Store::delivery_summary_cached`], [`Store::secret_uses_cached`]).
    shared: operations::SharedReads,
}

/// Where a `DATABASE_URL` points.
enum Target {
    Sqlite(SqliteConnectOptions),
    Postgres(PgConnectOptions),
}

impl Store {
    /// Opens (creating file and folder when missing) and migrates the
    /// database, and starts the writer task (and, with PostgreSQL, the feed
    /// listener).
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let (feed, _) = broadcast::channel(FEED_NOTICES);
        match target(database_url)? {
            Target::Sqlite(options) => {
                if let Some(folder) = options.get_filename().parent() {
                    create_folder(folder)?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .min_connections(1)
                    .connect_with(options.clone())
                    .await?;
                SQLITE_MIGRATOR.run(&pool).await?;
                let connection = options.connect().await?;
                let writer = writer::WriterHandle::spawn(
                    writer::WriterConnection::Sqlite(connection),
                    feed.clone(),
                );
                Ok(Self {
                    db: Db::Sqlite(pool),
                    writer,
                    feed,
                    shared: Default::default(),
                })
            }
            Target::Postgres(options) => {
                let pool = PgPoolOptions::new()
                    .max_connections(POSTGRES_POOL_SIZE)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options.clone())
                    .await?;
                let encoding: String = sqlx::query_scalar("SHOW server_encoding")
                    .fetch_one(&pool)
                    .await?;
                if encoding != "UTF8" {
                    return Err(StoreError::NotUtf8(encoding));
                }
                // Nodes starting together: sqlx holds an advisory lock while
                // it migrates, so one applies and the others find it done.
                POSTGRES_MIGRATOR.run(&pool).await?;
                let connection = options.connect().await?;
                let writer = writer::WriterHandle::spawn(
                    writer::WriterConnection::Postgres(connection, Box::new(options.clone())),
                    feed.clone(),
                );
                feed_listener::spawn(pool.clone(), feed.clone());
                Ok(Self {
                    db: Db::Postgres(pool),
                    writer,
                    feed,
                    shared: Default::default(),
                })
            }
        }
    }

    /// Wakes on every commit that moves the feed's head. A receiver that
    /// falls behind gets `Lagged` and simply reads the feed again.
    pub fn subscribe_feed(&self) -> broadcast::Receiver<i64> {
        self.feed.subscribe()
    }

    /// Applies pending migrations without starting anything else.
    pub async fn migrate_only(database_url: &str) -> Result<Vec<String>, StoreError> {
        let (db, migrator) = match target(database_url)? {
            Target::Sqlite(options) => {
                if let Some(folder) = options.get_filename().parent() {
                    create_folder(folder)?;
                }
                (
                    Db::Sqlite(SqlitePool::connect_with(options).await?),
                    &SQLITE_MIGRATOR,
                )
            }
            Target::Postgres(options) => (
                Db::Postgres(
                    PgPoolOptions::new()
                        .max_connections(2)
                        .connect_with(options)
                        .await?,
                ),
                &POSTGRES_MIGRATOR,
            ),
        };
        let before: Vec<i64> = applied_versions(&db).await.unwrap_or_default();
        on_db!(&db, |pool, dialect| migrator.run(pool).await?);
        let after = applied_versions(&db).await?;
        on_db!(&db, |pool, dialect| pool.close().await);
        Ok(migrator
            .iter()
            .filter(|m| after.contains(&m.version) && !before.contains(&m.version))
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    /// The open database, for statements of the store's own modules and
    /// for the session store, which shares its pool.
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Stores a callback, or counts one more delivery of an existing one.
    /// Returns only after the commit is durable.
    pub async fn insert_callback(
        &self,
        callback: NewCallback,
    ) -> Result<InsertOutcome, StoreError> {
        self.writer.insert_callback(callback, None).await
    }

    /// Stores a callback and its audit row in one transaction: the row's
    /// outcome, ids and processing time are filled in by the writer
    /// (processing time runs from `audit.started` to the insert).
    pub async fn insert_callback_audited(
        &self,
        callback: NewCallback,
        audit: AuditedRequest,
    ) -> Result<InsertOutcome, StoreError> {
        self.writer.insert_callback(callback, Some(audit)).await
    }

    /// Records a request in the audit log. Requests that did not prove who
    /// sent them are counted (never dropped, never one row each); the others
    /// wait for room in the writer's queue rather than being lost.
    pub async fn record_delivery(&self, record: DeliveryRecord) -> Result<(), StoreError> {
        self.writer.record_delivery(record).await
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.writer.flush().await
    }

    pub async fn generated_secrets(&self, now_us: i64) -> Result<Vec<StoredSecret>, StoreError> {
        on_db!(&self.db, |pool, dialect| {
            let rows = sqlx::query(
                "SELECT secret, created_at, expires_at FROM webhook_secrets
                 WHERE expires_at IS NULL OR expires_at > $1 ORDER BY id DESC",
            )
            .bind(DbTime(now_us))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(StoredSecret {
                        secret: row.text("secret")?,
                        created_at_us: row.time("created_at")?,
                        expires_at_us: row.opt_time("expires_at")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// The first generated secret: added only when no valid one exists, as
    /// one step, so that of several nodes starting together on an empty
    /// database exactly one adds it (and prints it). True when this call did.
    pub async fn add_first_generated_secret(
        &self,
        secret: &str,
        now_us: i64,
    ) -> Result<bool, StoreError> {
        on_db!(&self.db, |pool, dialect| {
            let mut tx = pool.begin().await?;
            if dialect == Dialect::Postgres {
                sqlx::query(
                    "SELECT pg_advisory_xact_lock(hashtextextended('callback-inbox:secrets', 0))",
                )
                .execute(&mut *tx)
                .await?;
            }
            // One statement: atomic on SQLite; under the lock on PostgreSQL.
            let added = sqlx::query(
                "INSERT INTO webhook_secrets (secret, created_at)
                 SELECT $1, $2 WHERE NOT EXISTS (
                     SELECT 1 FROM webhook_secrets WHERE expires_at IS NULL OR expires_at > $2)",
            )
            .bind(secret)
            .bind(DbTime(now_us))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(added == 1)
        })
    }

    /// Adds a generated secret; the ones still open expire after `grace_us`.
    pub async fn add_generated_secret(
        &self,
        secret: &str,
        now_us: i64,
        grace_us: i64,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, |pool, dialect| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE webhook_secrets SET expires_at = $1 WHERE expires_at IS NULL")
                .bind(DbTime(now_us.saturating_add(grace_us)))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO webhook_secrets (secret, created_at) VALUES ($1, $2)")
                .bind(secret)
                .bind(DbTime(now_us))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }
}

fn target(database_url: &str) -> Result<Target, StoreError> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        // A node that freezes or loses its network inside a transaction
        // would hold the feed's lock for every node: the server ends such a
        // transaction after 15 s, and no statement waits forever.
        let options = PgConnectOptions::from_str(database_url)?
            .application_name("callback-inbox")
            .options([
                ("idle_in_transaction_session_timeout", "15s"),
                ("lock_timeout", "20s"),
                ("statement_timeout", "60s"),
            ])
            .disable_statement_logging();
        return Ok(Target::Postgres(options));
    }
    if !database_url.starts_with("sqlite:") {
        return Err(StoreError::UnsupportedUrl(database_url.to_owned()));
    }
    Ok(Target::Sqlite(
        SqliteConnectOptions::from_str(database_url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before we answer 2xx, even across power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .disable_statement_logging(),
    ))
}

fn create_folder(folder: &Path) -> Result<(), StoreError> {
    if folder.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(folder).map_err(|source| StoreError::CreateFolder {
        path: folder.display().to_string(),
        source,
    })
}

async fn applied_versions(db: &Db) -> Result<Vec<i64>, sqlx::Error> {
    on_db!(db, |pool, dialect| {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
    })
}

#[cfg(test)]
mod tests {
    use super::test_database::TestDatabase;
    use super::*;

    async fn tables(store: &Store) -> Vec<String> {
        on_db!(store.db(), |pool, dialect| {
            sqlx::query_scalar(dialect.pick(
                "SELECT name FROM sqlite_master WHERE type = 'table'
                 AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'
                 ORDER BY table_name",
            ))
            .fetch_all(pool)
            .await
            .unwrap()
        })
    }

    /// Every `table.column` of a store's schema (sessions' table aside: the
    /// session layer makes its own on SQLite).
    async fn columns(store: &Store) -> std::collections::BTreeSet<String> {
        let pairs: Vec<(String, String)> = on_db!(store.db(), |pool, dialect| {
            sqlx::query_as(dialect.pick(
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
                   AND m.name NOT IN ('_sqlx_migrations', 'tower_sessions')",
                "SELECT table_name::text, column_name::text FROM information_schema.columns
                 WHERE table_schema = 'public'
                   AND table_name NOT IN ('_sqlx_migrations', 'tower_sessions')",
            ))
            .fetch_all(pool)
            .await
            .unwrap()
        });
        pairs
            .into_iter()
            .map(|(table, column)| format!("{table}.{column}"))
            .collect()
    }

    /// The two migration folders describe one schema: every table and
    /// column of one exists in the other, but for the few that only one
    /// backend has, named here with the reason. Needs both databases, so it
    /// compares in the PostgreSQL pass of the tests (the SQLite database is
    /// always at hand).
    #[tokio::test]
    async fn both_backends_migrate_to_the_same_tables_and_columns() {
        let postgres = TestDatabase::fresh().await;
        if postgres.backend != test_database::TestBackend::Postgres {
            return;
        }
        let sqlite = TestDatabase::fresh_on(test_database::TestBackend::Sqlite).await;
        let on_postgres = columns(&Store::open(&postgres.url).await.unwrap()).await;
        let on_sqlite = columns(&Store::open(&sqlite.url).await.unwrap()).await;
        // jsonb of the payload, for PostgreSQL's JSON queries and indexes.
        let postgres_only = ["llm_callbacks.payload_json".to_owned()];
        let missing_on_sqlite: Vec<_> = on_postgres
            .difference(&on_sqlite)
            .filter(|column| !postgres_only.contains(column))
            .collect();
        let missing_on_postgres: Vec<_> = on_sqlite.difference(&on_postgres).collect();
        assert!(
            missing_on_sqlite.is_empty() && missing_on_postgres.is_empty(),
            "only on PostgreSQL: {missing_on_sqlite:?}; only on SQLite: {missing_on_postgres:?}"
        );
        assert!(on_sqlite.contains("llm_callbacks.source"));
    }

    #[tokio::test]
    async fn every_migration_has_a_working_down_migration() {
        let database = TestDatabase::fresh().await;
        let store = Store::open(&database.url).await.unwrap();
        let all = tables(&store).await;
        for table in [
            "callback_count",
            "feed_head",
            "llm_callback_views",
            "llm_callbacks",
            "login_failures",
            "users",
            "webhook_deliveries",
            "webhook_secrets",
            "api_tokens",
        ] {
            assert!(all.contains(&table.to_owned()), "{table} in {all:?}");
        }
        on_db!(store.db(), |pool, dialect| {
            let migrator = match dialect {
                Dialect::Sqlite => &SQLITE_MIGRATOR,
                Dialect::Postgres => &POSTGRES_MIGRATOR,
            };
            migrator.undo(pool, 0).await.unwrap();
            assert_eq!(tables(&store).await, Vec::<String>::new());
            migrator.run(pool).await.unwrap();
        });
        assert_eq!(tables(&store).await, all);
    }

    /// The sources migration on a database that holds data: every callback,
    /// view and audit row survives, all of them belong to `llm-callback`,
    /// the counters and the feed are intact, and delivery ids are unique
    /// per source afterwards.
    #[tokio::test]
    async fn the_sources_migration_keeps_every_row_of_a_database_in_use() {
        const BEFORE_SOURCES: i64 = 20261202000020;
        let database = TestDatabase::fresh().await;
        let store = Store::open(&database.url).await.unwrap();
        let user = Uuid::now_v7();
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        on_db!(store.db(), |pool, dialect| {
            let migrator = match dialect {
                Dialect::Sqlite => &SQLITE_MIGRATOR,
                Dialect::Postgres => &POSTGRES_MIGRATOR,
            };
            migrator.undo(pool, BEFORE_SOURCES).await.unwrap();
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, role, created_at)
                 VALUES ($1, 'old@example.com', 'x', 'admin', $2)",
            )
            .bind(user)
            .bind(DbTime(1))
            .execute(pool)
            .await
            .unwrap();
            for (n, id) in [(1_i64, first), (2, second)] {
                sqlx::query(
                    "INSERT INTO llm_callbacks (id, callback_id, signature_valid, payload,
                         payload_preview, status, created_at, updated_at, feed_seq)
                     VALUES ($1, $2, true, '{}', '{}', 'completed', $3, $3, $4)",
                )
                .bind(id)
                .bind(format!("wh:msg_{n}"))
                .bind(DbTime(n * 1_000_000))
                .bind(n)
                .execute(pool)
                .await
                .unwrap();
            }
            sqlx::query("UPDATE feed_head SET seq = 2 WHERE id = 1")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO llm_callback_views (callback_id, admin_user_id, viewed_at)
                 VALUES ($1, $2, $3)",
            )
            .bind(first)
            .bind(user)
            .bind(DbTime(5))
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO webhook_deliveries (received_at, outcome, http_status,
                     processing_us, body_bytes, count, llm_callback_id)
                 VALUES ($1, 'accepted', 200, 1, 2, 1, $2)",
            )
            .bind(DbTime(1_000_000))
            .bind(first)
            .execute(pool)
            .await
            .unwrap();
            migrator.run(pool).await.unwrap();

            let sources: Vec<String> =
                sqlx::query_scalar("SELECT source FROM llm_callbacks ORDER BY feed_seq")
                    .fetch_all(pool)
                    .await
                    .unwrap();
            assert_eq!(sources, ["llm-callback", "llm-callback"]);
            let views: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_callback_views")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(views, 1, "the views are kept");
            let total: i64 = sqlx::query_scalar("SELECT total FROM callback_count WHERE id = 1")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(total, 2, "the count is right");
            let audit: Vec<String> = sqlx::query_scalar("SELECT source FROM webhook_deliveries")
                .fetch_all(pool)
                .await
                .unwrap();
            assert_eq!(audit, ["llm-callback"]);
        });
        assert_eq!(store.feed_head().await.unwrap().0, 2);
        // The old id at another source is another callback, at its own a retry.
        let mut elsewhere = callback("x");
        elsewhere.source = "github".to_owned();
        elsewhere.callback_id = crate::delivery::DeliveryId::unverified(&elsewhere.callback_id);
        let mut again = callback("x");
        again.callback_id = elsewhere.callback_id.clone();
        let stored = store.insert_callback(elsewhere).await.unwrap();
        assert!(!stored.duplicate);
        assert_eq!(stored.feed_seq, 3, "the feed goes on after the rebuild");
        let retry = store.insert_callback(again).await.unwrap();
        assert!(!retry.duplicate, "same id, other source: another callback");
        let mut old = callback("y");
        old.callback_id = serde_json::from_value(serde_json::json!("wh:msg_1")).unwrap();
        let retry = store.insert_callback(old).await.unwrap();
        assert!(
            retry.duplicate,
            "the old callback's id still dedupes at its source"
        );
        assert_eq!(retry.id, first);
    }

    fn callback(job: &str) -> NewCallback {
        let body =
            format!(r#"{{"job_id":"{job}","event":"workflow.completed","note":"a\u0000b"}}"#);
        let payload: serde_json::Value = serde_json::from_str(&body).unwrap();
        let payload = payload.as_object().unwrap();
        NewCallback {
            id: Uuid::now_v7(),
            source: "llm-callback".to_owned(),
            callback_id: crate::delivery::derive_delivery_id(None, payload, None, body.as_bytes()),
            signature_valid: true,
            signature_scheme: None,
            verified_at_us: None,
            fields: crate::fields::extract_fields(payload, None, &body),
            payload: body,
            received_at_us: 1_763_000_000_000_000,
        }
    }

    /// Two stores on one database (two nodes) commit callbacks concurrently
    /// while a reader follows the feed with a cursor, as a dashboard does:
    /// the reader must end up with every callback exactly once.
    #[tokio::test]
    async fn a_cursor_following_two_writers_sees_every_callback_once() {
        let database = TestDatabase::fresh().await;
        let node_a = Store::open(&database.url).await.unwrap();
        let node_b = Store::open(&database.url).await.unwrap();
        let reader = Uuid::now_v7();
        const PER_TASK: usize = 60;
        let mut writers = Vec::new();
        for task in 0..6 {
            let store = if task % 2 == 0 {
                node_a.clone()
            } else {
                node_b.clone()
            };
            writers.push(tokio::spawn(async move {
                for n in 0..PER_TASK {
                    store
                        .insert_callback(callback(&format!("t{task}-{n}")))
                        .await
                        .unwrap();
                }
            }));
        }
        let mut seen = Vec::new();
        let mut cursor = crate::cursor::FeedCursor(0);
        let mut writing = true;
        loop {
            let reader_node = if writing { &node_b } else { &node_a };
            let head = reader_node.feed_head().await.unwrap();
            let (items, next) = reader_node
                .feed_after(reader, cursor, head, 7)
                .await
                .unwrap();
            let moved = next != cursor;
            seen.extend(items.into_iter().map(|(_, item)| item.callback_id));
            cursor = next;
            if writing && writers.iter().all(|w| w.is_finished()) {
                // One more pass after the last commit.
                writing = false;
            } else if !writing && !moved && cursor == head {
                break;
            }
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let total = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(total, seen.len(), "a callback was seen twice");
        assert_eq!(seen.len(), 6 * PER_TASK, "a callback was skipped");
    }

    /// An update that does not set `updated_at` itself still moves it (a
    /// trigger on both backends), so no edit leaves a stale time behind.
    #[tokio::test]
    async fn updates_that_do_not_set_updated_at_still_move_it() {
        let database = TestDatabase::fresh().await;
        let store = Store::open(&database.url).await.unwrap();
        let stored = store.insert_callback(callback("touched")).await.unwrap();
        let before = store
            .callback_detail(Uuid::now_v7(), stored.id)
            .await
            .unwrap()
            .unwrap();
        on_db!(store.db(), |pool, dialect| {
            sqlx::query("UPDATE llm_callbacks SET status = 'failed' WHERE id = $1")
                .bind(stored.id)
                .execute(pool)
                .await
                .unwrap();
        });
        let after = store
            .callback_detail(Uuid::now_v7(), stored.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.status, "failed");
        assert!(after.updated_at > before.updated_at, "{after:?}");
        assert_eq!(after.created_at, before.created_at);
    }

    #[tokio::test]
    async fn unknown_database_urls_are_refused_with_a_clear_message() {
        let Err(err) = Store::open("mysql://localhost/inbox").await else {
            panic!("MySQL is not supported");
        };
        let message = err.to_string();
        assert!(message.contains("use sqlite://"), "{message}");
        assert!(message.contains("postgres://"), "{message}");
    }
}
