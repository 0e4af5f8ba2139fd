//! The operator's reads and chores: the delivery audit log and its summary,
//! which secret senders use, retention, and export pages.

use std::collections::BTreeMap;

use sqlx::{Database, Encode, QueryBuilder, Type};
use time::OffsetDateTime;

use super::dashboard::{micros_of, time_of};
use super::shared_read::SharedRead;
use super::{DbTime, Dialect, Store, StoreError, StoreRow, on_db};
use crate::cursor::DeliveryCursor;
use crate::dto::{
    DeliveryBucket, DeliveryFilter, DeliveryItem, DeliveryPage, DeliverySummary, Percentiles,
};

/// Outcomes of requests whose signature did not verify: rejected, or
/// stored unsigned in `flag` mode.
const SIGNATURE_OUTCOMES: [&str; 4] = [
    "missing_signature",
    "invalid_signature",
    "stale_timestamp",
    "stored_unsigned",
];
/// Rows deleted per statement by retention: small enough that the writer
/// never waits long for the database.
pub const PURGE_BATCH: i64 = 500;

/// Which way a deliveries page goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryDirection {
    Newest,
    Before(DeliveryCursor),
    After(DeliveryCursor),
}

/// The summary strip's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryWindow {
    Hour,
    Day,
    Week,
}

impl SummaryWindow {
    fn index(self) -> usize {
        match self {
            Self::Hour => 0,
            Self::Day => 1,
            Self::Week => 2,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "1h" => Some(Self::Hour),
            "" | "24h" => Some(Self::Day),
            "7d" => Some(Self::Week),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
        }
    }

    fn secs(self) -> i64 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
            Self::Week => 7 * 86_400,
        }
    }

    /// The chart's interval: 60, 48 or 42 bars.
    fn bucket_secs(self) -> i64 {
        match self {
            Self::Hour => 60,
            Self::Day => 1_800,
            Self::Week => 4 * 3_600,
        }
    }
}

/// This node's shared heavy reads (see [`SharedRead`]): the deliveries
/// summary per window, and which secrets verified requests (the warnings
/// banner every admin page asks for).
#[derive(Clone, Default)]
pub(super) struct SharedReads {
    summaries: [SharedRead<DeliverySummary>; 3],
    secret_uses: SharedRead<Vec<SecretUse>>,
}

/// How often a secret verified requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    pub label: String,
    pub last_used_at_us: i64,
    pub uses_24h: i64,
}

/// What one retention run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub callbacks: u64,
    pub views: u64,
    pub deliveries: u64,
}

fn delivery_item(row: &impl StoreRow) -> Result<DeliveryItem, sqlx::Error> {
    Ok(DeliveryItem {
        received_at: time_of(row.time("received_at")?),
        request_id: row.opt_text("request_id")?,
        outcome: row.text("outcome")?,
        // Selected as a 64-bit integer on both backends (see `delivery_query`).
        http_status: u16::try_from(row.int("http_status")?).unwrap_or(0),
        processing_us: row.int("processing_us")?,
        body_bytes: row.int("body_bytes")?,
        remote_addr: row.opt_text("remote_addr")?,
        callback_id: row.opt_text("callback_id")?,
        llm_callback_id: row.opt_uuid("llm_callback_id")?,
        signature_scheme: row.opt_text("signature_scheme")?,
        secret_label: row.opt_text("secret_label")?,
        source: row.opt_text("source")?,
        count: row.int("count")?,
    })
}

/// The deliveries tab's filtered select.
fn delivery_query<'a, DB>(dialect: Dialect, filter: &DeliveryFilter) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    DbTime: Encode<'a, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new("SELECT id, received_at, request_id, outcome, ");
    // PostgreSQL's column is an `integer`: widened so one decoder reads both.
    query.push(dialect.pick("http_status", "http_status::bigint AS http_status"));
    query.push(
        ", processing_us, body_bytes,
                remote_addr, callback_id, llm_callback_id, signature_scheme, secret_label, count,
                coalesce(source, 'llm-callback') AS source
         FROM webhook_deliveries WHERE 1 = 1",
    );
    if let Some(source) = filter.source.as_deref().filter(|s| !s.is_empty()) {
        // Plain equality, so the (source, received_at) index serves it.
        query.push(" AND source = ");
        query.push_bind(dialect.text(source));
    }
    if let Some(outcome) = filter.outcome.as_deref().filter(|o| !o.is_empty()) {
        query
            .push(" AND outcome = ")
            .push_bind(dialect.text(outcome));
    }
    if let Some(from) = filter.from {
        query
            .push(" AND received_at >= ")
            .push_bind(DbTime(micros_of(from)));
    }
    if let Some(to) = filter.to {
        query
            .push(" AND received_at <= ")
            .push_bind(DbTime(micros_of(to)));
    }
    query
}

