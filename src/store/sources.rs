//! Sources as stored: one row per named sender, a ring of secrets each.
//!
//! Every node keeps the sources in memory (see `source_registry`) and
//! reloads them when [`Store::sources_changed_at`] moves, so a change made
//! on one node is seen by all of them without a query per request.

use std::collections::HashMap;
use std::fmt;

use super::backend::{DbTime, Dialect, StoreRow};
use super::{Store, StoreError, on_db};

/// One row of `sources`: what an admin configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    pub name: String,
    pub preset: String,
    /// Comma-separated scheme names (`hex,standard`).
    pub schemes: String,
    /// `enforce` or `flag`.
    pub mode: String,
    pub enabled: bool,
    pub token_header: Option<String>,
    /// The overrides of the preset's mapping, a JSON object of rule strings.
    pub mapping: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// One secret of a source's ring. Its `Debug` leaves the secret out.
#[derive(Clone)]
pub struct SourceSecretRow {
    pub label: String,
    pub secret: String,
    pub created_at_us: i64,
    /// Set when rotated out: it keeps working until then.
    pub expires_at_us: Option<i64>,
}

impl fmt::Debug for SourceSecretRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSecretRow")
            .field("label", &self.label)
            .field("created_at_us", &self.created_at_us)
            .field("expires_at_us", &self.expires_at_us)
            .finish_non_exhaustive()
    }
}

/// A source with the secrets that still verify.
#[derive(Debug, Clone)]
pub struct StoredSource {
    pub row: SourceRow,
    /// Newest first.
    pub secrets: Vec<SourceSecretRow>,
}

/// What may change about a source; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SourceChange {
    pub mode: Option<String>,
    pub enabled: Option<bool>,
    /// `Some(None)` clears it.
    pub token_header: Option<Option<String>>,
    pub mapping: Option<String>,
}

/// Traffic of one source over the last day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceActivity {
    pub callbacks_24h: i64,
    pub last_received_at_us: Option<i64>,
}

/// Use of one secret (by label) over the last day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretActivity {
    pub uses_24h: i64,
    pub last_used_at_us: Option<i64>,
}

/// `updated_at` for a change made at `$n`: never below a time already
/// stored, so `max(updated_at)` (what nodes poll) moves on every change even
/// when this node's clock is behind the one that wrote last.
fn change_time(dialect: Dialect, n: u8) -> String {
    match dialect {
        Dialect::Sqlite => {
            format!("max(${n}, coalesce((SELECT max(updated_at) FROM sources), 0) + 1)")
        }
        Dialect::Postgres => format!(
            "greatest(${n}, (SELECT max(updated_at) FROM sources) + interval '1 microsecond')"
        ),
    }
}

