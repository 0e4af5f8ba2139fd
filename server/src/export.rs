//! `GET /api/callbacks/export`: the history's current filters as a
//! download, streamed page by page, so a million rows never sit in memory.
//!
//! JSON is an array of records whose `payload` is the stored text byte for
//! byte; NDJSON puts one record on each line (the payload with its
//! insignificant whitespace removed, so it fits on the line); CSV has the
//! history columns and the payload, with cells that a spreadsheet would run
//! as a formula neutralised.

use app::auth::server::reader;
use app::callbacks::server::HistoryQuery;
use app::error::AppError;
use app::state::AppState;
use std::collections::VecDeque;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use http::header;
use inbox_core::cursor::PollCursor;
use inbox_core::dto::{HistoryFilter, HistoryItem};
use inbox_core::micros::unix_micros as micros;
use inbox_core::store::{EXPORT_GROUP_BYTES, ExportRow, Store, StoreError, payload_group_len};
use tower_sessions::Session;
use uuid::Uuid;

/// History rows read per query (without their payloads).
const PAGE: u32 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Ndjson,
    Csv,
}

impl ExportFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "" | "ndjson" | "jsonl" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    #[serde(flatten)]
    filter: HistoryQuery,
}

pub async fn export_callbacks(
    State(state): State<AppState>,
    session: Session,
    headers: http::HeaderMap,
    Query(query): Query<ExportQuery>,
) -> Response {
    // A signed-in session, or an API token (read-only, as its user).
    let user = match reader(&headers, &session, &state).await {
        Ok(Some(user)) => user,
        Ok(None) => return AppError::Unauthorized.into_response(),
        Err(err) => return AppError::internal(err).into_response(),
    };
    let Some(format) = ExportFormat::parse(query.format.as_deref().unwrap_or_default()) else {
        return AppError::BadRequest("format must be json, ndjson or csv".to_owned())
            .into_response();
    };
    let filter = match query.filter.into_filter() {
        Ok(filter) => filter,
        Err(err) => return err.into_response(),
    };
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"callbacks-{stamp}.{}\"",
                    format.extension()
                ),
            ),
        ],
        Body::from_stream(export_stream(state.store.clone(), user.id, filter, format)),
    )
        .into_response()
}

/// The export as chunks of bytes: the header, one chunk per record, the
/// footer. Rows are read a page at a time without payloads, and payloads
/// in groups of at most [`EXPORT_GROUP_BYTES`], only when the client has
/// taken what came before: hyper asks for the next chunk only once the
/// previous one is written, so a client that stops reading stops the reads
/// and holds about one group in memory.
pub fn export_stream(
    store: Store,
    user: Uuid,
    filter: HistoryFilter,
    format: ExportFormat,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    let start = ExportProgress {
        store,
        user,
        filter,
        format,
        before: None,
        keys: VecDeque::new(),
        ready: VecDeque::new(),
        rows: 0,
        stage: Stage::Header,
    };
    stream::unfold(start, |mut progress| async move {
        match progress.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), progress)),
            Ok(None) => None,
            Err(err) => {
                tracing::error!(error = %err, "export stopped");
                progress.stage = Stage::Done;
                Some((Err(std::io::Error::other(err.to_string())), progress))
            }
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    /// More pages of rows may follow.
    Rows,
    /// Every page is read; what is queued is the rest.
    LastPage,
    Done,
}

struct ExportProgress {
    store: Store,
    user: Uuid,
    filter: HistoryFilter,
    format: ExportFormat,
    /// Where the next page of rows starts.
    before: Option<PollCursor>,
    /// Rows of the current page whose payloads are not read yet, with their sizes.
    keys: VecDeque<(HistoryItem, i64)>,
    /// Rows with their payloads, ready to be written.
    ready: VecDeque<ExportRow>,
    rows: u64,
    stage: Stage,
}

impl ExportProgress {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        loop {
            if self.stage == Stage::Header {
                self.stage = Stage::Rows;
                return Ok(Some(header_of(self.format).to_vec()));
            }
            if let Some(row) = self.ready.pop_front() {
                let mut chunk = Vec::with_capacity(row.payload.len() + 512);
                write_record(&mut chunk, self.format, &row, self.rows == 0);
                self.rows += 1;
                return Ok(Some(chunk));
            }
            if !self.keys.is_empty() {
                self.read_payload_group().await?;
                continue;
            }
            match self.stage {
                Stage::Rows => self.read_page().await?,
                Stage::LastPage => {
                    self.stage = Stage::Done;
                    return Ok(Some(footer_of(self.format).to_vec()));
                }
                Stage::Header | Stage::Done => return Ok(None),
            }
        }
    }

    async fn read_page(&mut self) -> Result<(), StoreError> {
        let page = self
            .store
            .export_keys(self.user, &self.filter, self.before, PAGE)
            .await?;
        if page.len() < PAGE as usize {
            self.stage = Stage::LastPage;
        }
        self.before = page
            .last()
            .map(|(item, _)| PollCursor::new(micros(item.created_at), item.id));
        self.keys.extend(page);
        Ok(())
    }

    /// Reads the payloads of the next rows, as many as fit in one group.
    async fn read_payload_group(&mut self) -> Result<(), StoreError> {
        let take = payload_group_len(self.keys.iter().map(|(_, size)| *size), EXPORT_GROUP_BYTES);
        let group: Vec<(HistoryItem, i64)> = self.keys.drain(..take).collect();
        let ids: Vec<Uuid> = group.iter().map(|(item, _)| item.id).collect();
        let mut payloads = self
            .store
            .export_payloads(&ids)
            .await?
            .into_iter()
            .peekable();
        for (item, _) in group {
            // A row deleted since its page was read (retention) is left out.
            if payloads.peek().is_some_and(|(id, _)| *id == item.id)
                && let Some((_, payload)) = payloads.next()
            {
                self.ready.push_back(ExportRow { item, payload });
            }
        }
        Ok(())
    }
}

