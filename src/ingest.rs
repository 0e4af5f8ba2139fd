//! The ingest service: verify, parse, key and durably store one callback.
//!
//! Called by the webhook route with the raw body and the few headers that
//! matter; knows nothing about HTTP. The route maps [`IngestError`] to status
//! codes and writes the audit row.

use std::sync::{Arc, RwLock};

use rand::RngCore;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::delivery::{DeliveryId, derive_delivery_id};
use crate::fields::{CallbackFields, extract_fields, payload_preview};
use crate::signature::{
    SecretError, SignatureError, SignatureHeaders, SignatureScheme, Verified, WebhookSecret,
    check_signature_form, parse_secret_file, parse_secret_list, verify_signature,
};
use crate::source::{
    BUILTIN_SOURCE, RequestHeaders, check_source_form, map_callback, status_of,
    verify_source_signature,
};
use crate::source_registry::ConfiguredSource;
use crate::store::{
    AuditedRequest, DeliveryOutcome, DeliveryRecord, NewCallback, Store, StoreError,
};

/// What to do with a callback whose signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureMode {
    /// Reject it with 401 (the default).
    #[default]
    Enforce,
    /// Store it, marked `signature_valid = false`.
    Flag,
}

impl std::str::FromStr for SignatureMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "enforce" => Ok(Self::Enforce),
            "flag" => Ok(Self::Flag),
            other => Err(format!(
                "unknown signature mode {other:?}: use \"enforce\" or \"flag\""
            )),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    pub mode: SignatureMode,
    pub timestamp_tolerance_secs: u64,
}

/// The parts of a webhook request the service needs.
#[derive(Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The request's headers (signature, delivery id, mapped fields).
    pub headers: &'a RequestHeaders<'a>,
    pub body: &'a [u8],
}

/// A callback that is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: Uuid,
    pub callback_id: DeliveryId,
    pub duplicate: bool,
    pub delivery_count: i64,
    pub signature_valid: bool,
    pub signature_scheme: Option<SignatureScheme>,
    /// The label of the secret that verified it.
    pub secret_label: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing signature")]
    MissingSignature,
    #[error("invalid signature: {0}")]
    InvalidSignature(SignatureError),
    #[error("stale timestamp: {0}")]
    StaleTimestamp(SignatureError),
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the body is JSON but not an object (it is {0}); send a JSON object")]
    NotAnObject(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    pub fn outcome(&self) -> DeliveryOutcome {
        match self {
            Self::MissingSignature => DeliveryOutcome::MissingSignature,
            Self::InvalidSignature(_) => DeliveryOutcome::InvalidSignature,
            Self::StaleTimestamp(_) => DeliveryOutcome::StaleTimestamp,
            Self::NotJson(_) | Self::NotAnObject(_) => DeliveryOutcome::Malformed,
            Self::Store(_) => DeliveryOutcome::Error,
        }
    }
}

/// Verifies, parses and stores one callback sent to `source`; returns once
/// it is durable. An accepted callback's audit row (from `audit`, completed
/// here and by the writer) commits in the same transaction as the callback.
pub async fn ingest_callback(
    store: &Store,
    source: &ConfiguredSource,
    timestamp_tolerance_secs: u64,
    request: WebhookRequest<'_>,
    now: OffsetDateTime,
    audit: AuditedRequest,
) -> Result<Accepted, IngestError> {
    // Verify on the raw bytes before anything looks at them as JSON.
    let secrets = source.secrets.current();
    let verification = verify_request(
        source,
        request.headers,
        request.body,
        &secrets,
        now.unix_timestamp(),
        timestamp_tolerance_secs,
    );
    let (scheme, secret_label) = match verification {
        Ok(verified) => (
            Some(verified.scheme),
            secrets
                .get(verified.secret_index)
                .map(|secret| secret.label().to_owned()),
        ),
        Err(err) if source.mode == SignatureMode::Enforce => {
            return Err(signature_rejection(err));
        }
        Err(_) => (None, None),
    };
    let signature_valid = scheme.is_some();

    let payload = parse_object(request.body)?;
    let body_text = std::str::from_utf8(request.body).unwrap_or_default();
    let (mut callback_id, fields) = if source.uses_builtin_rules() {
        builtin_fields(request, &payload, signature_valid, body_text)
    } else {
        mapped_fields(source, request, payload, body_text)
    };
    if !signature_valid {
        // An unverified request must never claim (or count towards) the id of
        // a genuine callback that may arrive later.
        callback_id = DeliveryId::unverified(&callback_id);
    }

    let now_us = unix_micros(now);
    let audit = AuditedRequest {
        record: DeliveryRecord {
            callback_id: Some(callback_id.clone()),
            signature_scheme: scheme,
            secret_label: secret_label.clone(),
            source: Some(source.name.clone()),
            authenticated: signature_valid,
            ..audit.record
        },
        started: audit.started,
    };
    let outcome = store
        .insert_callback_audited(
            NewCallback {
                id: Uuid::now_v7(),
                source: source.name.clone(),
                callback_id: callback_id.clone(),
                signature_valid,
                signature_scheme: scheme,
                verified_at_us: signature_valid.then_some(now_us),
                payload: body_text.to_owned(),
                fields,
                received_at_us: now_us,
            },
            audit,
        )
        .await?;
    Ok(Accepted {
        id: outcome.id,
        callback_id,
        duplicate: outcome.duplicate,
        delivery_count: outcome.delivery_count,
        signature_valid,
        signature_scheme: scheme,
        secret_label,
    })
}

