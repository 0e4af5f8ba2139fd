//! The admin API over callbacks: server functions at fixed endpoints
//! (docs/api.md, "Admin API"). Each starts with the role guard; the user always
//! comes from the session, or for the read-only ones from an API token.

// `history` takes the endpoint's fixed form fields as arguments; the server
// macro's generated client code does not carry a function-level allow.
#![allow(clippy::too_many_arguments)]

use inbox_core::dto::{CallbackDetail, HistoryPage, PollPage};
use leptos::prelude::*;
use uuid::Uuid;

use crate::error::AppError;

/// The live feed: with `after`, what this user has not viewed that was
/// committed after it; without, the unviewed count, the newest unviewed and
/// the head of the feed.
#[server(prefix = "/api", endpoint = "callbacks/poll")]
pub async fn poll(after: Option<String>, limit: Option<u32>) -> Result<PollPage, AppError> {
    use super::server::*;
    let user = crate::auth::server::require_reader().await?;
    metrics::counter!("callback_inbox_poll_requests_total").increment(1);
    let after = parse_feed_cursor(after.as_deref())?;
    store()?
        .poll(user.id, after, clamp_limit(limit))
        .await
        .map_err(AppError::internal)
}

/// Everything about one callback.
#[server(prefix = "/api", endpoint = "callbacks/detail")]
pub async fn detail(id: Uuid) -> Result<CallbackDetail, AppError> {
    use super::server::*;
    let user = crate::auth::server::require_reader().await?;
    store()?
        .callback_detail(user.id, id)
        .await
        .map_err(AppError::internal)?
        .ok_or_else(|| not_found(id))
}

/// Marks one callback viewed by this user (idempotent).
#[server(prefix = "/api", endpoint = "callbacks/mark-viewed")]
pub async fn mark_viewed(id: Uuid) -> Result<(), AppError> {
    use super::server::*;
    let user = require_user(Role::Viewer).await?;
    let found = store()?
        .mark_viewed(user.id, id, now_us())
        .await
        .map_err(AppError::internal)?;
    if found { Ok(()) } else { Err(not_found(id)) }
}

/// Marks every callback committed so far viewed by this user, and returns
/// how many of them were not viewed before. One small write (a mark at the
/// feed's head) whatever the number of callbacks, so a click never stalls
/// the webhook; callbacks that arrive afterwards stay unviewed.
#[server(prefix = "/api", endpoint = "callbacks/mark-all-viewed")]
pub async fn mark_all_viewed() -> Result<u64, AppError> {
    use super::server::*;
    let user = require_user(Role::Viewer).await?;
    store()?
        .mark_all_viewed(user.id, now_us())
        .await
        .map_err(AppError::internal)
}

/// A page of history, newest first. Empty fields mean "no filter".
#[server(prefix = "/api", endpoint = "callbacks/history")]
pub async fn history(
    event_type: Option<String>,
    workflow_name: Option<String>,
    signature_valid: Option<String>,
    viewed: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    before: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
    source: Option<String>,
    group: Option<String>,
) -> Result<HistoryPage, AppError> {
    use super::server::*;
    let user = crate::auth::server::require_reader().await?;
    let filter = HistoryQuery {
        source,
        group,
        event_type,
        workflow_name,
        signature_valid,
        viewed,
        from,
        to,
        q,
    }
    .into_filter()?;
    let direction = match (
        parse_cursor(before.as_deref())?,
        parse_cursor(after.as_deref())?,
    ) {
        (Some(_), Some(_)) => {
            return Err(AppError::BadRequest(
                "give either before or after, not both".into(),
            ));
        }
        (Some(cursor), None) => HistoryDirection::Before(cursor),
        (None, Some(cursor)) => HistoryDirection::After(cursor),
        (None, None) => HistoryDirection::Newest,
    };
    store()?
        .history(user.id, &filter, direction, clamp_limit(limit))
        .await
        .map_err(AppError::internal)
}

/// The names of every source, the built-in one first: the history and
/// deliveries filters offer them. Names only (no URL, no secret), so viewers
/// and API tokens may read them.
#[server(prefix = "/api", endpoint = "callbacks/sources")]
pub async fn source_names() -> Result<Vec<String>, AppError> {
    use inbox_core::source::BUILTIN_SOURCE;
    crate::auth::server::require_reader().await?;
    let state = crate::state::app_state()?;
    let mut names: Vec<String> = state.webhook.sources.snapshot().keys().cloned().collect();
    names.sort_unstable_by(|a, b| (a != BUILTIN_SOURCE, a).cmp(&(b != BUILTIN_SOURCE, b)));
    Ok(names)
}
