//! This tab's part of the live feed (see `tabs.rs` for the design): it
//! learns who is signed in, competes for the reader's Web Lock, tells the
//! other tabs what the reader found, and shows a toast only when it is the
//! tab the reader named. Reading the feed itself, by stream or by poll, is
//! in `poller.rs`.

use leptos::prelude::*;

use super::live::live_state;

/// Starts this tab's live feed once the page is live (nothing on the server).
#[component]
pub fn LiveFeed() -> impl IntoView {
    let live = live_state();
    #[cfg(feature = "hydrate")]
    imp::run(live);
    #[cfg(not(feature = "hydrate"))]
    let _ = live;
}

#[cfg(feature = "hydrate")]
pub(super) use imp::Feed;

#[cfg(feature = "hydrate")]
mod imp {
    use std::cell::{Cell, RefCell};
    use std::rc::{Rc, Weak};

    use inbox_core::dto::CallbackSummary;
    use leptos::prelude::*;
    use send_wrapper::SendWrapper;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::{JsCast, JsValue};

    use super::super::live::{FeedMode, LiveState, ToastKind};
    use super::super::live_io::{self, HeldLock, Listener, Wake};
    use super::super::poller::{self, BACKLOG_TOAST_AT};
    use super::super::tabs::{self, Presence, TabMessage};
    use crate::browser;

    /// How often a tab re-records that the admin is using it, at most.
    const PRESENCE_THROTTLE_MS: f64 = 1000.0;
    /// A presence record without a live tab behind it is dropped after this
    /// (younger ones may belong to a tab still being granted its lock).
    const DEAD_PRESENCE_MS: f64 = 60_000.0;

    pub fn run(live: LiveState) {
        let slot: Rc<RefCell<Option<Rc<Feed>>>> = Rc::default();
        let cancelled = Rc::new(Cell::new(false));
        {
            let slot = SendWrapper::new((slot.clone(), cancelled.clone()));
            on_cleanup(move || {
                let (slot, cancelled) = slot.take();
                cancelled.set(true);
                if let Some(feed) = slot.borrow_mut().take() {
                    feed.stop();
                }
            });
        }
        // A view in this tab: tell the other tabs, and count again.
        {
            let slot = slot.clone();
            Effect::new(move |previous: Option<()>| {
                live.views.track();
                if previous.is_some()
                    && let Some(feed) = slot.borrow().as_ref()
                {
                    feed.viewed_here();
                }
            });
        }
        // Browser work starts in an effect, once the page is hydrated.
        Effect::new(move |_| {
            let (slot, cancelled) = (slot.clone(), cancelled.clone());
            leptos::task::spawn_local(async move {
                let user = match crate::auth::current_user().await {
                    Ok(user) => user.email,
                    Err(_) => {
                        let _ = live.feed.try_set(FeedMode::Stopped);
                        return;
                    }
                };
                if cancelled.get() {
                    return;
                }
                let _ = live.user.try_set(Some(user.clone()));
                *slot.borrow_mut() = Some(Feed::start(live, user));
            });
        });
    }

    type MessageHandler = Closure<dyn FnMut(web_sys::MessageEvent)>;

    /// One tab's feed machinery; lives until [`Feed::stop`].
    pub struct Feed {
        pub tab: String,
        pub user: String,
        pub live: LiveState,
        /// Without Web Locks every tab reads the feed (by polling), and the
        /// shared cursor decides which tab reports what.
        pub shared: bool,
        pub interval_ms: f64,
        pub wake: Wake,
        pub source: RefCell<Option<web_sys::EventSource>>,
        stopped: Cell<bool>,
        presence: Cell<Presence>,
        channel: Option<web_sys::BroadcastChannel>,
        on_message: RefCell<Option<MessageHandler>>,
        listeners: RefCell<Vec<Listener>>,
        locks: RefCell<Vec<HeldLock>>,
    }

    impl Feed {
        fn start(live: LiveState, user: String) -> Rc<Self> {
            for key in tabs::RETIRED_KEYS {
                browser::storage_remove(key);
            }
            let interval_ms = browser::meta_content(poller::INTERVAL_META)
                .and_then(|secs| secs.parse::<f64>().ok())
                .filter(|secs| *secs > 0.0)
                .unwrap_or(10.0)
                * 1000.0;
            let visible = browser::document_visible();
            let feed = Rc::new(Self {
                tab: browser::random_id(),
                user,
                live,
                shared: !live_io::locks_available(),
                interval_ms,
                wake: Wake::default(),
                source: RefCell::new(None),
                stopped: Cell::new(false),
                presence: Cell::new(Presence {
                    visible,
                    since_ms: browser::now_ms(),
                }),
                channel: browser::tab_channel(),
                on_message: RefCell::new(None),
                listeners: RefCell::new(Vec::new()),
                locks: RefCell::new(Vec::new()),
            });
            let _ = live.visible.try_set(visible);
            feed.store_presence();
            feed.listen_to_the_page();
            feed.listen_to_other_tabs();
            feed.compete_for_reading();
            leptos::task::spawn_local(feed.clone().recount());
            feed
        }