/// Checks a request's signature (or token) against the source's secrets.
/// The built-in source keeps the original choice between its two schemes:
/// Standard Webhooks whenever one of its headers is present.
pub fn verify_request(
    source: &ConfiguredSource,
    headers: &RequestHeaders<'_>,
    body: &[u8],
    secrets: &[WebhookSecret],
    now_unix_secs: i64,
    tolerance_secs: u64,
) -> Result<Verified, SignatureError> {
    if source.name == BUILTIN_SOURCE {
        let signature = builtin_signature_headers(headers);
        return verify_signature(&signature, body, secrets, now_unix_secs, tolerance_secs);
    }
    verify_source_signature(
        &source.schemes,
        source.token_header.as_deref(),
        headers,
        body,
        secrets,
        now_unix_secs,
        tolerance_secs,
    )
}

/// Everything about a request's signature that needs no body (see
/// [`check_signature_form`]): a request that fails here is answered 401
/// before a byte of its body is read.
pub fn check_request_form(
    source: &ConfiguredSource,
    headers: &RequestHeaders<'_>,
    now_unix_secs: i64,
    tolerance_secs: u64,
) -> Result<SignatureScheme, SignatureError> {
    if source.name == BUILTIN_SOURCE {
        let signature = builtin_signature_headers(headers);
        return check_signature_form(&signature, now_unix_secs, tolerance_secs);
    }
    let scheme = check_source_form(
        &source.schemes,
        source.token_header.as_deref(),
        headers,
        now_unix_secs,
        tolerance_secs,
    )?;
    // A token needs no body to be checked: a wrong one is refused before a
    // byte of the body is read or held.
    if scheme == SignatureScheme::Token {
        verify_request(
            source,
            headers,
            &[],
            &source.secrets.current(),
            now_unix_secs,
            tolerance_secs,
        )?;
    }
    Ok(scheme)
}

fn builtin_signature_headers<'a>(headers: &RequestHeaders<'a>) -> SignatureHeaders<'a> {
    SignatureHeaders {
        x_webhook_signature: headers.get("x-webhook-signature"),
        webhook_id: headers.get("webhook-id"),
        webhook_timestamp: headers.get("webhook-timestamp"),
        webhook_signature: headers.get("webhook-signature"),
    }
}

/// The built-in source's own rules: the delivery id from `webhook-id`, the
/// job id with its event and step, or the body's hash; the fields from the
/// payload's well-known keys.
fn builtin_fields(
    request: WebhookRequest<'_>,
    payload: &Map<String, Value>,
    signature_valid: bool,
    body_text: &str,
) -> (DeliveryId, CallbackFields) {
    // `X-Webhook-Event` is not covered by any signature: it must not change
    // what a signed callback is (its event, status or delivery id), or a
    // captured request replayed with another header would become a new row.
    let event_header = if signature_valid {
        None
    } else {
        request.headers.get("x-webhook-event")
    };
    let fields = extract_fields(payload, event_header, body_text);
    let id = derive_delivery_id(
        request.headers.get("webhook-id"),
        payload,
        event_header,
        request.body,
    );
    (id, fields)
}

/// A source's mapping rules (its preset's, with its overrides).
fn mapped_fields(
    source: &ConfiguredSource,
    request: WebhookRequest<'_>,
    payload: Map<String, Value>,
    body_text: &str,
) -> (DeliveryId, CallbackFields) {
    let payload = Value::Object(payload);
    let mapped = map_callback(&source.mapping, request.headers, &payload, request.body);
    let status = status_of(source.preset, mapped.event.as_deref(), &payload);
    let fields = CallbackFields {
        external_job_id: mapped.group,
        workflow_name: mapped.workflow,
        event_type: mapped.event,
        status,
        error_message: mapped.error,
        payload_preview: payload_preview(body_text),
    };
    (mapped.delivery_id, fields)
}

