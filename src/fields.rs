//! Correlation fields pulled out of a callback payload into indexed columns.
//!
//! Payload fields are not guaranteed, so every rule has a fallback and every
//! value is bounded. Text is stored verbatim: escaping is the UI's job.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Characters of the raw body kept for history lists.
pub const PREVIEW_CHARS: usize = 200;
/// Bound for ids, names and event types (they land in indexed columns).
pub(crate) const MAX_NAME_CHARS: usize = 255;
/// Bound for error messages: enough to read, not a stack dump.
pub(crate) const MAX_ERROR_CHARS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    Completed,
    Failed,
    InProgress,
    Unknown,
}

impl CallbackStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::InProgress => "in_progress",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "completed" => Some(Self::Completed),
            "failed" => Some(Self::Failed),
            "in_progress" => Some(Self::InProgress),
            "unknown" => Some(Self::Unknown),
            _ => None,
        }
    }
}

/// Status implied by an event name, judged by its last dot-separated word.
///
/// A completed *step* (`llm.step.completed`) is one step of a workflow that is
/// still running, so it is in progress, not completed.
pub fn status_from_event(event: Option<&str>) -> CallbackStatus {
    let Some(event) = event.map(str::trim).filter(|e| !e.is_empty()) else {
        return CallbackStatus::Unknown;
    };
    let mut words = event.rsplit('.');
    let last = words.next().unwrap_or_default();
    let is_step = words.next().is_some_and(|w| w.eq_ignore_ascii_case("step"));
    match status_word(last) {
        CallbackStatus::Completed if is_step => CallbackStatus::InProgress,
        status => status,
    }
}

/// Maps one status word (`completed`, `errored`, `running`, ...) to a status.
pub(crate) fn status_word(word: &str) -> CallbackStatus {
    const COMPLETED: &[&str] = &["completed", "succeeded", "success", "succeed", "done"];
    const FAILED: &[&str] = &["failed", "error", "errored", "failure"];
    const IN_PROGRESS: &[&str] = &[
        "started",
        "progress",
        "in_progress",
        "running",
        "queued",
        "pending",
    ];
    let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(word));
    if is(COMPLETED) {
        CallbackStatus::Completed
    } else if is(FAILED) {
        CallbackStatus::Failed
    } else if is(IN_PROGRESS) {
        CallbackStatus::InProgress
    } else {
        CallbackStatus::Unknown
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackFields {
    pub external_job_id: Option<String>,
    pub workflow_name: Option<String>,
    pub event_type: Option<String>,
    pub status: CallbackStatus,
    pub error_message: Option<String>,
    pub payload_preview: String,
}

/// Extracts the correlation fields of a callback.
///
/// `payload` is the parsed body (empty when the body is not a JSON object),
/// `event_header` the `X-Webhook-Event` header, `body_text` the raw body.
pub fn extract_fields(
    payload: &Map<String, Value>,
    event_header: Option<&str>,
    body_text: &str,
) -> CallbackFields {
    let event = event_name(payload, event_header);
    let status = match status_from_event(event.as_deref()) {
        // An unknown event still tells us something when the payload says `status`.
        CallbackStatus::Unknown => payload
            .get("status")
            .and_then(Value::as_str)
            .map_or(CallbackStatus::Unknown, |s| status_word(s.trim())),
        status => status,
    };
    CallbackFields {
        external_job_id: job_id(payload).map(|id| truncate_chars(&id, MAX_NAME_CHARS)),
        workflow_name: first_text(payload, &["workflow_name", "workflow"])
            .map(|name| truncate_chars(name, MAX_NAME_CHARS)),
        event_type: event.map(|e| truncate_chars(&e, MAX_NAME_CHARS)),
        status,
        error_message: error_message(payload).map(|m| truncate_chars(m, MAX_ERROR_CHARS)),
        payload_preview: payload_preview(body_text),
    }
}

/// The first [`PREVIEW_CHARS`] characters of the body (never a split character).
pub fn payload_preview(body_text: &str) -> String {
    truncate_chars(body_text, PREVIEW_CHARS)
}

/// The payload's `job_id`: a non-empty string, or a number as its JSON text.
pub(crate) fn job_id(payload: &Map<String, Value>) -> Option<Cow<'_, str>> {
    payload.get("job_id").and_then(scalar_text)
}