        pub fn stopped(&self) -> bool {
            self.stopped.get()
        }

        /// Ends everything this tab does for the feed (the page goes, or
        /// its session ended): the reader's lock passes to the next tab.
        pub fn stop(&self) {
            if self.stopped.replace(true) {
                return;
            }
            let _ = self.live.feed.try_set(FeedMode::Stopped);
            if let Some(source) = self.source.borrow_mut().take() {
                source.close();
            }
            for lock in self.locks.borrow_mut().drain(..) {
                lock.release();
            }
            self.listeners.borrow_mut().clear();
            if let Some(channel) = &self.channel {
                channel.set_onmessage(None);
                channel.close();
            }
            self.on_message.borrow_mut().take();
            browser::storage_remove(&self.presence_key());
            self.wake.wake();
        }

        fn presence_key(&self) -> String {
            format!("{}{}", tabs::presence_prefix(&self.user), self.tab)
        }

        fn store_presence(&self) {
            browser::storage_set(&self.presence_key(), &self.presence.get().to_stored());
        }

        /// The admin turned to this tab (or away from it).
        fn note_presence(&self, visible: bool, attention: bool) {
            let old = self.presence.get();
            let now = browser::now_ms();
            let since_ms = if attention || (visible && !old.visible) {
                now
            } else {
                old.since_ms
            };
            if visible == old.visible && since_ms - old.since_ms < PRESENCE_THROTTLE_MS {
                return;
            }
            self.presence.set(Presence { visible, since_ms });
            self.store_presence();
        }

        fn listen_to_the_page(self: &Rc<Self>) {
            let Some(window) = web_sys::window() else {
                return;
            };
            let Some(document) = window.document() else {
                return;
            };
            let weak = Rc::downgrade(self);
            let on = |weak: &Weak<Self>, handler: fn(&Rc<Self>)| {
                let weak = weak.clone();
                move |_event: web_sys::Event| {
                    if let Some(feed) = weak.upgrade() {
                        handler(&feed);
                    }
                }
            };
            let visibility = |feed: &Rc<Self>| {
                let visible = browser::document_visible();
                let _ = feed.live.visible.try_set(visible);
                feed.note_presence(visible, false);
                if visible {
                    // Polling waits for its next turn; a returning admin should not.
                    feed.wake.wake();
                }
            };
            let attention = |feed: &Rc<Self>| feed.note_presence(browser::document_visible(), true);
            let gone = |feed: &Rc<Self>| browser::storage_remove(&feed.presence_key());
            let back = |feed: &Rc<Self>| feed.store_presence();
            let listeners = [
                live_io::listen(&document, "visibilitychange", on(&weak, visibility)),
                live_io::listen(&window, "focus", on(&weak, attention)),
                live_io::listen(&window, "pointerdown", on(&weak, attention)),
                live_io::listen(&window, "keydown", on(&weak, attention)),
                live_io::listen(&window, "pagehide", on(&weak, gone)),
                live_io::listen(&window, "pageshow", on(&weak, back)),
            ];
            self.listeners
                .borrow_mut()
                .extend(listeners.into_iter().flatten());
        }

        fn listen_to_other_tabs(self: &Rc<Self>) {
            let Some(channel) = &self.channel else {
                return;
            };
            let weak = Rc::downgrade(self);
            let on_message = MessageHandler::new(move |event: web_sys::MessageEvent| {
                let Some(feed) = weak.upgrade() else { return };
                let message = event
                    .data()
                    .as_string()
                    .and_then(|text| serde_json::from_str::<TabMessage>(&text).ok());
                if let Some(message) = message
                    && message.user() == feed.user
                {
                    feed.apply(message);
                }
            });
            channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            *self.on_message.borrow_mut() = Some(on_message);
        }

        /// Holds this tab's own lock, and queues for the reader's lock: the
        /// first tab reads the feed, the others follow until it closes.
        fn compete_for_reading(self: &Rc<Self>) {
            if self.shared {
                leptos::task::spawn_local(poller::read_feed(self.clone()));
                return;
            }
            let _ = self.live.feed.try_set(FeedMode::Follower);
            let mut locks = self.locks.borrow_mut();
            locks.extend(live_io::hold_lock(&tabs::tab_lock(&self.tab), || {}));
            let weak = Rc::downgrade(self);
            locks.extend(live_io::hold_lock(
                &tabs::leader_lock(&self.user),
                move || {
                    if let Some(feed) = weak.upgrade()
                        && !feed.stopped()
                    {
                        let _ = feed.live.feed.try_set(FeedMode::Starting);
                        leptos::task::spawn_local(poller::read_feed(feed));
                    }
                },
            ));
        }

