//! `POST /api/webhooks/{name}`: the webhook route of every source.
//!
//! Finds the source (a name that is no enabled source is answered 404
//! before the body is read), reads the raw body under a hard limit, hands
//! it to the ingest service,
//! maps the result to a status code (here, in [`Rejection::status`]) and
//! records every request in the audit log, accepted or not.
//!
//! What a hostile client can cost is bounded before the body is read: in
//! `enforce` mode a request without any signature header is answered 401
//! at once; the whole body must arrive within the body timeout; and the
//! bodies held in memory by all requests together stay under a byte budget
//! (over it: 503 with `Retry-After`, which real senders retry).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::state::ClientAddress;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use inbox_core::ingest::SignatureMode;
use inbox_core::ingest::{
    Accepted, IngestError, WebhookRequest, check_request_form, ingest_callback,
    signature_rejection, unix_micros,
};
use inbox_core::log_text::LogText;
use inbox_core::signature::SignatureScheme;
use inbox_core::source::{AnswerKind, RequestHeaders};
use inbox_core::source_registry::{ConfiguredSource, SourceRegistry};
use inbox_core::store::{AuditedRequest, DeliveryOutcome, DeliveryRecord, Store, UNKNOWN_SOURCE};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::connection::address_group;
use crate::request_id::RequestId;

/// After deciding 413, keep reading (and discarding) at most this long so a
/// sender that writes its whole body still reads our answer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// What a sender is told to wait before retrying when we are out of room.
const RETRY_AFTER_SECS: u64 = 5;

#[derive(Clone)]
pub struct WebhookState {
    pub store: Store,
    pub sources: SourceRegistry,
    pub timestamp_tolerance_secs: u64,
    pub max_body_bytes: usize,
    /// The whole body must arrive within this time.
    pub body_timeout: Duration,
    pub budget: BodyBudget,
}

/// The bytes of webhook bodies that all requests together may hold in
/// memory at once, and the part of them one client address may hold (IPv6:
/// one /64), so that one client stalling its bodies cannot leave others
/// without room. A body takes its share as it arrives and gives it back
/// when its request is answered.
#[derive(Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    per_address: usize,
    held_by_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl BodyBudget {
    /// `max_bytes` in all; one address holds at most an eighth of it, or
    /// one whole body when that is larger.
    pub fn new(max_bytes: usize, max_body_bytes: usize) -> Self {
        let total = max_bytes.min(Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            per_address: (total / 8).max(max_body_bytes.min(total)),
            held_by_address: Arc::default(),
        }
    }

    /// The budget as seen by one request from `address`.
    fn share_for(&self, address: Option<IpAddr>) -> BudgetShare {
        BudgetShare {
            budget: self.clone(),
            address: address.map(address_group),
            permit: None,
            address_bytes: 0,
        }
    }
}

/// What one request holds of the [`BodyBudget`]; given back on drop.
struct BudgetShare {
    budget: BodyBudget,
    address: Option<IpAddr>,
    permit: Option<OwnedSemaphorePermit>,
    address_bytes: usize,
}

impl BudgetShare {
    /// Takes `bytes` more, or fails at once when there is no room, in all
    /// or for this address.
    fn take(&mut self, bytes: usize) -> Result<(), Rejection> {
        if bytes == 0 {
            return Ok(());
        }
        let count = u32::try_from(bytes).map_err(|_| Rejection::Overloaded)?;
        if let Some(address) = self.address {
            let mut held = self
                .budget
                .held_by_address
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let used = held.entry(address).or_default();
            if used.saturating_add(bytes) > self.budget.per_address {
                if *used == 0 {
                    held.remove(&address);
                }
                return Err(Rejection::Overloaded);
            }
            *used += bytes;
            self.address_bytes += bytes;
        }
        let permit = match self.budget.bytes.clone().try_acquire_many_owned(count) {
            Ok(permit) => permit,
            Err(_) => {
                self.give_back_address_bytes(bytes);
                return Err(Rejection::Overloaded);
            }
        };
        match &mut self.permit {
            Some(existing) => existing.merge(permit),
            None => self.permit = Some(permit),
        }
        Ok(())
    }

    fn give_back_address_bytes(&mut self, bytes: usize) {
        let Some(address) = self.address else {
            return;
        };
        let bytes = bytes.min(self.address_bytes);
        self.address_bytes -= bytes;
        let mut held = self
            .budget
            .held_by_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(used) = held.get_mut(&address) {
            *used = used.saturating_sub(bytes);
            if *used == 0 {
                held.remove(&address);
            }
        }
    }
}

impl Drop for BudgetShare {
    fn drop(&mut self) {
        self.give_back_address_bytes(self.address_bytes);
    }
}

