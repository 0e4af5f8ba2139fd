//! The reads and view-marks behind the admin API: poll, detail, history.
//!
//! Every list is keyset-paginated on `(created_at, id)`, served by the
//! `llm_callbacks_created_at` index, so a page costs the same at any depth.
//!
//! **What "viewed" means.** A callback is viewed by a user when it has a row
//! in `llm_callback_views` (the user opened it, or marked it), or when its
//! feed position is at or below the user's **mark**: "Mark all viewed"
//! records the feed's head at the click (one row in
//! `llm_callback_view_marks`), which covers everything committed by then, in
//! commit order, on every node. The click costs one small write whatever the
//! number of callbacks; every reader below (poll, the feed and stream,
//! detail, history's flag and filter, the unread count, export) applies both
//! rules.

use sqlx::{Database, Encode, QueryBuilder, Type};
use uuid::Uuid;

use super::{DbTime, Dialect, Store, StoreError, StoreRow, on_db};
use crate::cursor::{FeedCursor, PollCursor};
use crate::dto::{
    CallbackDetail, CallbackSummary, CallbackViewer, HistoryFilter, HistoryItem, HistoryPage,
    PollPage,
};
pub(super) use crate::micros::{time_of, unix_micros as micros_of};

/// Largest page any list returns.
pub const MAX_PAGE: u32 = 100;
pub const DEFAULT_PAGE: u32 = 20;

/// Which way a history page goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryDirection {
    /// The newest rows (no cursor).
    Newest,
    /// Rows older than the cursor.
    Before(PollCursor),
    /// Rows newer than the cursor.
    After(PollCursor),
}

pub fn clamp_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// How far back a client without a cursor looks for its newest unviewed
/// callbacks.
pub const BACKLOG_WINDOW: i64 = 10_000;

/// Marks kept per user: "viewed at" of a callback under a mark is the time
/// of the first kept mark that covers it, so older clicks are folded into
/// later ones instead of growing the table.
pub const VIEW_MARKS_KEPT: i64 = 16;

fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_foreign_key_violation())
}

fn summary_of(row: &impl StoreRow) -> Result<CallbackSummary, sqlx::Error> {
    Ok(CallbackSummary {
        id: row.uuid("id")?,
        source: row.text("source")?,
        callback_id: row.text("callback_id")?,
        workflow_name: row.opt_text("workflow_name")?,
        event_type: row.opt_text("event_type")?,
        created_at: time_of(row.time("created_at")?),
        signature_valid: row.flag("signature_valid")?,
    })
}

