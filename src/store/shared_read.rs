//! Heavy reads that every viewer of a node shares: the deliveries summary
//! and the secret uses behind the warnings banner each aggregate every
//! audit row of their window (about a second at 500,000 rows), so they are
//! computed once at a time per node and the answer is served to everyone
//! for [`SHARED_READ_FOR`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::StoreError;

/// How long a shared read's answer is served to every viewer before it is
/// computed again.
pub const SHARED_READ_FOR: Duration = Duration::from_secs(5);

/// One heavy read of one node: the last answer and the time it was computed
/// for. Clones share it.
pub(super) struct SharedRead<T> {
    slot: Arc<tokio::sync::Mutex<Option<Answer<T>>>>,
    computations: Arc<AtomicU64>,
}

struct Answer<T> {
    /// The `now` it was computed for, in Unix microseconds.
    at_us: i64,
    value: T,
}

impl<T> Default for SharedRead<T> {
    fn default() -> Self {
        Self {
            slot: Arc::new(tokio::sync::Mutex::new(None)),
            computations: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl<T> Clone for SharedRead<T> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
            computations: self.computations.clone(),
        }
    }
}

impl<T: Clone + Send + 'static> SharedRead<T> {
    /// The answer for `now_us`: the kept one when it was computed for a time
    /// less than [`SHARED_READ_FOR`] before, else the one `compute` makes.
    /// Requests that arrive while it is computed wait for that computation;
    /// it finishes (and is kept) even when the request that started it goes
    /// away. A failed computation is not kept: the next request tries again.
    pub(super) async fn get<F>(
        &self,
        now_us: i64,
        compute: impl FnOnce() -> F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let mut slot = self.slot.clone().lock_owned().await;
        if let Some(kept) = slot.as_ref()
            && (0..shared_read_us()).contains(&(now_us - kept.at_us))
        {
            return Ok(kept.value.clone());
        }
        let computations = self.computations.clone();
        let computation = compute();
        let task = tokio::spawn(async move {
            computations.fetch_add(1, Ordering::Relaxed);
            let value = computation.await?;
            *slot = Some(Answer {
                at_us: now_us,
                value: value.clone(),
            });
            Ok(value)
        });
        match task.await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // Only when the runtime shuts down.
            Err(_) => Err(StoreError::Database(sqlx::Error::PoolClosed)),
        }
    }

    /// How many times this node has computed it.
    pub(super) fn computations(&self) -> u64 {
        self.computations.load(Ordering::Relaxed)
    }
}

fn shared_read_us() -> i64 {
    i64::try_from(SHARED_READ_FOR.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND_US: i64 = 1_000_000;

    /// A requester that gives up does not waste the computation it started:
    /// the answer is kept for the next one.
    #[tokio::test]
    async fn an_abandoned_computation_finishes_and_is_kept() {
        let read = SharedRead::<u32>::default();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let read = read.clone();
            tokio::spawn(async move {
                read.get(0, || async move {
                    let _ = released.await;
                    Ok(7)
                })
                .await
            })
        };
        while read.computations() == 0 {
            tokio::task::yield_now().await;
        }
        first.abort();
        let _ = first.await;
        release.send(()).unwrap();
        let kept = read
            .get(SECOND_US, || async { panic!("computed twice") })
            .await
            .unwrap();
        assert_eq!(kept, 7);
        assert_eq!(read.computations(), 1);
    }

    #[tokio::test]
    async fn a_failure_is_not_kept_and_an_old_answer_is_computed_again() {
        let read = SharedRead::<u32>::default();
        let failed = read
            .get(0, || async { Err(StoreError::WriterStopped) })
            .await;
        assert!(failed.is_err());
        assert_eq!(read.get(0, || async { Ok(1) }).await.unwrap(), 1);
        let kept = SHARED_READ_FOR.as_micros() as i64 - 1;
        assert_eq!(read.get(kept, || async { Ok(2) }).await.unwrap(), 1);
        let stale = SHARED_READ_FOR.as_micros() as i64;
        assert_eq!(read.get(stale, || async { Ok(3) }).await.unwrap(), 3);
        assert_eq!(read.computations(), 3);
    }
}
