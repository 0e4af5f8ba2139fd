//! The Deliveries tab: a summary strip for a chosen window (counts by outcome,
//! invalid signatures, processing-time percentiles, a chart of requests per
//! interval) above the audit log of every webhook request, with filters bound
//! to the URL and keyset pagination both ways. Each request names the
//! source it was sent to (`unknown` for a name that is no source).

#[path = "chart.rs"]
mod chart;
#[path = "summary.rs"]
mod summary;

use inbox_core::dto::{DeliveryItem, DeliveryPage};
use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::components::Form;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::params::ParamsMap;
use time::format_description::well_known::Rfc3339;

use self::summary::DeliverySummaryStrip;
use super::list_deliveries;
use crate::browser;
use crate::callbacks::api::source_names;
use crate::callbacks::live::live_state;
use crate::error::AppError;
use crate::settings::format::{human_bytes, millis};
use crate::url::encode_query_value;

const PATH: &str = "/admin/deliveries";

/// Every outcome a request can have (see `DeliveryItem::outcome`), with its label.
pub(crate) const OUTCOMES: &[(&str, &str)] = &[
    ("accepted", "Accepted"),
    ("duplicate", "Duplicate"),
    ("stored_unsigned", "Stored unsigned"),
    ("invalid_signature", "Invalid signature"),
    ("missing_signature", "Missing signature"),
    ("stale_timestamp", "Stale timestamp"),
    ("too_large", "Too large"),
    ("malformed", "Malformed"),
    ("body_timeout", "Body timeout"),
    ("overloaded", "Overloaded"),
    ("error", "Error"),
    ("unknown_source", "Unknown source"),
];

/// The query parameters a page link keeps (cursors are added per link).
const KEPT: &[&str] = &["window", "source", "outcome", "from", "to"];
/// The table's filters.
const FILTERS: &[&str] = &["source", "outcome", "from", "to"];

/// How an outcome is coloured: stored (`ok`), a stored retry (`info`) or refused (`danger`).
pub(crate) fn outcome_tone(outcome: &str) -> &'static str {
    match outcome {
        "accepted" => "ok",
        "duplicate" => "info",
        _ => "danger",
    }
}

/// `missing_signature` → `missing signature`.
pub(crate) fn outcome_text(outcome: &str) -> String {
    outcome.replace('_', " ")
}

fn field(query: &ParamsMap, name: &str) -> Option<String> {
    query.get(name).filter(|value| !value.trim().is_empty())
}

/// The summary window in the URL: `1h`, `24h` (default) or `7d`.
fn window_of(query: &ParamsMap) -> &'static str {
    match field(query, "window").as_deref() {
        Some("1h") => "1h",
        Some("7d") => "7d",
        _ => "24h",
    }
}

/// This page's URL with `changes` applied to the kept parameters; cursors
/// are dropped unless a change adds one.
fn page_href(query: &ParamsMap, changes: &[(&str, Option<&str>)]) -> String {
    let mut pairs: Vec<(String, String)> = KEPT
        .iter()
        .filter_map(|name| field(query, name).map(|value| ((*name).to_owned(), value)))
        .collect();
    for (name, value) in changes {
        pairs.retain(|(kept, _)| kept != name);
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            pairs.push(((*name).to_owned(), value.to_owned()));
        }
    }
    if pairs.is_empty() {
        return PATH.to_owned();
    }
    let query = pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", encode_query_value(value)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{PATH}?{query}")
}

