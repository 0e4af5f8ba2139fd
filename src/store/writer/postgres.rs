//! The writer's transaction on PostgreSQL.
//!
//! Every node's writer first locks the feed's head row, so writers of all
//! nodes run one after another and never deadlock on each other's rows (a
//! callback row, an aggregate count). Holding the lock, the writer numbers
//! its callbacks itself (`head + 1`, `+ 2`, …) and moves the head once per
//! batch, not once per callback (every update of a row leaves a version
//! behind); a commit that moved the head also notifies every node's feed
//! listener, which PostgreSQL delivers only if the transaction commits. A
//! callback and its audit row are one statement (a data-modifying CTE):
//! one round trip instead of two.

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};
use uuid::Uuid;

use super::{Job, JobResult, aggregate_key_of};
use crate::store::backend::{DbTime, pg_text};
use crate::store::feed_listener::FEED_CHANNEL;
use crate::store::{
    AuditedRequest, DeliveryOutcome, DeliveryRecord, InsertOutcome, NewCallback, StoreError,
};

pub(super) async fn write_batch(
    connection: &mut PgConnection,
    batch: &[Job],
) -> Result<Vec<JobResult>, StoreError> {
    let mut tx = connection.begin().await?;
    let head_before: i64 = sqlx::query_scalar("SELECT seq FROM feed_head WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let mut position = head_before;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let result = match job {
            Job::Callback {
                callback, audit, ..
            } => {
                let outcome =
                    upsert_callback(&mut tx, callback, position + 1, audit.as_deref()).await?;
                if !outcome.duplicate {
                    position = outcome.feed_seq;
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
    if position > head_before {
        sqlx::query("UPDATE feed_head SET seq = $1 WHERE id = 1")
            .bind(position)
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(FEED_CHANNEL)
            .bind(position.to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(results)
}

/// The insert of a callback, counting one more delivery when its source
/// and delivery id are stored already; with its audit row (`$17`…) when
/// there is one. The audit row's outcome is one of two values computed in
/// Rust ([`DeliveryOutcome::of_stored`]): which one, only the insert knows.
const UPSERT_CALLBACK: &str = "
    WITH stored AS (
        INSERT INTO llm_callbacks AS c (
            id, source, callback_id, signature_valid, signature_scheme, signature_header,
            verified_at, payload, payload_preview, external_job_id, workflow_name, event_type,
            status, error_message, delivery_count, created_at, updated_at, payload_json, feed_seq)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1, $15, $15,
                inbox_try_jsonb($8), $16)
        ON CONFLICT (source, callback_id) DO UPDATE
            SET delivery_count = c.delivery_count + 1, updated_at = excluded.updated_at
        RETURNING id, delivery_count, feed_seq
    ), audit AS (
        INSERT INTO webhook_deliveries (
            received_at, request_id, outcome, http_status, processing_us, body_bytes,
            remote_addr, callback_id, llm_callback_id, signature_scheme, count, secret_label,
            source)
        SELECT $17, $18, CASE WHEN stored.id = $1 AND stored.feed_seq = $16 THEN $19 ELSE $20 END,
               $21, $22, $23, $24, $25, stored.id, $26, $27, $28, $2
        FROM stored WHERE $29
    )
    SELECT id, delivery_count, feed_seq FROM stored";

/// Inserts a callback at feed position `position` (or counts a retry) and
/// its audit row.
async fn upsert_callback(
    connection: &mut PgConnection,
    callback: &NewCallback,
    position: i64,
    audit: Option<&AuditedRequest>,
) -> Result<InsertOutcome, StoreError> {
    let fields = &callback.fields;
    let text = |value: &Option<String>| value.as_deref().map(|v| pg_text(v).into_owned());
    let record = audit.map(|audit| &audit.record);
    let authenticated = record.is_some_and(|record| record.authenticated);
    let row = sqlx::query(UPSERT_CALLBACK)
        .bind(callback.id)
        .bind(&callback.source)
        .bind(pg_text(callback.callback_id.as_str()))
        .bind(callback.signature_valid)
        .bind(callback.signature_scheme.map(|s| s.as_str()))
        .bind(callback.signature_scheme.map(|s| s.header_name()))
        .bind(callback.verified_at_us.map(DbTime))
        .bind(&callback.payload)
        .bind(pg_text(&fields.payload_preview))
        .bind(text(&fields.external_job_id))
        .bind(text(&fields.workflow_name))
        .bind(text(&fields.event_type))
        .bind(fields.status.as_str())
        .bind(text(&fields.error_message))
        .bind(DbTime(callback.received_at_us))
        .bind(position)
        .bind(record.map(|record| DbTime(record.received_at_us)))
        .bind(record.and_then(|record| record.request_id.as_deref().map(pg_text)))
        .bind(DeliveryOutcome::of_stored(authenticated, false).as_str())
        .bind(DeliveryOutcome::of_stored(authenticated, true).as_str())
        .bind(record.map(|record| i32::from(record.http_status)))
        .bind(
            audit.map(|audit| {
                i64::try_from(audit.started.elapsed().as_micros()).unwrap_or(i64::MAX)
            }),
        )
        .bind(record.map(|record| record.body_bytes))
        .bind(record.and_then(|record| record.remote_addr.as_deref().map(pg_text)))
        .bind(record.and_then(|record| record.callback_id.as_ref().map(|id| pg_text(id.as_str()))))
        .bind(record.and_then(|record| record.signature_scheme.map(|s| s.as_str())))
        .bind(record.map(|record| record.count))
        .bind(record.and_then(|record| record.secret_label.clone()))
        .bind(audit.is_some())
        .fetch_one(&mut *connection)
        .await?;
    let id: Uuid = row.try_get(0)?;
    let feed_seq: i64 = row.try_get(2)?;
    Ok(InsertOutcome {
        id,
        // A row under this very id but not at the position just given was
        // committed by an earlier attempt (a commit whose answer was lost):
        // a duplicate as well.
        duplicate: id != callback.id || feed_seq != position,
        delivery_count: row.try_get(1)?,
        feed_seq,
    })
}

/// Inserts an audit row, or adds an aggregated count to its row.
async fn insert_delivery(
    connection: &mut PgConnection,
    record: &DeliveryRecord,
) -> Result<(), StoreError> {
    let text = |value: Option<&str>| value.map(|v| pg_text(v).into_owned());
    sqlx::query(
        "INSERT INTO webhook_deliveries AS d (
             received_at, request_id, outcome, http_status, processing_us, body_bytes,
             remote_addr, callback_id, llm_callback_id, signature_scheme, count, aggregate_key,
             secret_label, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (aggregate_key) DO UPDATE
             SET count = d.count + excluded.count,
                 processing_us = greatest(d.processing_us, excluded.processing_us),
                 body_bytes = greatest(d.body_bytes, excluded.body_bytes)",
    )
    .bind(DbTime(record.received_at_us))
    .bind(text(record.request_id.as_deref()))
    .bind(record.outcome.as_str())
    .bind(i32::from(record.http_status))
    .bind(record.processing_us)
    .bind(record.body_bytes)
    .bind(text(record.remote_addr.as_deref()))
    .bind(text(record.callback_id.as_ref().map(|id| id.as_str())))
    .bind(record.llm_callback_id)
    .bind(record.signature_scheme.map(|s| s.as_str()))
    .bind(record.count)
    .bind(text(aggregate_key_of(record).as_deref()))
    .bind(&record.secret_label)
    .bind(text(record.source.as_deref()))
    .execute(&mut *connection)
    .await?;
    Ok(())
}
