//! The single SQLite writer: group commit.
//!
//! SQLite allows one writer at a time and every durable commit costs an
//! fsync. One task owns a dedicated connection, takes whatever jobs are
//! queued (up to [`WRITER_MAX_BATCH`]), runs them in one
//! `BEGIN IMMEDIATE … COMMIT`, and only then answers each waiting request.
//! Under load many callbacks share one fsync; when idle a single callback
//! commits at once.

use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{DeliveryRecord, InsertOutcome, NewCallback, StoreError};

/// Most jobs committed in one transaction.
pub const WRITER_MAX_BATCH: usize = 512;
const QUEUE_CAPACITY: usize = 8192;

enum Job {
    Callback {
        callback: Box<NewCallback>,
        reply: oneshot::Sender<Result<InsertOutcome, StoreError>>,
    },
    Delivery(Box<DeliveryRecord>),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub(super) struct WriterHandle {
    jobs: mpsc::Sender<Job>,
}

impl WriterHandle {
    pub(super) fn spawn(connection: SqliteConnection) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(connection, queue));
        Self { jobs }
    }

    pub(super) async fn insert_callback(
        &self,
        callback: NewCallback,
    ) -> Result<InsertOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Callback {
                callback: Box::new(callback),
                reply,
            })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    pub(super) fn record_delivery(&self, record: DeliveryRecord) {
        // The audit log must never hold up or fail a request: when the queue
        // is full the row is dropped, and the log says so.
        if let Err(err) = self.jobs.try_send(Job::Delivery(Box::new(record))) {
            tracing::warn!(error = %err, "delivery audit row dropped: writer queue full");
        }
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

async fn run(mut connection: SqliteConnection, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(WRITER_MAX_BATCH);
    while queue.recv_many(&mut batch, WRITER_MAX_BATCH).await > 0 {
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
            Job::Callback { callback, .. } => Some(upsert_callback(&mut tx, callback).await?),
            Job::Delivery(record) => {
                insert_delivery(&mut tx, record).await?;
                None
            }
            Job::Flush(_) => None,
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
             error_message, delivery_count, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1, ?14, ?14)
         ON CONFLICT (callback_id) DO UPDATE
             SET delivery_count = delivery_count + 1, updated_at = excluded.updated_at
         RETURNING id, delivery_count",
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
    })
}

async fn insert_delivery(
    connection: &mut SqliteConnection,
    record: &DeliveryRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (
             received_at, request_id, outcome, http_status, processing_us, body_bytes,
             remote_addr, callback_id, llm_callback_id, signature_scheme)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
    .execute(&mut *connection)
    .await?;
    Ok(())
}
