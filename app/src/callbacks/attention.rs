//! Getting the admin's attention without making them stare at the page:
//! the unread count in the tab title and as a badge on the favicon, and
//! desktop notifications when they ask for them.

use leptos::prelude::*;

use super::live::{LiveState, live_state};
use super::tabs::notifications_key;
use crate::browser;

/// The favicon of `public/favicon.svg` (an envelope on a blue tile).
const ICON_BODY: &str = "<rect width='32' height='32' rx='7' fill='#2563eb'/>\
<path d='M7 11h18v12a2 2 0 0 1-2 2H9a2 2 0 0 1-2-2z' fill='#fff'/>\
<path d='M7 11l9 7 9-7' fill='none' stroke='#2563eb' stroke-width='2'/>";

/// "(3) callback-inbox".
pub fn title_for(unread: Option<i64>) -> String {
    match unread {
        Some(count) if count > 0 => format!("({count}) callback-inbox"),
        _ => "callback-inbox".to_owned(),
    }
}

/// The favicon with a red count dot, as an SVG data URL (the CSP allows
/// `img-src data:`); `None` when nothing is unread.
pub fn badged_icon(unread: Option<i64>) -> Option<String> {
    let count = unread.filter(|count| *count > 0)?;
    let (label, size) = if count > 9 {
        ("9+".to_owned(), 10)
    } else {
        (count.to_string(), 13)
    };
    let svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'>{ICON_BODY}\
<circle cx='23' cy='9' r='9' fill='#dc2626' stroke='#fff' stroke-width='1.5'/>\
<text x='23' y='13.5' font-family='Arial,Helvetica,sans-serif' font-size='{size}' font-weight='700' \
text-anchor='middle' fill='#fff'>{label}</text></svg>"
    );
    Some(format!(
        "data:image/svg+xml,{}",
        crate::url::encode_query_value(&svg)
    ))
}

/// Keeps the tab title and the favicon badge in step with the unread count.
pub fn show_unread_count(live: LiveState) {
    // The icon the page was served with, to put back at zero.
    let plain = StoredValue::new(None::<String>);
    Effect::new(move |_| {
        let unread = live.unread.get();
        browser::set_title(&title_for(unread));
        let href = badged_icon(unread).or_else(|| plain.get_value());
        if let Some(href) = href {
            let old = browser::set_favicon(&href);
            if plain.get_value().is_none() {
                plain.set_value(old.filter(|old| !old.starts_with("data:")));
            }
        }
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Desktop {
    /// No Notification API here (old browser, plain-HTTP origin): no control.
    Unavailable,
    Off,
    On,
    /// The browser (or the admin, in its settings) said no.
    Blocked,
}

/// "Enable desktop notifications": asks the browser's permission only
/// when clicked, and remembers the choice per user.
#[component]
pub fn NotificationsToggle() -> impl IntoView {
    let live = live_state();
    let state = RwSignal::new(Desktop::Unavailable);
    // The page renders without the control; the browser decides after hydration.
    Effect::new(move |_| {
        let user = live.user.get();
        state.set(current_state(user.as_deref()));
    });
    let click = move |_| {
        let Some(user) = live.user.get_untracked() else {
            return;
        };
        match state.get_untracked() {
            Desktop::On => {
                browser::storage_set(&notifications_key(&user), "off");
                state.set(Desktop::Off);
            }
            Desktop::Off => enable(user, state),
            Desktop::Unavailable | Desktop::Blocked => {}
        }
    };
    let label = move || match state.get() {
        Desktop::On => "Disable desktop notifications",
        Desktop::Blocked => "Desktop notifications are blocked in this browser's site settings",
        _ => "Enable desktop notifications",
    };
    view! {
        <Show when=move || state.get() != Desktop::Unavailable>
            <button
                type="button"
                class="icon-button notify-toggle"
                class:on=move || state.get() == Desktop::On
                aria-label=label
                title=label
                aria-pressed=move || (state.get() == Desktop::On).to_string()
                disabled=move || state.get() == Desktop::Blocked
                on:click=click
            >
                <svg class="bell" viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M12 3a6 6 0 0 0-6 6v3.5L4.5 16h15L18 12.5V9a6 6 0 0 0-6-6z" />
                    <path d="M9.5 18.5a2.5 2.5 0 0 0 5 0" />
                    <Show when=move || state.get() != Desktop::On>
                        <path class="bell-off" d="M4 4l16 16" />
                    </Show>
                </svg>
            </button>
        </Show>
    }
}

#[cfg(feature = "hydrate")]
fn current_state(user: Option<&str>) -> Desktop {
    use super::live_io::notification_permission;
    let (Some(user), Some(permission)) = (user, notification_permission()) else {
        return Desktop::Unavailable;
    };
    let wanted = browser::storage_get(&notifications_key(user)).as_deref() == Some("on");
    match permission {
        "denied" => Desktop::Blocked,
        "granted" if wanted => Desktop::On,
        _ => Desktop::Off,
    }
}

#[cfg(not(feature = "hydrate"))]
fn current_state(_user: Option<&str>) -> Desktop {
    Desktop::Unavailable
}

fn enable(user: String, state: RwSignal<Desktop>) {
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(async move {
        let permission = super::live_io::request_notification_permission().await;
        if permission == Some("granted") {
            browser::storage_set(&notifications_key(&user), "on");
        }
        let _ = state.try_set(current_state(Some(&user)));
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (user, state);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_carries_the_unread_count() {
        assert_eq!(title_for(Some(3)), "(3) callback-inbox");
        assert_eq!(title_for(Some(0)), "callback-inbox");
        assert_eq!(title_for(None), "callback-inbox");
    }

    #[test]
    fn the_favicon_gets_a_count_dot_only_when_something_is_unread() {
        assert_eq!(badged_icon(Some(0)), None);
        assert_eq!(badged_icon(None), None);
        let three = badged_icon(Some(3)).unwrap();
        assert!(three.starts_with("data:image/svg+xml,%3Csvg"));
        // Nothing that would end the URL or the attribute stays unescaped.
        assert!(!three.contains(['#', '<', '>', '"', '\'', ' ']));
        assert!(three.contains("%3E3%3C/text%3E"));
        assert!(
            badged_icon(Some(300))
                .unwrap()
                .contains("%3E9%2B%3C/text%3E")
        );
    }
}
