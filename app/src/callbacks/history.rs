//! The Callbacks tab: the history table with filters bound to the URL,
//! keyset pagination both ways, and a View button per row. Each row names
//! its source; its job or session links to every callback of that group.
//!
//! The date filters mean days in the admin's time zone (the table shows
//! local times): the browser turns each date into the RFC 3339 instant of
//! that local midnight (or the day's last millisecond) before the form
//! navigates, so the URL, the server-rendered page and the hydrated one all
//! agree. Without JavaScript the dates go as they are (UTC days).

use inbox_core::dto::{HistoryItem, HistoryPage};
use std::sync::Arc;

use leptos::prelude::*;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
use leptos_router::params::ParamsMap;

use super::api::{history, mark_all_viewed, source_names};
use super::live::live_state;
use crate::browser;
use crate::error::AppError;
use crate::url::encode_query_value;

/// The filter fields, in the order of the form.
const FILTERS: &[&str] = &[
    "q",
    "source",
    "group",
    "event_type",
    "workflow_name",
    "signature_valid",
    "viewed",
    "from",
    "to",
];

fn field(query: &ParamsMap, name: &str) -> Option<String> {
    query.get(name).filter(|value| !value.is_empty())
}

/// The current filters as a query string, plus extra pairs.
fn query_string(query: &ParamsMap, extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<String> = FILTERS
        .iter()
        .filter_map(|name| {
            field(query, name).map(|value| format!("{name}={}", encode_query_value(&value)))
        })
        .collect();
    pairs.extend(
        extra
            .iter()
            .map(|(name, value)| format!("{name}={}", encode_query_value(value))),
    );
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

async fn load(query: ParamsMap) -> Result<HistoryPage, AppError> {
    history(
        field(&query, "event_type"),
        field(&query, "workflow_name"),
        field(&query, "signature_valid"),
        field(&query, "viewed"),
        field(&query, "from"),
        field(&query, "to"),
        field(&query, "q"),
        field(&query, "before"),
        field(&query, "after"),
        None,
        field(&query, "source"),
        field(&query, "group"),
    )
    .await
}

#[component]
pub fn CallbacksPage() -> impl IntoView {
    let live = live_state();
    let query = use_query_map();
    // Made here, outside the <Transition>s, so it hydrates with its own id.
    let sources = Resource::new(|| (), |_| source_names());
    let page = Resource::new(
        move || (query.get(), live.changes.get()),
        |(query, _)| load(query),
    );
    Effect::new(move |_| {
        if let Some(Ok(page)) = page.get() {
            live.unread.set(Some(page.unread_count));
        }
    });
    let filtered = move || {
        FILTERS
            .iter()
            .any(|name| field(&query.read(), name).is_some())
    };
    let mark_all = move |_| {
        leptos::task::spawn_local(async move {
            if mark_all_viewed().await.is_ok() {
                live.unread.set(Some(0));
                live.viewed();
            }
        });
    };
    view! {
        <div class="page-head">
            <div>
                <h1 class="page-title">"Callbacks"</h1>
                <p class="muted">
                    {move || match live.unread.get() {
                        Some(0) => "Everything has been viewed.".to_owned(),
                        Some(n) => format!("{n} unviewed"),
                        None => String::new(),
                    }}
                </p>
            </div>
            <div class="page-actions">
                <ExportLinks />
                <button type="button" class="button" on:click=mark_all>"Mark all viewed"</button>
            </div>
        </div>
        <Filters sources />
        <Transition fallback=|| view! { <p class="muted">"Loading callbacks…"</p> }>
            {move || {
                page.get().map(|result| match result {
                    Ok(page) if page.items.is_empty() => view! { <EmptyState filtered=filtered() /> }.into_any(),
                    Ok(page) => view! { <HistoryTable page /> }.into_any(),
                    Err(err) => view! {
                        <div class="error-state" role="alert">
                            <p>{format!("Could not load callbacks: {err}")}</p>
                            <p>"Reload the page to try again; if it keeps failing, the server log says why."</p>
                        </div>
                    }
                    .into_any(),
                })
            }}
        </Transition>
    }
}

/// Downloads of what the filters select. Plain links (not router
/// navigation), so the browser streams the file to disk with the session.
#[component]
fn ExportLinks() -> impl IntoView {
    let query = use_query_map();
    let href = move |format: &'static str| {
        let filters = query_string(&query.read(), &[("format", format)]);
        format!("/api/callbacks/export{filters}")
    };
    view! {
        <div class="export-links" role="group" aria-label="Export the callbacks the filters select">
            <span class="muted">"Export"</span>
            <a class="button small" href=move || href("csv") download="" rel="external">"CSV"</a>
            <a class="button small" href=move || href("ndjson") download="" rel="external">"NDJSON"</a>
            <a class="button small" href=move || href("json") download="" rel="external">"JSON"</a>
        </div>
    }
}

