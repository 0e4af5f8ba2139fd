//! The JSON viewer: collapsible objects and arrays with item counts, colours
//! by type, expand/collapse all, copy of the whole payload or any node.
//!
//! - It shows the payload's own text, read lazily (`json_text.rs`): keys,
//!   key order and numbers exactly as sent, and "Copy JSON" copies that
//!   text byte for byte.
//! - Only what is open is read and rendered: a wide object or array shows
//!   [`PAGE`] members at a time ("Show 100 more"), and payloads over
//!   [`EXPAND_ALL_BELOW_BYTES`] open at their first level only. A 1 MiB
//!   payload with 68,000 keys opens at once.
//! - Everything is rendered as text nodes, so nothing in a payload can ever
//!   become markup or script.

use std::sync::Arc;

use leptos::prelude::*;

use super::json_text::{self, Kind, Member, Node};

/// Payloads up to this size open fully expanded; larger ones at the first level.
pub const EXPAND_ALL_BELOW_BYTES: usize = 64 * 1024;
/// Strings longer than this are folded behind "show more".
pub const FOLD_STRINGS_AT: usize = 300;
/// Members of one object or array rendered per "Show more".
pub const PAGE: usize = 100;

/// What every node of one viewer shares.
#[derive(Clone)]
struct Viewer {
    json: Arc<str>,
    large: bool,
    /// The last "expand all"/"collapse all": (order number, expand?).
    order: RwSignal<Option<(u64, bool)>>,
    /// What the last copy did, when there is something to say.
    status: RwSignal<Option<String>>,
}

/// `text` is the payload's JSON text, shown and copied as it is.
#[component]
pub fn JsonView(text: String) -> impl IntoView {
    let Ok(root) = json_text::root(&text) else {
        return view! { <pre class="json-tree">{text}</pre> }.into_any();
    };
    let json: Arc<str> = Arc::from(text);
    let viewer = Viewer {
        large: json.len() > EXPAND_ALL_BELOW_BYTES,
        json,
        order: RwSignal::new(None),
        status: RwSignal::new(None),
    };
    provide_context(viewer.clone());
    let order = viewer.order;
    let give_order = move |expand: bool| {
        order.update(|order| *order = Some((order.map_or(0, |(n, _)| n + 1), expand)));
    };
    let copied = RwSignal::new(false);
    let status = viewer.status;
    let copy_all = {
        let json = viewer.json.clone();
        move |_| {
            let json = json.clone();
            leptos::task::spawn_local(async move {
                match crate::browser::write_clipboard(&json).await {
                    Ok(()) => {
                        copied.set(true);
                        status.set(None);
                    }
                    Err(message) => status.set(Some(message.to_owned())),
                }
            });
        }
    };
    view! {
        <div class="json-view">
            <div class="json-toolbar">
                <button type="button" class="button small" on:click=move |_| give_order(true)>
                    "Expand all"
                </button>
                <button type="button" class="button small" on:click=move |_| give_order(false)>
                    "Collapse all"
                </button>
                <button type="button" class="button small" on:click=copy_all>
                    {move || if copied.get() { "Copied" } else { "Copy JSON" }}
                </button>
                <span class="muted json-size">
                    {if viewer.large { "large payload: nested levels start collapsed" } else { "" }}
                </span>
                <span class="json-status" role="status">{move || status.get()}</span>
            </div>
            <div class="json-tree">{json_node(None, root, 0)}</div>
        </div>
    }
    .into_any()
}

#[derive(Clone)]
enum Label {
    Key(String),
    Index(usize),
}

