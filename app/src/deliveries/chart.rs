//! Requests per interval, stacked by outcome: drawn here as inline SVG, so
//! nothing is loaded from elsewhere and the page's CSP stays strict. Colours
//! come from CSS classes, so both themes apply.

use inbox_core::dto::{DeliveryBucket, DeliverySummary};
use leptos::prelude::*;
use time::OffsetDateTime;

use crate::browser;
use crate::settings::format::human_secs;

/// Chart units: each bar is `BAR` wide in a slot of `SLOT`, in a box `HEIGHT` high.
const SLOT: f64 = 10.0;
const BAR: f64 = 8.0;
const HEIGHT: f64 = 60.0;

/// A bucket's requests in the chart's three series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stack {
    accepted: i64,
    duplicate: i64,
    rejected: i64,
}

impl Stack {
    fn of(bucket: &DeliveryBucket) -> Self {
        bucket
            .by_outcome
            .iter()
            .fold(Self::default(), |mut stack, (outcome, n)| {
                match outcome.as_str() {
                    "accepted" => stack.accepted += n,
                    "duplicate" => stack.duplicate += n,
                    _ => stack.rejected += n,
                }
                stack
            })
    }

    fn total(self) -> i64 {
        self.accepted + self.duplicate + self.rejected
    }

    fn add(self, other: Self) -> Self {
        Self {
            accepted: self.accepted + other.accepted,
            duplicate: self.duplicate + other.duplicate,
            rejected: self.rejected + other.rejected,
        }
    }

    /// "3 accepted, 1 rejected"; "no requests" when empty.
    fn describe(self) -> String {
        let parts: Vec<String> = [
            (self.accepted, "accepted"),
            (self.duplicate, "duplicate"),
            (self.rejected, "rejected"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            "no requests".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The heights of a bar's segments, bottom up, scaled so `max` fills the box.
fn segment_heights(stack: Stack, max: i64) -> [f64; 3] {
    let scale = |n: i64| {
        if max <= 0 {
            0.0
        } else {
            n as f64 / max as f64 * (HEIGHT - 2.0)
        }
    };
    [
        scale(stack.accepted),
        scale(stack.duplicate),
        scale(stack.rejected),
    ]
}

fn window_text(window: &str) -> &'static str {
    match window {
        "1h" => "hour",
        "7d" => "7 days",
        _ => "24 hours",
    }
}

fn utc_text(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.format(&format).unwrap_or_else(|_| at.to_string())
}

#[component]
pub fn DeliveryChart(summary: DeliverySummary) -> impl IntoView {
    let stacks: Vec<(OffsetDateTime, Stack)> = summary
        .buckets
        .iter()
        .map(|bucket| (bucket.start, Stack::of(bucket)))
        .collect();
    let max = stacks.iter().map(|(_, s)| s.total()).max().unwrap_or(0);
    let all = stacks
        .iter()
        .fold(Stack::default(), |sum, (_, stack)| sum.add(*stack));
    let interval = human_secs(u64::try_from(summary.bucket_secs).unwrap_or(0));
    let window = window_text(&summary.window);
    let label = format!(
        "Requests per {interval} over the last {window}: {}{}",
        all.describe(),
        if max > 0 {
            format!("; at most {max} in one interval")
        } else {
            String::new()
        }
    );
    let width = stacks.len().max(1) as f64 * SLOT;
    // Tooltips show UTC from the server, then the browser's own local time.
    let local = RwSignal::new(false);
    Effect::new(move |_| local.set(true));
    let bars = stacks
        .into_iter()
        .enumerate()
        .map(|(n, (start, stack))| {
            let x = n as f64 * SLOT + (SLOT - BAR) / 2.0;
            let [accepted, duplicate, rejected] = segment_heights(stack, max);
            let title = move || {
                let at = if local.get() {
                    browser::local_time(start)
                } else {
                    utc_text(start)
                };
                format!("{at}: {}", stack.describe())
            };
            let segment = move |class: &'static str, below: f64, height: f64| {
                (height > 0.0).then(|| {
                    view! {
                        <rect
                            class=class
                            x=x
                            y=HEIGHT - below - height
                            width=BAR
                            height=height
                        />
                    }
                })
            };
            view! {
                <g class="chart-bar">
                    <title>{title}</title>
                    <rect class="chart-hit" x=n as f64 * SLOT y="0" width=SLOT height=HEIGHT />
                    {segment("chart-accepted", 0.0, accepted)}
                    {segment("chart-duplicate", accepted, duplicate)}
                    {segment("chart-rejected", accepted + duplicate, rejected)}
                </g>
            }
        })
        .collect_view();
    view! {
        <figure class="delivery-chart">
            <svg
                class="chart"
                viewBox=format!("0 0 {width} {HEIGHT}")
                preserveAspectRatio="none"
                role="img"
                aria-label=label
                data-testid="delivery-chart"
            >
                <line class="chart-base" x1="0" y1=HEIGHT x2=width y2=HEIGHT />
                {bars}
            </svg>
            <div class="chart-axis" aria-hidden="true">
                <span>{format!("{window} ago")}</span>
                <span>"now"</span>
            </div>
            <figcaption class="chart-legend">
                <span><span class="swatch chart-accepted" aria-hidden="true"></span>"accepted"</span>
                <span><span class="swatch chart-duplicate" aria-hidden="true"></span>"duplicate"</span>
                <span><span class="swatch chart-rejected" aria-hidden="true"></span>"rejected"</span>
                <span class="muted">{format!("one bar per {interval}")}</span>
            </figcaption>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn bucket(pairs: &[(&str, i64)]) -> DeliveryBucket {
        DeliveryBucket {
            start: OffsetDateTime::UNIX_EPOCH,
            by_outcome: pairs
                .iter()
                .map(|(outcome, n)| ((*outcome).to_owned(), *n))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn outcomes_stack_as_accepted_duplicate_and_rejected() {
        let stack = Stack::of(&bucket(&[
            ("accepted", 3),
            ("duplicate", 1),
            ("missing_signature", 2),
            ("too_large", 1),
        ]));
        assert_eq!(
            stack,
            Stack {
                accepted: 3,
                duplicate: 1,
                rejected: 3
            }
        );
        assert_eq!(stack.total(), 7);
        assert_eq!(stack.describe(), "3 accepted, 1 duplicate, 3 rejected");
        assert_eq!(Stack::default().describe(), "no requests");
    }

    #[test]
    fn the_busiest_bar_fills_the_box() {
        let stack = Stack {
            accepted: 2,
            duplicate: 0,
            rejected: 2,
        };
        let [a, d, r] = segment_heights(stack, 4);
        assert!((a + d + r - (HEIGHT - 2.0)).abs() < 1e-9);
        assert_eq!(d, 0.0);
        assert_eq!(segment_heights(Stack::default(), 0), [0.0, 0.0, 0.0]);
    }
}
