//! `GET /api/callbacks/stream`: the live feed as Server-Sent Events.
//!
//! The stream holds only a cursor. On opening (and whenever it fell behind)
//! it reads the feed with the same query as the poll, so it keeps the
//! poll's commit-order guarantee and skips what this user has viewed. Live
//! callbacks then come from the node's one [`FeedHub`]: a single reader
//! that reads each commit's callbacks once and hands them to every open
//! stream, so a commit costs one query per node, not one per stream. (Live
//! events are not checked against the user's views: a callback committed a
//! moment ago is one nobody has opened yet.)
//!
//! Events are produced only when the connection can take them, so a slow
//! client holds no more than one page in memory; a client that stops reading
//! is dropped by the connection's write timeout, and `EventSource`
//! reconnects with `Last-Event-ID`, resuming exactly where it was. Every
//! stream re-checks its session or API token on a timer of its own,
//! whatever arrives meanwhile, and ends within [`RECHECK`] of sign-out,
//! revocation, disabling, password reset or expiry. One user may hold at
//! most a set number of streams per node (429 beyond). Scripts
//! (`callback-inbox listen`) open it with an API token instead of a session.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::session_records::SessionRecords;
use app::auth::server::{bearer_token, reader, session_user, token_user};
use app::error::AppError;
use app::state::AppState;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use http::HeaderMap;
use inbox_core::accounts::User;
use inbox_core::cursor::FeedCursor;
use inbox_core::dto::CallbackSummary;
use inbox_core::store::Store;
use tokio::sync::broadcast;
use tower_sessions::session::Id;
use tower_sessions::{Session, SessionStore};

/// A comment line at least this often keeps proxies from closing the stream.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often every stream checks that its session or token is still valid.
const RECHECK: Duration = Duration::from_secs(2);
/// How often the hub reads the head without a commit notice, should one
/// ever be missed.
const HUB_RECHECK: Duration = Duration::from_secs(5);
/// Batches a slow stream may fall behind the hub before it reads the feed
/// itself.
const HUB_BACKLOG: usize = 256;
/// Most callbacks read per query.
const PAGE: u32 = 100;

#[derive(Clone)]
pub struct StreamState {
    pub app: AppState,
    pub sessions: SessionRecords,
    pub hub: FeedHub,
}

/// Callbacks of one or more commits, read once by the hub for all streams:
/// everything in `(from, to]`, in commit order.
#[derive(Debug)]
pub struct FeedBatch {
    from: FeedCursor,
    to: FeedCursor,
    items: Vec<(FeedCursor, CallbackSummary)>,
}

/// This node's one reader of the live feed, and the count of open streams
/// per user.
#[derive(Clone)]
pub struct FeedHub {
    batches: broadcast::Sender<Arc<FeedBatch>>,
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
    max_per_user: usize,
}

impl FeedHub {
    /// Starts the reader on `store`'s commit notices.
    pub fn spawn(store: Store, max_per_user: usize) -> Self {
        let (batches, _) = broadcast::channel(HUB_BACKLOG);
        let hub = Self {
            batches: batches.clone(),
            open: Arc::default(),
            max_per_user: max_per_user.max(1),
        };
        tokio::spawn(read_for_all_streams(store, batches));
        hub
    }

    /// A place for one more stream of `user`, or `None` at the cap.
    fn open_stream(&self, user: Uuid) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user).or_default();
        if *count >= self.max_per_user {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            open: self.open.clone(),
            user,
        })
    }
}

