//! Retention: callbacks (with their views) and audit rows older than
//! `INBOX_RETENTION_DAYS` are deleted by a background task, in small batches
//! that never hold the writer up for long. `callback-inbox purge` runs the
//! same once.

use std::time::Duration;

use inbox_core::ingest::unix_micros;
use inbox_core::store::{PurgeReport, Store, StoreError};
use time::OffsetDateTime;

/// The first run waits a little so start-up stays quick; then hourly.
const FIRST_RUN: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_secs(3600);

/// Deletes everything older than `days` now; logs and counts what went.
pub async fn purge(store: &Store, days: u64) -> Result<PurgeReport, StoreError> {
    let days = i64::try_from(days).unwrap_or(i64::MAX / 86_400_000_000);
    let cutoff =
        unix_micros(OffsetDateTime::now_utc()).saturating_sub(days.saturating_mul(86_400_000_000));
    let report = store.purge_older_than(cutoff).await?;
    tracing::info!(
        older_than_days = days,
        callbacks = report.callbacks,
        views = report.views,
        deliveries = report.deliveries,
        "retention removed old rows"
    );
    for (kind, count) in [
        ("callbacks", report.callbacks),
        ("views", report.views),
        ("deliveries", report.deliveries),
    ] {
        metrics::counter!("callback_inbox_retention_deleted_total", "kind" => kind)
            .increment(count);
    }
    Ok(report)
}

/// Runs [`purge`] hourly; `days == 0` keeps everything.
pub fn spawn(store: Store, days: u64) {
    if days == 0 {
        tracing::info!("retention is off (INBOX_RETENTION_DAYS=0): nothing is ever deleted");
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(FIRST_RUN).await;
        loop {
            if let Err(err) = purge(&store, days).await {
                tracing::warn!(error = %err, "retention run failed; retrying in an hour");
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}
