//! The reads and view-marks behind the admin API: poll, detail, history.
//!
//! Every list is keyset-paginated on `(created_at, id)`, served by the
//! `llm_callbacks_created_at` index, so a page costs the same at any depth.

use sqlx::{Database, Encode, QueryBuilder, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{DbTime, Dialect, Store, StoreError, StoreRow, on_db};
use crate::cursor::{FeedCursor, PollCursor};
use crate::dto::{
    CallbackDetail, CallbackSummary, CallbackViewer, HistoryFilter, HistoryItem, HistoryPage,
    PollPage,
};

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

pub(super) fn time_of(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn micros_of(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// How far back a client without a cursor looks for its newest unviewed
/// callbacks.
pub const BACKLOG_WINDOW: i64 = 10_000;

fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_foreign_key_violation())
}

fn summary_of(row: &impl StoreRow) -> Result<CallbackSummary, sqlx::Error> {
    Ok(CallbackSummary {
        id: row.uuid("id")?,
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

    /// The live feed for `user` (see the README, "The live feed").
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
                "SELECT c.id, c.callback_id, c.workflow_name, c.event_type, c.created_at,
                        c.signature_valid, c.feed_seq
                 FROM llm_callbacks c INDEXED BY llm_callbacks_feed
                 WHERE c.feed_seq > $1 AND c.feed_seq <= $2
                   AND NOT EXISTS (SELECT 1 FROM llm_callback_views v
                                   WHERE v.callback_id = c.id AND v.admin_user_id = $3)
                 ORDER BY c.feed_seq
                 LIMIT $4",
                "SELECT c.id, c.callback_id, c.workflow_name, c.event_type, c.created_at,
                        c.signature_valid, c.feed_seq
                 FROM llm_callbacks c
                 WHERE c.feed_seq > $1 AND c.feed_seq <= $2
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
                "SELECT c.id, c.callback_id, c.workflow_name, c.event_type, c.created_at,
                        c.signature_valid
                 FROM llm_callbacks c INDEXED BY llm_callbacks_feed
                 WHERE c.feed_seq <= $1 AND c.feed_seq > $1 - $4
                   AND NOT EXISTS (SELECT 1 FROM llm_callback_views v
                                   WHERE v.callback_id = c.id AND v.admin_user_id = $2)
                 ORDER BY c.feed_seq DESC
                 LIMIT $3",
                "SELECT c.id, c.callback_id, c.workflow_name, c.event_type, c.created_at,
                        c.signature_valid
                 FROM llm_callbacks c
                 WHERE c.feed_seq <= $1 AND c.feed_seq > $1 - $4
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
            let Some(row) = sqlx::query(
                "SELECT c.id, c.callback_id, c.external_job_id, c.workflow_name, c.event_type,
                        c.status, c.error_message, c.signature_valid, c.signature_scheme,
                        c.signature_header, c.verified_at, c.payload, c.delivery_count,
                        c.created_at, c.updated_at,
                        (SELECT viewed_at FROM llm_callback_views v
                          WHERE v.callback_id = c.id AND v.admin_user_id = $2) AS my_viewed_at
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
                "SELECT u.email, v.viewed_at FROM llm_callback_views v
                 JOIN users u ON u.id = v.admin_user_id
                 WHERE v.callback_id = $1 ORDER BY v.viewed_at",
            )
            .bind(id)
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
    /// Returns false when the callback does not exist.
    pub async fn mark_viewed(&self, user: Uuid, id: Uuid, now_us: i64) -> Result<bool, StoreError> {
        on_db!(self.db(), |pool, dialect| {
            let result = match sqlx::query(
                "INSERT INTO llm_callback_views (callback_id, admin_user_id, viewed_at)
                 SELECT id, $2, $3 FROM llm_callbacks WHERE id = $1
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

    /// Marks every callback viewed by `user`; returns how many were new.
    pub async fn mark_all_viewed(&self, user: Uuid, now_us: i64) -> Result<u64, StoreError> {
        let result = on_db!(self.db(), |pool, dialect| {
            sqlx::query(
                "INSERT INTO llm_callback_views (callback_id, admin_user_id, viewed_at)
                 SELECT c.id, $1, $2 FROM llm_callbacks c WHERE true
                 ON CONFLICT (callback_id, admin_user_id) DO NOTHING",
            )
            .bind(user)
            .bind(DbTime(now_us))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(result)
    }

    /// Callbacks `user` has not viewed.
    pub async fn unread_count(&self, user: Uuid) -> Result<i64, StoreError> {
        // The total is kept by triggers (a lookup at any table size); the
        // views are counted from the user's index entries.
        let (total, viewed): (i64, i64) = on_db!(self.db(), |pool, dialect| {
            sqlx::query_as(
                "SELECT (SELECT total FROM callback_count WHERE id = 1),
                        (SELECT count(*) FROM llm_callback_views WHERE admin_user_id = $1)",
            )
            .bind(user)
            .fetch_one(pool)
            .await?
        });
        Ok((total - viewed).max(0))
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
        "SELECT c.id, c.callback_id, c.external_job_id, c.event_type, c.workflow_name, c.created_at,
                c.payload_preview, c.signature_valid, ",
    );
    if with_payload {
        query.push("c.payload, ");
    }
    // A scalar lookup, not EXISTS: PostgreSQL would turn an EXISTS here into
    // a hash of all the user's views, built before the first row of a page.
    query.push(
        "(SELECT 1 FROM llm_callback_views v
           WHERE v.callback_id = c.id AND v.admin_user_id = ",
    );
    query.push_bind(user);
    query.push(") IS NOT NULL AS viewed FROM llm_callbacks c WHERE 1 = 1");
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
        query.push(if viewed {
            " AND EXISTS"
        } else {
            " AND NOT EXISTS"
        });
        query.push(" (SELECT 1 FROM llm_callback_views v2 WHERE v2.callback_id = c.id AND v2.admin_user_id = ");
        query.push_bind(user).push(")");
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
    Ok(HistoryItem {
        id: row.uuid("id")?,
        callback_id: row.text("callback_id")?,
        external_job_id: row.opt_text("external_job_id")?,
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
    Ok(CallbackDetail {
        id: row.uuid("id")?,
        callback_id: row.text("callback_id")?,
        external_job_id: row.opt_text("external_job_id")?,
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
