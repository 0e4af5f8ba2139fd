//! The writer: group commit, one task per node.
//!
//! Every durable commit costs an fsync, and both backends let one
//! transaction at a time add callbacks (SQLite has one writer; PostgreSQL
//! serializes them on the feed's head row, see `migrations/postgres`). One
//! task owns a dedicated connection, takes whatever jobs are queued (up to
//! [`WRITER_MAX_BATCH`]), runs them in one transaction, and only then
//! answers each waiting request. Under load many callbacks share one fsync;
//! when idle a single callback commits at once.

mod postgres;
mod sqlite;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{
    AuditedRequest, DeliveryOutcome, DeliveryRecord, InsertOutcome, NewCallback, StoreError,
};

/// The writer's own connection.
pub(super) enum WriterConnection {
    Sqlite(SqliteConnection),
    /// With what it was opened, to open it again: a server restart, a
    /// failover or a network cut ends a PostgreSQL connection.
    Postgres(PgConnection, Box<PgConnectOptions>),
}

/// Attempts to reopen a lost PostgreSQL connection before the waiting
/// requests are answered with an error (which senders retry).
const RECONNECT_ATTEMPTS: u32 = 10;

impl WriterConnection {
    /// After a failed batch: makes sure the connection still works,
    /// reopening it when it does not.
    async fn recover(&mut self) {
        let Self::Postgres(connection, options) = self else {
            return;
        };
        let patience = std::time::Duration::from_secs(5);
        if matches!(
            tokio::time::timeout(patience, connection.ping()).await,
            Ok(Ok(()))
        ) {
            return;
        }
        for attempt in 1..=RECONNECT_ATTEMPTS {
            match tokio::time::timeout(patience, options.connect())
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut))
            {
                Ok(fresh) => {
                    tracing::warn!(
                        attempt,
                        "the writer's database connection was lost; reopened it"
                    );
                    *connection = fresh;
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, attempt, "cannot reopen the writer's database connection");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                        .await;
                }
            }
        }
    }
}

/// Most jobs committed in one transaction.
pub const WRITER_MAX_BATCH: usize = 512;
const QUEUE_CAPACITY: usize = 8192;
/// Rows of distinct addresses that unauthenticated requests may add to the
/// audit log per minute (per node; each node of a PostgreSQL cluster has
/// its own budget). Beyond it, further addresses share one
/// [`MANY_ADDRESSES`] row per outcome and status, which counts them all: a
/// flood from many addresses adds at most this many rows a minute, and
/// every request is still counted.
pub const MAX_ADDRESS_ROWS_PER_MINUTE: usize = 50;
/// Minutes whose admitted rows are remembered: a request stamped in an
/// older minute (it started before and finished late) goes to that minute's
/// shared row, since whether its address was admitted is forgotten.
const REMEMBERED_MINUTES: usize = 3;
pub const MANY_ADDRESSES: &str = "(many addresses)";

/// Unauthenticated requests, counted per minute, address, outcome and status
/// until the writer's next commit turns each count into one upserted row.
#[derive(Default)]
struct PendingCounts {
    by_key: HashMap<String, DeliveryRecord>,
    /// Per minute, the rows of single addresses given out so far (at most
    /// [`MAX_ADDRESS_ROWS_PER_MINUTE`] each). Outlives commits: the bound
    /// is per minute, not per commit.
    admitted: BTreeMap<i64, HashSet<String>>,
}

impl PendingCounts {
    fn add(&mut self, mut record: DeliveryRecord) {
        let mut key = aggregate_key(&record);
        if !self.admit(&record, &key) {
            record.remote_addr = Some(MANY_ADDRESSES.to_owned());
            key = aggregate_key(&record);
        }
        match self.by_key.get_mut(&key) {
            Some(pending) => {
                pending.count += record.count;
                pending.processing_us = pending.processing_us.max(record.processing_us);
                pending.body_bytes = pending.body_bytes.max(record.body_bytes);
            }
            None => {
                self.by_key.insert(key, record);
            }
        }
    }

    /// Whether `record` may have (or already has) its own row in its minute.
    fn admit(&mut self, record: &DeliveryRecord, key: &str) -> bool {
        if record.remote_addr.as_deref() == Some(MANY_ADDRESSES) {
            return true;
        }
        let minute = record.received_at_us.div_euclid(60_000_000);
        let newest = self.admitted.keys().next_back().copied().unwrap_or(minute);
        if minute <= newest - REMEMBERED_MINUTES as i64 {
            return false;
        }
        let rows = self.admitted.entry(minute).or_default();
        if rows.contains(key) {
            return true;
        }
        if rows.len() >= MAX_ADDRESS_ROWS_PER_MINUTE {
            return false;
        }
        rows.insert(key.to_owned());
        while self.admitted.len() > REMEMBERED_MINUTES {
            self.admitted.pop_first();
        }
        true
    }
}

fn aggregate_key(record: &DeliveryRecord) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        record.received_at_us.div_euclid(60_000_000),
        record.remote_addr.as_deref().unwrap_or("-"),
        record.outcome.as_str(),
        record.http_status,
        record.source.as_deref().unwrap_or("-")
    )
}

