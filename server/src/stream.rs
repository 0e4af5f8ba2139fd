//! `GET /api/callbacks/stream`: the live feed as Server-Sent Events.
//!
//! The stream holds only a cursor. It reads the feed with the same query as
//! the poll (so it keeps the poll's commit-order guarantee and skips what
//! this user has viewed), then sleeps until the store says the head moved.
//! Events are produced only when the connection can take them, so a slow
//! client holds no more than one page in memory; a client that stops reading
//! is closed by its socket, and `EventSource` reconnects with
//! `Last-Event-ID`, resuming exactly where it was. Scripts (`callback-inbox
//! listen`) open it with an API token instead of a session; it ends when
//! the token is revoked.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use crate::session_records::SessionRecords;
use app::auth::server::{bearer_token, reader, session_user, token_user};
use app::state::AppState;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use http::{HeaderMap, StatusCode};
use inbox_core::accounts::User;
use inbox_core::cursor::FeedCursor;
use inbox_core::dto::CallbackSummary;
use inbox_core::store::Store;
use tokio::sync::broadcast;
use tower_sessions::session::Id;
use tower_sessions::{Session, SessionStore};

/// A comment line at least this often keeps proxies from closing the stream.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often a quiet stream checks that its session is still valid (and
/// reads the feed, should a head notice ever be missed).
const RECHECK: Duration = Duration::from_secs(5);
/// Most callbacks read per query.
const PAGE: u32 = 100;

#[derive(Clone)]
pub struct StreamState {
    pub app: AppState,
    pub sessions: SessionRecords,
}

#[derive(Debug, serde::Deserialize)]
pub struct StreamQuery {
    after: Option<String>,
}

pub async fn callback_stream(
    State(state): State<StreamState>,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Response {
    // A signed-in session, or an API token (read-only, as its user).
    let token = bearer_token(&headers).map(str::to_owned);
    let user = match reader(&headers, &session, &state.app).await {
        Ok(Some(user)) => user,
        Ok(None) => return error(StatusCode::UNAUTHORIZED, "sign in to continue"),
        Err(err) => {
            tracing::error!(error = %err, "session check failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .or(query.after.as_deref());
    let resume = match FeedCursor::parse_optional(resume) {
        Ok(resume) => resume,
        Err(err) => return error(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let store = state.app.store.clone();
    // Subscribe before reading the head: a commit in between still wakes us.
    let notices = store.subscribe_feed();
    let cursor = match resume {
        Some(cursor) => cursor,
        None => match store.feed_head().await {
            Ok(head) => head,
            Err(err) => {
                tracing::error!(error = %err, "feed head unavailable");
                return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        },
    };
    metrics::gauge!("callback_inbox_stream_clients").increment(1.0);
    let feed = FeedStream {
        store,
        sessions: state.sessions,
        session_id: session.id(),
        token,
        user,
        login_check: state.app,
        session,
        cursor,
        notices,
        pending: VecDeque::new(),
        known_head: None,
    };
    let mut response = Sse::new(feed.into_events())
        .keep_alive(KeepAlive::new().interval(KEEPALIVE))
        .into_response();
    // Reverse proxies must pass events on at once.
    response
        .headers_mut()
        .insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

struct FeedStream {
    store: Store,
    sessions: SessionRecords,
    session_id: Option<Id>,
    /// The API token the stream was opened with, if it was.
    token: Option<String>,
    session: Session,
    login_check: AppState,
    user: User,
    cursor: FeedCursor,
    notices: broadcast::Receiver<i64>,
    pending: VecDeque<(FeedCursor, CallbackSummary)>,
    /// The head a commit notice announced: with many open streams, each
    /// commit then costs every stream one query, not two.
    known_head: Option<FeedCursor>,
}

impl Drop for FeedStream {
    fn drop(&mut self) {
        metrics::gauge!("callback_inbox_stream_clients").decrement(1.0);
    }
}

impl FeedStream {
    fn into_events(self) -> impl Stream<Item = Result<Event, Infallible>> + Send {
        stream::unfold(self, |mut feed| async move {
            let (cursor, item) = feed.next_item().await?;
            let event = Event::default()
                .event("callback")
                .id(cursor.to_string())
                .json_data(&item)
                .ok()?;
            Some((Ok(event), feed))
        })
    }

    /// The next callback for this user, waiting for one as long as the
    /// session stays valid; `None` ends the stream.
    async fn next_item(&mut self) -> Option<(FeedCursor, CallbackSummary)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let head = match self.known_head.take() {
                // A notice queued before our last read may name an older
                // head; never let the cursor go back.
                Some(head) => head.max(self.cursor),
                None => self.store.feed_head().await.ok()?,
            };
            let (items, next) = self
                .store
                .feed_after(self.user.id, self.cursor, head, PAGE)
                .await
                .ok()?;
            self.cursor = next;
            if !items.is_empty() {
                self.pending.extend(items);
                continue;
            }
            tokio::select! {
                notice = self.notices.recv() => match notice {
                    Ok(head) => self.known_head = Some(FeedCursor(head)),
                    // Missed notices: read the head from the store.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = tokio::time::sleep(RECHECK) => {
                    if !self.session_still_valid().await {
                        return None;
                    }
                }
            }
        }
    }

    /// The session exists (not signed out, not expired) and its user may
    /// still sign in (not disabled, password not reset since); or the API
    /// token is not revoked and its user not disabled.
    async fn session_still_valid(&self) -> bool {
        if let Some(token) = &self.token {
            return matches!(
                token_user(token, &self.login_check).await,
                Ok(Some(user)) if user.id == self.user.id
            );
        }
        let Some(id) = &self.session_id else {
            return false;
        };
        if !matches!(self.sessions.load(id).await, Ok(Some(_))) {
            return false;
        }
        matches!(
            session_user(&self.session, &self.login_check).await,
            Ok(Some(user)) if user.id == self.user.id
        )
    }
}