/// The history's link to every callback of one job or session.
fn group_href(source: &str, group: &str) -> String {
    format!(
        "/admin/callbacks?group={}&source={}",
        encode_query_value(group),
        encode_query_value(source)
    )
}

#[component]
fn Filters(sources: Resource<Result<Vec<String>, AppError>>) -> impl IntoView {
    let query = use_query_map();
    let value = move |name: &'static str| move || field(&query.read(), name).unwrap_or_default();
    let selected = move |name: &'static str, option: &'static str| move || value(name)() == option;
    let day = move |name: &'static str| move || date_part(&value(name)()).to_owned();
    let local_days: Arc<dyn Fn(&web_sys::FormData)> = Arc::new(|form| {
        for (name, end) in [("from", false), ("to", true)] {
            let date = form.get(name).as_string().unwrap_or_default();
            if let Some((first, last)) = browser::local_day_bounds(&date) {
                let _ = form.set_with_str(name, if end { &last } else { &first });
            }
        }
    });
    view! {
        <Form method="GET" action="" on_form_data=local_days attr:class="filters" attr:aria-label="Filter callbacks">
            <label class="filter wide">
                <span>"Search"</span>
                <input type="search" name="q" placeholder="Job id or error text" value=value("q") />
            </label>
            <label class="filter">
                <span>"Source"</span>
                <select name="source">
                    <option value="" selected=selected("source", "")>"Any"</option>
                    <Transition fallback=|| ()>
                        {move || {
                            sources.get().map(|names| {
                                let mut names = names.unwrap_or_default();
                                // A name in the URL stays selectable even when
                                // it is no source (any more).
                                if let Some(current) = field(&query.read(), "source")
                                    && !names.contains(&current)
                                {
                                    names.push(current);
                                }
                                names
                                    .into_iter()
                                    .map(|name| {
                                        let is_current = {
                                            let name = name.clone();
                                            move || value("source")() == name
                                        };
                                        let label = name.clone();
                                        view! { <option value=name selected=is_current>{label}</option> }
                                    })
                                    .collect_view()
                            })
                        }}
                    </Transition>
                </select>
            </label>
            <label class="filter">
                <span>"Job or session"</span>
                <input type="text" name="group" placeholder="job_123" value=value("group") />
            </label>
            <label class="filter">
                <span>"Event"</span>
                <input type="text" name="event_type" placeholder="workflow.failed" value=value("event_type") />
            </label>
            <label class="filter">
                <span>"Workflow"</span>
                <input type="text" name="workflow_name" value=value("workflow_name") />
            </label>
            <label class="filter">
                <span>"Signature"</span>
                <select name="signature_valid">
                    <option value="" selected=selected("signature_valid", "")>"Any"</option>
                    <option value="true" selected=selected("signature_valid", "true")>"Valid"</option>
                    <option value="false" selected=selected("signature_valid", "false")>"Invalid"</option>
                </select>
            </label>
            <label class="filter">
                <span>"Viewed"</span>
                <select name="viewed">
                    <option value="" selected=selected("viewed", "")>"Any"</option>
                    <option value="false" selected=selected("viewed", "false")>"Unviewed"</option>
                    <option value="true" selected=selected("viewed", "true")>"Viewed"</option>
                </select>
            </label>
            <label class="filter">
                <span>"From"</span>
                <input type="date" name="from" value=day("from") />
            </label>
            <label class="filter">
                <span>"To"</span>
                <input type="date" name="to" value=day("to") />
            </label>
            <div class="filter-actions">
                <button type="submit" class="button primary">"Apply"</button>
                <A href="/admin/callbacks" attr:class="button">"Clear"</A>
            </div>
        </Form>
    }
}

#[component]
fn EmptyState(filtered: bool) -> impl IntoView {
    if filtered {
        view! {
            <div class="empty-state">
                <p>"No callbacks match these filters."</p>
                <A href="/admin/callbacks">"Clear the filters"</A>
            </div>
        }
        .into_any()
    } else {
        view! {
            <div class="empty-state">
                <p>"No callbacks yet."</p>
                <p class="muted">
                    "Point your LLM service at " <code>"POST /api/webhooks/llm-callback"</code>
                    ". Run " <code>"callback-inbox secret show"</code>
                    " for the secret and a signed curl example; other senders get a source of their own in "
                    <A href="/admin/settings">"Settings"</A>
                    ". New callbacks appear here within seconds."
                </p>
            </div>
        }
        .into_any()
    }
}