/// The event name: payload `event`, else `event_type`, else the header.
pub(crate) fn event_name<'a>(
    payload: &'a Map<String, Value>,
    event_header: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    first_text(payload, &["event", "event_type"])
        .or_else(|| non_empty(event_header?))
        .map(Cow::Borrowed)
}

/// A non-empty trimmed string, or a number rendered as JSON; anything else
/// (objects, arrays, booleans, null) is not an identifier.
pub(crate) fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => non_empty(s).map(Cow::Borrowed),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// The first of `keys` holding a non-empty string.
fn first_text<'a>(payload: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|key| payload.get(*key)?.as_str().and_then(non_empty))
}

/// `error_message`, else `error` as a string, else `error.message`.
fn error_message(payload: &Map<String, Value>) -> Option<&str> {
    first_text(payload, &["error_message", "error"]).or_else(|| {
        payload
            .get("error")?
            .get("message")?
            .as_str()
            .and_then(non_empty)
    })
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// At most `max` characters, cut on a character boundary.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => s[..end].to_owned(),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn extract(value: Value, header: Option<&str>) -> CallbackFields {
        let text = value.to_string();
        extract_fields(&object(value), header, &text)
    }

    #[test]
    fn typical_payload_is_extracted() {
        let fields = extract(
            json!({
                "job_id": "job_8f2c", "event": "workflow.failed", "workflow_name": "summarize-pdf",
                "status": "failed", "error_message": "context length exceeded",
                "result": {"pages": 3}, "timestamp": "2026-11-21T10:00:00Z"
            }),
            None,
        );
        assert_eq!(fields.external_job_id.as_deref(), Some("job_8f2c"));
        assert_eq!(fields.workflow_name.as_deref(), Some("summarize-pdf"));
        assert_eq!(fields.event_type.as_deref(), Some("workflow.failed"));
        assert_eq!(fields.status, CallbackStatus::Failed);
        assert_eq!(
            fields.error_message.as_deref(),
            Some("context length exceeded")
        );
    }

    #[test]
    fn numeric_job_id_is_kept_as_its_json_text() {
        let fields = extract(json!({"job_id": 12345}), None);
        assert_eq!(fields.external_job_id.as_deref(), Some("12345"));
        let fields = extract(json!({"job_id": 1.5}), None);
        assert_eq!(fields.external_job_id.as_deref(), Some("1.5"));
    }

    #[test]
    fn empty_or_structured_job_id_is_absent() {
        for value in [
            json!(""),
            json!("   "),
            json!({"id": 1}),
            json!(null),
            json!(true),
        ] {
            let fields = extract(json!({ "job_id": value }), None);
            assert_eq!(fields.external_job_id, None, "{value}");
        }
    }

    #[test]
    fn workflow_falls_back_to_workflow_key() {
        let fields = extract(json!({"workflow": "translate"}), None);
        assert_eq!(fields.workflow_name.as_deref(), Some("translate"));
        let fields = extract(json!({"workflow_name": "a", "workflow": "b"}), None);
        assert_eq!(fields.workflow_name.as_deref(), Some("a"));
    }

    #[test]
    fn event_falls_back_to_event_type_then_header() {
        let fields = extract(
            json!({"event_type": "workflow.completed"}),
            Some("x.failed"),
        );
        assert_eq!(fields.event_type.as_deref(), Some("workflow.completed"));
        let fields = extract(json!({}), Some("workflow.completed"));
        assert_eq!(fields.event_type.as_deref(), Some("workflow.completed"));
        assert_eq!(fields.status, CallbackStatus::Completed);
        let fields = extract(json!({"event": "a.failed"}), Some("b.completed"));
        assert_eq!(fields.event_type.as_deref(), Some("a.failed"));
    }

    #[test]
    fn error_message_falls_back_to_error_string_then_error_message_field() {
        let fields = extract(json!({"error": "boom"}), None);
        assert_eq!(fields.error_message.as_deref(), Some("boom"));
        let fields = extract(
            json!({"error": {"message": "nested boom", "code": 7}}),
            None,
        );
        assert_eq!(fields.error_message.as_deref(), Some("nested boom"));
        let fields = extract(json!({"error_message": "first", "error": "second"}), None);
        assert_eq!(fields.error_message.as_deref(), Some("first"));
        let fields = extract(json!({"error": {"code": 7}}), None);
        assert_eq!(fields.error_message, None);
    }

    #[test]
    fn long_fields_are_truncated_on_char_boundaries() {
        let long_name = "é".repeat(300);
        let long_error = "ß".repeat(1_500);
        let fields = extract(
            json!({"job_id": long_name, "workflow_name": long_name, "event": long_name,
                   "error_message": long_error}),
            None,
        );
        for value in [
            &fields.external_job_id,
            &fields.workflow_name,
            &fields.event_type,
        ] {
            assert_eq!(value.as_deref(), Some("é".repeat(255).as_str()));
        }
        assert_eq!(fields.error_message.unwrap().chars().count(), 1_000);
    }

    #[test]
    fn hostile_text_is_stored_verbatim() {
        let hostile = "</script><img src=x onerror=alert(1)>";
        let fields = extract(
            json!({"job_id": hostile, "workflow_name": hostile, "error_message": hostile}),
            Some(hostile),
        );
        assert_eq!(fields.external_job_id.as_deref(), Some(hostile));
        assert_eq!(fields.workflow_name.as_deref(), Some(hostile));
        assert_eq!(fields.event_type.as_deref(), Some(hostile));
        assert_eq!(fields.error_message.as_deref(), Some(hostile));
        assert!(payload_preview(hostile).contains("<img src=x onerror=alert(1)>"));
    }

    #[test]
    fn preview_keeps_the_first_200_chars() {
        let body = "a".repeat(500);
        assert_eq!(payload_preview(&body), "a".repeat(PREVIEW_CHARS));
        assert_eq!(payload_preview("{\"short\":1}"), "{\"short\":1}");
        assert_eq!(payload_preview(""), "");
    }

    #[test]
    fn preview_never_splits_a_character_at_the_boundary() {
        // 199 ASCII chars, then multi-byte characters straddling char 200.
        let body = format!("{}😀é漢{}", "a".repeat(199), "z".repeat(10));
        let preview = payload_preview(&body);
        assert_eq!(preview.chars().count(), PREVIEW_CHARS);
        assert!(preview.ends_with('😀'));
        let body = "漢".repeat(201);
        assert_eq!(payload_preview(&body), "漢".repeat(200));
    }

    #[test]
    fn completed_and_succeeded_events_are_completed() {
        for event in ["workflow.completed", "job.succeeded", "WORKFLOW.COMPLETED"] {
            assert_eq!(
                status_from_event(Some(event)),
                CallbackStatus::Completed,
                "{event}"
            );
        }
    }

    #[test]
    fn failure_events_are_failed() {
        for event in [
            "workflow.failed",
            "job.error",
            "llm.errored",
            "llm.step.failed",
        ] {
            assert_eq!(
                status_from_event(Some(event)),
                CallbackStatus::Failed,
                "{event}"
            );
        }
    }

    #[test]
    fn running_events_are_in_progress() {
        for event in [
            "workflow.started",
            "job.progress",
            "job.in_progress",
            "job.running",
            "job.queued",
        ] {
            assert_eq!(
                status_from_event(Some(event)),
                CallbackStatus::InProgress,
                "{event}"
            );
        }
    }

    #[test]
    fn completed_step_is_still_in_progress() {
        assert_eq!(
            status_from_event(Some("llm.step.completed")),
            CallbackStatus::InProgress
        );
    }

    #[test]
    fn unknown_or_missing_event_is_unknown() {
        for event in [
            None,
            Some(""),
            Some("  "),
            Some("workflow.exploded"),
            Some("ping"),
        ] {
            assert_eq!(
                status_from_event(event),
                CallbackStatus::Unknown,
                "{event:?}"
            );
        }
    }

    #[test]
    fn payload_status_decides_when_event_is_unknown() {
        let fields = extract(
            json!({"event": "workflow.custom", "status": "failed"}),
            None,
        );
        assert_eq!(fields.status, CallbackStatus::Failed);
        let fields = extract(json!({"status": "completed"}), None);
        assert_eq!(fields.status, CallbackStatus::Completed);
        let fields = extract(
            json!({"event": "workflow.completed", "status": "failed"}),
            None,
        );
        assert_eq!(fields.status, CallbackStatus::Completed);
        let fields = extract(json!({"status": {"code": 1}}), None);
        assert_eq!(fields.status, CallbackStatus::Unknown);
    }

    #[test]
    fn status_names_round_trip() {
        for status in [
            CallbackStatus::Completed,
            CallbackStatus::Failed,
            CallbackStatus::InProgress,
            CallbackStatus::Unknown,
        ] {
            assert_eq!(CallbackStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
        assert_eq!(CallbackStatus::parse("done"), None);
    }
}
