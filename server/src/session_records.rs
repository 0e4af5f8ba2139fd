//! Where sessions are kept: in the product's own database, whichever it is,
//! so that a session made on one node is valid on every node.

use async_trait::async_trait;
use inbox_core::store::Db;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

#[derive(Clone, Debug)]
pub enum SessionRecords {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl SessionRecords {
    /// Sessions in the store's database. SQLite's table is created here;
    /// PostgreSQL's comes with the migrations (so that nodes starting at
    /// once do not race to create it).
    pub async fn open(db: &Db) -> Result<Self, String> {
        match db {
            Db::Sqlite(pool) => {
                let records = SqliteStore::new(pool.clone());
                records.migrate().await.map_err(|e| e.to_string())?;
                Ok(Self::Sqlite(records))
            }
            Db::Postgres(pool) => {
                // The migrations made the table in the connection's first
                // schema, whichever its search_path names.
                let schema: String =
                    tower_sessions_sqlx_store::sqlx::query_scalar("SELECT current_schema()")
                        .fetch_one(pool)
                        .await
                        .map_err(|e| e.to_string())?;
                Ok(Self::Postgres(
                    PostgresStore::new(pool.clone())
                        .with_schema_name(schema)?
                        .with_table_name("tower_sessions")?,
                ))
            }
        }
    }
}

#[async_trait]
impl SessionStore for SessionRecords {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(records) => records.create(record).await,
            Self::Postgres(records) => records.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(records) => records.save(record).await,
            Self::Postgres(records) => records.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(records) => records.load(id).await,
            Self::Postgres(records) => records.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(records) => records.delete(id).await,
            Self::Postgres(records) => records.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for SessionRecords {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(records) => records.delete_expired().await,
            Self::Postgres(records) => records.delete_expired().await,
        }
    }
}