#[component]
fn HistoryTable(page: HistoryPage) -> impl IntoView {
    let query = use_query_map();
    let older = page
        .next_cursor
        .map(|cursor| query_string(&query.read_untracked(), &[("before", &cursor)]));
    let newer = page
        .prev_cursor
        .map(|cursor| query_string(&query.read_untracked(), &[("after", &cursor)]));
    view! {
        <div class="table-scroll">
            <table class="history-table">
                <thead>
                    <tr>
                        <th scope="col">"Source and job"</th>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Workflow"</th>
                        <th scope="col">"Received"</th>
                        <th scope="col">"Preview"</th>
                        <th scope="col">"Signature"</th>
                        <th scope="col">"Viewed"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {page.items.into_iter().map(|item| view! { <HistoryRow item /> }).collect_view()}
                </tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages">
            {newer.map(|href| view! { <A href=format!("/admin/callbacks{href}") attr:class="button">"← Newer"</A> })}
            {older.map(|href| view! { <A href=format!("/admin/callbacks{href}") attr:class="button">"Older →"</A> })}
        </nav>
    }
}

#[component]
fn HistoryRow(item: HistoryItem) -> impl IntoView {
    let live = live_state();
    let id = item.id;
    let failed = item
        .event_type
        .as_deref()
        .is_some_and(|e| e.ends_with(".failed"));
    let received = RwSignal::new(item.created_at.to_string());
    let created_at = item.created_at;
    Effect::new(move |_| received.set(browser::local_time(created_at)));
    let group = match item.group {
        Some(group) => {
            let href = group_href(&item.source, &group);
            let label = format!("Every callback of {group} from {}", item.source);
            view! {
                <A href=href attr:class="group-link mono" attr:title=label.clone() attr:aria-label=label>
                    {group}
                </A>
            }
            .into_any()
        }
        None => view! { <span class="muted">"—"</span> }.into_any(),
    };
    let source = item.source.clone();
    view! {
        <tr class:unviewed=!item.viewed data-source=item.source>
            <td class="group-cell">
                <span class="source-tag" data-testid="row-source">{source}</span>
                {group}
            </td>
            <td><span class="event" class:failed=failed>{item.event_type.unwrap_or_else(|| "—".into())}</span></td>
            <td>{item.workflow_name.unwrap_or_else(|| "—".into())}</td>
            <td class="nowrap"><time datetime=item.created_at.to_string()>{move || received.get()}</time></td>
            <td class="preview mono" title=item.callback_id.clone()>{item.payload_preview}</td>
            <td>
                {if item.signature_valid {
                    view! { <span class="badge ok">"valid"</span> }.into_any()
                } else {
                    view! { <span class="badge danger">"invalid"</span> }.into_any()
                }}
            </td>
            <td>{if item.viewed { "viewed" } else { "new" }}</td>
            <td>
                <button type="button" class="button small" on:click=move |_| live.open.set(Some(id))>
                    "View"
                </button>
            </td>
        </tr>
    }
}

/// The date a date filter names: `2026-11-21` of `2026-11-21T00:00:00+13:00`
/// (the local offset the browser wrote keeps the local date in front).
fn date_part(value: &str) -> &str {
    match value.get(..10) {
        Some(date) if browser::parse_date(date).is_some() => date,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_inputs_show_the_local_date_of_an_instant() {
        assert_eq!(date_part("2026-11-21T00:00:00+13:00"), "2026-11-21");
        assert_eq!(date_part("2026-11-21T23:59:59.999-05:00"), "2026-11-21");
        assert_eq!(date_part("2026-11-21"), "2026-11-21");
        assert_eq!(date_part("yesterday"), "");
        assert_eq!(date_part(""), "");
    }

    #[test]
    fn pager_links_keep_the_filters() {
        let mut query = ParamsMap::new();
        query.insert("q", "job 1".to_owned());
        query.insert("viewed", "false".to_owned());
        query.insert("before", "ignored".to_owned());
        query.insert("source", "claude-code".to_owned());
        query.insert("group", "session 1".to_owned());
        assert_eq!(
            query_string(&query, &[("after", "1.ab")]),
            "?q=job%201&source=claude-code&group=session%201&viewed=false&after=1.ab"
        );
        assert_eq!(query_string(&ParamsMap::new(), &[]), "");
    }

    #[test]
    fn a_group_links_to_its_callbacks_of_its_source() {
        assert_eq!(
            group_href("claude-code", "a1b2/c3 d"),
            "/admin/callbacks?group=a1b2/c3%20d&source=claude-code"
        );
    }
}
