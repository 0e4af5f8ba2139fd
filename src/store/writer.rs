//! The single SQLite writer: group commit.
//!
//! SQLite allows one writer at a time and every durable commit costs an
//! fsync. One task owns a dedicated connection, takes whatever jobs are
//! queued (up to [`WRITER_MAX_BATCH`]), runs them in one
//! `BEGIN IMMEDIATE … COMMIT`, and only then answers each waiting request.
//! Under load many callbacks share one fsync; when idle a single callback
//! commits at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use super::{
    AuditedRequest, DeliveryOutcome, DeliveryRecord, InsertOutcome, NewCallback, StoreError,
};

/// Most jobs committed in one transaction.
pub const WRITER_MAX_BATCH: usize = 512;
const QUEUE_CAPACITY: usize = 8192;
/// Most distinct (minute, address, outcome) counts held between commits;
/// beyond it further addresses share one "many addresses" count, so memory
/// stays bounded whatever a flood sends.
const MAX_PENDING_COUNTS: usize = 10_000;
pub const MANY_ADDRESSES: &str = "(many addresses)";

/// Unauthenticated requests, counted per minute, address, outcome and status
/// until the writer's next commit turns each count into one upserted row.
#[derive(Default)]
struct PendingCounts {
    by_key: HashMap<String, DeliveryRecord>,
}

impl PendingCounts {
    fn add(&mut self, mut record: DeliveryRecord) {
        let mut key = aggregate_key(&record);
        if !self.by_key.contains_key(&key) && self.by_key.len() >= MAX_PENDING_COUNTS {
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
}

fn aggregate_key(record: &DeliveryRecord) -> String {
    format!(
        "{}|{}|{}|{}",
        record.received_at_us.div_euclid(60_000_000),
        record.remote_addr.as_deref().unwrap_or("-"),
        record.outcome.as_str(),
        record.http_status
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
    pub(super) fn spawn(connection: SqliteConnection, feed: broadcast::Sender<i64>) -> Self {
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
    mut connection: SqliteConnection,
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
                // One bad job must not fail its neighbours: retry each alone.
                tracing::warn!(error = %err, jobs = batch.len(), "batch commit failed; retrying jobs one by one");
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
    connection: &mut SqliteConnection,
    batch: &[Job],
) -> Result<Vec<JobResult>, StoreError> {
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let result = match job {
            Job::Callback {
                callback, audit, ..
            } => {
                let outcome = upsert_callback(&mut tx, callback).await?;
                if let Some(audit) = audit {
                    let mut record = audit.record.clone();
                    record.outcome = if !record.authenticated {
                        DeliveryOutcome::StoredUnsigned
                    } else if outcome.duplicate {
                        DeliveryOutcome::Duplicate
                    } else {
                        DeliveryOutcome::Accepted
                    };
                    record.llm_callback_id = Some(outcome.id);
                    record.processing_us =
                        i64::try_from(audit.started.elapsed().as_micros()).unwrap_or(i64::MAX);
                    insert_delivery(&mut tx, &record).await?;
                }
                Some(outcome)
            }
            Job::Delivery(record) => {
                insert_delivery(&mut tx, record).await?;
                None
            }
            Job::Flush(_) | Job::Wake => None,
        };
        results.push(Ok(result));
    }
    tx.commit().await?;
    Ok(results)
}

async fn upsert_callback(
    connection: &mut SqliteConnection,
    callback: &NewCallback,
) -> Result<InsertOutcome, StoreError> {
    let fields = &callback.fields;
    let row = sqlx::query(
        "INSERT INTO llm_callbacks (
             id, callback_id, signature_valid, signature_scheme, signature_header, verified_at,
             payload, payload_preview, external_job_id, workflow_name, event_type, status,
             error_message, delivery_count, created_at, updated_at, feed_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1, ?14, ?14,
                 (SELECT seq + 1 FROM feed_head WHERE id = 1))
         ON CONFLICT (callback_id) DO UPDATE
             SET delivery_count = delivery_count + 1, updated_at = excluded.updated_at
         RETURNING id, delivery_count, feed_seq",
    )
    .bind(callback.id)
    .bind(callback.callback_id.as_str())
    .bind(callback.signature_valid)
    .bind(callback.signature_scheme.map(|s| s.as_str()))
    .bind(callback.signature_scheme.map(|s| s.header_name()))
    .bind(callback.verified_at_us)
    .bind(&callback.payload)
    .bind(&fields.payload_preview)
    .bind(&fields.external_job_id)
    .bind(&fields.workflow_name)
    .bind(&fields.event_type)
    .bind(fields.status.as_str())
    .bind(&fields.error_message)
    .bind(callback.received_at_us)
    .fetch_one(&mut *connection)
    .await?;
    let id: Uuid = row.try_get(0)?;
    let delivery_count: i64 = row.try_get(1)?;
    Ok(InsertOutcome {
        id,
        duplicate: id != callback.id,
        delivery_count,
        feed_seq: row.try_get(2)?,
    })
}

async fn insert_delivery(
    connection: &mut SqliteConnection,
    record: &DeliveryRecord,
) -> Result<(), StoreError> {
    let aggregate =
        (!record.authenticated && record.llm_callback_id.is_none()).then(|| aggregate_key(record));
    sqlx::query(
        "INSERT INTO webhook_deliveries (
             received_at, request_id, outcome, http_status, processing_us, body_bytes,
             remote_addr, callback_id, llm_callback_id, signature_scheme, count, aggregate_key,
             secret_label)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (aggregate_key) DO UPDATE
             SET count = count + excluded.count,
                 processing_us = max(processing_us, excluded.processing_us),
                 body_bytes = max(body_bytes, excluded.body_bytes)",
    )
    .bind(record.received_at_us)
    .bind(&record.request_id)
    .bind(record.outcome.as_str())
    .bind(i64::from(record.http_status))
    .bind(record.processing_us)
    .bind(record.body_bytes)
    .bind(&record.remote_addr)
    .bind(record.callback_id.as_ref().map(|id| id.as_str()))
    .bind(record.llm_callback_id)
    .bind(record.signature_scheme.map(|s| s.as_str()))
    .bind(record.count)
    .bind(aggregate)
    .bind(&record.secret_label)
    .execute(&mut *connection)
    .await?;
    Ok(())
}
