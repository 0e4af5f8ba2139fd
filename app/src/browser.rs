//! The few browser APIs the app uses, in one place. On the server (where
//! these are never called from effects) they are inert, so components stay
//! free of `cfg` noise.

#[cfg(feature = "hydrate")]
mod imp {
    use wasm_bindgen::JsCast;

    fn window() -> Option<web_sys::Window> {
        web_sys::window()
    }

    pub fn storage_get(key: &str) -> Option<String> {
        window()?.local_storage().ok()??.get_item(key).ok()?
    }

    pub fn storage_set(key: &str, value: &str) {
        if let Some(Ok(Some(storage))) = window().map(|w| w.local_storage()) {
            let _ = storage.set_item(key, value);
        }
    }

    pub fn now_ms() -> f64 {
        js_sys::Date::now()
    }

    pub fn set_title(title: &str) {
        if let Some(document) = window().and_then(|w| w.document()) {
            document.set_title(title);
        }
    }

    pub fn document_visible() -> bool {
        window()
            .and_then(|w| w.document())
            .is_none_or(|d| d.visibility_state() == web_sys::VisibilityState::Visible)
    }

    pub fn copy_text(text: &str) {
        if let Some(window) = window() {
            let _ = window.navigator().clipboard().write_text(text);
        }
    }

    pub fn viewport() -> (f64, f64) {
        window()
            .map(|w| {
                let width = w
                    .inner_width()
                    .ok()
                    .and_then(|v| v.as_f64())
                    .unwrap_or(1024.0);
                let height = w
                    .inner_height()
                    .ok()
                    .and_then(|v| v.as_f64())
                    .unwrap_or(768.0);
                (width, height)
            })
            .unwrap_or((1024.0, 768.0))
    }

    /// Sets or removes one query parameter without navigating.
    pub fn replace_query_param(name: &str, value: Option<&str>) {
        let Some(window) = window() else { return };
        let Ok(href) = window.location().href() else {
            return;
        };
        let Ok(url) = web_sys::Url::new(&href) else {
            return;
        };
        match value {
            Some(value) => url.search_params().set(name, value),
            None => url.search_params().delete(name),
        }
        if let Ok(history) = window.history() {
            let _ =
                history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url.href()));
        }
    }

    pub fn meta_content(name: &str) -> Option<String> {
        let document = window()?.document()?;
        let element = document
            .query_selector(&format!("meta[name=\"{name}\"]"))
            .ok()??;
        element.get_attribute("content")
    }

    pub fn active_element() -> Option<web_sys::HtmlElement> {
        window()?.document()?.active_element()?.dyn_into().ok()
    }

    thread_local! {
        static RETURN_FOCUS: std::cell::RefCell<Option<web_sys::HtmlElement>> =
            const { std::cell::RefCell::new(None) };
    }

    /// Remembers where focus is, to give it back with [`restore_focus`].
    pub fn remember_focus() {
        let element = active_element();
        RETURN_FOCUS.with(|slot| *slot.borrow_mut() = element);
    }

    pub fn restore_focus() {
        if let Some(element) = RETURN_FOCUS.with(|slot| slot.borrow_mut().take()) {
            let _ = element.focus();
        }
    }

    /// A channel to this site's other open tabs.
    pub fn tab_channel() -> Option<web_sys::BroadcastChannel> {
        web_sys::BroadcastChannel::new("callback-inbox").ok()
    }

    pub fn random_id() -> String {
        format!("{:x}", (js_sys::Math::random() * 1e16) as u64)
    }

    /// A time in the browser's locale and time zone.
    pub fn local_time(at: time::OffsetDateTime) -> String {
        let ms = (at.unix_timestamp_nanos() / 1_000_000) as f64;
        js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms))
            .to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED)
            .into()
    }
}

#[cfg(not(feature = "hydrate"))]
mod imp {
    pub fn storage_get(_key: &str) -> Option<String> {
        None
    }
    pub fn storage_set(_key: &str, _value: &str) {}
    pub fn now_ms() -> f64 {
        0.0
    }
    pub fn set_title(_title: &str) {}
    pub fn document_visible() -> bool {
        true
    }
    pub fn copy_text(_text: &str) {}
    pub fn viewport() -> (f64, f64) {
        (1024.0, 768.0)
    }
    pub fn replace_query_param(_name: &str, _value: Option<&str>) {}
    pub fn meta_content(_name: &str) -> Option<String> {
        None
    }
    pub fn random_id() -> String {
        String::new()
    }
    pub fn local_time(at: time::OffsetDateTime) -> String {
        at.to_string()
    }
    pub fn active_element() -> Option<web_sys::HtmlElement> {
        None
    }
    pub fn remember_focus() {}
    pub fn restore_focus() {}
}

pub use imp::*;