        fn post(&self, message: &TabMessage) {
            if let (Some(channel), Ok(text)) = (&self.channel, serde_json::to_string(message)) {
                let _ = channel.post_message(&JsValue::from_str(&text));
            }
        }

        /// New callbacks read from the feed: each is reported once, to every
        /// tab, and toasted in one.
        pub async fn deliver(self: Rc<Self>, items: Vec<CallbackSummary>) {
            // Recorded before any await, so a racing report cannot repeat them.
            let key = tabs::recent_key(&self.user);
            let (items, recent) = tabs::not_shown_yet(browser::storage_get(&key).as_deref(), items);
            browser::storage_set(&key, &recent);
            if items.is_empty() || self.stopped() {
                return;
            }
            let toast_tab = self.toast_tab().await;
            let message = TabMessage::Arrived {
                user: self.user.clone(),
                items,
                toast_tab,
            };
            self.post(&message);
            self.apply(message);
        }

        /// The first visit's one summary instead of a toast per callback.
        pub async fn summarize(self: Rc<Self>, count: i64) {
            let toast_tab = self.toast_tab().await;
            let message = TabMessage::Unviewed {
                user: self.user.clone(),
                count,
                toast_tab,
            };
            self.post(&message);
            self.apply(message);
        }

        /// The tab the admin is looking at, from the tabs' presence records.
        async fn toast_tab(&self) -> String {
            let prefix = tabs::presence_prefix(&self.user);
            let alive = live_io::held_lock_names().await;
            let now = browser::now_ms();
            let mut present = Vec::new();
            for key in browser::storage_keys(&prefix) {
                let tab = key[prefix.len()..].to_owned();
                let Some(presence) = browser::storage_get(&key).and_then(|v| Presence::parse(&v))
                else {
                    continue;
                };
                if let Some(alive) = &alive
                    && !alive.contains(&tabs::tab_lock(&tab))
                {
                    // Closed without saying so (a crash, a killed process).
                    if now - presence.since_ms > DEAD_PRESENCE_MS {
                        browser::storage_remove(&key);
                    }
                    continue;
                }
                present.push((tab, presence));
            }
            tabs::choose_toast_tab(present.iter().map(|(tab, p)| (tab.as_str(), *p)), &self.tab)
                .to_owned()
        }

        /// What every tab does with a report, the reader included.
        fn apply(self: &Rc<Self>, message: TabMessage) {
            let here = message.toast_tab() == Some(self.tab.as_str());
            match message {
                TabMessage::Arrived { items, .. } => {
                    self.live.arrived(items.len());
                    if here {
                        self.toast(items);
                    }
                }
                TabMessage::Unviewed { count, .. } => {
                    let _ = self.live.unread.try_set(Some(count));
                    self.live.changed();
                    if here {
                        self.live.push_toast(ToastKind::Unviewed(count));
                        self.notify(&super::super::live::unviewed_text(count), "", None);
                    }
                }
                TabMessage::Viewed { .. } => {
                    self.live.changed();
                    leptos::task::spawn_local(self.clone().recount());
                }
            }
        }

        fn toast(&self, items: Vec<CallbackSummary>) {
            if items.len() > BACKLOG_TOAST_AT {
                self.live.push_toast(ToastKind::Batch(items.len()));
                self.notify(&format!("{} new callbacks", items.len()), "", None);
                return;
            }
            for item in items {
                if !self.live.first_arrival(item.id) {
                    continue;
                }
                let body = format!(
                    "{} · {}",
                    item.workflow_name.as_deref().unwrap_or("(no workflow)"),
                    item.event_type.as_deref().unwrap_or("(no event)")
                );
                self.notify("New LLM callback received", &body, Some(item.id));
                self.live.push_toast(ToastKind::Arrived(item));
            }
        }

        /// A desktop notification too, when the admin turned them on and is
        /// not looking at this tab.
        fn notify(&self, title: &str, body: &str, open: Option<uuid::Uuid>) {
            if browser::document_visible() && browser::document_focused() {
                return;
            }
            if browser::storage_get(&tabs::notifications_key(&self.user)).as_deref() != Some("on") {
                return;
            }
            let live = self.live;
            let tag = open.map_or_else(|| "callback-inbox-summary".to_owned(), |id| id.to_string());
            live_io::show_notification(title, body, &tag, move || {
                if let Some(id) = open {
                    let _ = live.open.try_set(Some(id));
                }
            });
        }

        fn viewed_here(self: &Rc<Self>) {
            self.post(&TabMessage::Viewed {
                user: self.user.clone(),
            });
            leptos::task::spawn_local(self.clone().recount());
        }

        /// Asks how many callbacks this user has not viewed (a poll without
        /// a cursor reads nothing else).
        async fn recount(self: Rc<Self>) {
            if let Ok(page) = super::super::api::poll(None, Some(1)).await
                && !self.stopped()
                && let Some(count) = page.unviewed_count
            {
                let _ = self.live.unread.try_set(Some(count));
            }
        }
    }
}
