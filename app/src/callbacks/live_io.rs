//! Browser tools of the live feed, in the browser build only: Web Locks
//! (through `Reflect`: web-sys keeps them behind an unstable cfg), a sleep
//! that events can cut short, event listeners that remove themselves, and
//! desktop notifications.

use std::cell::{Cell, RefCell};

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// A promise and the function that resolves it.
fn deferred() -> Option<(Promise, Function)> {
    let mut resolve = None;
    let promise = Promise::new(&mut |res, _rej| resolve = Some(res));
    Some((promise, resolve?))
}

fn property(target: &JsValue, name: &str) -> Option<JsValue> {
    Reflect::get(target, &JsValue::from_str(name))
        .ok()
        .filter(|value| !value.is_undefined() && !value.is_null())
}

/// `navigator.locks`: missing in old browsers and outside secure contexts
/// (a plain-HTTP LAN address).
fn lock_manager() -> Option<JsValue> {
    property(&web_sys::window()?.navigator(), "locks")
}

pub fn locks_available() -> bool {
    lock_manager().is_some()
}

/// A Web Lock, held or waited for until [`HeldLock::release`] (or the page
/// closes, which releases it too).
pub struct HeldLock {
    release: Function,
}

impl HeldLock {
    pub fn release(&self) {
        let _ = self.release.call0(&JsValue::NULL);
    }
}

/// Asks for the exclusive lock `name`; `granted` runs once it is ours.
pub fn hold_lock(name: &str, granted: impl FnOnce() + 'static) -> Option<HeldLock> {
    let locks = lock_manager()?;
    let request: Function = property(&locks, "request")?.dyn_into().ok()?;
    let (until_released, release) = deferred()?;
    // The lock is held until the promise the callback returns settles.
    let callback = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
        granted();
        until_released.into()
    });
    request
        .call2(&locks, &JsValue::from_str(name), &callback)
        .ok()?;
    Some(HeldLock { release })
}

/// The names of the locks held now, by any tab of this origin.
pub async fn held_lock_names() -> Option<Vec<String>> {
    let locks = lock_manager()?;
    let query: Function = property(&locks, "query")?.dyn_into().ok()?;
    let snapshot: Promise = query.call0(&locks).ok()?.dyn_into().ok()?;
    let snapshot = JsFuture::from(snapshot).await.ok()?;
    let held: js_sys::Array = property(&snapshot, "held")?.dyn_into().ok()?;
    Some(
        held.iter()
            .filter_map(|lock| property(&lock, "name")?.as_string())
            .collect(),
    )
}

/// A sleep that ends at its timeout or when [`Wake::wake`] is called,
/// whichever comes first: one timer at a time, no polling loop. A wake with
/// no sleeper ends the next sleep at once.
#[derive(Default)]
pub struct Wake {
    resolve: RefCell<Option<Function>>,
    pending: Cell<bool>,
}

impl Wake {
    /// Sleeps `ms`, or until woken when `None`.
    pub async fn sleep(&self, ms: Option<f64>) {
        if self.pending.replace(false) {
            return;
        }
        let Some((promise, resolve)) = deferred() else {
            return;
        };
        let window = web_sys::window();
        let timer = match (ms, &window) {
            (Some(ms), Some(window)) => window
                .set_timeout_with_callback_and_timeout_and_arguments_0(
                    &resolve,
                    ms.clamp(0.0, f64::from(i32::MAX)) as i32,
                )
                .ok(),
            _ => None,
        };
        *self.resolve.borrow_mut() = Some(resolve);
        let _ = JsFuture::from(promise).await;
        self.resolve.borrow_mut().take();
        if let (Some(timer), Some(window)) = (timer, window) {
            window.clear_timeout_with_handle(timer);
        }
    }

    pub fn wake(&self) {
        let resolve = self.resolve.borrow_mut().take();
        match resolve {
            Some(resolve) => {
                let _ = resolve.call0(&JsValue::NULL);
            }
            None => self.pending.set(true),
        }
    }
}

/// An event listener, removed when dropped.
pub struct Listener {
    target: web_sys::EventTarget,
    event: &'static str,
    handler: Closure<dyn FnMut(web_sys::Event)>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.event, self.handler.as_ref().unchecked_ref());
    }
}

pub fn listen(
    target: &web_sys::EventTarget,
    event: &'static str,
    handler: impl FnMut(web_sys::Event) + 'static,
) -> Option<Listener> {
    let handler = Closure::<dyn FnMut(web_sys::Event)>::new(handler);
    target
        .add_event_listener_with_callback(event, handler.as_ref().unchecked_ref())
        .ok()?;
    Some(Listener {
        target: target.clone(),
        event,
        handler,
    })
}

/// `Notification.permission` ("default", "granted", "denied"), or `None`
/// where the browser has no notifications (or not in this context).
pub fn notification_permission() -> Option<&'static str> {
    property(&JsValue::from(web_sys::window()?), "Notification")?;
    Some(match web_sys::Notification::permission() {
        web_sys::NotificationPermission::Granted => "granted",
        web_sys::NotificationPermission::Denied => "denied",
        _ => "default",
    })
}

/// Asks the browser for permission (only ever after a click).
pub async fn request_notification_permission() -> Option<&'static str> {
    property(&JsValue::from(web_sys::window()?), "Notification")?;
    let answer = web_sys::Notification::request_permission().ok()?;
    let _ = JsFuture::from(answer).await;
    notification_permission()
}

/// Shows a desktop notification; a click on it brings this tab forward
/// and runs `on_click`. `tag` replaces an earlier notification with the same tag.
pub fn show_notification(title: &str, body: &str, tag: &str, on_click: impl FnOnce() + 'static) {
    if notification_permission() != Some("granted") {
        return;
    }
    let options = web_sys::NotificationOptions::new();
    options.set_body(body);
    options.set_tag(tag);
    let Ok(notification) = web_sys::Notification::new_with_options(title, &options) else {
        return;
    };
    let click = Closure::once_into_js(move || {
        if let Some(window) = web_sys::window() {
            let _ = window.focus();
        }
        on_click();
    });
    notification.set_onclick(Some(click.unchecked_ref()));
}