/// The answer header that carries the stored callback's id when the
/// source's answer has no body.
const ID_HEADER: &str = "x-callback-inbox-id";

pub async fn receive_callback(
    State(state): State<WebhookState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let facts = RequestFacts {
        started: Instant::now(),
        received_at: OffsetDateTime::now_utc(),
        request_id: parts.extensions.get::<RequestId>().map(|id| id.0.clone()),
        remote_addr: parts
            .extensions
            .get::<ClientAddress>()
            .map(|address| address.0),
    };
    let Some(source) = state.sources.get(&name).filter(|source| source.enabled) else {
        return unknown_source(&state, &facts).await;
    };
    let header_pairs: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let headers = RequestHeaders::new(header_pairs);
    // Held until the answer is sent: the body stays in memory until then.
    let mut budget_share = state.budget.share_for(facts.remote_addr);
    let form = check_request_form(
        &source,
        &headers,
        facts.received_at.unix_timestamp(),
        state.timestamp_tolerance_secs,
    );
    let (result, body_bytes) = match (source.mode, &form) {
        // Nothing could make this request valid (no signature header, one
        // of an impossible form, a stale timestamp): answer before reading
        // a byte, so it never holds any of the body budget.
        (SignatureMode::Enforce, Err(err)) => {
            (Err(Rejection::Ingest(signature_rejection(err.clone()))), 0)
        }
        _ => {
            let declared = declared_length(&parts.headers);
            read_and_store(
                &state,
                &facts,
                &source,
                &headers,
                body,
                declared,
                &mut budget_share,
            )
            .await
        }
    };
    record_outcome(&state, &facts, &source, &result, body_bytes, form.ok()).await;
    drop(budget_share);
    match result {
        Ok(accepted) => answer_accepted(&source, &accepted),
        Err(rejection) => rejection.into_response(),
    }
}

/// What every request's audit row and log line say, known before its body.
struct RequestFacts {
    started: Instant,
    received_at: OffsetDateTime,
    request_id: Option<String>,
    remote_addr: Option<IpAddr>,
}

impl RequestFacts {
    /// The audit row of this request, sent to `source`, as it ended.
    fn audit_row(
        &self,
        source: &str,
        outcome: DeliveryOutcome,
        status: StatusCode,
        body_bytes: u64,
    ) -> DeliveryRecord {
        DeliveryRecord {
            received_at_us: unix_micros(self.received_at),
            request_id: self.request_id.clone(),
            outcome,
            http_status: status.as_u16(),
            processing_us: i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX),
            body_bytes: i64::try_from(body_bytes).unwrap_or(i64::MAX),
            remote_addr: self.remote_addr.map(|address| address.to_string()),
            callback_id: None,
            llm_callback_id: None,
            signature_scheme: None,
            secret_label: None,
            source: Some(source.to_owned()),
            authenticated: false,
            count: 1,
        }
    }
}

/// Reads the body (within the limit, the budget and the body timeout) and
/// hands it to the ingest service; returns how it ended and the bytes seen.
async fn read_and_store(
    state: &WebhookState,
    facts: &RequestFacts,
    source: &ConfiguredSource,
    headers: &RequestHeaders<'_>,
    body: Body,
    declared: Option<u64>,
    budget_share: &mut BudgetShare,
) -> (Result<Accepted, Rejection>, u64) {
    let read = read_limited(body, declared, state.max_body_bytes, budget_share);
    let body = match tokio::time::timeout(state.body_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(rejection)) => {
            let received = match rejection {
                Rejection::TooLarge { received, .. } => received,
                _ => 0,
            };
            return (Err(rejection), received);
        }
        Err(_) => return (Err(Rejection::BodyTimeout), 0),
    };
    let body_bytes = body.len() as u64;
    // Completed by the ingest service and the writer, which commits it with
    // the callback.
    let audit = AuditedRequest {
        record: facts.audit_row(
            &source.name,
            DeliveryOutcome::Accepted,
            accepted_status(source),
            body_bytes,
        ),
        started: facts.started,
    };
    let request = WebhookRequest {
        headers,
        body: &body,
    };
    let result = ingest_callback(
        &state.store,
        source,
        state.timestamp_tolerance_secs,
        request,
        facts.received_at,
        audit,
    )
    .await
    .map_err(Rejection::Ingest);
    (result, body_bytes)
}

