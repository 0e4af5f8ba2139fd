//! Delivery ids: what makes a retry of the same callback recognisable.
//!
//! The sender retries, and a retry may differ byte for byte (a fresh
//! `timestamp` field), so the id is derived from what identifies the event,
//! not from the bytes, whenever the request tells us what that is.

use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::fields;

/// Longest id stored as is; longer ones are replaced by their hash so the
/// unique index stays small and a hostile sender cannot bloat it.
const MAX_ID_BYTES: usize = 255;
/// Keys that name a step of a workflow, in order of preference.
const STEP_KEYS: [&str; 3] = ["step_id", "step", "step_name"];

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

impl DeliveryId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The id under which an unverified callback (flag mode) is stored, so it
    /// can never claim, or count towards, a genuine callback's id.
    pub fn unverified(genuine: &DeliveryId) -> Self {
        Self::bounded("unverified", &genuine.0)
    }

    /// `kind:rest`, or `kind-sha256:<hex>` of that when it would be too long
    /// or hold U+0000 (which PostgreSQL's text cannot store, and replacing
    /// it would merge distinct ids).
    pub(crate) fn bounded(kind: &str, rest: &str) -> Self {
        let id = format!("{kind}:{rest}");
        if id.len() <= MAX_ID_BYTES && !id.contains('\0') {
            Self(id)
        } else {
            Self(format!("{kind}-sha256:{}", sha256_hex(id.as_bytes())))
        }
    }

    /// `sha256:<hex>` of the raw body: the id of last resort, equal for
    /// byte-identical retries only.
    pub(crate) fn of_body(body: &[u8]) -> Self {
        Self(format!("sha256:{}", sha256_hex(body)))
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Derives the idempotency key of a callback.
///
/// Precedence: the `webhook-id` header (`wh:<id>`); else the payload's
/// `job_id` with its event and, when present, its step
/// (`job:<job_id>:<event>[:<step>]`; keying on `job_id` alone would merge a
/// job's distinct events); else the SHA-256 of the body (`sha256:<hex>`).
pub fn derive_delivery_id(
    webhook_id: Option<&str>,
    payload: &Map<String, Value>,
    event_header: Option<&str>,
    body: &[u8],
) -> DeliveryId {
    if let Some(id) = webhook_id.map(str::trim).filter(|id| !id.is_empty()) {
        return DeliveryId::bounded("wh", id);
    }
    if let (Some(job_id), Some(event)) = (
        fields::job_id(payload),
        fields::event_name(payload, event_header),
    ) {
        let mut rest = format!("{}:{}", escape(&job_id), escape(&event));
        if let Some(step) = STEP_KEYS
            .iter()
            .find_map(|key| fields::scalar_text(payload.get(*key)?))
        {
            rest.push(':');
            rest.push_str(&escape(&step));
        }
        return DeliveryId::bounded("job", &rest);
    }
    DeliveryId::of_body(body)
}

/// Percent-encodes `%` and `:` so that parts joined by `:` cannot be
/// confused (`a:b` + `c` versus `a` + `b:c`).
pub(crate) fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
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

    /// Derives the id the way the ingest path does: from the body's own bytes.
    fn derive(webhook_id: Option<&str>, value: Value, event_header: Option<&str>) -> DeliveryId {
        let body = value.to_string();
        derive_delivery_id(webhook_id, &object(value), event_header, body.as_bytes())
    }

    #[test]
    fn retry_with_a_different_timestamp_keeps_the_same_id() {
        let first = derive(
            None,
            json!({"job_id": "job_8f2c", "event": "workflow.failed", "timestamp": "2026-11-21T10:00:00Z"}),
            None,
        );
        let retry = derive(
            None,
            json!({"job_id": "job_8f2c", "event": "workflow.failed", "timestamp": "2026-11-21T10:00:05Z"}),
            None,
        );
        assert_eq!(first, retry);
        assert_eq!(first.as_str(), "job:job_8f2c:workflow.failed");
    }

    #[test]
    fn different_events_of_the_same_job_differ() {
        let started = derive(
            None,
            json!({"job_id": "j1", "event": "workflow.started"}),
            None,
        );
        let completed = derive(
            None,
            json!({"job_id": "j1", "event": "workflow.completed"}),
            None,
        );
        assert_ne!(started, completed);
    }

    #[test]
    fn different_steps_of_the_same_event_differ() {
        let step = |key: &str, value: Value| {
            let mut payload = json!({"job_id": "j1", "event": "llm.step.completed"});
            payload[key] = value;
            derive(None, payload, None)
        };
        assert_ne!(step("step_id", json!("s1")), step("step_id", json!("s2")));
        assert_ne!(step("step", json!(1)), step("step", json!(2)));
        assert_ne!(
            step("step_name", json!("plan")),
            step("step_name", json!("write"))
        );
        assert_eq!(
            step("step", json!(3)).as_str(),
            "job:j1:llm.step.completed:3"
        );
    }

    #[test]
    fn step_prefers_step_id_and_ignores_structured_steps() {
        let id = derive(
            None,
            json!({"job_id": "j", "event": "e", "step_id": "s1", "step_name": "plan"}),
            None,
        );
        assert_eq!(id.as_str(), "job:j:e:s1");
        let id = derive(
            None,
            json!({"job_id": "j", "event": "e", "step": {"index": 2}, "step_name": "plan"}),
            None,
        );
        assert_eq!(id.as_str(), "job:j:e:plan");
        let id = derive(
            None,
            json!({"job_id": "j", "event": "e", "step": {"index": 2}}),
            None,
        );
        assert_eq!(id.as_str(), "job:j:e");
    }

    #[test]
    fn webhook_id_header_wins_over_the_body() {
        let id = derive(
            Some(" msg_27UH4WbU6Z5A5EzD8u03UvzRbpk "),
            json!({"job_id": "j1", "event": "workflow.completed"}),
            None,
        );
        assert_eq!(id.as_str(), "wh:msg_27UH4WbU6Z5A5EzD8u03UvzRbpk");
        let blank = derive(Some("  "), json!({"job_id": "j1", "event": "e"}), None);
        assert_eq!(blank.as_str(), "job:j1:e");
    }

    #[test]
    fn event_comes_from_the_header_when_the_body_lacks_it() {
        let id = derive(None, json!({"job_id": "j1"}), Some("workflow.completed"));
        assert_eq!(id.as_str(), "job:j1:workflow.completed");
        let id = derive(None, json!({"job_id": "j1", "event": "a"}), Some("b"));
        assert_eq!(id.as_str(), "job:j1:a");
    }

    #[test]
    fn numeric_job_id_is_used_as_its_json_text() {
        let id = derive(None, json!({"job_id": 42, "event": "e"}), None);
        assert_eq!(id.as_str(), "job:42:e");
    }

    #[test]
    fn without_job_id_or_event_the_body_hash_is_used() {
        let body = br#"{"event":"workflow.completed"}"#;
        let payload = object(serde_json::from_slice(body).unwrap());
        let id = derive_delivery_id(None, &payload, None, body);
        assert_eq!(id.as_str(), format!("sha256:{}", sha256_hex(body)));
        // A job_id without any event is not enough either.
        let body = br#"{"job_id":"j1"}"#;
        let payload = object(serde_json::from_slice(body).unwrap());
        let id = derive_delivery_id(None, &payload, None, body);
        assert!(id.as_str().starts_with("sha256:"), "{id}");
    }

    #[test]
    fn separators_inside_parts_cannot_be_confused() {
        let a = derive(None, json!({"job_id": "a:b", "event": "c"}), None);
        let b = derive(None, json!({"job_id": "a", "event": "b:c"}), None);
        assert_ne!(a, b);
        let c = derive(
            None,
            json!({"job_id": "a", "event": "b", "step": "c"}),
            None,
        );
        assert_ne!(a, c);
        assert_ne!(b, c);
        let escaped = derive(None, json!({"job_id": "a%3Ab", "event": "c"}), None);
        assert_ne!(a, escaped);
    }

    #[test]
    fn ids_with_a_nul_character_are_hashed() {
        let id = DeliveryId::bounded("job", "a\0b:workflow.completed");
        assert!(id.as_str().starts_with("job-sha256:"), "{id}");
        assert_ne!(
            id,
            DeliveryId::bounded("job", "a\u{FFFD}b:workflow.completed")
        );
    }

    #[test]
    fn long_ids_are_bounded_and_keep_their_kind() {
        let long = "x".repeat(400);
        let job = derive(None, json!({"job_id": long, "event": "e"}), None);
        assert!(job.as_str().starts_with("job-sha256:"), "{job}");
        assert!(job.as_str().len() <= MAX_ID_BYTES);
        let other = derive(None, json!({"job_id": "x".repeat(401), "event": "e"}), None);
        assert_ne!(job, other);
        let wh = derive(Some(&long), json!({}), None);
        assert!(wh.as_str().starts_with("wh-sha256:"), "{wh}");
        assert!(wh.as_str().len() <= MAX_ID_BYTES);
    }

    #[test]
    fn id_serializes_as_a_plain_string() {
        let id = derive(Some("msg_1"), json!({}), None);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"wh:msg_1\"");
        assert_eq!(id.to_string(), "wh:msg_1");
        assert_eq!(id.into_string(), "wh:msg_1");
    }
}