enum Job {
    Callback {
        callback: Box<NewCallback>,
        /// Its audit row, written in the same transaction.
        audit: Option<Box<AuditedRequest>>,
        reply: oneshot::Sender<Result<InsertOutcome, StoreError>>,
    },
    Delivery(Box<DeliveryRecord>),
    /// Commits the pending counts (nothing else to do).
    Wake,
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub(super) struct WriterHandle {
    jobs: mpsc::Sender<Job>,
    pending: Arc<Mutex<PendingCounts>>,
}

impl WriterHandle {
    /// Starts the writer; after each commit that added callbacks it sends
    /// the new head of the feed on `feed`.
    pub(super) fn spawn(connection: WriterConnection, feed: broadcast::Sender<i64>) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let pending = Arc::new(Mutex::new(PendingCounts::default()));
        tokio::spawn(run(connection, queue, pending.clone(), feed));
        Self { jobs, pending }
    }

    pub(super) async fn insert_callback(
        &self,
        callback: NewCallback,
        audit: Option<AuditedRequest>,
    ) -> Result<InsertOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Callback {
                callback: Box::new(callback),
                audit: audit.map(Box::new),
                reply,
            })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    pub(super) async fn record_delivery(&self, record: DeliveryRecord) -> Result<(), StoreError> {
        if !record.authenticated && record.llm_callback_id.is_none() {
            let was_empty = {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                let was_empty = pending.by_key.is_empty();
                pending.add(record);
                was_empty
            };
            // The first count since the last commit wakes the writer; when the
            // queue is full a commit is coming anyway and takes the counts.
            if was_empty {
                let _ = self.jobs.try_send(Job::Wake);
            }
            return Ok(());
        }
        // Back-pressure, never loss: a full queue makes this request wait.
        self.jobs
            .send(Job::Delivery(Box::new(record)))
            .await
            .map_err(|_| StoreError::WriterStopped)
    }

    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Flush(done))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        wait.await.map_err(|_| StoreError::WriterStopped)
    }
}

async fn run(
    mut connection: WriterConnection,
    mut queue: mpsc::Receiver<Job>,
    pending: Arc<Mutex<PendingCounts>>,
    feed: broadcast::Sender<i64>,
) {
    let mut batch = Vec::with_capacity(WRITER_MAX_BATCH);
    while queue.recv_many(&mut batch, WRITER_MAX_BATCH).await > 0 {
        let counts: Vec<DeliveryRecord> =
            std::mem::take(&mut pending.lock().unwrap_or_else(|e| e.into_inner()).by_key)
                .into_values()
                .collect();
        if !counts.is_empty() {
            batch.extend(
                counts
                    .into_iter()
                    .map(|count| Job::Delivery(Box::new(count))),
            );
        }
        metrics::histogram!("callback_inbox_store_batch_size").record(batch.len() as f64);
        let results = match write_batch(&mut connection, &batch).await {
            Ok(results) => results,
            Err(err) => {
                // One bad job must not fail its neighbours: retry each alone
                // (on a working connection).
                tracing::warn!(error = %err, jobs = batch.len(), "batch commit failed; retrying jobs one by one");
                connection.recover().await;
                let mut results = Vec::with_capacity(batch.len());
                for job in &batch {
                    let single = std::slice::from_ref(job);
                    results.push(match write_batch(&mut connection, single).await {
                        Ok(mut one) => one.pop().unwrap_or(Ok(None)),
                        Err(err) => Err(err),
                    });
                }
                results
            }
        };
        // Committed: tell live streams where the feed ends now.
        let head = results
            .iter()
            .filter_map(|result| result.as_ref().ok().copied().flatten())
            .filter(|outcome| !outcome.duplicate)
            .map(|outcome| outcome.feed_seq)
            .max();
        if let Some(head) = head {
            let _ = feed.send(head);
        }
        for (job, result) in batch.drain(..).zip(results) {
            match job {
                Job::Callback { reply, .. } => {
                    let answer =
                        result.and_then(|outcome| outcome.ok_or(StoreError::WriterStopped));
                    let _ = reply.send(answer);
                }
                Job::Delivery(_) => {
                    if let Err(err) = result {
                        tracing::warn!(error = %err, "delivery audit row not stored");
                    }
                }
                Job::Flush(done) => {
                    let _ = done.send(());
                }
                Job::Wake => {}
            }
        }
    }
}

type JobResult = Result<Option<InsertOutcome>, StoreError>;

/// Runs the jobs in one transaction. On error the transaction is rolled back
/// and nothing of the batch is stored.
async fn write_batch(
    connection: &mut WriterConnection,
    batch: &[Job],
) -> Result<Vec<JobResult>, StoreError> {
    match connection {
        WriterConnection::Sqlite(connection) => sqlite::write_batch(connection, batch).await,
        WriterConnection::Postgres(connection, _) => postgres::write_batch(connection, batch).await,
    }
}