/// The log line, the metrics and (for a rejection: an accepted callback's
/// row was committed with it) the audit row of one request.
async fn record_outcome(
    state: &WebhookState,
    facts: &RequestFacts,
    source: &ConfiguredSource,
    result: &Result<Accepted, Rejection>,
    body_bytes: u64,
    scheme: Option<SignatureScheme>,
) {
    let (outcome, status) = match result {
        Ok(accepted) => (
            DeliveryOutcome::of_stored(accepted.signature_valid, accepted.duplicate),
            accepted_status(source),
        ),
        Err(rejection) => (rejection.outcome(), rejection.status()),
    };
    let processing_us = i64::try_from(facts.started.elapsed().as_micros()).unwrap_or(i64::MAX);
    log_outcome(&source.name, result, outcome, processing_us);
    metrics::counter!(
        "callback_inbox_webhook_requests_total",
        "outcome" => outcome.as_str(),
        "source" => source.name.clone()
    )
    .increment(1);
    metrics::histogram!("callback_inbox_webhook_processing_seconds")
        .record(facts.started.elapsed().as_secs_f64());
    metrics::histogram!("callback_inbox_webhook_body_bytes").record(body_bytes as f64);
    if outcome == DeliveryOutcome::Duplicate {
        metrics::counter!("callback_inbox_webhook_duplicates_total").increment(1);
    }
    let Err(rejection) = result else {
        return;
    };
    let mut record = facts.audit_row(&source.name, outcome, status, body_bytes);
    record.signature_scheme = scheme;
    // Only a verified sender gets as far as the JSON check in enforce mode.
    record.authenticated = matches!(
        rejection,
        Rejection::Ingest(IngestError::NotJson(_) | IngestError::NotAnObject(_))
    ) && source.mode == SignatureMode::Enforce;
    if let Err(err) = state.store.record_delivery(record).await {
        tracing::error!(error = %err, "audit row not recorded");
    }
}

/// The status a stored callback is answered with.
fn accepted_status(source: &ConfiguredSource) -> StatusCode {
    match source.preset.answer() {
        AnswerKind::Json => StatusCode::OK,
        AnswerKind::Empty => StatusCode::NO_CONTENT,
    }
}

/// A stored callback's answer, in the form its source's sender expects.
fn answer_accepted(source: &ConfiguredSource, accepted: &Accepted) -> Response {
    match source.preset.answer() {
        AnswerKind::Json => (
            accepted_status(source),
            Json(json!({ "received": true, "id": accepted.id, "duplicate": accepted.duplicate })),
        )
            .into_response(),
        // Claude Code adds a hook answer's text to the model's context: say
        // nothing, and put the id where a person debugging can still see it.
        AnswerKind::Empty => (
            accepted_status(source),
            [(ID_HEADER, accepted.id.to_string())],
        )
            .into_response(),
    }
}

/// A request to a name that is no enabled source: 404 before its body is
/// read, counted in the audit log under one `unknown` source whatever the
/// name (a stranger must not be able to add rows, labels or log lines).
async fn unknown_source(state: &WebhookState, facts: &RequestFacts) -> Response {
    let outcome = DeliveryOutcome::UnknownSource;
    metrics::counter!(
        "callback_inbox_webhook_requests_total",
        "outcome" => outcome.as_str(),
        "source" => UNKNOWN_SOURCE
    )
    .increment(1);
    let record = facts.audit_row(UNKNOWN_SOURCE, outcome, StatusCode::NOT_FOUND, 0);
    if let Err(err) = state.store.record_delivery(record).await {
        tracing::error!(error = %err, "audit row not recorded");
    }
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "unknown source" })),
    )
        .into_response()
}

/// `source` is a configured source's name: an admin chose it, and its form
/// (lowercase letters, digits, dashes) cannot forge a log line.
fn log_outcome(
    source: &str,
    result: &Result<Accepted, Rejection>,
    outcome: DeliveryOutcome,
    processing_us: i64,
) {
    match result {
        Ok(accepted) => tracing::info!(
            source,
            outcome = outcome.as_str(),
            id = %accepted.id,
            callback_id = %LogText::new(accepted.callback_id.as_str()),
            delivery_count = accepted.delivery_count,
            signature_valid = accepted.signature_valid,
            processing_us,
            "callback stored"
        ),
        Err(Rejection::Ingest(IngestError::Store(err))) => {
            tracing::error!(source, outcome = outcome.as_str(), error = %err, processing_us, "callback not stored")
        }
        Err(rejection) => tracing::info!(
            source,
            outcome = outcome.as_str(),
            // For signatures: which check failed (the client only reads a
            // generic message). Never a secret.
            reason = %rejection.log_reason(),
            processing_us,
            "callback rejected"
        ),
    }
}

/// Why a webhook request was not accepted.
#[derive(Debug)]
enum Rejection {
    TooLarge {
        limit: usize,
        received: u64,
        declared: Option<u64>,
    },
    BodyRead(String),
    BodyTimeout,
    /// The in-flight body budget is used up.
    Overloaded,
    Ingest(IngestError),
}

