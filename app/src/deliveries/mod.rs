//! The deliveries tab: the webhook's audit log and its summary strip.
//!
//! Viewers may read it (it holds no payloads and no secrets).

pub mod page;

use inbox_core::dto::{DeliveryPage, DeliverySummary};
use leptos::prelude::*;

use crate::error::AppError;

/// A page of webhook requests, newest first. Empty fields mean "no filter".
#[server(prefix = "/api", endpoint = "deliveries/list")]
pub async fn list_deliveries(
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
    source: Option<String>,
) -> Result<DeliveryPage, AppError> {
    use inbox_core::cursor::DeliveryCursor;
    use inbox_core::dto::DeliveryFilter;
    use inbox_core::store::DeliveryDirection;

    use crate::callbacks::server::*;
    crate::auth::server::require_reader().await?;
    let cursor = |raw: Option<String>| {
        DeliveryCursor::parse_optional(raw.as_deref())
            .map_err(|err| AppError::BadRequest(err.to_string()))
    };
    let filter = DeliveryFilter {
        outcome: filter_text("outcome", outcome)?,
        source: filter_text("source", source)?,
        from: parse_time("from", from.as_deref(), false)?,
        to: parse_time("to", to.as_deref(), true)?,
    };
    let direction = match (cursor(before)?, cursor(after)?) {
        (Some(_), Some(_)) => {
            return Err(AppError::BadRequest(
                "give either before or after, not both".into(),
            ));
        }
        (Some(cursor), None) => DeliveryDirection::Before(cursor),
        (None, Some(cursor)) => DeliveryDirection::After(cursor),
        (None, None) => DeliveryDirection::Newest,
    };
    store()?
        .deliveries(&filter, direction, clamp_limit(limit))
        .await
        .map_err(AppError::internal)
}

/// Counts by outcome, processing-time percentiles and a chart of requests
/// per interval for the last `window` (`1h`, `24h` (default) or `7d`).
/// Computed once per window at a time on each node and shared by every
/// viewer for a few seconds: a week of audit rows takes about a second to
/// read, and eight viewers at once must not make it eight.
#[server(prefix = "/api", endpoint = "deliveries/summary")]
pub async fn load_delivery_summary(window: Option<String>) -> Result<DeliverySummary, AppError> {
    use inbox_core::store::SummaryWindow;

    use crate::callbacks::server::*;
    crate::auth::server::require_reader().await?;
    let window = SummaryWindow::parse(window.as_deref().unwrap_or_default())
        .ok_or_else(|| AppError::BadRequest("window must be 1h, 24h or 7d".to_owned()))?;
    store()?
        .delivery_summary_cached(window, time::OffsetDateTime::now_utc())
        .await
        .map_err(AppError::internal)
}