fn label_of(json: &str, member: &Member, index: usize) -> Label {
    match member.key {
        Some((start, end)) => Label::Key(json_text::string_value(&json[start..end])),
        None => Label::Index(index),
    }
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

fn json_node(label: Option<Label>, node: Node, depth: usize) -> AnyView {
    if node.is_container() {
        return view! { <JsonContainer label node depth /> }.into_any();
    }
    view! {
        <div class="json-row">
            <span class="json-spacer" aria-hidden="true"></span>
            {label_view(label)}
            <JsonScalar node />
            <CopyNode node />
        </div>
    }
    .into_any()
}

#[component]
fn JsonScalar(node: Node) -> impl IntoView {
    let viewer = expect_context::<Viewer>();
    let text = node.text(&viewer.json);
    match node.kind {
        Kind::String => view! { <JsonString text=json_text::string_value(text) /> }.into_any(),
        Kind::Number => view! { <span class="json-number">{text.to_owned()}</span> }.into_any(),
        Kind::Bool => view! { <span class="json-bool">{text.to_owned()}</span> }.into_any(),
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

/// Copies one node: a string's text, or any other value's exact JSON.
#[component]
fn CopyNode(node: Node) -> impl IntoView {
    let viewer = expect_context::<Viewer>();
    let status = viewer.status;
    let copy = move |_| {
        let text = node.text(&viewer.json);
        let text = if node.kind == Kind::String {
            json_text::string_value(text)
        } else {
            text.to_owned()
        };
        leptos::task::spawn_local(async move {
            let outcome = crate::browser::write_clipboard(&text).await;
            status.set(Some(match outcome {
                Ok(()) => "Value copied".to_owned(),
                Err(message) => message.to_owned(),
            }));
        });
    };
    view! {
        <button
            type="button"
            class="json-copy"
            title="Copy this value"
            aria-label="Copy this value"
            on:click=copy
        >
            "copy"
        </button>
    }
}

#[component]
fn JsonContainer(label: Option<Label>, node: Node, depth: usize) -> impl IntoView {
    let viewer = expect_context::<Viewer>();
    let members: Arc<Vec<Member>> =
        Arc::new(json_text::members(&viewer.json, node).unwrap_or_default());
    let count = members.len();
    let order = viewer.order;
    let default_open = !viewer.large || depth == 0;
    let open = RwSignal::new(
        order
            .get_untracked()
            .map_or(default_open, |(_, expand)| expand),
    );
    Effect::new(move |previous: Option<()>| {
        let current = order.get();
        if previous.is_some()
            && let Some((_, expand)) = current
        {
            open.set(expand);
        }
    });
    let (opening, closing, noun) = if node.kind == Kind::Array {
        ("[", "]", "item")
    } else {
        ("{", "}", "key")
    };
    let count_text = format!("{count} {noun}{}", if count == 1 { "" } else { "s" });
    // Pages render once each; "Show more" adds one without redrawing the others.
    let pages = RwSignal::new(1usize);
    let page_count = count.div_ceil(PAGE);
    let shown = move || (pages.get() * PAGE).min(count);
    let page_view = move |page: usize| {
        let json = viewer.json.clone();
        let end = ((page + 1) * PAGE).min(count);
        members[page * PAGE..end]
            .iter()
            .enumerate()
            .map(|(offset, member)| {
                let label = label_of(&json, member, page * PAGE + offset);
                json_node(Some(label), member.value, depth + 1)
            })
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
                <CopyNode node />
            </div>
            <Show when=move || open.get()>
                <div class="json-children">
                    <For each=move || 0..pages.get().min(page_count) key=|page| *page children=page_view.clone() />
                    <Show when=move || { shown() < count }>
                        <div class="json-row json-more">
                            <span class="json-spacer" aria-hidden="true"></span>
                            <button type="button" class="link-button" on:click=move |_| pages.update(|p| *p += 1)>
                                {move || format!("Show {} more", (count - shown()).min(PAGE))}
                            </button>
                            <span class="json-count">{move || format!("{} of {count} shown", shown())}</span>
                        </div>
                    </Show>
                </div>
                <div class="json-row"><span class="json-punct">{closing}</span></div>
            </Show>
        </div>
    }
}