/// The ingest error a failed signature check is reported as.
pub fn signature_rejection(err: SignatureError) -> IngestError {
    match err {
        SignatureError::Missing => IngestError::MissingSignature,
        stale @ SignatureError::StaleTimestamp { .. } => IngestError::StaleTimestamp(stale),
        other => IngestError::InvalidSignature(other),
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, IngestError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(IngestError::NotAnObject(json_kind(&other))),
        Err(err) => Err(IngestError::NotJson(err.to_string())),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub use crate::micros::unix_micros;

/// Where the active webhook secrets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `LLM_WEBHOOK_SECRET`: always wins.
    Configured,
    /// Generated by this server and kept in the database.
    Generated,
}

/// A secret that was just generated, to be shown once.
pub struct FreshSecret(pub String);

/// The secrets currently accepted, shared by all requests and refreshable
/// (a `secret rotate` run by another process is picked up by [`SecretRing::refresh`]).
#[derive(Clone)]
pub struct SecretRing {
    source: SecretSource,
    current: Arc<RwLock<Arc<[WebhookSecret]>>>,
}

/// How long a rotated-out generated secret stays valid.
pub const ROTATION_GRACE_SECS: i64 = 24 * 60 * 60;

impl SecretRing {
    /// Uses the configured secrets (the variable's list and the secrets
    /// file's lines), or the generated ones, generating the first one when
    /// there is none yet.
    pub async fn load(
        store: &Store,
        configured: Option<&str>,
        file_text: Option<&str>,
    ) -> Result<(Self, Option<FreshSecret>), RingError> {
        let mut secrets = Vec::new();
        if let Some(raw) = configured.filter(|raw| !raw.trim().is_empty()) {
            secrets.extend(parse_secret_list(raw)?);
        }
        if let Some(text) = file_text {
            secrets.extend(parse_secret_file(text)?);
        }
        if !secrets.is_empty() {
            return Ok((Self::new(SecretSource::Configured, secrets), None));
        }
        let now_us = unix_micros(OffsetDateTime::now_utc());
        let mut fresh = None;
        let secret = generate_secret();
        if store.add_first_generated_secret(&secret, now_us).await? {
            fresh = Some(FreshSecret(secret));
        }
        let ring = Self::new(SecretSource::Generated, Vec::new());
        ring.refresh(store).await?;
        Ok((ring, fresh))
    }

    fn new(source: SecretSource, secrets: Vec<WebhookSecret>) -> Self {
        Self {
            source,
            current: Arc::new(RwLock::new(secrets.into())),
        }
    }

    pub fn source(&self) -> SecretSource {
        self.source
    }

    pub fn current(&self) -> Arc<[WebhookSecret]> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads generated secrets from the database (no-op for configured ones).
    pub async fn refresh(&self, store: &Store) -> Result<(), RingError> {
        if self.source == SecretSource::Configured {
            return Ok(());
        }
        let now_us = unix_micros(OffsetDateTime::now_utc());
        let secrets = store
            .generated_secrets(now_us)
            .await?
            .iter()
            .map(|stored| {
                WebhookSecret::parse(&stored.secret).map(|secret| {
                    let created = utc_date(stored.created_at_us);
                    secret.with_label(format!("generated {created}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = secrets.into();
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("the configured webhook secret is not usable: {0}")]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `2026-11-22` of a Unix time in microseconds (UTC).
fn utc_date(micros: i64) -> String {
    crate::micros::checked_time_of(micros)
        .map(|at| at.date().to_string())
        .unwrap_or_default()
}

/// A Standard Webhooks secret: `whsec_` and 32 random bytes in base64, the
/// form OpenAI, Replicate and the Standard Webhooks libraries expect.
pub fn generate_standard_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// 256 random bits as 64 hex characters: usable as-is by any HMAC tool
/// (e.g. `openssl dgst -hmac`).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A ready-to-paste signed request against `base_url`. It reads the secret
/// from `$LLM_WEBHOOK_SECRET`, so the example never carries the secret.
pub fn curl_example(base_url: &str) -> String {
    format!(
        "BODY='{{\"job_id\":\"job_demo\",\"event\":\"workflow.completed\",\"workflow_name\":\"demo\",\"status\":\"completed\"}}'\n\
         SIG=$(printf '%s' \"$BODY\" | openssl dgst -sha256 -hmac \"$LLM_WEBHOOK_SECRET\" | sed 's/^.* //')\n\
         curl -sS -X POST {base}/api/webhooks/llm-callback \\\n  \
         -H 'Content-Type: application/json' -H \"X-Webhook-Signature: sha256=$SIG\" -d \"$BODY\"",
        base = base_url.trim_end_matches('/'),
    )
}