/// Rows strictly on one side of `cursor` in `(received_at, id)` order;
/// `op` is `<` (older) or `>` (newer).
fn push_delivery_beyond<'a, DB>(query: &mut QueryBuilder<'a, DB>, cursor: DeliveryCursor, op: &str)
where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
    DbTime: Encode<'a, DB> + Type<DB>,
{
    query
        .push(format!(" AND (received_at, id) {op} ("))
        .push_bind(DbTime(cursor.received_at_us))
        .push(", ")
        .push_bind(cursor.id)
        .push(")");
}

/// The value at percentile `p` (nearest rank) of `sorted` (value, weight) pairs.
pub fn weighted_percentile(sorted: &[(i64, i64)], total: i64, p: f64) -> Option<i64> {
    if total <= 0 {
        return None;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (value, weight) in sorted {
        seen += weight;
        if seen >= rank {
            return Some(*value);
        }
    }
    sorted.last().map(|(value, _)| *value)
}

/// Sleeps twice as long as the batch that started at `batch_started` took.
async fn yield_to_ingest(batch_started: std::time::Instant) {
    let pause = (batch_started.elapsed() * 2).max(std::time::Duration::from_millis(5));
    tokio::time::sleep(pause).await;
}

impl Store {
    /// A page of the delivery audit log, newest first.
    pub async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        direction: DeliveryDirection,
        limit: u32,
    ) -> Result<DeliveryPage, StoreError> {
        let (mut keyed, more) = on_db!(self.db(), |pool, dialect| {
            let mut query = delivery_query(dialect, filter);
            match direction {
                DeliveryDirection::Newest => {}
                DeliveryDirection::Before(cursor) => push_delivery_beyond(&mut query, cursor, "<"),
                DeliveryDirection::After(cursor) => push_delivery_beyond(&mut query, cursor, ">"),
            }
            query.push(match direction {
                DeliveryDirection::After(_) => " ORDER BY received_at ASC, id ASC",
                _ => " ORDER BY received_at DESC, id DESC",
            });
            query.push(" LIMIT ").push_bind(i64::from(limit) + 1);
            let rows = query.build().fetch_all(pool).await?;
            let more = rows.len() > limit as usize;
            let keyed = rows
                .iter()
                .take(limit as usize)
                .map(|row| {
                    let cursor = DeliveryCursor {
                        received_at_us: row.time("received_at")?,
                        id: row.int("id")?,
                    };
                    Ok((cursor, delivery_item(row)?))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok::<_, StoreError>((keyed, more))
        })?;
        if matches!(direction, DeliveryDirection::After(_)) {
            keyed.reverse();
        }
        let newest = keyed.first().map(|(cursor, _)| *cursor);
        let oldest = keyed.last().map(|(cursor, _)| *cursor);
        let (older, newer) = match direction {
            DeliveryDirection::Newest => (more, false),
            DeliveryDirection::Before(cursor) => (
                more,
                self.deliveries_exist(filter, newest.unwrap_or(cursor), ">")
                    .await?,
            ),
            DeliveryDirection::After(cursor) => (
                self.deliveries_exist(filter, oldest.unwrap_or(cursor), "<")
                    .await?,
                more,
            ),
        };
        Ok(DeliveryPage {
            next_cursor: oldest.filter(|_| older).map(|c| c.to_string()),
            prev_cursor: newest.filter(|_| newer).map(|c| c.to_string()),
            items: keyed.into_iter().map(|(_, item)| item).collect(),
        })
    }

    async fn deliveries_exist(
        &self,
        filter: &DeliveryFilter,
        cursor: DeliveryCursor,
        op: &str,
    ) -> Result<bool, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            let mut query = delivery_query(dialect, filter);
            push_delivery_beyond(&mut query, cursor, op);
            query.push(" LIMIT 1");
            Ok(query.build().fetch_optional(pool).await?.is_some())
        })
    }

    /// [`Self::delivery_summary`] as the dashboard asks for it: computed at
    /// most once per window at a time on this node, and reused for
    /// [`SHARED_READ_FOR`] (see [`SharedRead::get`]).
    ///
    /// [`SHARED_READ_FOR`]: super::shared_read::SHARED_READ_FOR
    pub async fn delivery_summary_cached(
        &self,
        window: SummaryWindow,
        now: OffsetDateTime,
    ) -> Result<DeliverySummary, StoreError> {
        let store = self.clone();
        self.shared.summaries[window.index()]
            .get(micros_of(now), move || async move {
                metrics::counter!(
                    "callback_inbox_delivery_summary_computations_total",
                    "window" => window.as_str()
                )
                .increment(1);
                store.delivery_summary(window, now).await
            })
            .await
    }

    /// How many summaries this node has computed (each window counted).
    pub fn delivery_summary_computations(&self) -> u64 {
        self.shared
            .summaries
            .iter()
            .map(SharedRead::computations)
            .sum()
    }

    /// Counts, percentiles and the chart of the last `window` before `now`.
    pub async fn delivery_summary(
        &self,
        window: SummaryWindow,
        now: OffsetDateTime,
    ) -> Result<DeliverySummary, StoreError> {
        let now_us = micros_of(now);
        let since_us = now_us - window.secs() * 1_000_000;
        let bucket_us = window.bucket_secs() * 1_000_000;
        let first_bucket = since_us.div_euclid(bucket_us);

        // Both backends number a bucket as the Unix time in microseconds
        // divided (truncating) by the bucket's length in microseconds.
        let (counts, times, by_source) = on_db!(self.db(), |pool, dialect| {
            let rows = sqlx::query(dialect.pick(
                "SELECT outcome, (received_at / $2) AS bucket, sum(count) AS n
                 FROM webhook_deliveries WHERE received_at > $1
                 GROUP BY outcome, bucket",
                "SELECT outcome,
                        (extract(epoch FROM received_at) * 1000000)::bigint / $2 AS bucket,
                        sum(count)::bigint AS n
                 FROM webhook_deliveries WHERE received_at > $1
                 GROUP BY outcome, bucket",
            ))
            .bind(DbTime(since_us))
            .bind(bucket_us)
            .fetch_all(pool)
            .await?;
            let counts = rows
                .iter()
                .map(|row| Ok((row.text("outcome")?, row.int("bucket")?, row.int("n")?)))
                .collect::<Result<Vec<(String, i64, i64)>, sqlx::Error>>()?;
            let times: Vec<(i64, i64)> = sqlx::query_as(dialect.pick(
                "SELECT processing_us, sum(count) FROM webhook_deliveries WHERE received_at > $1
                 GROUP BY processing_us ORDER BY processing_us",
                "SELECT processing_us, sum(count)::bigint FROM webhook_deliveries
                 WHERE received_at > $1
                 GROUP BY processing_us ORDER BY processing_us",
            ))
            .bind(DbTime(since_us))
            .fetch_all(pool)
            .await?;
            let by_source: Vec<(String, i64)> = sqlx::query_as(dialect.pick(
                "SELECT coalesce(source, 'llm-callback'), sum(count) FROM webhook_deliveries
                 WHERE received_at > $1 GROUP BY 1",
                "SELECT coalesce(source, 'llm-callback'), sum(count)::bigint FROM webhook_deliveries
                 WHERE received_at > $1 GROUP BY 1",
            ))
            .bind(DbTime(since_us))
            .fetch_all(pool)
            .await?;
            Ok::<_, StoreError>((counts, times, by_source))
        })?;
        let bars = (now_us.div_euclid(bucket_us) - first_bucket + 1).max(1);
        let mut buckets: Vec<DeliveryBucket> = (0..bars)
            .map(|n| DeliveryBucket {
                start: time_of((first_bucket + n) * bucket_us),
                by_outcome: BTreeMap::new(),
            })
            .collect();
        let mut by_outcome = BTreeMap::new();
        for (outcome, bucket, n) in counts {
            *by_outcome.entry(outcome.clone()).or_insert(0) += n;
            if let Some(bar) = usize::try_from(bucket - first_bucket)
                .ok()
                .and_then(|at| buckets.get_mut(at))
            {
                *bar.by_outcome.entry(outcome).or_insert(0) += n;
            }
        }
        let total = by_outcome.values().sum();
        let invalid_signature = SIGNATURE_OUTCOMES
            .iter()
            .filter_map(|outcome| by_outcome.get(*outcome))
            .sum();

        let ms = |p| weighted_percentile(&times, total, p).map(|us| us as f64 / 1000.0);
        Ok(DeliverySummary {
            window: window.as_str().to_owned(),
            total,
            by_outcome,
            by_source: by_source.into_iter().collect(),
            invalid_signature,
            processing_ms: Percentiles {
                p50: ms(50.0),
                p95: ms(95.0),
                p99: ms(99.0),
            },
            bucket_secs: window.bucket_secs(),
            buckets,
        })
    }

    /// [`Self::secret_uses`] as the warnings banner of every admin page
    /// asks for it: computed at most once at a time on this node, and
    /// reused for [`SHARED_READ_FOR`] (see [`SharedRead::get`]).
    ///
    /// [`SHARED_READ_FOR`]: super::shared_read::SHARED_READ_FOR
    pub async fn secret_uses_cached(&self, now_us: i64) -> Result<Vec<SecretUse>, StoreError> {
        let store = self.clone();
        self.shared
            .secret_uses
            .get(now_us, move || async move {
                metrics::counter!("callback_inbox_secret_uses_computations_total").increment(1);
                store.secret_uses(now_us).await
            })
            .await
    }

    /// How many times this node has computed [`Self::secret_uses_cached`].
    pub fn secret_uses_computations(&self) -> u64 {
        self.shared.secret_uses.computations()
    }

    /// For each secret label that verified a request: when last, and how
    /// many times in the 24 hours before `now_us`.
    pub async fn secret_uses(&self, now_us: i64) -> Result<Vec<SecretUse>, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            let rows = sqlx::query(dialect.pick(
                "SELECT secret_label, max(received_at) AS last_used,
                        sum(CASE WHEN received_at > $1 THEN count ELSE 0 END) AS uses
                 FROM webhook_deliveries
                 WHERE secret_label IS NOT NULL AND outcome IN ('accepted', 'duplicate')
                 GROUP BY secret_label",
                "SELECT secret_label, max(received_at) AS last_used,
                        sum(CASE WHEN received_at > $1 THEN count ELSE 0 END)::bigint AS uses
                 FROM webhook_deliveries
                 WHERE secret_label IS NOT NULL AND outcome IN ('accepted', 'duplicate')
                 GROUP BY secret_label",
            ))
            .bind(DbTime(now_us - 86_400_000_000))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(SecretUse {
                        label: row.text("secret_label")?,
                        last_used_at_us: row.time("last_used")?,
                        uses_24h: row.int("uses")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Deletes callbacks (their views go with them) and audit rows received
    /// before `cutoff_us`, [`PURGE_BATCH`] rows per statement. After each
    /// batch it pauses twice as long as the batch took, so retention takes at
    /// most a third of the database's write time and ingest keeps the rest.
    pub async fn purge_older_than(&self, cutoff_us: i64) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        on_db!(self.db(), |pool, dialect| {
            loop {
                let batch_started = std::time::Instant::now();
                let mut tx = pool.begin().await?;
                if dialect == Dialect::Postgres {
                    // Taken before any row, as the writers of every node do:
                    // a retry of an old callback being deleted here then waits
                    // for this batch instead of deadlocking with it over the
                    // callback count.
                    sqlx::query("SELECT seq FROM feed_head WHERE id = 1 FOR UPDATE")
                        .execute(&mut *tx)
                        .await?;
                }
                let views = sqlx::query(
                    "DELETE FROM llm_callback_views WHERE callback_id IN
                       (SELECT id FROM llm_callbacks WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
                )
                .bind(DbTime(cutoff_us))
                .bind(PURGE_BATCH)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let callbacks = sqlx::query(
                    "DELETE FROM llm_callbacks WHERE id IN
                       (SELECT id FROM llm_callbacks WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
                )
                .bind(DbTime(cutoff_us))
                .bind(PURGE_BATCH)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                report.views += views;
                report.callbacks += callbacks;
                if callbacks < PURGE_BATCH as u64 {
                    break;
                }
                yield_to_ingest(batch_started).await;
            }
            loop {
                let batch_started = std::time::Instant::now();
                let deliveries = sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE id IN
                       (SELECT id FROM webhook_deliveries WHERE received_at < $1 LIMIT $2)",
                )
                .bind(DbTime(cutoff_us))
                .bind(PURGE_BATCH)
                .execute(pool)
                .await?
                .rows_affected();
                report.deliveries += deliveries;
                if deliveries < PURGE_BATCH as u64 {
                    break;
                }
                yield_to_ingest(batch_started).await;
            }
            // Sign-in attempts only matter within their window.
            sqlx::query("DELETE FROM login_failures WHERE failed_at < $1")
                .bind(DbTime(
                    cutoff_us.max(micros_of(OffsetDateTime::now_utc()) - 86_400_000_000),
                ))
                .execute(pool)
                .await?;
        });
        Ok(report)
    }

    /// Signed-in sessions that have not expired (the session layer's table).
    pub async fn active_sessions(&self) -> Result<i64, StoreError> {
        let now = OffsetDateTime::now_utc();
        on_db!(self.db(), |pool, dialect| {
            let query =
                sqlx::query_scalar("SELECT count(*) FROM tower_sessions WHERE expiry_date > $1");
            // tower-sessions' SQLite store keeps Unix seconds in an INTEGER;
            // its PostgreSQL store a `timestamptz`.
            let query = match dialect {
                Dialect::Sqlite => query.bind(now.unix_timestamp()),
                Dialect::Postgres => query.bind(DbTime(micros_of(now))),
            };
            Ok(query.fetch_one(pool).await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_database::TestDatabase;
    use crate::store::{DeliveryOutcome, DeliveryRecord};

    async fn accepted(store: &Store, at: OffsetDateTime) {
        store
            .record_delivery(DeliveryRecord {
                received_at_us: micros_of(at),
                request_id: None,
                outcome: DeliveryOutcome::Accepted,
                http_status: 200,
                processing_us: 1_000,
                body_bytes: 10,
                remote_addr: None,
                callback_id: None,
                llm_callback_id: None,
                signature_scheme: None,
                secret_label: None,
                source: None,
                authenticated: true,
                count: 1,
            })
            .await
            .unwrap();
        store.flush().await.unwrap();
    }

    /// Eight viewers asking for the same window at once share one
    /// computation; the answer is reused within 5 s and computed afresh
    /// after it. Windows are computed separately.
    #[tokio::test]
    async fn concurrent_summaries_share_one_computation_until_it_expires() {
        let database = TestDatabase::fresh().await;
        let store = Store::open(&database.url).await.unwrap();
        let now = OffsetDateTime::now_utc();
        accepted(&store, now - time::Duration::minutes(5)).await;

        let asks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .delivery_summary_cached(SummaryWindow::Week, now)
                        .await
                })
            })
            .collect();
        for ask in asks {
            assert_eq!(ask.await.unwrap().unwrap().total, 1);
        }
        assert_eq!(store.delivery_summary_computations(), 1);

        accepted(&store, now - time::Duration::minutes(1)).await;
        let soon = now + time::Duration::seconds(4);
        let cached = store
            .delivery_summary_cached(SummaryWindow::Week, soon)
            .await
            .unwrap();
        assert_eq!(cached.total, 1, "served from the cache");
        assert_eq!(store.delivery_summary_computations(), 1);

        let later = now + time::Duration::seconds(6);
        let fresh = store
            .delivery_summary_cached(SummaryWindow::Week, later)
            .await
            .unwrap();
        assert_eq!(fresh.total, 2, "computed again after the cache time");
        assert_eq!(store.delivery_summary_computations(), 2);

        let hour = store
            .delivery_summary_cached(SummaryWindow::Hour, later)
            .await
            .unwrap();
        assert_eq!(hour.window, "1h");
        assert_eq!(store.delivery_summary_computations(), 3);
    }

    #[test]
    fn weighted_percentiles_use_the_nearest_rank() {
        // 1..=100 ms once each.
        let times: Vec<(i64, i64)> = (1..=100).map(|ms| (ms * 1000, 1)).collect();
        assert_eq!(weighted_percentile(&times, 100, 50.0), Some(50_000));
        assert_eq!(weighted_percentile(&times, 100, 95.0), Some(95_000));
        assert_eq!(weighted_percentile(&times, 100, 99.0), Some(99_000));
        // An aggregated row weighs as many requests as it counts.
        let times = [(1_000, 98), (500_000, 2)];
        assert_eq!(weighted_percentile(&times, 100, 95.0), Some(1_000));
        assert_eq!(weighted_percentile(&times, 100, 99.0), Some(500_000));
        assert_eq!(weighted_percentile(&[], 0, 50.0), None);
    }
}
