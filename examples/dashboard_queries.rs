//! Dashboard query benchmark: seeds N callbacks straight into a fresh SQLite
//! file and measures the server-side latency of `poll` (a poller that is up
//! to date, as every open dashboard is, and one 20 callbacks behind) and of
//! the first history page, at 10k and 1M rows in the same run.
//!
//!     cargo run --release --features server --example dashboard_queries [-- 10000 1000000]

use std::time::Instant;

use inbox_core::cursor::FeedCursor;
use inbox_core::dto::HistoryFilter;
use inbox_core::store::{HistoryDirection, Store};
use uuid::Uuid;

#[tokio::main]
async fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect::<Vec<_>>();
    let sizes = if sizes.is_empty() {
        vec![10_000, 1_000_000]
    } else {
        sizes
    };
    println!(
        "rows        up-to-date poll p50/p99   20-behind poll p50/p99   history p50/p99  (ms, 500 runs each)"
    );
    let mut first_p99 = None;
    for rows in sizes {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/bench.db", dir.path().display()))
            .await
            .unwrap();
        let user = seed(&store, rows).await;
        let head = store.feed_head().await.unwrap();
        let up_to_date = measure(500, || async {
            store.poll(user, Some(head), 20).await.unwrap()
        })
        .await;
        let behind = FeedCursor(head.0 - 20);
        let poll = measure(500, || async {
            store.poll(user, Some(behind), 20).await.unwrap()
        })
        .await;
        let history = measure(500, || async {
            store
                .history(
                    user,
                    &HistoryFilter::default(),
                    HistoryDirection::Newest,
                    20,
                )
                .await
                .unwrap()
        })
        .await;
        println!(
            "{rows:<10}  {:<6.3} / {:<6.3}           {:<6.3} / {:<6.3}          {:<6.3} / {:<6.3}",
            up_to_date.0, up_to_date.1, poll.0, poll.1, history.0, history.1
        );
        let base = *first_p99.get_or_insert(up_to_date.1);
        if base != up_to_date.1 {
            println!(
                "            up-to-date poll p99 is {:.2}x its value at the smallest size",
                up_to_date.1 / base
            );
        }
    }
}

/// Inserts `rows` callbacks (one admin has viewed every tenth) in big transactions.
async fn seed(store: &Store, rows: u64) -> Uuid {
    let started = Instant::now();
    let user = Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, password_hash, role, created_at) VALUES (?1, 'bench@example.com', 'x', 'admin', 0)")
        .bind(user)
        .execute(store.pool())
        .await
        .unwrap();
    let base_us: i64 = 1_763_000_000_000_000;
    let mut tx = store.pool().begin().await.unwrap();
    for n in 0..rows {
        let id = Uuid::now_v7();
        let created = base_us + (n as i64) * 1_000;
        let payload = format!(
            r#"{{"job_id":"job-{n}","event":"workflow.completed","workflow_name":"wf-{}"}}"#,
            n % 7
        );
        sqlx::query(
            "INSERT INTO llm_callbacks (id, callback_id, signature_valid, payload, payload_preview, external_job_id,
                 workflow_name, event_type, status, created_at, updated_at, feed_seq)
             VALUES (?1, ?2, 1, ?3, ?3, ?4, ?5, 'workflow.completed', 'completed', ?6, ?6, ?7)",
        )
        .bind(id)
        .bind(format!("job:job-{n}:workflow.completed"))
        .bind(&payload)
        .bind(format!("job-{n}"))
        .bind(format!("wf-{}", n % 7))
        .bind(created)
        .bind(n as i64 + 1)
        .execute(&mut *tx)
        .await
        .unwrap();
        if n % 10 == 0 {
            sqlx::query("INSERT INTO llm_callback_views (callback_id, admin_user_id, viewed_at) VALUES (?1, ?2, ?3)")
                .bind(id)
                .bind(user)
                .bind(created)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        if n % 50_000 == 49_999 {
            tx.commit().await.unwrap();
            tx = store.pool().begin().await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();
    eprintln!(
        "seeded {rows} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    user
}

async fn measure<F, Fut, T>(runs: usize, mut run: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        std::hint::black_box(run().await);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[runs / 2], times[runs * 99 / 100])
}
