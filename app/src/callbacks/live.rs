//! Client state shared by the live feed, the toasts, the detail window and
//! the history table of one page.

use inbox_core::dto::CallbackSummary;
use leptos::prelude::*;
use uuid::Uuid;

/// Where the history lists what this user has not viewed.
pub const UNVIEWED_HREF: &str = "/admin/callbacks?viewed=false";

/// A toast on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    pub key: u64,
    pub kind: ToastKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToastKind {
    /// One new callback.
    Arrived(CallbackSummary),
    /// The first visit's summary: this many unviewed in all, one toast
    /// instead of a flood.
    Unviewed(i64),
    /// Many new callbacks read at once (after a long absence): one toast.
    Batch(usize),
}

/// How this tab hears of new callbacks (shown as `data-feed` for tests and
/// curious admins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedMode {
    Starting,
    /// Another tab of this user reads the feed and shares what arrives.
    Follower,
    /// This tab reads the Server-Sent Events stream.
    Stream,
    /// This tab polls (the stream failed, or tabs cannot elect one reader).
    Polling,
    /// Signed out, or the page is going away.
    Stopped,
}

impl FeedMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Follower => "follower",
            Self::Stream => "stream",
            Self::Polling => "polling",
            Self::Stopped => "stopped",
        }
    }
}

/// How many announced callbacks a tab remembers.
const ANNOUNCED_KEPT: usize = 500;

#[derive(Clone, Copy)]
pub struct LiveState {
    /// The callback whose window is open, if any (one at a time).
    pub open: RwSignal<Option<Uuid>>,
    pub toasts: RwSignal<Vec<Toast>>,
    next_toast: RwSignal<u64>,
    /// The callbacks this tab announced lately: a callback that reaches the
    /// tab twice (its own poll and another tab's message, when tabs cannot
    /// take turns) is announced once.
    announced: RwSignal<std::collections::VecDeque<Uuid>>,
    /// Callbacks this user has not viewed, when known.
    pub unread: RwSignal<Option<i64>>,
    /// Bumped whenever callbacks arrive or are viewed, so lists refresh.
    pub changes: RwSignal<u64>,
    /// Bumped when this tab marks something viewed: the count is asked
    /// again and the other tabs are told.
    pub views: RwSignal<u64>,
    /// The signed-in user's email, once known (keys per-user browser state).
    pub user: RwSignal<Option<String>>,
    /// Whether the admin can see this page (`document.visibilityState`).
    pub visible: RwSignal<bool>,
    pub feed: RwSignal<FeedMode>,
}

impl LiveState {
    pub fn push_toast(&self, kind: ToastKind) {
        let Some(key) = self.next_toast.try_get_untracked() else {
            return; // the page is gone
        };
        self.next_toast.set(key + 1);
        self.toasts
            .update(|toasts| toasts.push(Toast { key, kind }));
    }

    /// True the first time `id` arrives in this tab (among the last
    /// [`ANNOUNCED_KEPT`]), false for a repeat.
    pub fn first_arrival(&self, id: Uuid) -> bool {
        self.announced
            .try_update(|announced| {
                if announced.contains(&id) {
                    return false;
                }
                if announced.len() == ANNOUNCED_KEPT {
                    announced.pop_front();
                }
                announced.push_back(id);
                true
            })
            .unwrap_or(false)
    }

    pub fn dismiss(&self, key: u64) {
        let _ = self
            .toasts
            .try_update(|toasts| toasts.retain(|toast| toast.key != key));
    }

    pub fn changed(&self) {
        let _ = self.changes.try_update(|n| *n += 1);
    }

    /// This tab marked one or all callbacks viewed.
    pub fn viewed(&self) {
        self.changed();
        let _ = self.views.try_update(|n| *n += 1);
    }

    /// `count` more unviewed callbacks arrived.
    pub fn arrived(&self, count: usize) {
        let _ = self.unread.try_update(|unread| {
            if let Some(unread) = unread {
                *unread += count as i64;
            }
        });
        self.changed();
    }
}

pub fn provide_live_state() -> LiveState {
    let state = LiveState {
        open: RwSignal::new(None),
        toasts: RwSignal::new(Vec::new()),
        next_toast: RwSignal::new(0),
        announced: RwSignal::new(std::collections::VecDeque::new()),
        unread: RwSignal::new(None),
        changes: RwSignal::new(0),
        views: RwSignal::new(0),
        user: RwSignal::new(None),
        visible: RwSignal::new(true),
        feed: RwSignal::new(FeedMode::Starting),
    };
    provide_context(state);
    state
}

pub fn live_state() -> LiveState {
    expect_context::<LiveState>()
}

/// "1 unviewed callback", "300 unviewed callbacks".
pub fn unviewed_text(count: i64) -> String {
    if count == 1 {
        "1 unviewed callback".to_owned()
    } else {
        format!("{count} unviewed callbacks")
    }
}

/// "just now", "5 min ago", … for a time `age_secs` in the past.
pub fn relative_time(age_secs: i64) -> String {
    match age_secs {
        i64::MIN..=9 => "just now".to_owned(),
        10..=59 => format!("{age_secs} s ago"),
        60..=3599 => format!("{} min ago", age_secs / 60),
        3600..=86_399 => format!("{} h ago", age_secs / 3600),
        _ => format!("{} d ago", age_secs / 86_400),
    }
}

/// Seconds since `at`, by the browser's clock (0 on the server).
pub fn age_secs(at: time::OffsetDateTime) -> i64 {
    let now_ms = crate::browser::now_ms();
    if now_ms == 0.0 {
        return 0;
    }
    ((now_ms / 1000.0) as i64) - at.unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative_time(3), "just now");
        assert_eq!(relative_time(42), "42 s ago");
        assert_eq!(relative_time(600), "10 min ago");
        assert_eq!(relative_time(7200), "2 h ago");
        assert_eq!(relative_time(200_000), "2 d ago");
    }

    #[test]
    fn the_summary_counts_in_words() {
        assert_eq!(unviewed_text(1), "1 unviewed callback");
        assert_eq!(unviewed_text(300), "300 unviewed callbacks");
    }
}
