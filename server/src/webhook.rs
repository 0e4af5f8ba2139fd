//! `POST /api/webhooks/llm-callback`: the webhook route.
//!
//! Reads the raw body under a hard limit, hands it to the ingest service,
//! maps the result to a status code (here, in [`Rejection::status`]) and
//! writes one audit row for every request, accepted or not.

use std::time::{Duration, Instant};

use app::auth::server::ClientAddress;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use inbox_core::delivery::DeliveryId;
use inbox_core::ingest::{
    Accepted, IngestError, IngestSettings, SecretRing, WebhookRequest, ingest_callback, unix_micros,
};
use inbox_core::signature::SignatureHeaders;
use inbox_core::store::{DeliveryOutcome, DeliveryRecord, Store};
use serde_json::json;
use time::OffsetDateTime;

use crate::request_id::RequestId;

/// After deciding 413, keep reading (and discarding) at most this long so a
/// sender that writes its whole body still reads our answer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct WebhookState {
    pub store: Store,
    pub secrets: SecretRing,
    pub settings: IngestSettings,
    pub max_body_bytes: usize,
}

pub async fn receive_callback(State(state): State<WebhookState>, request: Request) -> Response {
    let started = Instant::now();
    let received_at = OffsetDateTime::now_utc();
    let (parts, body) = request.into_parts();
    let request_id = parts.extensions.get::<RequestId>().map(|id| id.0.clone());
    let remote_addr = parts
        .extensions
        .get::<ClientAddress>()
        .map(|address| address.0);

    let mut body_bytes = 0;
    let result =
        match read_limited(body, declared_length(&parts.headers), state.max_body_bytes).await {
            Err(rejection) => {
                if let Rejection::TooLarge { received, .. } = rejection {
                    body_bytes = received;
                }
                Err(rejection)
            }
            Ok(body) => {
                body_bytes = body.len() as u64;
                let headers = &parts.headers;
                let request = WebhookRequest {
                    signature: SignatureHeaders {
                        x_webhook_signature: header(headers, "x-webhook-signature"),
                        webhook_id: header(headers, "webhook-id"),
                        webhook_timestamp: header(headers, "webhook-timestamp"),
                        webhook_signature: header(headers, "webhook-signature"),
                    },
                    event_header: header(headers, "x-webhook-event"),
                    body: &body,
                };
                let secrets = state.secrets.current();
                ingest_callback(&state.store, &secrets, state.settings, request, received_at)
                    .await
                    .map_err(Rejection::Ingest)
            }
        };

    let (outcome, status, callback_id, llm_callback_id, scheme) = match &result {
        Ok(accepted) => (
            if accepted.duplicate {
                DeliveryOutcome::Duplicate
            } else {
                DeliveryOutcome::Accepted
            },
            StatusCode::OK,
            Some(accepted.callback_id.clone()),
            Some(accepted.id),
            accepted.signature_scheme,
        ),
        Err(rejection) => (rejection.outcome(), rejection.status(), None, None, None),
    };
    let processing_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
    log_outcome(&result, outcome, processing_us, callback_id.as_ref());
    state.store.record_delivery(DeliveryRecord {
        received_at_us: unix_micros(received_at),
        request_id,
        outcome,
        http_status: status.as_u16(),
        processing_us,
        body_bytes: i64::try_from(body_bytes).unwrap_or(i64::MAX),
        remote_addr: remote_addr.map(|address| address.to_string()),
        callback_id,
        llm_callback_id,
        signature_scheme: scheme,
    });

    match result {
        Ok(accepted) => (
            StatusCode::OK,
            Json(json!({ "received": true, "id": accepted.id, "duplicate": accepted.duplicate })),
        )
            .into_response(),
        Err(rejection) => (
            rejection.status(),
            Json(json!({ "error": rejection.message() })),
        )
            .into_response(),
    }
}

fn log_outcome(
    result: &Result<Accepted, Rejection>,
    outcome: DeliveryOutcome,
    processing_us: i64,
    callback_id: Option<&DeliveryId>,
) {
    match result {
        Ok(accepted) => tracing::info!(
            outcome = outcome.as_str(),
            id = %accepted.id,
            callback_id = callback_id.map(DeliveryId::as_str),
            delivery_count = accepted.delivery_count,
            signature_valid = accepted.signature_valid,
            processing_us,
            "callback stored"
        ),
        Err(Rejection::Ingest(IngestError::Store(err))) => {
            tracing::error!(outcome = outcome.as_str(), error = %err, processing_us, "callback not stored")
        }
        Err(rejection) => tracing::info!(
            outcome = outcome.as_str(),
            reason = %rejection.message(),
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
    Ingest(IngestError),
}

impl Rejection {
    /// The status code of every rejection: the single mapping for the webhook.
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::Ingest(err) => match err {
                IngestError::MissingSignature
                | IngestError::InvalidSignature
                | IngestError::StaleTimestamp => StatusCode::UNAUTHORIZED,
                IngestError::NotJson(_) | IngestError::NotAnObject(_) => StatusCode::BAD_REQUEST,
                IngestError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn outcome(&self) -> DeliveryOutcome {
        match self {
            Self::TooLarge { .. } => DeliveryOutcome::TooLarge,
            Self::BodyRead(_) => DeliveryOutcome::Malformed,
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
            Self::Ingest(
                IngestError::MissingSignature
                | IngestError::InvalidSignature
                | IngestError::StaleTimestamp,
            ) => "invalid or missing webhook signature".to_owned(),
            Self::Ingest(IngestError::Store(_)) => {
                "the callback could not be stored; retry later".to_owned()
            }
            Self::Ingest(err) => err.to_string(),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    header(headers, "content-length").and_then(|value| value.trim().parse().ok())
}

/// Reads the whole body, but never holds more than `limit` bytes of it.
async fn read_limited(
    mut body: Body,
    declared: Option<u64>,
    limit: usize,
) -> Result<Bytes, Rejection> {
    if declared.is_some_and(|length| length > limit as u64) {
        let received = drain(body, 0, limit).await;
        return Err(Rejection::TooLarge {
            limit,
            received,
            declared,
        });
    }
    let mut buffer = Vec::with_capacity(declared.map_or(8 * 1024, |len| len as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| Rejection::BodyRead(err.to_string()))?;
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
        buffer.extend_from_slice(&data);
    }
    Ok(Bytes::from(buffer))
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
