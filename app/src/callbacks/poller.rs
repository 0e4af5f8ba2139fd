//! The notification poller: asks the server for new callbacks every few
//! seconds and raises a toast for each.
//!
//! - The cursor lives in localStorage, so a reload does not toast again.
//! - One tab polls at a time (a lease in localStorage); the others hear of
//!   arrivals over a BroadcastChannel. Before toasting, a tab re-reads the
//!   shared cursor and drops what another tab already showed.
//! - Requests never overlap (one sequential loop), errors back off, a 401
//!   stops polling (the session ended), and the loop ends with the page.

use leptos::prelude::*;

use super::live::{LiveState, live_state};

pub const CURSOR_KEY: &str = "callback-inbox:poll-cursor";
pub const LEASE_KEY: &str = "callback-inbox:poll-lease";
pub const INTERVAL_META: &str = "inbox-poll-interval";
/// More unviewed callbacks than this on a first visit become one toast.
pub const BACKLOG_TOAST_AT: usize = 5;

#[component]
pub fn CallbackPoller() -> impl IntoView {
    let live = live_state();
    let stopped = RwSignal::new(false);
    on_cleanup(move || {
        let _ = stopped.try_set(true);
    });
    // Effects run only in the browser, once here (nothing tracked).
    Effect::new(move |_| run(live, stopped));
}

#[cfg(not(feature = "hydrate"))]
fn run(_live: LiveState, _stopped: RwSignal<bool>) {}

#[cfg(feature = "hydrate")]
fn run(live: LiveState, stopped: RwSignal<bool>) {
    use gloo_timers::future::TimeoutFuture;

    use crate::browser;

    let interval_ms = browser::meta_content(INTERVAL_META)
        .and_then(|secs| secs.parse::<f64>().ok())
        .filter(|secs| *secs > 0.0)
        .unwrap_or(10.0)
        * 1000.0;
    let tab = browser::random_id();
    listen_to_other_tabs(live);

    leptos::task::spawn_local(async move {
        let mut delay_ms = 0.0;
        let mut failures = 0u32;
        loop {
            // Wait for the next turn, or poll at once when the tab becomes visible again.
            let due = browser::now_ms() + delay_ms;
            let mut was_hidden = !browser::document_visible();
            while browser::now_ms() < due {
                TimeoutFuture::new(250).await;
                if stopped.try_get_untracked().unwrap_or(true) {
                    return;
                }
                let visible = browser::document_visible();
                if visible && was_hidden {
                    break;
                }
                was_hidden = !visible;
            }
            if stopped.try_get_untracked().unwrap_or(true) {
                return;
            }
            match poll_once(live, &tab, interval_ms).await {
                Turn::Done => {
                    failures = 0;
                    delay_ms = interval_ms;
                }
                Turn::SessionEnded => return,
                Turn::Failed => {
                    failures += 1;
                    delay_ms = (interval_ms * f64::from(1u32 << failures.min(5))).min(300_000.0);
                }
            }
        }
    });
}

#[cfg(feature = "hydrate")]
enum Turn {
    Done,
    SessionEnded,
    Failed,
}

#[cfg(feature = "hydrate")]
async fn poll_once(live: LiveState, tab: &str, interval_ms: f64) -> Turn {
    use inbox_core::cursor::PollCursor;

    use super::api::poll;
    use super::live::ToastKind;
    use crate::browser;
    use crate::error::AppError;

    let now = browser::now_ms();
    let lease = browser::storage_get(LEASE_KEY);
    if let Some((holder, until)) = lease.as_deref().and_then(parse_lease)
        && holder != tab
        && until > now
    {
        return Turn::Done; // another tab is polling
    }
    browser::storage_set(LEASE_KEY, &format!("{tab}:{}", now + interval_ms * 2.5));

    let stored = browser::storage_get(CURSOR_KEY);
    let first_visit = stored.is_none();
    let page = match poll(stored, Some(100)).await {
        Ok(page) => page,
        Err(AppError::Unauthorized) => return Turn::SessionEnded,
        Err(_) => return Turn::Failed,
    };
    // Another tab may have shown some of these while we waited.
    let shown = browser::storage_get(CURSOR_KEY).and_then(|c| c.parse::<PollCursor>().ok());
    let position = |item: &inbox_core::dto::CallbackSummary| {
        PollCursor::new(
            (item.created_at.unix_timestamp_nanos() / 1000) as i64,
            item.id,
        )
    };
    let fresh: Vec<_> = page
        .items
        .into_iter()
        .filter(|item| shown.is_none_or(|shown| position(item) > shown))
        .collect();
    if let Some(next) = page
        .next_cursor
        .as_deref()
        .and_then(|c| c.parse::<PollCursor>().ok())
        && shown.is_none_or(|shown| next > shown)
    {
        browser::storage_set(CURSOR_KEY, &next.to_string());
    }
    if fresh.is_empty() {
        return Turn::Done;
    }
    if first_visit && fresh.len() > BACKLOG_TOAST_AT {
        live.push_toast(ToastKind::Backlog(fresh.len()));
    } else {
        for item in &fresh {
            live.push_toast(ToastKind::Arrived(item.clone()));
        }
    }
    live.unread.update(|unread| {
        if let Some(count) = unread {
            *count += fresh.len() as i64;
        }
    });
    live.changed();
    if let Some(channel) = browser::tab_channel() {
        let _ = channel.post_message(&wasm_bindgen::JsValue::from_str("arrived"));
        channel.close();
    }
    Turn::Done
}

#[cfg(feature = "hydrate")]
fn listen_to_other_tabs(live: LiveState) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;

    let Some(channel) = crate::browser::tab_channel() else {
        return;
    };
    let on_message =
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |_event: web_sys::MessageEvent| {
            let _ = live.changes.try_update(|n| *n += 1);
        });
    channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The listener lives as long as the page; the channel closes with it.
    on_message.forget();
    std::mem::forget(channel);
}

/// `tab:until_ms`.
pub fn parse_lease(lease: &str) -> Option<(&str, f64)> {
    let (tab, until) = lease.split_once(':')?;
    Some((tab, until.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::parse_lease;

    #[test]
    fn leases_name_their_tab_and_expiry() {
        assert_eq!(
            parse_lease("abc:1700000000000"),
            Some(("abc", 1_700_000_000_000.0))
        );
        assert_eq!(parse_lease("garbage"), None);
        assert_eq!(parse_lease("abc:soon"), None);
    }
}