impl Store {
    /// The head of the live feed: the position of the last committed callback.
    pub async fn feed_head(&self) -> Result<FeedCursor, StoreError> {
        let seq: i64 = on_db!(self.db(), |pool, dialect| {
            sqlx::query_scalar("SELECT seq FROM feed_head WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        Ok(FeedCursor(seq))
    }

    /// The live feed for `user` (see docs/operations.md, "The live feed").
    ///
    /// With `after`: callbacks committed after it that `user` has not
    /// viewed, in commit order, and the cursor to poll with next. Without:
    /// how many callbacks `user` has not viewed, the newest of them (oldest
    /// first), and the head, so that the next poll returns only what arrives
    /// later and a new client never replays the backlog.
    pub async fn poll(
        &self,
        user: Uuid,
        after: Option<FeedCursor>,
        limit: u32,
    ) -> Result<PollPage, StoreError> {
        // Read the head first: whatever commits later has a higher position
        // and is found by the next poll.
        let head = self.feed_head().await?;
        match after {
            Some(after) => {
                let (items, next) = self.feed_after(user, after, head, limit).await?;
                Ok(PollPage {
                    items: items.into_iter().map(|(_, item)| item).collect(),
                    next_cursor: Some(next.to_string()),
                    unviewed_count: None,
                })
            }
            None => {
                let unviewed = self.unread_count(user).await?;
                let items = if unviewed == 0 {
                    Vec::new()
                } else {
                    self.newest_unviewed(user, head, limit).await?
                };
                Ok(PollPage {
                    items,
                    next_cursor: Some(head.to_string()),
                    unviewed_count: Some(unviewed),
                })
            }
        }
    }

    /// Callbacks in `(after, head]` that `user` has not viewed, in commit
    /// order, each with the cursor just after it, and where to continue.
    /// A cursor beyond the head (forged, or from before a restore) counts
    /// as the head. Costs an index probe when the cursor is up to date.
    pub async fn feed_after(
        &self,
        user: Uuid,
        after: FeedCursor,
        head: FeedCursor,
        limit: u32,
    ) -> Result<(Vec<(FeedCursor, CallbackSummary)>, FeedCursor), StoreError> {
        let after = after.min(head);
        let items = on_db!(self.db(), |pool, dialect| {
            sqlx::query(dialect.pick(
                "SELECT c.id, c.source, c.callback_id, c.workflow_name, c.event_type, c.created_at,
                        c.signature_valid, c.feed_seq
                 FROM llm_callbacks c INDEXED BY llm_callbacks_feed
                 WHERE c.feed_seq > max($1, (SELECT coalesce(max(m.seq), 0)
                                             FROM llm_callback_view_marks m WHERE m.user_id = $3))
                   AND c.feed_seq <= $2
                   AND NOT EXISTS (SELECT 1 FROM llm_callback_views v
                                   WHERE v.callback_id = c.id AND v.admin_user_id = $3)
                 ORDER BY c.feed_seq
                 LIMIT $4",
                "SELECT c.id, c.source, c.callback_id, c.workflow_name, c.event_type, c.created_at,
                        c.signature_valid, c.feed_seq
                 FROM llm_callbacks c
                 WHERE c.feed_seq > greatest($1, (SELECT coalesce(max(m.seq), 0)
                                                  FROM llm_callback_view_marks m WHERE m.user_id = $3))
                   AND c.feed_seq <= $2
                   AND NOT EXISTS (SELECT 1 FROM llm_callback_views v
                                   WHERE v.callback_id = c.id AND v.admin_user_id = $3)
                 ORDER BY c.feed_seq
                 LIMIT $4",
            ))
            .bind(after.0)
            .bind(head.0)
            .bind(user)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok((FeedCursor(row.int("feed_seq")?), summary_of(row)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        // A full page may leave more behind it; otherwise everything up to
        // the head has been seen.
        let next = match items.last() {
            Some((last, _)) if items.len() == limit as usize => *last,
            _ => head,
        };
        Ok((items, next))
    }

    /// The newest `limit` callbacks `user` has not viewed, oldest first,
    /// looked for among the newest [`BACKLOG_WINDOW`] only: older ones are
    /// counted in the summary and found through history's unviewed filter.
    async fn newest_unviewed(
        &self,
        user: Uuid,
        head: FeedCursor,
        limit: u32,
    ) -> Result<Vec<CallbackSummary>, StoreError> {
        let mut items = on_db!(self.db(), |pool, dialect| {
            sqlx::query(dialect.pick(
                "SELECT c.id, c.source, c.callback_id, c.workflow_name, c.event_type, c.created_at,
                        c.signature_valid
                 FROM llm_callbacks c INDEXED BY llm_callbacks_feed
                 WHERE c.feed_seq <= $1
                   AND c.feed_seq > max($1 - $4, (SELECT coalesce(max(m.seq), 0)
                                                  FROM llm_callback_view_marks m WHERE m.user_id = $2))
                   AND NOT EXISTS (SELECT 1 FROM llm_callback_views v
                                   WHERE v.callback_id = c.id AND v.admin_user_id = $2)
                 ORDER BY c.feed_seq DESC
                 LIMIT $3",
                "SELECT c.id, c.source, c.callback_id, c.workflow_name, c.event_type, c.created_at,
                        c.signature_valid
                 FROM llm_callbacks c
                 WHERE c.feed_seq <= $1
                   AND c.feed_seq > greatest($1 - $4, (SELECT coalesce(max(m.seq), 0)
                                                       FROM llm_callback_view_marks m WHERE m.user_id = $2))
                   AND NOT EXISTS (SELECT 1 FROM llm_callback_views v
                                   WHERE v.callback_id = c.id AND v.admin_user_id = $2)
                 ORDER BY c.feed_seq DESC
                 LIMIT $3",
            ))
            .bind(head.0)
            .bind(user)
            .bind(i64::from(limit))
            .bind(BACKLOG_WINDOW)
            .fetch_all(pool)
            .await?
            .iter()
            .map(summary_of)
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        items.reverse();
        Ok(items)
    }

    /// One callback with everything about it, as `user` sees it.
    pub async fn callback_detail(
        &self,
        user: Uuid,
        id: Uuid,
    ) -> Result<Option<CallbackDetail>, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            // Viewed at: the user's view row, else the first of their marks
            // that covers the callback.
            let Some(row) = sqlx::query(
                "SELECT c.id, c.source, c.callback_id, c.external_job_id, c.workflow_name,
                        c.event_type, c.status, c.error_message, c.signature_valid, c.signature_scheme,
                        c.signature_header, c.verified_at, c.payload, c.delivery_count,
                        c.created_at, c.updated_at, c.feed_seq,
                        coalesce((SELECT viewed_at FROM llm_callback_views v
                                   WHERE v.callback_id = c.id AND v.admin_user_id = $2),
                                 (SELECT min(m.marked_at) FROM llm_callback_view_marks m
                                   WHERE m.user_id = $2 AND m.seq >= c.feed_seq)) AS my_viewed_at
                 FROM llm_callbacks c WHERE c.id = $1",
            )
            .bind(id)
            .bind(user)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let viewers = sqlx::query(
                "SELECT u.email AS email, v.viewed_at AS viewed_at FROM llm_callback_views v
                 JOIN users u ON u.id = v.admin_user_id
                 WHERE v.callback_id = $1
                 UNION ALL
                 SELECT u.email AS email, min(m.marked_at) AS viewed_at
                 FROM llm_callback_view_marks m JOIN users u ON u.id = m.user_id
                 WHERE m.seq >= $2
                   AND NOT EXISTS (SELECT 1 FROM llm_callback_views v
                                   WHERE v.callback_id = $1 AND v.admin_user_id = m.user_id)
                 GROUP BY u.id, u.email
                 ORDER BY viewed_at",
            )
            .bind(id)
            .bind(row.int("feed_seq")?)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|viewer| {
                Ok(CallbackViewer {
                    email: viewer.text("email")?,
                    viewed_at: time_of(viewer.time("viewed_at")?),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(Some(detail_of(&row, viewers)?))
        })
    }

    /// Marks a callback viewed by `user`; repeating it changes nothing.
    /// Returns false when the callback does not exist. A callback already
    /// under the user's mark gets no row: it is viewed already.
    pub async fn mark_viewed(&self, user: Uuid, id: Uuid, now_us: i64) -> Result<bool, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            let result = match sqlx::query(
                "INSERT INTO llm_callback_views (callback_id, admin_user_id, viewed_at, feed_seq)
                 SELECT c.id, $2, $3, c.feed_seq FROM llm_callbacks c
                 WHERE c.id = $1
                   AND c.feed_seq > (SELECT coalesce(max(m.seq), 0)
                                     FROM llm_callback_view_marks m WHERE m.user_id = $2)
                 ON CONFLICT (callback_id, admin_user_id) DO NOTHING",
            )
            .bind(id)
            .bind(user)
            .bind(DbTime(now_us))
            .execute(pool)
            .await
            {
                Ok(result) => result,
                // Deleted (retention) between the select and the insert.
                Err(err) if is_foreign_key_violation(&err) => return Ok(false),
                Err(err) => return Err(err.into()),
            };
            if result.rows_affected() > 0 {
                return Ok(true);
            }
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM llm_callbacks WHERE id = $1)")
                    .bind(id)
                    .fetch_one(pool)
                    .await?;
            Ok(exists)
        })
    }

    /// Marks every callback committed so far viewed by `user`: one mark at
    /// the feed's head, a write of one row (and the removal of the user's
    /// oldest mark beyond [`VIEW_MARKS_KEPT`]) whatever the number of
    /// callbacks, so the sender's writer never waits long behind it.
    ///
    /// Returns how many callbacks this call marked (those between the
    /// user's previous mark and the new one that had no view row), counted
    /// after the write from two index ranges; 0 when nothing arrived since
    /// the previous mark.
    pub async fn mark_all_viewed(&self, user: Uuid, now_us: i64) -> Result<u64, StoreError> {
        let (previous, marked) = on_db!(self.db(), |pool, dialect| {
            // SQLite: take the write lock first, so the read below cannot be
            // outdated by the time the transaction writes.
            let mut tx = pool
                .begin_with(dialect.pick("BEGIN IMMEDIATE", "BEGIN"))
                .await?;
            let previous: i64 = sqlx::query_scalar(
                "SELECT coalesce(max(seq), 0) FROM llm_callback_view_marks WHERE user_id = $1",
            )
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
            let marked: Option<i64> = sqlx::query_scalar(
                "INSERT INTO llm_callback_view_marks (user_id, seq, marked_at)
                 SELECT $1, seq, $2 FROM feed_head WHERE id = 1 AND seq > $3
                 ON CONFLICT (user_id, seq) DO NOTHING
                 RETURNING seq",
            )
            .bind(user)
            .bind(DbTime(now_us))
            .bind(previous)
            .fetch_optional(&mut *tx)
            .await?;
            if marked.is_some() {
                sqlx::query(
                    "DELETE FROM llm_callback_view_marks WHERE user_id = $1 AND seq <
                       (SELECT seq FROM llm_callback_view_marks WHERE user_id = $1
                        ORDER BY seq DESC LIMIT 1 OFFSET $2)",
                )
                .bind(user)
                .bind(VIEW_MARKS_KEPT - 1)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            (previous, marked)
        });
        let Some(marked) = marked else {
            return Ok(0);
        };
        // Read after the commit: no lock held while counting.
        let newly: i64 = on_db!(self.db(), |pool, dialect| {
            sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM llm_callbacks
                          WHERE feed_seq > $2 AND feed_seq <= $3)
                      - (SELECT count(*) FROM llm_callback_views
                          WHERE admin_user_id = $1 AND feed_seq > $2 AND feed_seq <= $3)",
            )
            .bind(user)
            .bind(previous)
            .bind(marked)
            .fetch_one(pool)
            .await?
        });
        Ok(u64::try_from(newly).unwrap_or(0))
    }

    /// Callbacks `user` has not viewed: those above the user's mark without
    /// a view row. Counted from index ranges only: the callbacks above the
    /// mark (or the trigger-kept total less those at or below it, whichever
    /// range is shorter) less the user's view rows above the mark.
    pub async fn unread_count(&self, user: Uuid) -> Result<i64, StoreError> {
        let unread: i64 = on_db!(self.db(), |pool, dialect| {
            sqlx::query_scalar(
                "SELECT CASE
                          WHEN m.w = 0 THEN (SELECT total FROM callback_count WHERE id = 1)
                          WHEN h.seq - m.w <= m.w - coalesce((SELECT min(feed_seq) FROM llm_callbacks), m.w)
                            THEN (SELECT count(*) FROM llm_callbacks WHERE feed_seq > m.w)
                          ELSE (SELECT total FROM callback_count WHERE id = 1)
                               - (SELECT count(*) FROM llm_callbacks WHERE feed_seq <= m.w)
                        END
                        - (SELECT count(*) FROM llm_callback_views v
                            WHERE v.admin_user_id = $1 AND v.feed_seq > m.w)
                 FROM feed_head h,
                      (SELECT coalesce(max(seq), 0) AS w FROM llm_callback_view_marks
                        WHERE user_id = $1) m
                 WHERE h.id = 1",
            )
            .bind(user)
            .fetch_one(pool)
            .await?
        });
        Ok(unread.max(0))
    }

    /// One page of history, newest first, filtered.
    pub async fn history(
        &self,
        user: Uuid,
        filter: &HistoryFilter,
        direction: HistoryDirection,
        limit: u32,
    ) -> Result<HistoryPage, StoreError> {
        let (mut items, more_in_direction) = on_db!(self.db(), |pool, dialect| {
            let mut query = history_query(dialect, user, filter, false);
            match direction {
                HistoryDirection::Newest => {
                    query.push(" ORDER BY c.created_at DESC, c.id DESC");
                }
                HistoryDirection::Before(cursor) => {
                    push_beyond(&mut query, cursor, "<");
                    query.push(" ORDER BY c.created_at DESC, c.id DESC");
                }
                HistoryDirection::After(cursor) => {
                    push_beyond(&mut query, cursor, ">");
                    query.push(" ORDER BY c.created_at ASC, c.id ASC");
                }
            }
            query.push(" LIMIT ").push_bind(i64::from(limit) + 1);
            let rows = query.build().fetch_all(pool).await?;
            let items = rows
                .iter()
                .take(limit as usize)
                .map(history_item)
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            (items, rows.len() > limit as usize)
        });
        if matches!(direction, HistoryDirection::After(_)) {
            items.reverse();
        }
        let newest = items
            .first()
            .map(|item| PollCursor::new(micros_of(item.created_at), item.id));
        let oldest = items
            .last()
            .map(|item| PollCursor::new(micros_of(item.created_at), item.id));

        let (older_exist, newer_exist) = match direction {
            HistoryDirection::Newest => (more_in_direction, false),
            HistoryDirection::Before(cursor) => (
                more_in_direction,
                self.history_exists(
                    user,
                    filter,
                    newest.map_or(HistoryDirection::After(cursor), HistoryDirection::After),
                )
                .await?,
            ),
            HistoryDirection::After(cursor) => (
                self.history_exists(
                    user,
                    filter,
                    oldest.map_or(HistoryDirection::Before(cursor), HistoryDirection::Before),
                )
                .await?,
                more_in_direction,
            ),
        };
        Ok(HistoryPage {
            next_cursor: oldest.filter(|_| older_exist).map(|c| c.to_string()),
            prev_cursor: newest.filter(|_| newer_exist).map(|c| c.to_string()),
            unread_count: self.unread_count(user).await?,
            items,
        })
    }

    async fn history_exists(
        &self,
        user: Uuid,
        filter: &HistoryFilter,
        direction: HistoryDirection,
    ) -> Result<bool, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            let mut query = history_query(dialect, user, filter, false);
            match direction {
                HistoryDirection::Before(cursor) => push_beyond(&mut query, cursor, "<"),
                HistoryDirection::After(cursor) => push_beyond(&mut query, cursor, ">"),
                HistoryDirection::Newest => {}
            }
            query.push(" LIMIT 1");
            Ok(query.build().fetch_optional(pool).await?.is_some())
        })
    }
}

/// The history's filtered select; `with_payload` adds the payload's text
/// (for export).
pub(super) fn history_query<'a, DB>(
    dialect: Dialect,
    user: Uuid,
    filter: &'a HistoryFilter,
    with_payload: bool,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    Uuid: Encode<'a, DB> + Type<DB>,
    String: Encode<'a, DB> + Type<DB>,
    bool: Encode<'a, DB> + Type<DB>,
    DbTime: Encode<'a, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new(
        "SELECT c.id, c.source, c.callback_id, c.external_job_id, c.event_type, c.workflow_name,
                c.created_at, c.payload_preview, c.signature_valid, ",
    );
    if with_payload {
        query.push("c.payload, ");
    }
    // Viewed: under the user's mark (a scalar subquery, evaluated once per
    // statement), or a view row. A scalar lookup, not EXISTS: PostgreSQL
    // would turn an EXISTS here into a hash of all the user's views, built
    // before the first row of a page.
    query.push("(c.feed_seq <= ");
    push_mark(&mut query, user);
    query.push(
        " OR (SELECT 1 FROM llm_callback_views v
           WHERE v.callback_id = c.id AND v.admin_user_id = ",
    );
    query.push_bind(user);
    query.push(") IS NOT NULL) AS viewed FROM llm_callbacks c WHERE 1 = 1");
    if let Some(source) = filter.source.as_deref().filter(|v| !v.is_empty()) {
        query
            .push(" AND c.source = ")
            .push_bind(dialect.text(source));
    }
    if let Some(group) = filter.group.as_deref().filter(|v| !v.is_empty()) {
        query
            .push(" AND c.external_job_id = ")
            .push_bind(dialect.text(group));
    }
    if let Some(event_type) = filter.event_type.as_deref().filter(|v| !v.is_empty()) {
        query
            .push(" AND c.event_type = ")
            .push_bind(dialect.text(event_type));
    }
    if let Some(workflow) = filter.workflow_name.as_deref().filter(|v| !v.is_empty()) {
        query
            .push(" AND c.workflow_name = ")
            .push_bind(dialect.text(workflow));
    }
    if let Some(valid) = filter.signature_valid {
        query.push(" AND c.signature_valid = ").push_bind(valid);
    }
    if let Some(viewed) = filter.viewed {
        if viewed {
            query.push(" AND (c.feed_seq <= ");
            push_mark(&mut query, user);
            query.push(" OR EXISTS");
        } else {
            query.push(" AND c.feed_seq > ");
            push_mark(&mut query, user);
            query.push(" AND NOT EXISTS");
        }
        query.push(" (SELECT 1 FROM llm_callback_views v2 WHERE v2.callback_id = c.id AND v2.admin_user_id = ");
        query.push_bind(user).push(")");
        if viewed {
            query.push(")");
        }
    }
    if let Some(from) = filter.from {
        query
            .push(" AND c.created_at >= ")
            .push_bind(DbTime(micros_of(from)));
    }
    if let Some(to) = filter.to {
        query
            .push(" AND c.created_at <= ")
            .push_bind(DbTime(micros_of(to)));
    }
    if let Some(text) = filter.q.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        let pattern = format!("%{}%", escape_like(&dialect.text(text)));
        // Case-blind on both: SQLite's LIKE folds ASCII letters, PostgreSQL's
        // ILIKE folds every letter its locale knows.
        let like = dialect.pick(" LIKE ", " ILIKE ");
        query
            .push(" AND (c.external_job_id")
            .push(like)
            .push_bind(pattern.clone());
        query
            .push(" ESCAPE '\\' OR c.error_message")
            .push(like)
            .push_bind(pattern);
        query.push(" ESCAPE '\\')");
    }
    query
}

