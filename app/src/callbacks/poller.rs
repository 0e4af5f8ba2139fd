//! Reading the live feed, in the one tab that reads it for this user.
//!
//! - It prefers the Server-Sent Events stream (`/api/callbacks/stream`):
//!   arrivals come at once, and a hidden tab's throttled timers do not
//!   delay them.
//! - When the stream fails it polls (`/api/callbacks/poll`, every
//!   [`INTERVAL_META`] seconds), and tries the stream again after
//!   [`STREAM_RETRY_MS`]. Polling stays the contract; the stream only
//!   shortens the delay.
//! - The cursor is stored per user after every step, so a reload or the
//!   next tab to take over continues exactly there. A fresh client polls
//!   once without a cursor: one summary toast, then only new arrivals. A
//!   cursor the server refuses (an old client's format) is dropped.
//! - Nothing runs on a fixed tick: each wait is one timeout, cut short by
//!   the page becoming visible or the feed stopping.

/// The meta tag carrying the dashboard poll period in seconds.
pub const INTERVAL_META: &str = "inbox-poll-interval";
/// More new callbacks than this, read at once, become one toast.
pub const BACKLOG_TOAST_AT: usize = 5;
/// After the stream failed, poll this long before trying it again.
pub const STREAM_RETRY_MS: f64 = 30_000.0;
/// Longest wait between polls after repeated failures.
pub const MAX_BACKOFF_MS: f64 = 300_000.0;
/// Callbacks asked for per poll.
pub const POLL_PAGE: u32 = 100;
pub const STREAM_URL: &str = "/api/callbacks/stream";

/// The wait before the next poll after `failures` failures in a row.
pub fn backoff_ms(interval_ms: f64, failures: u32) -> f64 {
    if failures == 0 {
        return interval_ms;
    }
    (interval_ms * f64::from(1u32 << failures.min(5))).min(MAX_BACKOFF_MS)
}

#[cfg(feature = "hydrate")]
pub(super) use imp::read_feed;

#[cfg(feature = "hydrate")]
mod imp {
    use std::cell::Cell;
    use std::rc::Rc;

    use inbox_core::dto::CallbackSummary;
    use leptos::prelude::*;
    use wasm_bindgen::JsCast;

    use super::super::api::poll;
    use super::super::feed::Feed;
    use super::super::live::FeedMode;
    use super::super::live_io;
    use super::super::tabs::{advances, cursor_key, valid_cursor};
    use super::*;
    use crate::browser;
    use crate::error::AppError;

    enum Next {
        Stream,
        /// Poll until this time (Unix ms), then try the stream again.
        Poll(f64),
        Stop,
    }

    enum Polled {
        /// A full page: more is waiting.
        More,
        Done,
        Failed,
        SessionEnded,
    }

    /// Reads the feed until the tab stops or the session ends.
    pub async fn read_feed(feed: Rc<Feed>) {
        // A tab that waited long for the lock may be signed out by now, or
        // another account signed in since: it must not read their feed.
        let signed_in = crate::auth::current_user().await;
        if matches!(&signed_in, Err(AppError::Unauthorized))
            || signed_in.is_ok_and(|user| user.email != feed.user)
        {
            feed.stop();
            return;
        }
        let mut next = catch_up(&feed).await;
        loop {
            if feed.stopped() {
                return;
            }
            next = match next {
                // Without Web Locks every tab reads: one stream per tab could
                // take all six HTTP/1.1 connections a browser allows a host.
                Next::Stream if feed.shared => Next::Poll(f64::INFINITY),
                Next::Stream => stream(&feed).await,
                Next::Poll(until_ms) => poll_until(&feed, until_ms).await,
                Next::Stop => {
                    // The session ended: let go of the reader's lock, so a tab
                    // signed in again can read.
                    feed.stop();
                    return;
                }
            };
        }
    }

    /// Brings the cursor up to date by polling (a first visit's summary, or
    /// what arrived while no tab was open, several at a time).
    async fn catch_up(feed: &Rc<Feed>) -> Next {
        loop {
            match poll_once(feed).await {
                Polled::More => continue,
                // A failed poll does not stop the stream: it resumes from the
                // stored cursor, or starts at the head.
                Polled::Done | Polled::Failed => return Next::Stream,
                Polled::SessionEnded => return Next::Stop,
            }
        }
    }

    async fn poll_until(feed: &Rc<Feed>, until_ms: f64) -> Next {
        let _ = feed.live.feed.try_set(FeedMode::Polling);
        let mut failures = 0;
        loop {
            match poll_once(feed).await {
                Polled::More => continue,
                Polled::Done => failures = 0,
                Polled::Failed => failures += 1,
                Polled::SessionEnded => return Next::Stop,
            }
            let now = browser::now_ms();
            if feed.stopped() {
                return Next::Stop;
            }
            if now >= until_ms {
                return Next::Stream;
            }
            let wait = backoff_ms(feed.interval_ms, failures).min(until_ms - now);
            feed.wake.sleep(Some(wait)).await;
        }
    }

