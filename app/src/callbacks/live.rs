//! Client state shared by the poller, the toasts, the detail window and the
//! history table of one page.

use inbox_core::dto::CallbackSummary;
use leptos::prelude::*;
use uuid::Uuid;

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
    /// Many unviewed callbacks at once (first visit): one toast, not a flood.
    Backlog(usize),
}

#[derive(Clone, Copy)]
pub struct LiveState {
    /// The callback whose window is open, if any (one at a time).
    pub open: RwSignal<Option<Uuid>>,
    pub toasts: RwSignal<Vec<Toast>>,
    next_toast: RwSignal<u64>,
    /// Callbacks this user has not viewed, when known.
    pub unread: RwSignal<Option<i64>>,
    /// Bumped whenever callbacks arrive or are viewed, so lists refresh.
    pub changes: RwSignal<u64>,
}

impl LiveState {
    pub fn push_toast(&self, kind: ToastKind) {
        let key = self.next_toast.get_untracked();
        self.next_toast.set(key + 1);
        self.toasts
            .update(|toasts| toasts.push(Toast { key, kind }));
    }

    pub fn dismiss(&self, key: u64) {
        self.toasts
            .update(|toasts| toasts.retain(|toast| toast.key != key));
    }

    pub fn changed(&self) {
        self.changes.update(|n| *n += 1);
    }
}

pub fn provide_live_state() -> LiveState {
    let state = LiveState {
        open: RwSignal::new(None),
        toasts: RwSignal::new(Vec::new()),
        next_toast: RwSignal::new(0),
        unread: RwSignal::new(None),
        changes: RwSignal::new(0),
    };
    provide_context(state);
    state
}

pub fn live_state() -> LiveState {
    expect_context::<LiveState>()
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
    use super::relative_time;

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative_time(3), "just now");
        assert_eq!(relative_time(42), "42 s ago");
        assert_eq!(relative_time(600), "10 min ago");
        assert_eq!(relative_time(7200), "2 h ago");
        assert_eq!(relative_time(200_000), "2 d ago");
    }
}
