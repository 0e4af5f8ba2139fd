//! `GET /metrics`: Prometheus text, from the `metrics` facade that the
//! webhook, the writer, the stream and retention record into.
//!
//! Every metric is named `callback_inbox_…`; docs/operations.md ("Metrics")
//! lists them.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use inbox_core::store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};

/// Histogram buckets for webhook processing time, in seconds.
const PROCESSING_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Buckets for body sizes, in bytes.
const BODY_BUCKETS: &[f64] = &[
    256.0,
    1_024.0,
    4_096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
];
/// Buckets for the writer's batch sizes.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The process-wide recorder. The `metrics` facade has one global recorder
/// by design, so it is installed once and shared by every server built in
/// this process (tests build several).
fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("callback_inbox_webhook_processing_seconds".to_owned()),
                    PROCESSING_BUCKETS,
                )
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("callback_inbox_webhook_body_bytes".to_owned()),
                        BODY_BUCKETS,
                    )
                })
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("callback_inbox_store_batch_size".to_owned()),
                        BATCH_BUCKETS,
                    )
                })
                .expect("valid buckets")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

#[derive(Clone)]
pub struct MetricsState {
    handle: PrometheusHandle,
    store: Store,
    /// SHA-256 of the configured token: compared digest to digest, so the
    /// comparison's timing says nothing about the token.
    token_digest: Option<Arc<[u8; 32]>>,
}

impl MetricsState {
    pub fn new(store: Store, token: Option<&str>) -> Self {
        Self {
            handle: handle(),
            store,
            token_digest: token
                .filter(|token| !token.is_empty())
                .map(|token| Arc::new(Sha256::digest(token.as_bytes()).into())),
        }
    }
}

pub async fn metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.token_digest {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| <[u8; 32]>::from(Sha256::digest(token.trim().as_bytes())));
        if given.as_ref() != Some(expected.as_ref()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(serde_json::json!({ "error": "a valid metrics token is required" })),
            )
                .into_response();
        }
    }
    match state.store.active_sessions().await {
        Ok(sessions) => metrics::gauge!("callback_inbox_active_sessions").set(sessions as f64),
        Err(err) => tracing::warn!(error = %err, "could not count sessions"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.handle.render(),
    )
        .into_response()
}