impl Rejection {
    /// The status code of every rejection: the single mapping for the webhook.
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Ingest(err) => match err {
                IngestError::MissingSignature
                | IngestError::InvalidSignature(_)
                | IngestError::StaleTimestamp(_) => StatusCode::UNAUTHORIZED,
                IngestError::NotJson(_) | IngestError::NotAnObject(_) => StatusCode::BAD_REQUEST,
                IngestError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn outcome(&self) -> DeliveryOutcome {
        match self {
            Self::TooLarge { .. } => DeliveryOutcome::TooLarge,
            Self::BodyRead(_) => DeliveryOutcome::Malformed,
            Self::BodyTimeout => DeliveryOutcome::BodyTimeout,
            Self::Overloaded => DeliveryOutcome::Overloaded,
            Self::Ingest(err) => err.outcome(),
        }
    }

    /// What the sender reads. Signature failures stay generic on purpose.
    fn message(&self) -> String {
        match self {
            Self::TooLarge {
                limit,
                declared: Some(declared),
                ..
            } => format!(
                "body is {} bytes; the limit is {} bytes",
                group_digits(*declared),
                group_digits(*limit as u64)
            ),
            Self::TooLarge { limit, .. } => {
                format!(
                    "body is larger than the limit of {} bytes",
                    group_digits(*limit as u64)
                )
            }
            Self::BodyRead(err) => format!("could not read the request body: {err}"),
            Self::BodyTimeout => {
                "the body did not arrive in time; send the whole body at once".to_owned()
            }
            Self::Overloaded => {
                format!("too many requests in progress; retry in {RETRY_AFTER_SECS} s")
            }
            Self::Ingest(
                IngestError::MissingSignature
                | IngestError::InvalidSignature(_)
                | IngestError::StaleTimestamp(_),
            ) => "invalid or missing webhook signature".to_owned(),
            Self::Ingest(IngestError::Store(_)) => {
                "the callback could not be stored; retry later".to_owned()
            }
            Self::Ingest(err) => err.to_string(),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.message() }));
        match self {
            // Real senders retry a 503 after the time it names.
            Self::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(http::header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
                body,
            )
                .into_response(),
            rejection => (rejection.status(), body).into_response(),
        }
    }
}

impl Rejection {
    /// What the log says: the exact check that failed, unlike [`Self::message`].
    fn log_reason(&self) -> String {
        match self {
            Self::Ingest(
                err @ (IngestError::InvalidSignature(_) | IngestError::StaleTimestamp(_)),
            ) => err.to_string(),
            Self::Ingest(IngestError::MissingSignature) => "no signature header".to_owned(),
            other => other.message(),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    header(headers, "content-length").and_then(|value| value.trim().parse().ok())
}

/// Reads the whole body, but never holds more than `limit` bytes of it,
/// taking each byte held from the shared budget first.
async fn read_limited(
    mut body: Body,
    declared: Option<u64>,
    limit: usize,
    share: &mut BudgetShare,
) -> Result<Bytes, Rejection> {
    if declared.is_some_and(|length| length > limit as u64) {
        let received = drain(body, 0, limit).await;
        return Err(Rejection::TooLarge {
            limit,
            received,
            declared,
        });
    }
    // A declared length is taken whole up front, so a flood of large bodies
    // is refused before any of them is read.
    let reserved = declared.map_or(0, |len| len as usize);
    share.take(reserved)?;
    let mut buffer = Vec::with_capacity(reserved.max(1024).min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(body_error)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buffer.len() + data.len() > limit {
            let received = drain(body, (buffer.len() + data.len()) as u64, limit).await;
            return Err(Rejection::TooLarge {
                limit,
                received,
                declared,
            });
        }
        let beyond_reserved =
            (buffer.len() + data.len()).saturating_sub(reserved.max(buffer.len()));
        share.take(beyond_reserved)?;
        buffer.extend_from_slice(&data);
    }
    Ok(Bytes::from(buffer))
}

/// A failed body read: a stalled body (the router's per-frame timeout) is
/// a timeout, anything else a broken request.
fn body_error(err: axum::Error) -> Rejection {
    let inner = err.into_inner();
    if inner
        .downcast_ref::<tower_http::timeout::TimeoutError>()
        .is_some()
    {
        return Rejection::BodyTimeout;
    }
    Rejection::BodyRead(inner.to_string())
}

/// Discards the rest of an oversized body, up to twice the limit or
/// [`DRAIN_TIMEOUT`], and returns how many bytes were seen in all.
async fn drain(mut body: Body, mut received: u64, limit: usize) -> u64 {
    let bound = (limit as u64).saturating_mul(2);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while received <= bound {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        received += data.len() as u64;
                    }
                }
                _ => break,
            }
        }
    })
    .await;
    received
}

fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_written_with_thousands_separators() {
        assert_eq!(group_digits(1_048_576), "1,048,576");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
    }
}
