//! How the open tabs of one admin share the live feed: the browser-side
//! state (keyed by the signed-in user, so another account in the same
//! browser starts fresh) and the messages between tabs.
//!
//! - One tab per user reads the feed: the holder of the Web Lock
//!   [`leader_lock`], held for the tab's lifetime; when it closes, the next
//!   tab in line takes over from the stored cursor.
//! - The reader tells the other tabs what arrived over a BroadcastChannel and
//!   names the one tab that shows the toast: the tab the admin is looking at.
//! - Each tab records whether it is visible and when the admin last turned
//!   to it ([`Presence`]); the reader chooses from those records.

use inbox_core::cursor::FeedCursor;
use inbox_core::dto::CallbackSummary;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Keys from before per-user state: dropped on sight.
pub const RETIRED_KEYS: [&str; 2] = ["callback-inbox:poll-cursor", "callback-inbox:poll-lease"];
/// How many toasted callback ids the tabs remember, to never toast one twice.
pub const RECENT_IDS: usize = 200;

/// Where the feed continues for this user.
pub fn cursor_key(user: &str) -> String {
    format!("callback-inbox:feed-cursor:{user}")
}

/// The callbacks lately shown, shared by this user's tabs.
pub fn recent_key(user: &str) -> String {
    format!("callback-inbox:feed-recent:{user}")
}

/// Each tab's [`Presence`] lives under this prefix plus the tab id.
pub fn presence_prefix(user: &str) -> String {
    format!("callback-inbox:presence:{user}:")
}

/// Whether this user turned desktop notifications on.
pub fn notifications_key(user: &str) -> String {
    format!("callback-inbox:notifications:{user}")
}

/// The Web Lock whose holder reads the feed for this user.
pub fn leader_lock(user: &str) -> String {
    format!("callback-inbox:feed:{user}")
}

/// The Web Lock every tab holds while it lives, so the reader can tell a
/// closed (or crashed) tab's presence from a live one.
pub fn tab_lock(tab: &str) -> String {
    format!("callback-inbox:tab:{tab}")
}

/// What the reader tells the other tabs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TabMessage {
    /// New callbacks; `toast_tab` alone shows them.
    Arrived {
        user: String,
        items: Vec<CallbackSummary>,
        toast_tab: String,
    },
    /// The first visit's summary: `count` unviewed in all.
    Unviewed {
        user: String,
        count: i64,
        toast_tab: String,
    },
    /// The sender marked callbacks viewed: counts and lists are stale.
    Viewed { user: String },
}

impl TabMessage {
    pub fn user(&self) -> &str {
        match self {
            Self::Arrived { user, .. } | Self::Unviewed { user, .. } | Self::Viewed { user } => {
                user
            }
        }
    }

    pub fn toast_tab(&self) -> Option<&str> {
        match self {
            Self::Arrived { toast_tab, .. } | Self::Unviewed { toast_tab, .. } => Some(toast_tab),
            Self::Viewed { .. } => None,
        }
    }
}

/// One tab as the others see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Presence {
    pub visible: bool,
    /// When the admin last turned to the tab (it became visible, got focus
    /// or was clicked or typed in), Unix ms.
    pub since_ms: f64,
}

impl Presence {
    /// `v:<ms>` or `h:<ms>`.
    pub fn to_stored(self) -> String {
        format!("{}:{}", if self.visible { 'v' } else { 'h' }, self.since_ms)
    }

    pub fn parse(stored: &str) -> Option<Self> {
        let (state, since) = stored.split_once(':')?;
        let visible = match state {
            "v" => true,
            "h" => false,
            _ => return None,
        };
        Some(Self {
            visible,
            since_ms: since.parse().ok()?,
        })
    }
}