#[component]
pub fn DeliveriesPage() -> impl IntoView {
    let live = live_state();
    let query = use_query_map();
    // Bumped by the Refresh button: rejected requests raise no live event.
    let refreshed = RwSignal::new(0u32);
    // Made here, outside the <Transition>s, so it hydrates with its own id.
    let sources = Resource::new(|| (), |_| source_names());
    let window = Memo::new(move |_| window_of(&query.read()));
    let list_query = Memo::new(move |_| {
        let query = query.read();
        ["outcome", "from", "to", "before", "after", "source"].map(|name| field(&query, name))
    });
    let page = Resource::new(
        move || (list_query.get(), live.changes.get(), refreshed.get()),
        |(args, _, _)| async move {
            let [outcome, from, to, before, after, source] = args;
            list_deliveries(outcome, from, to, before, after, None, source).await
        },
    );
    let filtered = move || {
        FILTERS
            .iter()
            .any(|name| field(&query.read(), name).is_some())
    };
    view! {
        <div class="page-head">
            <div>
                <h1 class="page-title">"Deliveries"</h1>
                <p class="muted">"Every request to the webhook and how it ended."</p>
            </div>
            <button type="button" class="button" on:click=move |_| refreshed.update(|n| *n += 1)>
                "Refresh"
            </button>
        </div>
        <DeliverySummaryStrip window refreshed />
        <h2 class="section-title">"Requests"</h2>
        <DeliveryFilters sources />
        <Transition fallback=|| view! { <p class="muted">"Loading requests…"</p> }>
            {move || {
                page.get().map(|result| match result {
                    Ok(page) if page.items.is_empty() && page.prev_cursor.is_none() => {
                        view! { <EmptyDeliveries filtered=filtered() /> }.into_any()
                    }
                    Ok(page) => view! { <DeliveryTable page /> }.into_any(),
                    Err(err) => view! {
                        <div class="error-state" role="alert">
                            <p>{format!("Could not load the requests: {err}")}</p>
                            <p>"Check the filters, or reload the page; if it keeps failing, the server log says why."</p>
                        </div>
                    }
                    .into_any(),
                })
            }}
        </Transition>
    }
}

