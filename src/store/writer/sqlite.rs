//! The writer's transaction on SQLite: one statement per callback and per
//! audit row. SQLite has one writer at a time (`BEGIN IMMEDIATE` takes the
//! lock up front), so the feed position each insert takes from `feed_head`
//! is handed out in commit order; a trigger moves the head.

use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};
use uuid::Uuid;

use super::{Job, JobResult, aggregate_key_of, stored_audit_row};
use crate::store::backend::DbTime;
use crate::store::{DeliveryRecord, InsertOutcome, NewCallback, StoreError};

pub(super) async fn write_batch(
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
                    insert_delivery(&mut tx, &stored_audit_row(audit, &outcome)).await?;
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

/// Inserts a callback, or counts one more delivery of the one stored under
/// its source and delivery id.
async fn upsert_callback(
    connection: &mut SqliteConnection,
    callback: &NewCallback,
) -> Result<InsertOutcome, StoreError> {
    let fields = &callback.fields;
    let row = sqlx::query(
        "INSERT INTO llm_callbacks (
             id, source, callback_id, signature_valid, signature_scheme, signature_header,
             verified_at, payload, payload_preview, external_job_id, workflow_name, event_type,
             status, error_message, delivery_count, created_at, updated_at, feed_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1, $15, $15,
                 (SELECT seq + 1 FROM feed_head WHERE id = 1))
         ON CONFLICT (source, callback_id) DO UPDATE
             SET delivery_count = delivery_count + 1, updated_at = excluded.updated_at
         RETURNING id, delivery_count, feed_seq",
    )
    .bind(callback.id)
    .bind(&callback.source)
    .bind(callback.callback_id.as_str())
    .bind(callback.signature_valid)
    .bind(callback.signature_scheme.map(|s| s.as_str()))
    .bind(callback.signature_scheme.map(|s| s.header_name()))
    .bind(callback.verified_at_us.map(DbTime))
    .bind(&callback.payload)
    .bind(&fields.payload_preview)
    .bind(&fields.external_job_id)
    .bind(&fields.workflow_name)
    .bind(&fields.event_type)
    .bind(fields.status.as_str())
    .bind(&fields.error_message)
    .bind(DbTime(callback.received_at_us))
    .fetch_one(&mut *connection)
    .await?;
    let id: Uuid = row.try_get(0)?;
    Ok(InsertOutcome {
        id,
        duplicate: id != callback.id,
        delivery_count: row.try_get(1)?,
        feed_seq: row.try_get(2)?,
    })
}

/// Inserts an audit row, or adds an aggregated count to its row.
pub(super) async fn insert_delivery(
    connection: &mut SqliteConnection,
    record: &DeliveryRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (
             received_at, request_id, outcome, http_status, processing_us, body_bytes,
             remote_addr, callback_id, llm_callback_id, signature_scheme, count, aggregate_key,
             secret_label, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (aggregate_key) DO UPDATE
             SET count = count + excluded.count,
                 processing_us = max(processing_us, excluded.processing_us),
                 body_bytes = max(body_bytes, excluded.body_bytes)",
    )
    .bind(DbTime(record.received_at_us))
    .bind(&record.request_id)
    .bind(record.outcome.as_str())
    .bind(i32::from(record.http_status))
    .bind(record.processing_us)
    .bind(record.body_bytes)
    .bind(&record.remote_addr)
    .bind(record.callback_id.as_ref().map(|id| id.as_str()))
    .bind(record.llm_callback_id)
    .bind(record.signature_scheme.map(|s| s.as_str()))
    .bind(record.count)
    .bind(aggregate_key_of(record))
    .bind(&record.secret_label)
    .bind(&record.source)
    .execute(&mut *connection)
    .await?;
    Ok(())
}