/// The audit row of a stored callback, completed with what storing it did.
fn stored_audit_row(audit: &AuditedRequest, outcome: &InsertOutcome) -> DeliveryRecord {
    let mut record = audit.record.clone();
    record.outcome = DeliveryOutcome::of_stored(record.authenticated, outcome.duplicate);
    record.llm_callback_id = Some(outcome.id);
    record.processing_us = i64::try_from(audit.started.elapsed().as_micros()).unwrap_or(i64::MAX);
    record
}

/// The aggregation key of an unauthenticated request's audit row; `None`
/// for a row of its own.
fn aggregate_key_of(record: &DeliveryRecord) -> Option<String> {
    (!record.authenticated && record.llm_callback_id.is_none()).then(|| aggregate_key(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;
    const T0: i64 = 29_383_333 * MINUTE;

    fn unsigned(address: &str, at_us: i64) -> DeliveryRecord {
        DeliveryRecord {
            received_at_us: at_us,
            request_id: None,
            outcome: DeliveryOutcome::MissingSignature,
            http_status: 401,
            processing_us: 10,
            body_bytes: 0,
            remote_addr: Some(address.to_owned()),
            callback_id: None,
            llm_callback_id: None,
            signature_scheme: None,
            secret_label: None,
            source: None,
            authenticated: false,
            count: 1,
        }
    }

    /// Rows written for one minute: what each commit took, merged by key as
    /// the upsert does.
    fn rows_of_minute(
        committed: &HashMap<String, DeliveryRecord>,
        minute: i64,
    ) -> Vec<&DeliveryRecord> {
        committed
            .values()
            .filter(|record| record.received_at_us.div_euclid(MINUTE) == minute)
            .collect()
    }

    fn commit(pending: &mut PendingCounts, into: &mut HashMap<String, DeliveryRecord>) {
        for (key, record) in std::mem::take(&mut pending.by_key) {
            into.entry(key)
                .and_modify(|row| row.count += record.count)
                .or_insert(record);
        }
    }

    /// 3,000 addresses in one minute, committed every 100 requests (the
    /// bound is per minute, not per commit): 50 rows of their own and one
    /// shared row, and every request counted.
    #[test]
    fn a_minute_of_many_addresses_makes_at_most_51_rows() {
        let mut pending = PendingCounts::default();
        let mut committed = HashMap::new();
        for n in 0..3_000 {
            pending.add(unsigned(&format!("10.0.{}.{}", n / 256, n % 256), T0 + n));
            if n % 100 == 99 {
                commit(&mut pending, &mut committed);
            }
        }
        commit(&mut pending, &mut committed);
        let rows = rows_of_minute(&committed, T0 / MINUTE);
        assert_eq!(rows.len(), MAX_ADDRESS_ROWS_PER_MINUTE + 1);
        assert_eq!(rows.iter().map(|row| row.count).sum::<i64>(), 3_000);
        let shared: Vec<_> = rows
            .iter()
            .filter(|row| row.remote_addr.as_deref() == Some(MANY_ADDRESSES))
            .collect();
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].count, 3_000 - MAX_ADDRESS_ROWS_PER_MINUTE as i64);

        // An admitted address keeps its own row for the rest of the minute.
        pending.add(unsigned("10.0.0.7", T0 + 30 * 1_000_000));
        commit(&mut pending, &mut committed);
        let rows = rows_of_minute(&committed, T0 / MINUTE);
        assert_eq!(rows.len(), MAX_ADDRESS_ROWS_PER_MINUTE + 1);
        let own = rows
            .iter()
            .find(|row| row.remote_addr.as_deref() == Some("10.0.0.7"))
            .unwrap();
        assert_eq!(own.count, 2);
    }

    /// Each minute has its own budget; a request stamped in a minute too old
    /// to remember goes to that minute's shared row.
    #[test]
    fn each_minute_has_its_own_budget() {
        let mut pending = PendingCounts::default();
        let mut committed = HashMap::new();
        for minute in 0..5 {
            for n in 0..200 {
                pending.add(unsigned(
                    &format!("10.1.{minute}.{n}"),
                    T0 + minute * MINUTE + n,
                ));
            }
            commit(&mut pending, &mut committed);
        }
        for minute in 0..5 {
            let rows = rows_of_minute(&committed, T0 / MINUTE + minute);
            assert_eq!(
                rows.len(),
                MAX_ADDRESS_ROWS_PER_MINUTE + 1,
                "minute {minute}"
            );
            assert_eq!(rows.iter().map(|row| row.count).sum::<i64>(), 200);
        }
        pending.add(unsigned("10.9.9.9", T0 + 10));
        commit(&mut pending, &mut committed);
        let rows = rows_of_minute(&committed, T0 / MINUTE);
        assert_eq!(rows.len(), MAX_ADDRESS_ROWS_PER_MINUTE + 1);
        assert_eq!(rows.iter().map(|row| row.count).sum::<i64>(), 201);
        assert!(pending.admitted.len() <= REMEMBERED_MINUTES);
    }
}
