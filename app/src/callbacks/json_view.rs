//! The JSON viewer: collapsible objects and arrays with item counts, colours
//! by type, expand/collapse all, copy of the whole payload or any node.
//!
//! Everything is rendered as text nodes, so nothing in a payload can ever
//! become markup or script. Collapsed children are not rendered at all,
//! which keeps a 1 MiB payload opened at its first level cheap.

use leptos::prelude::*;
use serde_json::Value;

/// Payloads up to this size open fully expanded; larger ones at the first level.
pub const EXPAND_ALL_BELOW_BYTES: usize = 64 * 1024;
/// Strings longer than this are folded behind "show more".
pub const FOLD_STRINGS_AT: usize = 300;

/// An "expand all"/"collapse all" order: (order number, expand?).
#[derive(Clone, Copy)]
struct ExpandOrder(RwSignal<Option<(u64, bool)>>);

#[component]
pub fn JsonView(value: Value) -> impl IntoView {
    let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
    let large = pretty.len() > EXPAND_ALL_BELOW_BYTES;
    let order = RwSignal::new(None::<(u64, bool)>);
    provide_context(ExpandOrder(order));
    let give_order = move |expand: bool| {
        order.update(|order| *order = Some((order.map_or(0, |(n, _)| n + 1), expand)));
    };
    let copied = RwSignal::new(false);
    view! {
        <div class="json-view">
            <div class="json-toolbar">
                <button type="button" class="button small" on:click=move |_| give_order(true)>
                    "Expand all"
                </button>
                <button type="button" class="button small" on:click=move |_| give_order(false)>
                    "Collapse all"
                </button>
                <button
                    type="button"
                    class="button small"
                    on:click=move |_| {
                        crate::browser::copy_text(&pretty);
                        copied.set(true);
                    }
                >
                    {move || if copied.get() { "Copied" } else { "Copy JSON" }}
                </button>
                <span class="muted json-size">{if large { "large payload: nested levels start collapsed" } else { "" }}</span>
            </div>
            <div class="json-tree">{json_node(None, value, 0, large)}</div>
        </div>
    }
}

#[derive(Clone)]
enum Label {
    Key(String),
    Index(usize),
}

fn label_view(label: Option<Label>) -> AnyView {
    match label {
        Some(Label::Key(key)) => view! {
            <span class="json-key">{format!("\"{key}\"")}</span>
            <span class="json-punct">": "</span>
        }
        .into_any(),
        Some(Label::Index(index)) => view! {
            <span class="json-index">{index.to_string()}</span>
            <span class="json-punct">": "</span>
        }
        .into_any(),
        None => ().into_any(),
    }
}

fn json_node(label: Option<Label>, value: Value, depth: usize, large: bool) -> AnyView {
    match value {
        Value::Object(_) | Value::Array(_) => {
            view! { <JsonContainer label value depth large /> }.into_any()
        }
        scalar => {
            let copy_text = match &scalar {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            view! {
                <div class="json-row">
                    <span class="json-spacer" aria-hidden="true"></span>
                    {label_view(label)}
                    {scalar_view(scalar)}
                    <CopyNode text=copy_text />
                </div>
            }
            .into_any()
        }
    }
}

fn scalar_view(value: Value) -> AnyView {
    match value {
        Value::String(text) => view! { <JsonString text /> }.into_any(),
        Value::Number(number) => {
            view! { <span class="json-number">{number.to_string()}</span> }.into_any()
        }
        Value::Bool(flag) => view! { <span class="json-bool">{flag.to_string()}</span> }.into_any(),
        _ => view! { <span class="json-null">"null"</span> }.into_any(),
    }
}

#[component]
fn JsonString(text: String) -> impl IntoView {
    let chars = text.chars().count();
    if chars <= FOLD_STRINGS_AT {
        return view! { <span class="json-string">{format!("\"{text}\"")}</span> }.into_any();
    }
    let short: String = text.chars().take(FOLD_STRINGS_AT).collect();
    let full = RwSignal::new(false);
    view! {
        <span class="json-string">
            {move || if full.get() { format!("\"{text}\"") } else { format!("\"{short}…\"") }}
        </span>
        <button type="button" class="link-button" on:click=move |_| full.update(|f| *f = !*f)>
            {move || if full.get() { "show less".to_owned() } else { format!("show more ({chars} characters)") }}
        </button>
    }
    .into_any()
}

#[component]
fn CopyNode(text: String) -> impl IntoView {
    view! {
        <button
            type="button"
            class="json-copy"
            title="Copy this value"
            aria-label="Copy this value"
            on:click=move |_| crate::browser::copy_text(&text)
        >
            "copy"
        </button>
    }
}

#[component]
fn JsonContainer(label: Option<Label>, value: Value, depth: usize, large: bool) -> impl IntoView {
    let order = use_context::<ExpandOrder>().map(|order| order.0);
    let default_open = !large || depth == 0;
    let initially = order
        .and_then(|o| o.get_untracked())
        .map_or(default_open, |(_, expand)| expand);
    let open = RwSignal::new(initially);
    if let Some(order) = order {
        Effect::new(move |previous: Option<()>| {
            let current = order.get();
            if previous.is_some()
                && let Some((_, expand)) = current
            {
                open.set(expand);
            }
        });
    }
    let (opening, closing, count) = match &value {
        Value::Object(map) => ("{", "}", map.len()),
        Value::Array(items) => ("[", "]", items.len()),
        _ => ("", "", 0),
    };
    let noun = if matches!(value, Value::Array(_)) {
        "item"
    } else {
        "key"
    };
    let count_text = format!("{count} {noun}{}", if count == 1 { "" } else { "s" });
    let copy_text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let value = StoredValue::new(value);
    let children = move || {
        let children: Vec<(Label, Value)> = match value.get_value() {
            Value::Object(map) => map.into_iter().map(|(k, v)| (Label::Key(k), v)).collect(),
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Label::Index(i), v))
                .collect(),
            _ => Vec::new(),
        };
        children
            .into_iter()
            .map(|(label, child)| json_node(Some(label), child, depth + 1, large))
            .collect_view()
    };
    view! {
        <div class="json-node">
            <div class="json-row">
                <button
                    type="button"
                    class="json-toggle"
                    aria-expanded=move || open.get().to_string()
                    aria-label=move || if open.get() { "Collapse" } else { "Expand" }
                    on:click=move |_| open.update(|o| *o = !*o)
                >
                    {move || if open.get() { "▾" } else { "▸" }}
                </button>
                {label_view(label)}
                <span class="json-punct">{opening}</span>
                <span class="json-count">{count_text}</span>
                <Show when=move || !open.get()>
                    <span class="json-punct">{format!("… {closing}")}</span>
                </Show>
                <CopyNode text=copy_text.clone() />
            </div>
            <Show when=move || open.get()>
                <div class="json-children">{children()}</div>
                <div class="json-row"><span class="json-punct">{closing}</span></div>
            </Show>
        </div>
    }
}
