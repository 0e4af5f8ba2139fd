//! The types that travel between server and browser (JSON via serde).
//!
//! Field names are part of the HTTP contract (docs/api.md, "Admin API").

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

fn builtin_source() -> String {
    "llm-callback".to_owned()
}

/// One row of a poll answer: just enough to raise a toast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackSummary {
    pub id: Uuid,
    /// The source it arrived at (`llm-callback` for the built-in one).
    #[serde(default = "builtin_source")]
    pub source: String,
    pub callback_id: String,
    pub workflow_name: Option<String>,
    pub event_type: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub signature_valid: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollPage {
    pub items: Vec<CallbackSummary>,
    /// Where the next poll starts (a position in commit order).
    pub next_cursor: Option<String>,
    /// Without a cursor: how many callbacks this user has not viewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unviewed_count: Option<i64>,
}

/// Who this server is, shown in the footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub version: String,
    pub uptime_secs: u64,
}

/// Everything about one callback, for the detail window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackDetail {
    pub id: Uuid,
    #[serde(default = "builtin_source")]
    pub source: String,
    pub callback_id: String,
    pub external_job_id: Option<String>,
    /// The job or session it belongs to, as the source's mapping found it.
    #[serde(default)]
    pub group: Option<String>,
    pub workflow_name: Option<String>,
    pub event_type: Option<String>,
    pub status: String,
    pub error_message: Option<String>,
    pub signature_valid: bool,
    pub signature_scheme: Option<String>,
    pub signature_header: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    /// The payload exactly as received, as JSON.
    pub payload: serde_json::Value,
    /// The payload's text byte for byte (numbers beyond f64 precision and key
    /// order intact), for "Copy JSON".
    pub payload_text: String,
    pub delivery_count: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the asking user viewed it, if they did.
    #[serde(with = "time::serde::rfc3339::option")]
    pub viewed_at: Option<OffsetDateTime>,
    /// Everyone who viewed it, first viewer first.
    pub viewers: Vec<CallbackViewer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackViewer {
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub viewed_at: OffsetDateTime,
}

/// One row of the history table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    pub id: Uuid,
    #[serde(default = "builtin_source")]
    pub source: String,
    pub callback_id: String,
    pub external_job_id: Option<String>,
    /// The job or session it belongs to.
    #[serde(default)]
    pub group: Option<String>,
    pub event_type: Option<String>,
    pub workflow_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub payload_preview: String,
    pub signature_valid: bool,
    pub viewed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub items: Vec<HistoryItem>,
    /// Older rows: pass as `before`.
    pub next_cursor: Option<String>,
    /// Newer rows: pass as `after`.
    pub prev_cursor: Option<String>,
    /// Callbacks the asking user has not viewed, over everything.
    pub unread_count: i64,
}

/// History filters; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryFilter {
    #[serde(default)]
    pub source: Option<String>,
    /// The job or session (`group`), exactly.
    #[serde(default)]
    pub group: Option<String>,
    pub event_type: Option<String>,
    pub workflow_name: Option<String>,
    pub signature_valid: Option<bool>,
    pub viewed: Option<bool>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub from: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
    /// Text searched in the job id and the error message.
    pub q: Option<String>,
}

/// One row of the delivery audit log: a webhook request and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryItem {
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub request_id: Option<String>,
    /// `accepted`, `duplicate`, `stored_unsigned` (flag mode),
    /// `invalid_signature`, `missing_signature`,
    /// `stale_timestamp`, `too_large`, `malformed`, `body_timeout`,
    /// `overloaded` or `error`.
    pub outcome: String,
    pub http_status: u16,
    pub processing_us: i64,
    pub body_bytes: i64,
    pub remote_addr: Option<String>,
    pub callback_id: Option<String>,
    /// The stored callback's `id`, when there is one.
    pub llm_callback_id: Option<Uuid>,
    pub signature_scheme: Option<String>,
    pub secret_label: Option<String>,
    /// The source it was sent to; `unknown` for a name that is no source.
    #[serde(default)]
    pub source: Option<String>,
    /// 1, or how many unauthenticated requests of one address, outcome and
    /// minute this row stands for.
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryItem>,
    /// Older rows: pass as `before`.
    pub next_cursor: Option<String>,
    /// Newer rows: pass as `after`.
    pub prev_cursor: Option<String>,
}

/// Delivery filters; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryFilter {
    pub outcome: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub from: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
}

/// Processing time percentiles in milliseconds (`None` without requests).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// Requests of one interval of the summary's chart, by outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryBucket {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    pub by_outcome: std::collections::BTreeMap<String, i64>,
}

/// The deliveries tab's summary strip for one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverySummary {
    /// `1h`, `24h` or `7d`.
    pub window: String,
    pub total: i64,
    pub by_outcome: std::collections::BTreeMap<String, i64>,
    /// Requests per source (`unknown`: names that are no source).
    #[serde(default)]
    pub by_source: std::collections::BTreeMap<String, i64>,
    /// Requests whose signature was missing, invalid or stale (rejected, or
    /// stored unsigned in flag mode).
    pub invalid_signature: i64,
    pub processing_ms: Percentiles,
    /// Length of each chart interval.
    pub bucket_secs: i64,
    /// The chart: one entry per interval, oldest first.
    pub buckets: Vec<DeliveryBucket>,
}