const CSV_COLUMNS: &str = "id,source,callback_id,external_job_id,group,event_type,workflow_name,created_at,signature_valid,viewed,payload_preview,payload\r\n";

fn header_of(format: ExportFormat) -> &'static [u8] {
    match format {
        ExportFormat::Json => b"[",
        ExportFormat::Ndjson => b"",
        ExportFormat::Csv => CSV_COLUMNS.as_bytes(),
    }
}

fn footer_of(format: ExportFormat) -> &'static [u8] {
    match format {
        ExportFormat::Json => b"]\n",
        ExportFormat::Ndjson | ExportFormat::Csv => b"",
    }
}

/// The history fields as a JSON object without its closing brace, so the
/// payload's own text can follow.
fn json_fields(item: &HistoryItem) -> String {
    let mut fields = serde_json::to_string(item).unwrap_or_else(|_| "{}".to_owned());
    fields.pop();
    fields
}

fn write_record(out: &mut Vec<u8>, format: ExportFormat, row: &ExportRow, first: bool) {
    match format {
        ExportFormat::Json => {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(b"\n");
            out.extend_from_slice(json_fields(&row.item).as_bytes());
            out.extend_from_slice(b",\"payload\":");
            out.extend_from_slice(row.payload.as_bytes());
            out.push(b'}');
        }
        ExportFormat::Ndjson => {
            out.extend_from_slice(json_fields(&row.item).as_bytes());
            out.extend_from_slice(b",\"payload\":");
            out.extend_from_slice(minify_json(&row.payload).as_bytes());
            out.extend_from_slice(b"}\n");
        }
        ExportFormat::Csv => {
            let item = &row.item;
            let created = item
                .created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let cells = [
                item.id.to_string(),
                item.source.clone(),
                item.callback_id.clone(),
                item.external_job_id.clone().unwrap_or_default(),
                item.group.clone().unwrap_or_default(),
                item.event_type.clone().unwrap_or_default(),
                item.workflow_name.clone().unwrap_or_default(),
                created,
                item.signature_valid.to_string(),
                item.viewed.to_string(),
                item.payload_preview.clone(),
                row.payload.clone(),
            ];
            let mut writer = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::new());
            let _ = writer.write_record(
                cells
                    .iter()
                    .map(|cell| neutralize_formula(cell).into_owned()),
            );
            if let Ok(bytes) = writer.into_inner() {
                out.extend_from_slice(&bytes);
            }
        }
    }
}

/// A cell a spreadsheet would evaluate (`=`, `+`, `-`, `@`, or a tab or
/// carriage return first) gets a leading `'`, so it stays text.
pub fn neutralize_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// Valid JSON text without whitespace outside strings (one line).
pub fn minify_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for ch in text.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if ch == '"' {
            in_string = true;
            out.push(ch);
        } else if !matches!(ch, ' ' | '\t' | '\n' | '\r') {
            out.push(ch);
        }
    }
    out
}

/// Writes the whole export to `out` (the CLI's `export`).
pub async fn export_to(
    store: Store,
    user: Uuid,
    filter: HistoryFilter,
    format: ExportFormat,
    out: &mut (impl std::io::Write + Send),
) -> std::io::Result<u64> {
    use futures_util::StreamExt;
    let stream = export_stream(store, user, filter, format);
    futures_util::pin_mut!(stream);
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for hostile in ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralize_formula(hostile).starts_with('\''), "{hostile:?}");
        }
        assert_eq!(neutralize_formula("job_1"), "job_1");
        assert_eq!(neutralize_formula(""), "");
    }

    #[test]
    fn minified_json_keeps_strings_and_numbers_exact() {
        let text = "{\n  \"a b\": \"x \\\" y\\n\",\n  \"n\": 12345678901234567890123 }";
        assert_eq!(
            minify_json(text),
            "{\"a b\":\"x \\\" y\\n\",\"n\":12345678901234567890123}"
        );
    }

    #[test]
    fn the_formats_are_named_as_people_type_them() {
        assert_eq!(ExportFormat::parse("CSV"), Some(ExportFormat::Csv));
        assert_eq!(ExportFormat::parse("jsonl"), Some(ExportFormat::Ndjson));
        assert_eq!(ExportFormat::parse("xml"), None);
    }
}