/// The feed position of `user`'s latest mark (0 without one), as a scalar
/// subquery: every callback at or below it counts as viewed.
fn push_mark<'a, DB>(query: &mut QueryBuilder<'a, DB>, user: Uuid)
where
    DB: Database,
    Uuid: Encode<'a, DB> + Type<DB>,
{
    query
        .push("(SELECT coalesce(max(m.seq), 0) FROM llm_callback_view_marks m WHERE m.user_id = ")
        .push_bind(user)
        .push(")");
}

/// Rows strictly on one side of `cursor` in `(created_at, id)` order;
/// `side` is `<` (older) or `>` (newer).
fn push_beyond<'a, DB>(query: &mut QueryBuilder<'a, DB>, cursor: PollCursor, side: &'static str)
where
    DB: Database,
    Uuid: Encode<'a, DB> + Type<DB>,
    DbTime: Encode<'a, DB> + Type<DB>,
{
    query
        .push(format!(" AND (c.created_at {side} "))
        .push_bind(DbTime(cursor.created_at_us));
    query
        .push(" OR (c.created_at = ")
        .push_bind(DbTime(cursor.created_at_us));
    query
        .push(format!(" AND c.id {side} "))
        .push_bind(cursor.id)
        .push("))");
}

/// `%` and `_` in the search text match themselves.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

