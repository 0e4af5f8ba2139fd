//! With PostgreSQL, every node hears every node's commits.
//!
//! The writer that commits callbacks sends `NOTIFY` on [`FEED_CHANNEL`] with
//! the new head, inside its transaction, so the notice goes out only on
//! commit. Each node keeps one connection listening and passes the heads on
//! to its live streams ([`Store::subscribe_feed`](super::Store::subscribe_feed)).
//! A notice is only a wake-up: streams read the feed itself. When the
//! listening connection drops, notices sent meanwhile are lost, so the node
//! falls back to reading the head every [`FALLBACK_POLL`] until it listens
//! again, and reads it once more right after.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;

pub(super) const FEED_CHANNEL: &str = "callback_inbox_feed";
const FALLBACK_POLL: Duration = Duration::from_secs(1);

pub(super) fn spawn(pool: PgPool, feed: broadcast::Sender<i64>) {
    tokio::spawn(async move {
        let mut last_head = None;
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => match listener.listen(FEED_CHANNEL).await {
                    Ok(()) => {
                        // Whatever committed while nobody listened.
                        announce_head(&pool, &feed, &mut last_head).await;
                        listen(&mut listener, &feed, &mut last_head).await;
                        tracing::warn!(
                            "the feed's notification connection dropped; reading the head every second until it is back"
                        );
                    }
                    Err(err) => tracing::warn!(error = %err, "LISTEN failed"),
                },
                Err(err) => {
                    tracing::warn!(error = %err, "cannot open the feed's notification connection")
                }
            }
            if pool.is_closed() {
                return;
            }
            announce_head(&pool, &feed, &mut last_head).await;
            tokio::time::sleep(FALLBACK_POLL).await;
        }
    });
}

/// Passes notices on until the connection is lost.
async fn listen(
    listener: &mut PgListener,
    feed: &broadcast::Sender<i64>,
    last_head: &mut Option<i64>,
) {
    // `try_recv` answers None when the connection was lost (instead of
    // reconnecting quietly, as `recv` does), so the loss is noticed.
    while let Ok(Some(notice)) = listener.try_recv().await {
        if let Ok(head) = notice.payload().parse::<i64>() {
            *last_head = (*last_head).max(Some(head));
            let _ = feed.send(head);
        }
    }
}

async fn announce_head(pool: &PgPool, feed: &broadcast::Sender<i64>, last_head: &mut Option<i64>) {
    match sqlx::query_scalar::<_, i64>("SELECT seq FROM feed_head WHERE id = 1")
        .fetch_one(pool)
        .await
    {
        Ok(head) => {
            if Some(head) != *last_head {
                *last_head = Some(head);
                let _ = feed.send(head);
            }
        }
        Err(err) => tracing::debug!(error = %err, "cannot read the feed's head"),
    }
}
