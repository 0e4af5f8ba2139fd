//! The callback window: a draggable, resizable dialog with the callback's
//! metadata and its payload in the JSON viewer. One at a time; opened from
//! toasts, history rows and `?callback=<id>` deep links. It stays inside
//! the viewport when the viewport shrinks.

use std::sync::Arc;

use inbox_core::dto::CallbackDetail;
use leptos::ev;
use leptos::html;
use leptos::prelude::*;
use uuid::Uuid;
use wasm_bindgen::JsCast;

use super::api::{detail, mark_viewed};
use super::json_text;
use super::json_view::JsonView;
use super::live::{age_secs, live_state, relative_time};
use crate::browser;
use crate::error::AppError;

const MIN_WIDTH: f64 = 320.0;
const MIN_HEIGHT: f64 = 220.0;
const TITLE_BAR: f64 = 44.0;
/// How much of the title bar must stay on screen horizontally, to grab it again.
const KEEP_VISIBLE: f64 = 120.0;
/// Below this viewport width the window is a full-screen sheet.
const SHEET_BELOW: f64 = 640.0;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Geometry {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
}

impl Geometry {
    fn centered((vw, vh): (f64, f64)) -> Self {
        let width = (vw - 32.0).clamp(MIN_WIDTH, 820.0);
        let height = (vh - 64.0).clamp(MIN_HEIGHT, 680.0);
        Self {
            x: ((vw - width) / 2.0).max(0.0),
            y: ((vh - height) / 2.0).max(16.0),
            width,
            height,
        }
    }

    /// Moves freely, except that the title bar never leaves the viewport.
    fn moved_to(self, x: f64, y: f64, (vw, vh): (f64, f64)) -> Self {
        Self {
            x: x.clamp(KEEP_VISIBLE - self.width, vw - KEEP_VISIBLE),
            y: y.clamp(0.0, (vh - TITLE_BAR).max(0.0)),
            ..self
        }
    }

    /// Shrunk and moved, as little as needed, to lie inside the viewport
    /// (never below the minimum size, unless the viewport is smaller still).
    fn fitted(self, (vw, vh): (f64, f64)) -> Self {
        let width = self.width.min(vw).max(MIN_WIDTH.min(vw));
        let height = self.height.min(vh).max(MIN_HEIGHT.min(vh));
        Self {
            x: self.x.min(vw - width).max(0.0),
            y: self.y.min(vh - height).max(0.0),
            width,
            height,
        }
    }