/// The tab that shows a toast: a visible tab, the one the admin turned to
/// last; when none is visible, the tab they looked at last (they will most
/// likely come back to it); with no records at all, `fallback`.
pub fn choose_toast_tab<'a>(
    tabs: impl IntoIterator<Item = (&'a str, Presence)>,
    fallback: &'a str,
) -> &'a str {
    tabs.into_iter()
        .max_by(|(_, a), (_, b)| {
            (a.visible, a.since_ms)
                .partial_cmp(&(b.visible, b.since_ms))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map_or(fallback, |(tab, _)| tab)
}

/// Whether `next` moves the stored cursor forward (a malformed or missing
/// one is replaced). Cursors only move forward, whichever tab writes.
pub fn advances(stored: Option<&str>, next: &str) -> bool {
    let Ok(next) = next.parse::<FeedCursor>() else {
        return false;
    };
    stored
        .and_then(|s| s.parse::<FeedCursor>().ok())
        .is_none_or(|stored| next > stored)
}

/// A stored cursor this server could have issued: others (the old
/// `(created_at,id)` format) are dropped before use.
pub fn valid_cursor(stored: Option<String>) -> Option<String> {
    stored.filter(|s| s.parse::<FeedCursor>().is_ok())
}

/// Splits `items` into those not shown yet, and the updated list of
/// recently shown ids (space-separated, newest last, at most [`RECENT_IDS`]).
pub fn not_shown_yet(
    recent: Option<&str>,
    items: Vec<CallbackSummary>,
) -> (Vec<CallbackSummary>, String) {
    let mut ids: Vec<Uuid> = recent
        .unwrap_or_default()
        .split_ascii_whitespace()
        .filter_map(|id| Uuid::try_parse(id).ok())
        .collect();
    let mut fresh = Vec::with_capacity(items.len());
    for item in items {
        if !ids.contains(&item.id) {
            ids.push(item.id);
            fresh.push(item);
        }
    }
    let keep = ids.len().saturating_sub(RECENT_IDS);
    let stored = ids[keep..]
        .iter()
        .map(|id| id.simple().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    (fresh, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(n: u128) -> CallbackSummary {
        CallbackSummary {
            id: Uuid::from_u128(n),
            source: "llm-callback".into(),
            callback_id: format!("cb{n}"),
            workflow_name: Some("wf".into()),
            event_type: Some("workflow.completed".into()),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            signature_valid: true,
        }
    }

    #[test]
    fn state_is_kept_per_user() {
        assert_ne!(cursor_key("a@example.com"), cursor_key("b@example.com"));
        assert_ne!(leader_lock("a@example.com"), leader_lock("b@example.com"));
        assert!(!presence_prefix("a@x").starts_with(&presence_prefix("a@")));
    }

    #[test]
    fn messages_round_trip_and_name_their_user() {
        let message = TabMessage::Arrived {
            user: "a@example.com".into(),
            items: vec![summary(1)],
            toast_tab: "t1".into(),
        };
        let text = serde_json::to_string(&message).unwrap();
        let back: TabMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(back, message);
        assert_eq!(back.user(), "a@example.com");
        assert_eq!(back.toast_tab(), Some("t1"));
        assert!(serde_json::from_str::<TabMessage>("\"arrived\"").is_err());
    }

    #[test]
    fn presence_round_trips() {
        let p = Presence {
            visible: true,
            since_ms: 1_700_000_000_123.0,
        };
        assert_eq!(Presence::parse(&p.to_stored()), Some(p));
        assert_eq!(Presence::parse("x:1"), None);
        assert_eq!(Presence::parse("v:soon"), None);
    }

    #[test]
    fn the_toast_goes_to_the_visible_tab_the_admin_turned_to_last() {
        let at = |visible, since_ms| Presence { visible, since_ms };
        // The leader is hidden, a follower is visible: the follower.
        assert_eq!(
            choose_toast_tab(
                [("leader", at(false, 300.0)), ("follower", at(true, 100.0))],
                "leader"
            ),
            "follower"
        );
        // Two visible windows: the one turned to last.
        assert_eq!(
            choose_toast_tab(
                [
                    ("a", at(true, 100.0)),
                    ("b", at(true, 200.0)),
                    ("c", at(false, 900.0))
                ],
                "a"
            ),
            "b"
        );
        // Nobody looking: where the admin looked last.
        assert_eq!(
            choose_toast_tab([("a", at(false, 100.0)), ("b", at(false, 200.0))], "a"),
            "b"
        );
        assert_eq!(choose_toast_tab([], "me"), "me");
    }

    #[test]
    fn cursors_only_move_forward() {
        assert!(advances(None, "feed-3"));
        assert!(advances(Some("1700000000.abc"), "feed-3"));
        assert!(advances(Some("feed-2"), "feed-3"));
        assert!(!advances(Some("feed-3"), "feed-3"));
        assert!(!advances(Some("feed-9"), "feed-3"));
        assert!(!advances(None, "garbage"));
        assert_eq!(valid_cursor(Some("feed-3".into())), Some("feed-3".into()));
        assert_eq!(
            valid_cursor(Some(
                "1700000000000000.0190a1b2c3d4e5f60718293a4b5c6d7e".into()
            )),
            None
        );
    }

    #[test]
    fn a_callback_is_shown_once_and_the_memory_stays_bounded() {
        let (fresh, stored) = not_shown_yet(None, vec![summary(1), summary(2)]);
        assert_eq!(fresh.len(), 2);
        let (fresh, stored) = not_shown_yet(Some(&stored), vec![summary(2), summary(3)]);
        assert_eq!(fresh, vec![summary(3)]);
        let many: Vec<_> = (10..10 + RECENT_IDS as u128 + 50).map(summary).collect();
        let (_, stored) = not_shown_yet(Some(&stored), many);
        assert_eq!(stored.split(' ').count(), RECENT_IDS);
        // The oldest were forgotten, the newest kept.
        let (fresh, _) = not_shown_yet(
            Some(&stored),
            vec![summary(1), summary(10 + RECENT_IDS as u128 + 49)],
        );
        assert_eq!(fresh, vec![summary(1)]);
    }
}