    async fn poll_once(feed: &Rc<Feed>) -> Polled {
        let key = cursor_key(&feed.user);
        let raw = browser::storage_get(&key);
        let stored = valid_cursor(raw.clone());
        if raw.is_some() && stored.is_none() {
            browser::storage_remove(&key);
        }
        let first_visit = stored.is_none();
        let limit = if first_visit { 1 } else { POLL_PAGE };
        let page = match poll(stored.clone(), Some(limit)).await {
            Ok(page) => page,
            Err(AppError::Unauthorized) => return Polled::SessionEnded,
            Err(AppError::BadRequest(_)) => {
                // A cursor this server does not know: start fresh.
                browser::storage_remove(&key);
                return Polled::More;
            }
            Err(_) => return Polled::Failed,
        };
        if feed.stopped() {
            return Polled::Done;
        }
        let Some(next) = page.next_cursor else {
            return Polled::Failed;
        };
        // Another tab (without Web Locks) may have reported this page already.
        let now_stored = browser::storage_get(&key);
        if !advances(now_stored.as_deref(), &next) {
            return Polled::Done;
        }
        browser::storage_set(&key, &next);
        if first_visit {
            if let Some(count) = page.unviewed_count.filter(|count| *count > 0) {
                feed.clone().summarize(count).await;
            }
            return Polled::Done;
        }
        let full = page.items.len() >= POLL_PAGE as usize;
        if !page.items.is_empty() {
            feed.clone().deliver(page.items).await;
        }
        if full { Polled::More } else { Polled::Done }
    }

    /// Listens to the stream until it fails (then polling takes over for a
    /// while) or the tab stops.
    async fn stream(feed: &Rc<Feed>) -> Next {
        let key = cursor_key(&feed.user);
        let url = match valid_cursor(browser::storage_get(&key)) {
            Some(cursor) => format!("{STREAM_URL}?after={cursor}"),
            None => STREAM_URL.to_owned(),
        };
        let Ok(source) = web_sys::EventSource::new(&url) else {
            return Next::Poll(browser::now_ms() + STREAM_RETRY_MS);
        };
        let failed = Rc::new(Cell::new(false));
        let listeners = {
            let on_callback = {
                let feed = Rc::downgrade(feed);
                let key = key.clone();
                move |event: web_sys::Event| {
                    let Some(feed) = feed.upgrade() else { return };
                    let Ok(event) = event.dyn_into::<web_sys::MessageEvent>() else {
                        return;
                    };
                    let item = event
                        .data()
                        .as_string()
                        .and_then(|data| serde_json::from_str::<CallbackSummary>(&data).ok());
                    let cursor = event.last_event_id();
                    if advances(browser::storage_get(&key).as_deref(), &cursor) {
                        browser::storage_set(&key, &cursor);
                    }
                    if let Some(item) = item {
                        leptos::task::spawn_local(feed.deliver(vec![item]));
                    }
                }
            };
            let on_open = {
                let feed = Rc::downgrade(feed);
                move |_event: web_sys::Event| {
                    if let Some(feed) = feed.upgrade() {
                        let _ = feed.live.feed.try_set(FeedMode::Stream);
                    }
                }
            };
            let on_error = {
                let feed = Rc::downgrade(feed);
                let failed = failed.clone();
                move |_event: web_sys::Event| {
                    failed.set(true);
                    if let Some(feed) = feed.upgrade() {
                        feed.wake.wake();
                    }
                }
            };
            [
                live_io::listen(&source, "callback", on_callback),
                live_io::listen(&source, "open", on_open),
                live_io::listen(&source, "error", on_error),
            ]
        };
        *feed.source.borrow_mut() = Some(source.clone());
        while !failed.get() && !feed.stopped() {
            feed.wake.sleep(None).await;
        }
        // Our own retry policy, not EventSource's: it would keep retrying a
        // refused stream (401, a proxy that buffers) instead of polling.
        source.close();
        drop(listeners);
        feed.source.borrow_mut().take();
        if feed.stopped() {
            Next::Stop
        } else {
            Next::Poll(browser::now_ms() + STREAM_RETRY_MS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_up_to_a_cap() {
        assert_eq!(backoff_ms(1000.0, 0), 1000.0);
        assert_eq!(backoff_ms(1000.0, 1), 2000.0);
        assert_eq!(backoff_ms(1000.0, 3), 8000.0);
        assert_eq!(backoff_ms(10_000.0, 9), MAX_BACKOFF_MS);
    }
}