    fn resized_to(self, width: f64, height: f64) -> Self {
        Self {
            width: width.max(MIN_WIDTH),
            height: height.max(MIN_HEIGHT),
            ..self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    Maximized,
    Minimized,
}

#[derive(Clone, Copy)]
enum Gesture {
    Drag {
        pointer_x: f64,
        pointer_y: f64,
        from: Geometry,
    },
    Resize {
        pointer_x: f64,
        pointer_y: f64,
        from: Geometry,
    },
}

/// The one window, shown while `LiveState::open` names a callback.
#[component]
pub fn CallbackWindow() -> impl IntoView {
    let live = live_state();
    let geometry = RwSignal::new(None::<Geometry>);
    let mode = RwSignal::new(Mode::Normal);

    Effect::new(move |previous: Option<Option<Uuid>>| {
        let open = live.open.get();
        let was_open = previous.flatten();
        if open.is_some() && was_open.is_none() {
            // Where focus was before the window opened, to give it back on close.
            browser::remember_focus();
            mode.set(Mode::Normal);
        }
        browser::replace_query_param("callback", open.map(|id| id.to_string()).as_deref());
        if open.is_none() && was_open.is_some() {
            browser::restore_focus();
        }
        open
    });

    let close = move || live.open.set(None);
    let escape = window_event_listener(ev::keydown, move |event| {
        if event.key() == "Escape" && live.open.get_untracked().is_some() {
            event.prevent_default();
            close();
        }
    });
    // A shrinking viewport (a rotated phone, a smaller browser window) must
    // not leave the window, or its title bar, out of reach.
    let resize = window_event_listener(ev::resize, move |_| {
        geometry.update(|geometry| {
            if let Some(g) = geometry {
                *g = g.fitted(browser::viewport());
            }
        });
    });
    on_cleanup(move || {
        escape.remove();
        resize.remove();
    });

    move || {
        live.open.get().map(|id| {
            view! { <WindowFor id geometry mode close /> }
        })
    }
}

#[component]
fn WindowFor(
    id: Uuid,
    geometry: RwSignal<Option<Geometry>>,
    mode: RwSignal<Mode>,
    close: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let live = live_state();
    // Behind an Arc: signals clone their value on `get`, and a payload can be 1 MiB.
    let loaded = RwSignal::new(None::<Result<Arc<CallbackDetail>, AppError>>);
    leptos::task::spawn_local(async move {
        // Viewed first, so the window already lists this user among the viewers.
        let marked = mark_viewed(id).await.is_ok();
        let _ = loaded.try_set(Some(detail(id).await.map(viewer_ready)));
        if marked {
            live.viewed();
        }
    });

    let dialog = NodeRef::<html::Div>::new();
    let close_button = NodeRef::<html::Button>::new();
    Effect::new(move |_| {
        if geometry.get_untracked().is_none() {
            geometry.set(Some(Geometry::centered(browser::viewport())));
        }
        if let Some(button) = close_button.get() {
            let _ = button.focus();
        }
    });

    let gesture = StoredValue::new(None::<Gesture>);
    let start = move |event: &ev::PointerEvent, resize: bool| {
        let Some(from) = geometry.get_untracked() else {
            return;
        };
        if mode.get_untracked() != Mode::Normal || event.button() != 0 {
            return;
        }
        let (pointer_x, pointer_y) = (f64::from(event.client_x()), f64::from(event.client_y()));
        gesture.set_value(Some(if resize {
            Gesture::Resize {
                pointer_x,
                pointer_y,
                from,
            }
        } else {
            Gesture::Drag {
                pointer_x,
                pointer_y,
                from,
            }
        }));
        if let Some(target) = event
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        {
            let _ = target.set_pointer_capture(event.pointer_id());
        }
        event.prevent_default();
    };
    let on_title_down = move |event: ev::PointerEvent| {
        // Buttons in the title bar stay buttons.
        let on_button = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|element| element.closest("button").ok().flatten().is_some());
        if !on_button {
            start(&event, false);
        }
    };
    let on_move = move |event: ev::PointerEvent| {
        let Some(current) = gesture.get_value() else {
            return;
        };
        let (x, y) = (f64::from(event.client_x()), f64::from(event.client_y()));
        let next = match current {
            Gesture::Drag {
                pointer_x,
                pointer_y,
                from,
            } => from.moved_to(
                from.x + x - pointer_x,
                from.y + y - pointer_y,
                browser::viewport(),
            ),
            Gesture::Resize {
                pointer_x,
                pointer_y,
                from,
            } => from.resized_to(from.width + x - pointer_x, from.height + y - pointer_y),
        };
        geometry.set(Some(next));
    };
    let on_up = move |_event: ev::PointerEvent| gesture.set_value(None);

    let trap_focus = move |event: ev::KeyboardEvent| {
        if event.key() != "Tab" {
            return;
        }
        let Some(dialog) = dialog.get() else { return };
        let Ok(nodes) = dialog.query_selector_all(
            "button:not([disabled]), a[href], input, select, textarea, [tabindex]:not([tabindex='-1'])",
        ) else {
            return;
        };
        let focusable: Vec<web_sys::HtmlElement> = (0..nodes.length())
            .filter_map(|i| nodes.item(i)?.dyn_into().ok())
            .collect();
        let (Some(first), Some(last)) = (focusable.first(), focusable.last()) else {
            return;
        };
        let active = browser::active_element();
        let at = |element: &web_sys::HtmlElement| active.as_ref().is_some_and(|a| a == element);
        if event.shift_key() && (at(first) || !focusable.iter().any(at)) {
            event.prevent_default();
            let _ = last.focus();
        } else if !event.shift_key() && (at(last) || !focusable.iter().any(at)) {
            event.prevent_default();
            let _ = first.focus();
        }
    };

    let signature_class = move || {
        loaded.with(|loaded| match loaded {
            Some(Ok(callback)) if callback.signature_valid => "titlebar sig-valid",
            Some(Ok(_)) => "titlebar sig-invalid",
            _ => "titlebar sig-unknown",
        })
    };
    let title = move || {
        loaded.with(|loaded| match loaded {
            Some(Ok(callback)) => format!(
                "{} · {}",
                callback.workflow_name.as_deref().unwrap_or("(no workflow)"),
                callback.event_type.as_deref().unwrap_or("(no event)")
            ),
            Some(Err(_)) => "Callback unavailable".to_owned(),
            None => "Loading callback…".to_owned(),
        })
    };
    let style = move || match (geometry.get(), mode.get()) {
        (Some(g), Mode::Normal) if browser::viewport().0 >= SHEET_BELOW => format!(
            "left:{:.0}px;top:{:.0}px;width:{:.0}px;height:{:.0}px",
            g.x, g.y, g.width, g.height
        ),
        _ => String::new(),
    };
    let window_class = move || match mode.get() {
        Mode::Normal => "callback-window",
        Mode::Maximized => "callback-window maximized",
        Mode::Minimized => "callback-window minimized",
    };
    let minimized = move || mode.get() == Mode::Minimized;

    view! {
        <Show when=move || !minimized()>
            <div class="window-backdrop" aria-hidden="true"></div>
        </Show>
        <div
            node_ref=dialog
            class=window_class
            role="dialog"
            aria-modal=move || (!minimized()).to_string()
            aria-labelledby="callback-window-title"
            data-testid="callback-window"
            style=style
            on:keydown=trap_focus
        >
            <div
                class=signature_class
                data-testid="window-titlebar"
                on:pointerdown=on_title_down
                on:pointermove=on_move
                on:pointerup=on_up
                on:pointercancel=on_up
                on:dblclick=move |_| mode.update(|m| *m = if *m == Mode::Maximized { Mode::Normal } else { Mode::Maximized })
            >
                <h2 id="callback-window-title" class="window-title">{title}</h2>
                <div class="window-buttons">
                    <button
                        type="button"
                        class="window-button"
                        aria-label=move || if minimized() { "Restore window" } else { "Minimize window" }
                        on:click=move |_| mode.update(|m| *m = if *m == Mode::Minimized { Mode::Normal } else { Mode::Minimized })
                    >
                        {move || if minimized() { "▴" } else { "–" }}
                    </button>
                    <Show when=move || !minimized()>
                        <button
                            type="button"
                            class="window-button"
                            aria-label=move || if mode.get() == Mode::Maximized { "Restore window size" } else { "Maximize window" }
                            on:click=move |_| mode.update(|m| *m = if *m == Mode::Maximized { Mode::Normal } else { Mode::Maximized })
                        >
                            {move || if mode.get() == Mode::Maximized { "❐" } else { "□" }}
                        </button>
                    </Show>
                    <button
                        type="button"
                        class="window-button"
                        aria-label="Close window"
                        node_ref=close_button
                        on:click=move |_| close()
                    >
                        "×"
                    </button>
                </div>
            </div>
            <Show when=move || !minimized()>
                <div class="window-body">
                    {move || match loaded.get() {
                        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                        Some(Err(err)) => view! {
                            <p class="error-state" role="alert">{format!("Could not load this callback: {err}")}</p>
                        }
                        .into_any(),
                        Some(Ok(callback)) => view! { <CallbackDetails callback /> }.into_any(),
                    }}
                </div>
                <div
                    class="resize-handle"
                    aria-hidden="true"
                    data-testid="window-resize"
                    on:pointerdown=move |event: ev::PointerEvent| start(&event, true)
                    on:pointermove=on_move
                    on:pointerup=on_up
                    on:pointercancel=on_up
                ></div>
            </Show>
        </div>
    }
}

#[component]
fn CallbackDetails(callback: Arc<CallbackDetail>) -> impl IntoView {
    let received = RwSignal::new(callback.created_at.to_string());
    let created_at = callback.created_at;
    Effect::new(move |_| {
        received.set(format!(
            "{} ({})",
            browser::local_time(created_at),
            relative_time(age_secs(created_at))
        ))
    });
    let signature = match (
        callback.signature_valid,
        callback.signature_scheme.as_deref(),
    ) {
        (true, Some(scheme)) => format!("valid ({scheme})"),
        (true, None) => "valid".to_owned(),
        (false, _) => "invalid or missing (stored in flag mode)".to_owned(),
    };
    let viewers = if callback.viewers.is_empty() {
        "nobody yet".to_owned()
    } else {
        callback
            .viewers
            .iter()
            .map(|v| v.email.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "—".to_owned());
    view! {
        <dl class="meta-grid">
            <dt>"Callback id"</dt>
            <dd class="mono" data-testid="meta-callback-id">{callback.callback_id.clone()}</dd>
            <dt>"Job id"</dt>
            <dd class="mono" data-testid="meta-job-id">{dash(&callback.external_job_id)}</dd>
            <dt>"Event"</dt>
            <dd data-testid="meta-event">{dash(&callback.event_type)}</dd>
            <dt>"Workflow"</dt>
            <dd data-testid="meta-workflow">{dash(&callback.workflow_name)}</dd>
            <dt>"Status"</dt>
            <dd>{callback.status.clone()}</dd>
            <dt>"Received"</dt>
            <dd>{move || received.get()}</dd>
            <dt>"Signature"</dt>
            <dd>
                <span class=if callback.signature_valid { "badge ok" } else { "badge danger" }>{signature}</span>
            </dd>
            <dt>"Deliveries"</dt>
            <dd data-testid="meta-deliveries">{callback.delivery_count.to_string()}</dd>
            <dt>"Viewed by"</dt>
            <dd>{viewers}</dd>
            {callback.error_message.clone().map(|message| view! {
                <dt>"Error"</dt>
                <dd class="error-text">{message}</dd>
            })}
        </dl>
        <h3 class="section-title">"Payload"</h3>
        <JsonView text=callback.payload_text.clone() />
    }
}

/// The detail as the window keeps it: the payload's text (as received) is
/// what the viewer shows and copies, so the parsed copy is dropped; should
/// the text somehow not read as JSON, the parsed value's text stands in.
fn viewer_ready(mut callback: CallbackDetail) -> Arc<CallbackDetail> {
    if json_text::root(&callback.payload_text).is_err() {
        callback.payload_text = serde_json::to_string_pretty(&callback.payload).unwrap_or_default();
    }
    callback.payload = serde_json::Value::Null;
    Arc::new(callback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_bar_never_leaves_the_viewport() {
        let viewport = (1000.0, 800.0);
        let window = Geometry {
            x: 100.0,
            y: 100.0,
            width: 600.0,
            height: 400.0,
        };
        assert_eq!(
            window.moved_to(150.0, 120.0, viewport),
            Geometry {
                x: 150.0,
                y: 120.0,
                ..window
            }
        );
        let far = window.moved_to(5000.0, 5000.0, viewport);
        assert_eq!((far.x, far.y), (1000.0 - KEEP_VISIBLE, 800.0 - TITLE_BAR));
        let above = window.moved_to(-5000.0, -50.0, viewport);
        assert_eq!((above.x, above.y), (KEEP_VISIBLE - 600.0, 0.0));
    }

    #[test]
    fn a_shrinking_viewport_pulls_the_window_inside() {
        let window = Geometry {
            x: 300.0,
            y: 100.0,
            width: 820.0,
            height: 600.0,
        };
        // Room enough: nothing moves.
        assert_eq!(window.fitted((1280.0, 800.0)), window);
        // Narrower and shorter: moved first, shrunk when moving is not enough.
        assert_eq!(
            window.fitted((1000.0, 650.0)),
            Geometry {
                x: 180.0,
                y: 50.0,
                ..window
            }
        );
        assert_eq!(
            window.fitted((700.0, 500.0)),
            Geometry {
                x: 0.0,
                y: 0.0,
                width: 700.0,
                height: 500.0
            }
        );
        // A window dragged half off screen comes back.
        let off = Geometry {
            x: -400.0,
            y: 0.0,
            ..window
        };
        assert_eq!(off.fitted((1280.0, 800.0)).x, 0.0);
    }

    #[test]
    fn a_payload_text_that_is_not_json_gives_way_to_the_parsed_value() {
        let detail = |text: &str| CallbackDetail {
            id: Uuid::nil(),
            source: "llm-callback".into(),
            callback_id: "cb".into(),
            external_job_id: None,
            group: None,
            workflow_name: None,
            event_type: None,
            status: "received".into(),
            error_message: None,
            signature_valid: true,
            signature_scheme: None,
            signature_header: None,
            verified_at: None,
            payload: serde_json::json!({"a": 1}),
            payload_text: text.into(),
            delivery_count: 1,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
            viewed_at: None,
            viewers: Vec::new(),
        };
        assert_eq!(
            viewer_ready(detail("{\"a\":1.0}")).payload_text,
            "{\"a\":1.0}"
        );
        assert_eq!(viewer_ready(detail("")).payload_text, "{\n  \"a\": 1\n}");
    }

    #[test]
    fn windows_cannot_be_resized_below_a_usable_size() {
        let window = Geometry {
            x: 0.0,
            y: 0.0,
            width: 600.0,
            height: 400.0,
        };
        assert_eq!(
            window.resized_to(10.0, 10.0),
            Geometry {
                width: MIN_WIDTH,
                height: MIN_HEIGHT,
                ..window
            }
        );
        assert_eq!(
            window.resized_to(700.0, 500.0),
            Geometry {
                width: 700.0,
                height: 500.0,
                ..window
            }
        );
    }
}
