//! Export reads with memory bounded by bytes, not rows.
//!
//! A page of history rows is read without payloads; the payloads follow in
//! groups of at most [`EXPORT_GROUP_BYTES`] (or a single larger one), so an
//! export holds about one group at a time whatever the payload sizes. Each
//! read borrows a pool connection only for its own query: a client that
//! stops reading holds no connection.

use sqlx::QueryBuilder;

use super::dashboard::{history_item, history_query};
use super::{DbTime, Store, StoreError, StoreRow, on_db};
use crate::cursor::PollCursor;
use crate::dto::{HistoryFilter, HistoryItem};

/// Payload bytes read by one query of an export.
pub const EXPORT_GROUP_BYTES: i64 = 1 << 20;

/// One exported callback: the history fields and the payload's exact text.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub item: HistoryItem,
    pub payload: String,
}

/// How many of the leading payloads, of the sizes given, one read takes:
/// as many as fit in `max_bytes` together, and at least one.
pub fn payload_group_len(sizes: impl IntoIterator<Item = i64>, max_bytes: i64) -> usize {
    let mut take = 0;
    let mut bytes = 0i64;
    for size in sizes {
        if take > 0 && bytes.saturating_add(size) > max_bytes {
            break;
        }
        bytes = bytes.saturating_add(size);
        take += 1;
    }
    take
}

impl Store {
    /// Up to `limit` history rows matching `filter` older than `before`,
    /// newest first, each with its payload's size in bytes.
    pub async fn export_keys(
        &self,
        user: uuid::Uuid,
        filter: &HistoryFilter,
        before: Option<PollCursor>,
        limit: u32,
    ) -> Result<Vec<(HistoryItem, i64)>, StoreError> {
        let items: Vec<HistoryItem> = on_db!(self.db(), |pool, dialect| {
            let mut query = history_query(dialect, user, filter, false);
            if let Some(cursor) = before {
                query
                    .push(" AND (c.created_at, c.id) < (")
                    .push_bind(DbTime(cursor.created_at_us))
                    .push(", ")
                    .push_bind(cursor.id)
                    .push(")");
            }
            query.push(" ORDER BY c.created_at DESC, c.id DESC LIMIT ");
            query.push_bind(i64::from(limit));
            let rows = query.build().fetch_all(pool).await?;
            rows.iter()
                .map(history_item)
                .collect::<Result<_, sqlx::Error>>()?
        });
        let ids: Vec<uuid::Uuid> = items.iter().map(|item| item.id).collect();
        // `octet_length` reads the stored length (the record header in
        // SQLite, the TOAST header in PostgreSQL), not the payload itself.
        let sizes: Vec<(uuid::Uuid, i64)> = on_db!(self.db(), |pool, dialect| {
            if ids.is_empty() {
                Vec::new()
            } else {
                let mut query = QueryBuilder::new(
                    "SELECT id, CAST(octet_length(payload) AS BIGINT) AS bytes FROM llm_callbacks WHERE id IN (",
                );
                let mut list = query.separated(", ");
                for id in &ids {
                    list.push_bind(*id);
                }
                query.push(")");
                let rows = query.build().fetch_all(pool).await?;
                rows.iter()
                    .map(|row| Ok((row.uuid("id")?, row.int("bytes")?)))
                    .collect::<Result<_, sqlx::Error>>()?
            }
        });
        let size_of = |id: uuid::Uuid| {
            sizes
                .iter()
                .find(|(sized, _)| *sized == id)
                .map_or(0, |(_, bytes)| *bytes)
        };
        Ok(items
            .into_iter()
            .map(|item| {
                let bytes = size_of(item.id);
                (item, bytes)
            })
            .collect())
    }

    /// The stored payload text of each of `ids`, in the order given; a
    /// callback deleted meanwhile (retention) is left out.
    pub async fn export_payloads(
        &self,
        ids: &[uuid::Uuid],
    ) -> Result<Vec<(uuid::Uuid, String)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: Vec<(uuid::Uuid, String)> = on_db!(self.db(), |pool, dialect| {
            let mut query =
                QueryBuilder::new("SELECT id, payload FROM llm_callbacks WHERE id IN (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            query.push(")");
            let rows = query.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| Ok((row.uuid("id")?, row.text("payload")?)))
                .collect::<Result<_, sqlx::Error>>()?
        });
        found.sort_by_key(|(id, _)| ids.iter().position(|wanted| wanted == id));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_groups_stay_within_the_byte_bound() {
        assert_eq!(payload_group_len([], 100), 0);
        assert_eq!(payload_group_len([10, 20, 30], 100), 3);
        assert_eq!(payload_group_len([60, 60, 60], 100), 1);
        // A payload larger than the bound is read alone.
        assert_eq!(payload_group_len([500, 10], 100), 1);
        assert_eq!(payload_group_len([10, 500, 10], 100), 1);
        assert_eq!(payload_group_len([50, 50, 1], 100), 2);
    }
}
