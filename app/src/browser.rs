//! The few browser APIs the app uses, in one place. On the server (where
//! these are never called from effects) they are inert, so components stay
//! free of `cfg` noise.

/// What a copy to the clipboard can run into; the text is shown to the admin.
pub const NO_CLIPBOARD: &str = "No clipboard here: the browser offers it only over HTTPS or on localhost. Select the text and copy it by hand.";
pub const CLIPBOARD_REFUSED: &str =
    "The browser refused to copy (no permission). Select the text and copy it by hand.";

#[cfg(feature = "hydrate")]
mod imp {
    use wasm_bindgen::{JsCast, JsValue};

    fn window() -> Option<web_sys::Window> {
        web_sys::window()
    }

    fn local_storage() -> Option<web_sys::Storage> {
        window()?.local_storage().ok()?
    }

    pub fn storage_get(key: &str) -> Option<String> {
        local_storage()?.get_item(key).ok()?
    }

    pub fn storage_set(key: &str, value: &str) {
        if let Some(storage) = local_storage() {
            let _ = storage.set_item(key, value);
        }
    }

    pub fn storage_remove(key: &str) {
        if let Some(storage) = local_storage() {
            let _ = storage.remove_item(key);
        }
    }

    /// Every stored key that starts with `prefix`.
    pub fn storage_keys(prefix: &str) -> Vec<String> {
        let Some(storage) = local_storage() else {
            return Vec::new();
        };
        let count = storage.length().unwrap_or(0);
        (0..count)
            .filter_map(|i| storage.key(i).ok().flatten())
            .filter(|key| key.starts_with(prefix))
            .collect()
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

    pub fn document_focused() -> bool {
        window()
            .and_then(|w| w.document())
            .is_none_or(|d| d.has_focus().unwrap_or(true))
    }

    /// `navigator.clipboard`, which exists only in secure contexts.
    fn clipboard() -> Option<web_sys::Clipboard> {
        let navigator = window()?.navigator();
        let clipboard = js_sys::Reflect::get(&navigator, &JsValue::from_str("clipboard")).ok()?;
        (!clipboard.is_undefined() && !clipboard.is_null()).then(|| clipboard.unchecked_into())
    }

    /// Copies without waiting for the outcome (for buttons that show none).
    pub fn copy_text(text: &str) {
        if let Some(clipboard) = clipboard() {
            let _ = clipboard.write_text(text);
        }
    }

    /// Copies `text`; the error is a sentence to show the admin.
    pub async fn write_clipboard(text: &str) -> Result<(), &'static str> {
        let clipboard = clipboard().ok_or(super::NO_CLIPBOARD)?;
        wasm_bindgen_futures::JsFuture::from(clipboard.write_text(text))
            .await
            .map(|_| ())
            .map_err(|_| super::CLIPBOARD_REFUSED)
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
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&url.href()));
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
        js_sys::Date::new(&JsValue::from_f64(ms))
            .to_locale_string("default", &JsValue::UNDEFINED)
            .into()
    }

    /// The first and last instant of a day (`YYYY-MM-DD`) in the browser's
    /// time zone, as RFC 3339 with the local offset: DST days are 23 or 25 h.
    pub fn local_day_bounds(date: &str) -> Option<(String, String)> {
        let (year, month, day) = super::parse_date(date)?;
        let midnight = |day_offset: u32| {
            js_sys::Date::new_with_year_month_day(
                year,
                (month - 1) as i32,
                (day + day_offset) as i32,
            )
            .get_time()
        };
        let at = |ms: f64| {
            // getTimezoneOffset is UTC minus local time, in minutes, at that instant.
            let offset = -(js_sys::Date::new(&JsValue::from_f64(ms)).get_timezone_offset() as i32);
            super::rfc3339_at(ms, offset)
        };
        // The day ends 1 ms before the next one starts (the server compares inclusively).
        Some((at(midnight(0))?, at(midnight(1) - 1.0)?))
    }

    /// Points the page's `<link rel=icon>` at `href`; returns the old href.
    pub fn set_favicon(href: &str) -> Option<String> {
        let link: web_sys::HtmlLinkElement = window()?
            .document()?
            .query_selector("link[rel~='icon']")
            .ok()??
            .dyn_into()
            .ok()?;
        let old = link.get_attribute("href");
        if old.as_deref() != Some(href) {
            link.set_href(href);
        }
        old
    }
}

#[cfg(not(feature = "hydrate"))]
mod imp {
    pub fn storage_get(_key: &str) -> Option<String> {
        None
    }
    pub fn storage_set(_key: &str, _value: &str) {}
    pub fn storage_remove(_key: &str) {}
    pub fn storage_keys(_prefix: &str) -> Vec<String> {
        Vec::new()
    }
    pub fn now_ms() -> f64 {
        0.0
    }
    pub fn set_title(_title: &str) {}
    pub fn document_visible() -> bool {
        true
    }
    pub fn document_focused() -> bool {
        true
    }
    pub fn copy_text(_text: &str) {}
    pub async fn write_clipboard(_text: &str) -> Result<(), &'static str> {
        Err(super::NO_CLIPBOARD)
    }
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
    pub fn local_day_bounds(_date: &str) -> Option<(String, String)> {
        None
    }
    pub fn set_favicon(_href: &str) -> Option<String> {
        None
    }
    pub fn active_element() -> Option<web_sys::HtmlElement> {
        None
    }
    pub fn remember_focus() {}
    pub fn restore_focus() {}
}

pub use imp::*;

/// `YYYY-MM-DD` as (year, month, day), for dates an `<input type=date>` gives.
pub fn parse_date(text: &str) -> Option<(u32, u32, u32)> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse::<u32>().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((year, month, day))
}

/// An instant (Unix milliseconds) as RFC 3339 at a UTC offset in minutes.
pub fn rfc3339_at(unix_ms: f64, offset_minutes: i32) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(unix_ms as i128 * 1_000_000).ok()?;
    let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).ok()?;
    at.to_offset(offset).format(&Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_date_inputs_parse_and_nothing_else_does() {
        assert_eq!(parse_date("2026-11-21"), Some((2026, 11, 21)));
        for bad in [
            "",
            "2026-1-21",
            "2026-13-01",
            "2026-11-21T00:00:00Z",
            "abcd-ef-gh",
            "2026-11-00",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn instants_are_written_with_the_local_offset() {
        // 2026-11-21T00:00:00+13:00 is 2026-11-20T11:00:00Z.
        let ms = 1_795_172_400_000.0;
        assert_eq!(
            rfc3339_at(ms, 13 * 60).as_deref(),
            Some("2026-11-21T00:00:00+13:00")
        );
        assert_eq!(rfc3339_at(ms, 0).as_deref(), Some("2026-11-20T11:00:00Z"));
        assert_eq!(
            rfc3339_at(ms - 1.0, -(5 * 60 + 30)).as_deref(),
            Some("2026-11-20T05:29:59.999-05:30")
        );
    }
}