/// Outcome and dates; a change applies at once (Apply is there without
/// JavaScript, where a date is a UTC day).
#[component]
fn DeliveryFilters(sources: Resource<Result<Vec<String>, AppError>>) -> impl IntoView {
    let query = use_query_map();
    let navigate = use_navigate();
    let value = move |name: &'static str| move || field(&query.read(), name).unwrap_or_default();
    // A date input shows the day of the instant the URL holds.
    let day = move |name: &'static str| {
        move || {
            let value = value(name)();
            value.get(..10).unwrap_or(&value).to_owned()
        }
    };
    let apply = move |name: &'static str, replace: bool| {
        let navigate = navigate.clone();
        move |ev: leptos::ev::Event| {
            let value = event_target_value(&ev);
            // A day means the browser's local day, as the table's times are
            // local: its first (from) or last (to) instant goes in the URL.
            let value = match browser::local_day_bounds(&value) {
                Some((start, _)) if name == "from" => start,
                Some((_, end)) if name == "to" => end,
                _ => value,
            };
            let href = page_href(&query.read_untracked(), &[(name, Some(value.as_str()))]);
            navigate(
                &href,
                NavigateOptions {
                    replace,
                    scroll: false,
                    ..Default::default()
                },
            );
        }
    };
    let clear = move || {
        page_href(
            &query.read(),
            &FILTERS.iter().map(|name| (*name, None)).collect::<Vec<_>>(),
        )
    };
    view! {
        <Form method="GET" action="" attr:class="filters" attr:aria-label="Filter requests">
            <input type="hidden" name="window" value=move || window_of(&query.read()) />
            <label class="filter">
                <span>"Source"</span>
                <select name="source" prop:value=value("source") on:change=apply("source", false)>
                    <option value="" selected=move || value("source")().is_empty()>"Any"</option>
                    <Transition fallback=|| ()>
                        {move || {
                            sources.get().map(|names| {
                                let mut names = names.unwrap_or_default();
                                // Requests to a name that is no source are
                                // audited as `unknown`; the URL's choice stays.
                                for extra in ["unknown".to_owned(), value("source")()] {
                                    if !extra.is_empty() && !names.contains(&extra) {
                                        names.push(extra);
                                    }
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
                <span>"Outcome"</span>
                <select name="outcome" prop:value=value("outcome") on:change=apply("outcome", false)>
                    <option value="" selected=move || value("outcome")().is_empty()>"Any"</option>
                    {OUTCOMES
                        .iter()
                        .map(|(outcome, label)| {
                            view! {
                                <option value=*outcome selected=move || value("outcome")() == *outcome>
                                    {*label}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <label class="filter">
                <span>"From"</span>
                <input type="date" name="from" value=day("from") prop:value=day("from") on:change=apply("from", true) />
            </label>
            <label class="filter">
                <span>"To"</span>
                <input type="date" name="to" value=day("to") prop:value=day("to") on:change=apply("to", true) />
            </label>
            <div class="filter-actions">
                <button type="submit" class="button primary">"Apply"</button>
                <a href=clear class="button">"Clear"</a>
            </div>
        </Form>
    }
}

#[component]
fn EmptyDeliveries(filtered: bool) -> impl IntoView {
    let query = use_query_map();
    if filtered {
        let clear = page_href(
            &query.read_untracked(),
            &FILTERS.iter().map(|name| (*name, None)).collect::<Vec<_>>(),
        );
        view! {
            <div class="empty-state">
                <p>"No requests match these filters."</p>
                <a href=clear>"Clear the filters"</a>
            </div>
        }
        .into_any()
    } else {
        view! {
            <div class="empty-state">
                <p>"No webhook requests yet."</p>
                <p class="muted">
                    "Every request to a source's URL (" <code>"POST /api/webhooks/<name>"</code>
                    ") is listed here, refused ones too. " <a href="/admin/settings">"Settings"</a>
                    " has the URL and a signed example."
                </p>
            </div>
        }
        .into_any()
    }
}

#[component]
fn DeliveryTable(page: DeliveryPage) -> impl IntoView {
    let query = use_query_map();
    let newer = page
        .prev_cursor
        .map(|cursor| page_href(&query.read_untracked(), &[("after", Some(&cursor))]));
    let older = page
        .next_cursor
        .map(|cursor| page_href(&query.read_untracked(), &[("before", Some(&cursor))]));
    let rows = if page.items.is_empty() {
        view! {
            <tr>
                <td colspan="10" class="muted">"No newer requests."</td>
            </tr>
        }
        .into_any()
    } else {
        page.items
            .into_iter()
            .map(|item| view! { <DeliveryRow item /> })
            .collect_view()
            .into_any()
    };
    view! {
        <div class="table-scroll">
            <table class="history-table deliveries-table">
                <caption class="visually-hidden">"Webhook requests, newest first"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Time"</th>
                        <th scope="col">"Source"</th>
                        <th scope="col">"Outcome"</th>
                        <th scope="col">"HTTP"</th>
                        <th scope="col" class="numeric">"Processing"</th>
                        <th scope="col" class="numeric">"Size"</th>
                        <th scope="col">"Address"</th>
                        <th scope="col">"Request id"</th>
                        <th scope="col" class="numeric">"Count"</th>
                        <th scope="col"><span class="visually-hidden">"Callback"</span></th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages of requests">
            {newer.map(|href| view! { <a href=href class="button">"← Newer"</a> })}
            {older.map(|href| view! { <a href=href class="button">"Older →"</a> })}
        </nav>
    }
}

#[component]
fn DeliveryRow(item: DeliveryItem) -> impl IntoView {
    let DeliveryItem {
        received_at,
        request_id,
        outcome,
        http_status,
        processing_us,
        body_bytes,
        remote_addr,
        llm_callback_id,
        signature_scheme,
        source,
        count,
        ..
    } = item;
    // Flag mode stores callbacks whose signature did not verify: say so.
    let unsigned =
        matches!(outcome.as_str(), "accepted" | "duplicate") && signature_scheme.is_none();
    let machine = received_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| received_at.to_string());
    // The server renders UTC; the browser then shows its own local time.
    let shown = RwSignal::new(machine.clone());
    Effect::new(move |_| shown.set(browser::local_time(received_at)));
    let status_failed = http_status >= 400;
    let request_label = request_id
        .clone()
        .unwrap_or_else(|| "without an id".to_owned());
    view! {
        <tr data-outcome=outcome.clone()>
            <td class="nowrap"><time datetime=machine>{move || shown.get()}</time></td>
            <td>
                {match source {
                    Some(source) => view! { <span class="source-tag">{source}</span> }.into_any(),
                    None => view! { <span class="muted">"—"</span> }.into_any(),
                }}
            </td>
            <td>
                <span class=format!("badge {}", outcome_tone(&outcome))>{outcome_text(&outcome)}</span>
                {unsigned.then(|| view! {
                    <span class="badge danger unsigned" title="Stored without a valid signature (signature mode flag)">
                        "unsigned"
                    </span>
                })}
            </td>
            <td class="mono" class:error-text=status_failed>{http_status}</td>
            <td class="numeric nowrap">{millis(Some(processing_us as f64 / 1000.0))}</td>
            <td class="numeric nowrap">{human_bytes(u64::try_from(body_bytes).unwrap_or(0))}</td>
            <td class="mono nowrap">{remote_addr.unwrap_or_else(|| "—".to_owned())}</td>
            <td class="mono request-id" title=request_id.clone()>{request_id.clone().unwrap_or_else(|| "—".to_owned())}</td>
            <td class="numeric">
                {(count > 1).then(|| view! {
                    <span class="delivery-count" title=format!("{count} requests from this address in this minute")>
                        {format!("×{count}")}
                    </span>
                })}
            </td>
            <td>
                {llm_callback_id.map(|id| view! {
                    <a
                        class="button small nowrap"
                        href=format!("/admin/callbacks?callback={id}")
                        aria-label=format!("Open the callback of request {request_label}")
                    >
                        "Open callback"
                    </a>
                })}
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_filters_and_drop_old_cursors() {
        let mut query = ParamsMap::new();
        query.insert("window", "7d".to_owned());
        query.insert("outcome", "missing_signature".to_owned());
        query.insert("from", "2026-05-01".to_owned());
        query.insert("before", "old".to_owned());
        assert_eq!(
            page_href(&query, &[("after", Some("1.ab"))]),
            "/admin/deliveries?window=7d&outcome=missing_signature&from=2026-05-01&after=1.ab"
        );
        assert_eq!(
            page_href(&query, &[("outcome", Some("accepted"))]),
            "/admin/deliveries?window=7d&from=2026-05-01&outcome=accepted"
        );
        assert_eq!(
            page_href(&query, &[("outcome", None), ("from", Some(""))]),
            "/admin/deliveries?window=7d"
        );
        assert_eq!(page_href(&ParamsMap::new(), &[]), "/admin/deliveries");
    }

    #[test]
    fn the_source_filter_is_kept_by_links_and_cleared_with_the_others() {
        let mut query = ParamsMap::new();
        query.insert("source", "claude-code".to_owned());
        query.insert("outcome", "accepted".to_owned());
        assert_eq!(
            page_href(&query, &[("before", Some("1.ab"))]),
            "/admin/deliveries?source=claude-code&outcome=accepted&before=1.ab"
        );
        let cleared: Vec<_> = FILTERS.iter().map(|name| (*name, None)).collect();
        assert_eq!(page_href(&query, &cleared), "/admin/deliveries");
    }

    #[test]
    fn the_window_defaults_to_a_day() {
        let mut query = ParamsMap::new();
        assert_eq!(window_of(&query), "24h");
        query.insert("window", "1h".to_owned());
        assert_eq!(window_of(&query), "1h");
        query.insert("window", "1y".to_owned());
        assert_eq!(window_of(&query), "24h");
    }

    #[test]
    fn every_outcome_has_a_tone() {
        assert_eq!(outcome_tone("accepted"), "ok");
        assert_eq!(outcome_tone("duplicate"), "info");
        assert!(
            OUTCOMES
                .iter()
                .skip(2)
                .all(|(outcome, _)| outcome_tone(outcome) == "danger")
        );
        assert_eq!(outcome_text("missing_signature"), "missing signature");
    }
}
