//! The summary strip above the requests: totals by outcome, invalid
//! signatures (highlighted when there are any), processing-time percentiles
//! and the chart, for the last hour, day or week.

use inbox_core::dto::DeliverySummary;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::chart::DeliveryChart;
use super::{field, outcome_text, outcome_tone, page_href};
use crate::callbacks::live::live_state;
use crate::deliveries::load_delivery_summary;
use crate::settings::format::millis;

const WINDOWS: &[(&str, &str, &str)] = &[
    ("1h", "1 h", "Last hour"),
    ("24h", "24 h", "Last 24 hours"),
    ("7d", "7 d", "Last 7 days"),
];

fn window_title(window: &str) -> &'static str {
    WINDOWS
        .iter()
        .find(|(key, _, _)| *key == window)
        .map_or("Last 24 hours", |(_, _, title)| title)
}

#[component]
pub fn DeliverySummaryStrip(window: Memo<&'static str>, refreshed: RwSignal<u32>) -> impl IntoView {
    let live = live_state();
    let summary = Resource::new(
        move || (window.get(), live.changes.get(), refreshed.get()),
        |(window, _, _)| load_delivery_summary(Some(window.to_owned())),
    );
    view! {
        <section class="delivery-summary" aria-labelledby="summary-title">
            <div class="summary-head">
                <h2 id="summary-title" class="section-title">{move || window_title(window.get())}</h2>
                <WindowPicker window />
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading the summary…"</p> }>
                {move || {
                    summary.get().map(|result| match result {
                        Ok(summary) => view! { <SummaryFigures summary /> }.into_any(),
                        Err(err) => view! {
                            <p class="error-text" role="alert">{format!("Could not load the summary: {err}")}</p>
                        }
                        .into_any(),
                    })
                }}
            </Transition>
        </section>
    }
}

/// 1 h / 24 h / 7 d, as links: they work before hydration and with the keyboard.
#[component]
fn WindowPicker(window: Memo<&'static str>) -> impl IntoView {
    let query = use_query_map();
    view! {
        <nav class="segmented" aria-label="Summary window">
            {WINDOWS
                .iter()
                .map(|(key, short, title)| {
                    // The table stays on its page when only the window changes.
                    let href = move || {
                        let query = query.read();
                        let before = field(&query, "before");
                        let after = field(&query, "after");
                        page_href(
                            &query,
                            &[
                                ("window", Some(*key)),
                                ("before", before.as_deref()),
                                ("after", after.as_deref()),
                            ],
                        )
                    };
                    let current = move || (window.get() == *key).then_some("true");
                    view! {
                        <a class="segment" href=href aria-current=current title=*title>
                            {*short}
                        </a>
                    }
                })
                .collect_view()}
        </nav>
    }
}

#[component]
fn SummaryFigures(summary: DeliverySummary) -> impl IntoView {
    let invalid = summary.invalid_signature;
    let p = summary.processing_ms.clone();
    let outcomes: Vec<(String, i64)> = summary
        .by_outcome
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(outcome, n)| (outcome.clone(), *n))
        .collect();
    view! {
        <dl class="summary-stats">
            <div class="stat">
                <dt>"Requests"</dt>
                <dd data-testid="summary-total">{summary.total}</dd>
            </div>
            <div class="stat" class:warn={invalid > 0} data-testid="summary-invalid">
                <dt>"Invalid signatures"</dt>
                <dd>
                    {invalid}
                    {(invalid > 0).then(|| view! { <span class="visually-hidden">" (needs attention)"</span> })}
                </dd>
            </div>
            <div class="stat">
                <dt>"p50"</dt>
                <dd data-testid="summary-p50">{millis(p.p50)}</dd>
            </div>
            <div class="stat">
                <dt>"p95"</dt>
                <dd>{millis(p.p95)}</dd>
            </div>
            <div class="stat">
                <dt>"p99"</dt>
                <dd>{millis(p.p99)}</dd>
            </div>
        </dl>
        {if outcomes.is_empty() {
            view! { <p class="muted summary-none">"No requests in this window."</p> }.into_any()
        } else {
            view! {
                <ul class="outcome-counts" aria-label="Requests by outcome">
                    {outcomes
                        .into_iter()
                        .map(|(outcome, n)| {
                            view! {
                                <li data-testid=format!("outcome-count-{outcome}")>
                                    <span class=format!("badge {}", outcome_tone(&outcome))>
                                        {outcome_text(&outcome)}
                                    </span>
                                    <span class="outcome-count">{n}</span>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            }
            .into_any()
        }}
        <DeliveryChart summary />
    }
}