/// Held by an open stream; gives its place back when the stream ends.
struct StreamSlot {
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
    user: Uuid,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// The hub's loop: after each commit notice, reads what was committed
/// since its last read (for no user in particular: nobody's views apply)
/// and sends it to every stream. With no stream open it only follows the head.
async fn read_for_all_streams(store: Store, batches: broadcast::Sender<Arc<FeedBatch>>) {
    let mut notices = store.subscribe_feed();
    let mut cursor = loop {
        match store.feed_head().await {
            Ok(head) => break head,
            Err(err) => {
                tracing::warn!(error = %err, "feed hub: head unavailable; retrying");
                tokio::time::sleep(HUB_RECHECK).await;
            }
        }
    };
    loop {
        let notice = tokio::time::timeout(HUB_RECHECK, notices.recv()).await;
        let head = match notice {
            Ok(Ok(head)) => FeedCursor(head).max(cursor),
            Ok(Err(broadcast::error::RecvError::Closed)) => return,
            // Missed notices, or a quiet while: read the head itself.
            Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => {
                match store.feed_head().await {
                    Ok(head) => head.max(cursor),
                    Err(err) => {
                        tracing::warn!(error = %err, "feed hub: head unavailable");
                        continue;
                    }
                }
            }
        };
        if head == cursor {
            continue;
        }
        if batches.receiver_count() == 0 {
            cursor = head;
            continue;
        }
        while cursor < head {
            metrics::counter!("callback_inbox_feed_reads_total", "reader" => "hub").increment(1);
            match store.feed_after(Uuid::nil(), cursor, head, PAGE).await {
                Ok((items, next)) => {
                    let batch = FeedBatch {
                        from: cursor,
                        to: next,
                        items,
                    };
                    cursor = next;
                    let _ = batches.send(Arc::new(batch));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "feed hub: read failed; streams read for themselves");
                    // Streams that see a gap in the next batch catch up on their own.
                    cursor = head;
                }
            }
        }
    }
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
        Ok(None) => return AppError::Unauthorized.into_response(),
        Err(err) => return AppError::internal(err).into_response(),
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .or(query.after.as_deref());
    let resume = match FeedCursor::parse_optional(resume) {
        Ok(resume) => resume,
        Err(err) => return AppError::BadRequest(err.to_string()).into_response(),
    };
    let Some(slot) = state.hub.open_stream(user.id) else {
        return AppError::Limited(format!(
            "too many open streams for this user (at most {}); close one first",
            state.hub.max_per_user
        ))
        .into_response();
    };
    let store = state.app.store.clone();
    // Subscribe before reading the head: a commit in between still arrives.
    let batches = state.hub.batches.subscribe();
    let cursor = match resume {
        Some(cursor) => cursor,
        None => match store.feed_head().await {
            Ok(head) => head,
            Err(err) => return AppError::internal(err).into_response(),
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
        batches,
        pending: VecDeque::new(),
        catch_up: resume.is_some(),
        next_check: Instant::now() + RECHECK,
        _slot: slot,
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
    batches: broadcast::Receiver<Arc<FeedBatch>>,
    pending: VecDeque<(FeedCursor, CallbackSummary)>,
    /// The stream reads the feed itself (with this user's views) until it
    /// reaches the head: on resuming, and after falling behind the hub.
    catch_up: bool,
    /// When the session or token is checked next.
    next_check: Instant,
    _slot: StreamSlot,
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
            if Instant::now() >= self.next_check {
                if !self.session_still_valid().await {
                    return None;
                }
                self.next_check = Instant::now() + RECHECK;
            }
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.catch_up {
                self.read_for_this_user().await?;
                continue;
            }
            tokio::select! {
                batch = self.batches.recv() => match batch {
                    Ok(batch) => self.take(&batch),
                    // Fell behind the hub: read for ourselves.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up = true,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = tokio::time::sleep_until(self.next_check) => {}
            }
        }
    }

    /// One page of the feed after the cursor, read with this user's views.
    async fn read_for_this_user(&mut self) -> Option<()> {
        metrics::counter!("callback_inbox_feed_reads_total", "reader" => "stream").increment(1);
        let head = self.store.feed_head().await.ok()?;
        let (items, next) = self
            .store
            .feed_after(self.user.id, self.cursor, head, PAGE)
            .await
            .ok()?;
        self.catch_up = next < head;
        self.cursor = self.cursor.max(next);
        self.pending.extend(items);
        Some(())
    }

    /// What of the hub's batch this stream has not seen yet.
    fn take(&mut self, batch: &FeedBatch) {
        if batch.to <= self.cursor {
            return;
        }
        if batch.from > self.cursor {
            // A gap before this batch (the hub read before this stream
            // caught up): read it, and what follows, ourselves.
            self.catch_up = true;
            return;
        }
        let cursor = self.cursor;
        self.pending
            .extend(batch.items.iter().filter(|(at, _)| *at > cursor).cloned());
        self.cursor = batch.to;
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
