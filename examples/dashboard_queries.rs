//! Dashboard query benchmark: seeds N callbacks straight into a fresh
//! database and measures the server-side latency of `poll` (a poller that
//! is up to date, as every open dashboard is, and one 20 callbacks behind)
//! and of the first history page, at 10k and 1M rows in the same run.
//!
//!     cargo run --release --features server --example dashboard_queries [-- 10000 1000000]
//!
//! With `--postgres` it runs on a fresh database of the PostgreSQL server at
//! `INBOX_TEST_POSTGRES_URL` instead of a SQLite file (`./x bench` starts
//! one).

use std::time::Instant;

use inbox_core::cursor::FeedCursor;
use inbox_core::dto::HistoryFilter;
use inbox_core::store::test_database::{TestBackend, TestDatabase};
use inbox_core::store::{Db, HistoryDirection, Store};
use uuid::Uuid;

#[tokio::main]
async fn main() {
    let backend = if std::env::args().any(|a| a == "--postgres") {
        TestBackend::Postgres
    } else {
        TestBackend::Sqlite
    };
    println!("on {backend:?}");
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
        let database = TestDatabase::fresh_on(backend).await;
        let store = Store::open(&database.url).await.unwrap();
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

/// Inserts `rows` callbacks (one admin has viewed every tenth) in one
/// statement per table.
async fn seed(store: &Store, rows: u64) -> Uuid {
    let started = Instant::now();
    let user = Uuid::now_v7();
    let base_us: i64 = 1_763_000_000_000_000;
    match store.db() {
        Db::Sqlite(pool) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, 'bench@example.com', 'x', 'admin', 0)")
                .bind(user)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(
                "WITH RECURSIVE n(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM n WHERE n + 1 < $1)
                 INSERT INTO llm_callbacks (id, callback_id, signature_valid, payload, payload_preview,
                     external_job_id, workflow_name, event_type, status, created_at, updated_at, feed_seq)
                 SELECT randomblob(16), 'job:job-' || n || ':workflow.completed', 1, p, p, 'job-' || n,
                        'wf-' || (n % 7), 'workflow.completed', 'completed', $2 + n * 1000, $2 + n * 1000,
                        n + 1
                 FROM (SELECT n, '{\"job_id\":\"job-' || n || '\",\"event\":\"workflow.completed\",\"workflow_name\":\"wf-' || (n % 7) || '\"}' AS p FROM n)",
            )
            .bind(rows as i64)
            .bind(base_us)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO llm_callback_views (callback_id, admin_user_id, viewed_at)
                 SELECT id, $1, created_at FROM llm_callbacks WHERE feed_seq % 10 = 1",
            )
            .bind(user)
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            sqlx::query("ANALYZE").execute(pool).await.unwrap();
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            // Per-row triggers would update the counter rows a million times
            // in one transaction; the counters are set once below instead.
            sqlx::query("ALTER TABLE llm_callbacks DISABLE TRIGGER USER")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, 'bench@example.com', 'x', 'admin', now())")
                .bind(user)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO llm_callbacks (id, callback_id, signature_valid, payload, payload_json,
                     payload_preview, external_job_id, workflow_name, event_type, status, created_at,
                     updated_at, feed_seq)
                 SELECT gen_random_uuid(), 'job:job-' || n || ':workflow.completed', true, p, p::jsonb, p,
                        'job-' || n, 'wf-' || (n % 7), 'workflow.completed', 'completed',
                        to_timestamp($2::float8 / 1e6) + n * interval '1 millisecond',
                        to_timestamp($2::float8 / 1e6) + n * interval '1 millisecond', n + 1
                 FROM (SELECT n, '{\"job_id\":\"job-' || n || '\",\"event\":\"workflow.completed\",\"workflow_name\":\"wf-' || (n % 7) || '\"}' AS p
                       FROM generate_series(0, $1 - 1) AS n) AS generated",
            )
            .bind(rows as i64)
            .bind(base_us)
            .execute(&mut *tx)
            .await
            .unwrap();
            for counter in [
                "UPDATE feed_head SET seq = $1 WHERE id = 1",
                "UPDATE callback_count SET total = $1 WHERE id = 1",
            ] {
                sqlx::query(counter)
                    .bind(rows as i64)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            sqlx::query("ALTER TABLE llm_callbacks ENABLE TRIGGER USER")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO llm_callback_views (callback_id, admin_user_id, viewed_at)
                 SELECT id, $1, created_at FROM llm_callbacks WHERE feed_seq % 10 = 1",
            )
            .bind(user)
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            sqlx::query("VACUUM ANALYZE").execute(pool).await.unwrap();
        }
    }
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