impl Store {
    /// When any source last changed (secrets included): nodes poll this
    /// one-row read and reload the sources only when it moves.
    pub async fn sources_changed_at(&self) -> Result<i64, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            let changed: Option<DbTime> = sqlx::query_scalar("SELECT max(updated_at) FROM sources")
                .fetch_one(pool)
                .await?;
            Ok(changed.map_or(0, |at| at.0))
        })
    }

    /// Every source with the secrets that are still valid at `now_us`.
    pub async fn load_sources(&self, now_us: i64) -> Result<Vec<StoredSource>, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            let rows = sqlx::query(
                "SELECT name, preset, schemes, mode, enabled, token_header, mapping,
                        created_at, updated_at
                   FROM sources ORDER BY name",
            )
            .fetch_all(pool)
            .await?;
            let secrets = sqlx::query(
                "SELECT source, label, secret, created_at, expires_at FROM source_secrets
                  WHERE expires_at IS NULL OR expires_at > $1
                  ORDER BY created_at DESC, id DESC",
            )
            .bind(DbTime(now_us))
            .fetch_all(pool)
            .await?;
            let mut by_source: HashMap<String, Vec<SourceSecretRow>> = HashMap::new();
            for row in &secrets {
                by_source
                    .entry(row.text("source")?)
                    .or_default()
                    .push(SourceSecretRow {
                        label: row.text("label")?,
                        secret: row.text("secret")?,
                        created_at_us: row.time("created_at")?,
                        expires_at_us: row.opt_time("expires_at")?,
                    });
            }
            rows.iter()
                .map(|row| {
                    let source = SourceRow {
                        name: row.text("name")?,
                        preset: row.text("preset")?,
                        schemes: row.text("schemes")?,
                        mode: row.text("mode")?,
                        enabled: row.flag("enabled")?,
                        token_header: row.opt_text("token_header")?,
                        mapping: row.text("mapping")?,
                        created_at_us: row.time("created_at")?,
                        updated_at_us: row.time("updated_at")?,
                    };
                    let secrets = by_source.remove(&source.name).unwrap_or_default();
                    Ok(StoredSource {
                        row: source,
                        secrets,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Adds a source with its first secret (labelled `<name> #1`); false
    /// when the name is taken.
    pub async fn create_source(
        &self,
        source: &SourceRow,
        secret: &str,
    ) -> Result<bool, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            let mut tx = pool.begin().await?;
            let sql = format!(
                "INSERT INTO sources (name, preset, schemes, mode, enabled, token_header, mapping,
                                      created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {})
                 ON CONFLICT (name) DO NOTHING",
                change_time(dialect, 8)
            );
            let created = sqlx::query(&sql)
                .bind(&source.name)
                .bind(&source.preset)
                .bind(&source.schemes)
                .bind(&source.mode)
                .bind(source.enabled)
                .bind(&source.token_header)
                .bind(&source.mapping)
                .bind(DbTime(source.created_at_us))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !created {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO source_secrets (source, label, secret, created_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&source.name)
            .bind(next_secret_label(&source.name, &[]))
            .bind(secret)
            .bind(DbTime(source.created_at_us))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Applies `change` to a source; false when there is no such source.
    pub async fn update_source(
        &self,
        name: &str,
        change: &SourceChange,
        now_us: i64,
    ) -> Result<bool, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            // One statement; a field left out keeps its value.
            let sql = format!(
                "UPDATE sources
                    SET mode = coalesce($2, mode),
                        enabled = coalesce($3, enabled),
                        token_header = CASE WHEN $4 THEN $5 ELSE token_header END,
                        mapping = coalesce($6, mapping),
                        updated_at = {}
                  WHERE name = $1",
                change_time(dialect, 7)
            );
            let updated = sqlx::query(&sql)
                .bind(name)
                .bind(&change.mode)
                .bind(change.enabled)
                .bind(change.token_header.is_some())
                .bind(change.token_header.clone().flatten())
                .bind(&change.mapping)
                .bind(DbTime(now_us))
                .execute(pool)
                .await?
                .rows_affected();
            Ok(updated == 1)
        })
    }

    /// Adds `secret` to a source's ring under the next label (`<name> #<n>`);
    /// the secrets valid until now expire `grace_us` later. Returns the new
    /// label, or `None` when there is no such source.
    pub async fn rotate_source_secret(
        &self,
        name: &str,
        secret: &str,
        now_us: i64,
        grace_us: i64,
    ) -> Result<Option<String>, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            let mut tx = pool.begin().await?;
            // Moving updated_at first also serializes concurrent rotations
            // of one source on its row.
            let sql = format!(
                "UPDATE sources SET updated_at = {} WHERE name = $1",
                change_time(dialect, 2)
            );
            let found = sqlx::query(&sql)
                .bind(name)
                .bind(DbTime(now_us))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !found {
                return Ok(None);
            }
            let labels: Vec<String> =
                sqlx::query_scalar("SELECT label FROM source_secrets WHERE source = $1")
                    .bind(name)
                    .fetch_all(&mut *tx)
                    .await?;
            let label = next_secret_label(name, &labels);
            sqlx::query(
                "UPDATE source_secrets SET expires_at = $2
                  WHERE source = $1 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(name)
            .bind(DbTime(now_us.saturating_add(grace_us)))
            .execute(&mut *tx)
            .await?;
            // An expired secret verifies nothing: it goes.
            sqlx::query("DELETE FROM source_secrets WHERE source = $1 AND expires_at <= $2")
                .bind(name)
                .bind(DbTime(now_us))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO source_secrets (source, label, secret, created_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(&label)
            .bind(secret)
            .bind(DbTime(now_us))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(label))
        })
    }

    /// Callbacks per source since `since_us`, and each source's newest.
    pub async fn source_activity(
        &self,
        since_us: i64,
    ) -> Result<HashMap<String, SourceActivity>, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            let rows = sqlx::query(
                "SELECT s.name,
                        (SELECT count(*) FROM llm_callbacks c
                          WHERE c.source = s.name AND c.created_at >= $1) AS recent,
                        (SELECT max(c.created_at) FROM llm_callbacks c
                          WHERE c.source = s.name) AS newest
                   FROM sources s",
            )
            .bind(DbTime(since_us))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.text("name")?,
                        SourceActivity {
                            callbacks_24h: row.int("recent")?,
                            last_received_at_us: row.opt_time("newest")?,
                        },
                    ))
                })
                .collect::<Result<HashMap<_, _>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Verified requests per (source, secret label) since `since_us`.
    pub async fn source_secret_activity(
        &self,
        since_us: i64,
    ) -> Result<HashMap<(String, String), SecretActivity>, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            // PostgreSQL sums a bigint as numeric: cast back.
            let rows = sqlx::query(
                "SELECT source, secret_label, CAST(sum(count) AS BIGINT) AS uses,
                        max(received_at) AS newest
                   FROM webhook_deliveries
                  WHERE received_at >= $1 AND source IS NOT NULL AND secret_label IS NOT NULL
                  GROUP BY source, secret_label",
            )
            .bind(DbTime(since_us))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        (row.text("source")?, row.text("secret_label")?),
                        SecretActivity {
                            uses_24h: row.int("uses")?,
                            last_used_at_us: row.opt_time("newest")?,
                        },
                    ))
                })
                .collect::<Result<HashMap<_, _>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }
}

/// `<name> #<n>`, one past the highest number among `labels`: the newest
/// secret is never deleted, so numbers only grow.
pub fn next_secret_label(name: &str, labels: &[String]) -> String {
    let highest = labels
        .iter()
        .filter_map(|label| label.rsplit_once('#')?.1.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    format!("{name} #{}", highest + 1)
}