pub(super) fn history_item(row: &impl StoreRow) -> Result<HistoryItem, sqlx::Error> {
    let external_job_id = row.opt_text("external_job_id")?;
    Ok(HistoryItem {
        id: row.uuid("id")?,
        source: row.text("source")?,
        callback_id: row.text("callback_id")?,
        group: external_job_id.clone(),
        external_job_id,
        event_type: row.opt_text("event_type")?,
        workflow_name: row.opt_text("workflow_name")?,
        created_at: time_of(row.time("created_at")?),
        payload_preview: row.text("payload_preview")?,
        signature_valid: row.flag("signature_valid")?,
        viewed: row.flag("viewed")?,
    })
}

fn detail_of(
    row: &impl StoreRow,
    viewers: Vec<CallbackViewer>,
) -> Result<CallbackDetail, sqlx::Error> {
    let payload_text = row.text("payload")?;
    let external_job_id = row.opt_text("external_job_id")?;
    Ok(CallbackDetail {
        id: row.uuid("id")?,
        source: row.text("source")?,
        callback_id: row.text("callback_id")?,
        group: external_job_id.clone(),
        external_job_id,
        workflow_name: row.opt_text("workflow_name")?,
        event_type: row.opt_text("event_type")?,
        status: row.text("status")?,
        error_message: row.opt_text("error_message")?,
        signature_valid: row.flag("signature_valid")?,
        signature_scheme: row.opt_text("signature_scheme")?,
        signature_header: row.opt_text("signature_header")?,
        verified_at: row.opt_time("verified_at")?.map(time_of),
        payload: serde_json::from_str(&payload_text)
            .unwrap_or_else(|_| serde_json::Value::String(payload_text.clone())),
        payload_text,
        delivery_count: row.int("delivery_count")?,
        created_at: time_of(row.time("created_at")?),
        updated_at: time_of(row.time("updated_at")?),
        viewed_at: row.opt_time("my_viewed_at")?.map(time_of),
        viewers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewCallback;
    use crate::store::test_database::TestDatabase;

    const T0: i64 = 1_763_000_000_000_000;

    async fn user(store: &Store, email: &str) -> Uuid {
        let id = Uuid::now_v7();
        on_db!(store.db(), |pool, dialect| {
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, role, created_at)
                 VALUES ($1, $2, 'x', 'admin', $3)",
            )
            .bind(id)
            .bind(email)
            .bind(DbTime(T0))
            .execute(pool)
            .await
            .unwrap();
        });
        id
    }

    async fn add(store: &Store, job: &str) -> Uuid {
        let body = format!(r#"{{"job_id":"{job}","event":"workflow.completed"}}"#);
        let payload: serde_json::Value = serde_json::from_str(&body).unwrap();
        let payload = payload.as_object().unwrap();
        store
            .insert_callback(NewCallback {
                id: Uuid::now_v7(),
                source: "llm-callback".to_owned(),
                callback_id: crate::delivery::derive_delivery_id(
                    None,
                    payload,
                    None,
                    body.as_bytes(),
                ),
                signature_valid: true,
                signature_scheme: None,
                verified_at_us: None,
                fields: crate::fields::extract_fields(payload, None, &body),
                payload: body,
                received_at_us: T0,
            })
            .await
            .unwrap()
            .id
    }

    async fn view_rows(store: &Store, user: Uuid) -> i64 {
        on_db!(store.db(), |pool, dialect| {
            sqlx::query_scalar("SELECT count(*) FROM llm_callback_views WHERE admin_user_id = $1")
                .bind(user)
                .fetch_one(pool)
                .await
                .unwrap()
        })
    }

    async fn history_ids(store: &Store, user: Uuid, viewed: Option<bool>) -> Vec<Uuid> {
        let filter = HistoryFilter {
            viewed,
            ..HistoryFilter::default()
        };
        store
            .history(user, &filter, HistoryDirection::Newest, MAX_PAGE)
            .await
            .unwrap()
            .items
            .iter()
            .map(|item| item.id)
            .collect()
    }

    /// "Mark all viewed" writes one mark, not a row per callback, and every
    /// reader of "viewed" agrees with it: poll, the feed, history's flag,
    /// filter and count, detail, and a callback arriving afterwards.
    #[tokio::test]
    async fn mark_all_viewed_is_one_mark_that_every_reader_honours() {
        let database = TestDatabase::fresh().await;
        let store = Store::open(&database.url).await.unwrap();
        let alice = user(&store, "alice@example.com").await;
        let bob = user(&store, "bob@example.com").await;
        let mut old = Vec::new();
        for n in 0..5 {
            old.push(add(&store, &format!("old-{n}")).await);
        }
        assert!(store.mark_viewed(alice, old[1], T0).await.unwrap());
        assert_eq!(store.unread_count(alice).await.unwrap(), 4);

        assert_eq!(store.mark_all_viewed(alice, T0 + 10).await.unwrap(), 4);
        assert_eq!(view_rows(&store, alice).await, 1, "no row per callback");
        assert_eq!(
            store.mark_all_viewed(alice, T0 + 20).await.unwrap(),
            0,
            "nothing new to mark"
        );
        assert_eq!(store.unread_count(alice).await.unwrap(), 0);
        let poll = store.poll(alice, None, 20).await.unwrap();
        assert_eq!(poll.unviewed_count, Some(0));
        assert!(poll.items.is_empty());
        let (items, _) = store
            .feed_after(alice, FeedCursor(0), store.feed_head().await.unwrap(), 20)
            .await
            .unwrap();
        assert!(items.is_empty(), "the feed skips marked callbacks");
        assert!(history_ids(&store, alice, Some(false)).await.is_empty());
        assert_eq!(history_ids(&store, alice, Some(true)).await.len(), 5);
        let page = store
            .history(
                alice,
                &HistoryFilter::default(),
                HistoryDirection::Newest,
                20,
            )
            .await
            .unwrap();
        assert!(page.items.iter().all(|item| item.viewed));
        assert_eq!(page.unread_count, 0);
        let detail = store.callback_detail(alice, old[3]).await.unwrap().unwrap();
        assert_eq!(detail.viewed_at, Some(time_of(T0 + 10)), "the mark's time");
        assert_eq!(detail.viewers.len(), 1);
        assert_eq!(detail.viewers[0].email, "alice@example.com");
        let detail = store.callback_detail(alice, old[1]).await.unwrap().unwrap();
        assert_eq!(
            detail.viewed_at,
            Some(time_of(T0)),
            "opened before the mark"
        );
        // Opening a marked callback changes nothing and adds no row.
        assert!(store.mark_viewed(alice, old[3], T0 + 30).await.unwrap());
        assert_eq!(view_rows(&store, alice).await, 1);

        // Bob's state is his own.
        assert_eq!(store.unread_count(bob).await.unwrap(), 5);
        assert_eq!(history_ids(&store, bob, Some(false)).await.len(), 5);

        // A callback committed after the click is unviewed everywhere.
        let fresh = add(&store, "fresh").await;
        assert_eq!(store.unread_count(alice).await.unwrap(), 1);
        let poll = store.poll(alice, None, 20).await.unwrap();
        assert_eq!(poll.unviewed_count, Some(1));
        assert_eq!(poll.items.len(), 1);
        assert_eq!(poll.items[0].id, fresh);
        let (items, _) = store
            .feed_after(alice, FeedCursor(0), store.feed_head().await.unwrap(), 20)
            .await
            .unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].1.id, fresh);
        assert_eq!(history_ids(&store, alice, Some(false)).await, vec![fresh]);
        let detail = store.callback_detail(alice, fresh).await.unwrap().unwrap();
        assert_eq!(detail.viewed_at, None);
        assert!(detail.viewers.is_empty());

        assert!(store.mark_viewed(alice, fresh, T0 + 40).await.unwrap());
        assert_eq!(store.unread_count(alice).await.unwrap(), 0);
        assert_eq!(
            store.mark_all_viewed(alice, T0 + 50).await.unwrap(),
            0,
            "the one new callback was opened already"
        );
        assert_eq!(store.unread_count(bob).await.unwrap(), 6);
    }

    /// The unread count takes whichever index range is shorter: the
    /// callbacks above the mark, or the total less those at or below it.
    /// Both give the same answer, with view rows above the mark subtracted
    /// and those below it ignored.
    #[tokio::test]
    async fn the_unread_count_is_exact_on_either_side_of_the_mark() {
        let database = TestDatabase::fresh().await;
        let store = Store::open(&database.url).await.unwrap();
        let carol = user(&store, "carol@example.com").await;
        // Many below the mark, few above: counted above the mark.
        let mut ids = Vec::new();
        for n in 0..12 {
            ids.push(add(&store, &format!("a-{n}")).await);
        }
        store.mark_viewed(carol, ids[0], T0).await.unwrap();
        store.mark_all_viewed(carol, T0).await.unwrap();
        let above: Vec<Uuid> = [
            add(&store, "b-0").await,
            add(&store, "b-1").await,
            add(&store, "b-2").await,
        ]
        .into();
        store.mark_viewed(carol, above[1], T0).await.unwrap();
        assert_eq!(store.unread_count(carol).await.unwrap(), 2);
        // Now many above the mark: counted as the total less those below.
        for n in 0..30 {
            add(&store, &format!("c-{n}")).await;
        }
        assert_eq!(store.unread_count(carol).await.unwrap(), 32);
        assert_eq!(history_ids(&store, carol, Some(false)).await.len(), 32);
        // Retention removes the oldest: still exact.
        on_db!(store.db(), |pool, dialect| {
            sqlx::query("DELETE FROM llm_callbacks WHERE id = $1 OR id = $2")
                .bind(ids[0])
                .bind(above[0])
                .execute(pool)
                .await
                .unwrap();
        });
        assert_eq!(store.unread_count(carol).await.unwrap(), 31);
    }

    /// A view row written without its feed position (a node of the previous
    /// release, a script) gets it from a trigger, so the count stays exact.
    #[tokio::test]
    async fn view_rows_written_without_a_position_still_count() {
        let database = TestDatabase::fresh().await;
        let store = Store::open(&database.url).await.unwrap();
        let dave = user(&store, "dave@example.com").await;
        let first = add(&store, "x-0").await;
        add(&store, "x-1").await;
        on_db!(store.db(), |pool, dialect| {
            sqlx::query(
                "INSERT INTO llm_callback_views (callback_id, admin_user_id, viewed_at)
                 VALUES ($1, $2, $3)",
            )
            .bind(first)
            .bind(dave)
            .bind(DbTime(T0))
            .execute(pool)
            .await
            .unwrap();
        });
        assert_eq!(store.unread_count(dave).await.unwrap(), 1);
        store.mark_all_viewed(dave, T0).await.unwrap();
        add(&store, "x-2").await;
        assert_eq!(store.unread_count(dave).await.unwrap(), 1);
    }

    /// Reverting the migration turns marks back into one view row per
    /// callback, so the previous release shows the same viewed state.
    #[tokio::test]
    async fn reverting_the_marks_turns_them_into_view_rows() {
        let database = TestDatabase::fresh().await;
        let store = Store::open(&database.url).await.unwrap();
        let frank = user(&store, "frank@example.com").await;
        let opened = add(&store, "r-0").await;
        add(&store, "r-1").await;
        add(&store, "r-2").await;
        store.mark_viewed(frank, opened, T0).await.unwrap();
        store.mark_all_viewed(frank, T0 + 5).await.unwrap();
        add(&store, "r-3").await;
        on_db!(store.db(), |pool, dialect| {
            let (migrator, before_marks) = match dialect {
                Dialect::Sqlite => (&super::super::SQLITE_MIGRATOR, 20261122000007),
                Dialect::Postgres => (&super::super::POSTGRES_MIGRATOR, 20261122000002),
            };
            migrator.undo(pool, before_marks).await.unwrap();
            let count: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM llm_callback_views WHERE admin_user_id = $1",
            )
            .bind(frank)
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!(count, 3, "the opened one and the two under the mark");
            migrator.run(pool).await.unwrap();
        });
        // Up again: the rows carry their positions, the count is exact.
        assert_eq!(store.unread_count(frank).await.unwrap(), 1);
    }

    /// Each click with something new adds a mark; only the last
    /// [`VIEW_MARKS_KEPT`] stay, and a callback under a removed one counts
    /// as viewed at the next kept one.
    #[tokio::test]
    async fn marks_per_user_stay_bounded() {
        let database = TestDatabase::fresh().await;
        let store = Store::open(&database.url).await.unwrap();
        let erin = user(&store, "erin@example.com").await;
        let first = add(&store, "m-0").await;
        let clicks = VIEW_MARKS_KEPT + 4;
        for n in 0..clicks {
            assert_eq!(store.mark_all_viewed(erin, T0 + n).await.unwrap(), 1);
            add(&store, &format!("m-{}", n + 1)).await;
        }
        let marks: i64 = on_db!(store.db(), |pool, dialect| {
            sqlx::query_scalar("SELECT count(*) FROM llm_callback_view_marks WHERE user_id = $1")
                .bind(erin)
                .fetch_one(pool)
                .await
                .unwrap()
        });
        assert_eq!(marks, VIEW_MARKS_KEPT);
        let detail = store.callback_detail(erin, first).await.unwrap().unwrap();
        assert_eq!(
            detail.viewed_at,
            Some(time_of(T0 + clicks - VIEW_MARKS_KEPT))
        );
        assert_eq!(store.unread_count(erin).await.unwrap(), 1);
    }

    #[test]
    fn limits_default_to_20_and_are_capped_at_100() {
        assert_eq!(clamp_limit(None), 20);
        assert_eq!(clamp_limit(Some(0)), 1);
        assert_eq!(clamp_limit(Some(5000)), 100);
    }

    #[test]
    fn like_wildcards_in_search_text_are_escaped() {
        assert_eq!(escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
    }
}
