//! The callback-inbox server: configuration, the axum router (Leptos pages,
//! server functions, the webhook, health, static files) and start-up.

pub mod accounts;
pub mod config;
pub mod connection;
pub mod data_files;
pub mod export;
pub mod prometheus;
pub mod request_id;
pub mod retention;
pub mod security;
pub mod session_records;
pub mod site;
pub mod stream;
pub mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::state::{AppState, DashboardSettings, WebhookView};
use app::{App, shell};
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http::StatusCode;
use http::header::LOCATION;
use inbox_core::accounts::{AccountError, LoginThrottle, PasswordHasherPool};
use inbox_core::ingest::{IngestSettings, RingError, SecretRing, SecretSource, curl_example};
use inbox_core::source_registry::SourceRegistry;
use inbox_core::store::{Store, StoreError};
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list, handle_server_fns_with_context};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::connection::ConnectionLimits;
use crate::webhook::{BodyBudget, WebhookState};

/// How often generated secrets are re-read (a `secret rotate` from another
/// process takes effect within this time).
const SECRET_REFRESH: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] RingError),
    #[error(transparent)]
    Accounts(#[from] AccountError),
    #[error("session store: {0}")]
    Sessions(String),
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// A ready server: its router, the state behind it and its connection limits.
pub struct Server {
    pub router: Router,
    pub store: Store,
    pub limits: ConnectionLimits,
}

/// Opens the database, loads secrets and builds the router.
pub async fn build_server(config: &Config) -> Result<Server, StartupError> {
    data_files::protect_sqlite_files(&config.database_url)?;
    let store = Store::open(&config.database_url).await?;
    data_files::tighten_sqlite_files(&config.database_url);
    let secrets_file = match &config.webhook_secrets_file {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|err| {
            StartupError::Config(format!(
                "cannot read LLM_WEBHOOK_SECRETS_FILE {}: {err}",
                path.display()
            ))
        })?),
        None => None,
    };
    let (secrets, fresh) = SecretRing::load(
        &store,
        config.webhook_secret.as_deref(),
        secrets_file.as_deref(),
    )
    .await?;
    if let Some(fresh) = fresh {
        print_secret_banner(
            "A webhook secret was generated and stored",
            &fresh.0,
            &config.base_url(),
        );
    }
    if secrets.source() == SecretSource::Generated {
        spawn_secret_refresh(secrets.clone(), store.clone());
    }
    let sources = SourceRegistry::load(&store, secrets.clone(), config.signature_mode).await?;
    sources.spawn_refresher(store.clone());

    let hasher = PasswordHasherPool::default();
    accounts::bootstrap_admin(&store, &hasher, config).await?;
    let (sessions, session_store) = accounts::session_layer(&store, config).await?;

    let leptos_options = site::leptos_options(config);
    let app_state = AppState {
        leptos_options: leptos_options.clone(),
        store: store.clone(),
        hasher,
        settings: Arc::new(DashboardSettings {
            argon_turns: Arc::default(),
            poll_interval_secs: config.poll_interval_secs,
            retention_days: config.retention_days,
            session_max_secs: config.session_max_secs,
            login_throttle: LoginThrottle {
                base_delay: Duration::from_millis(config.login_delay_ms),
                max_delay: Duration::from_millis(config.login_max_delay_ms),
                secure_cookies: config.secure_cookies,
                ..LoginThrottle::default()
            },
        }),
        webhook: WebhookView {
            secrets: secrets.clone(),
            sources: sources.clone(),
            ingest: IngestSettings {
                mode: config.signature_mode,
                timestamp_tolerance_secs: config.timestamp_tolerance_secs,
            },
            max_body_bytes: config.max_body_bytes,
            base_url: config.base_url(),
        },
        started_at: Instant::now(),
    };
    let security = Arc::new(security::SecuritySettings {
        trusted_proxies: config.trusted_proxies.clone().into(),
        public_origin: config
            .public_url
            .as_deref()
            .map(normalize_origin)
            .transpose()?,
        secure_cookies: config.secure_cookies,
    });
    let webhook_state = WebhookState {
        store: store.clone(),
        sources,
        timestamp_tolerance_secs: config.timestamp_tolerance_secs,
        max_body_bytes: config.max_body_bytes,
        body_timeout: Duration::from_secs(config.body_timeout_secs),
        budget: BodyBudget::new(config.max_inflight_body_bytes, config.max_body_bytes),
    };

    let context = {
        let app_state = app_state.clone();
        move || provide_context(app_state.clone())
    };
    let routes = generate_route_list(App);
    let mut router = Router::new();
    if config.bench_noop_route {
        router = router.route("/bench/noop", post(noop));
    }
    let router = router
        .route(
            "/api/webhooks/{name}",
            post(webhook::receive_callback).with_state(webhook_state),
        )
        .route(
            "/api/callbacks/stream",
            get(stream::callback_stream).with_state(stream::StreamState {
                app: app_state.clone(),
                sessions: session_store,
                hub: stream::FeedHub::spawn(store.clone(), config.max_streams_per_user),
            }),
        )
        .route("/api/callbacks/export", get(export::export_callbacks))
        .route(
            "/metrics",
            get(prometheus::metrics).with_state(prometheus::MetricsState::new(
                store.clone(),
                config.metrics_token.as_deref(),
            )),
        )
        .route("/healthz", get(health))
        .route(
            "/",
            get(|| async { (StatusCode::FOUND, [(LOCATION, "/admin/callbacks")]) }),
        )
        .route("/api/{*fn_name}", post(server_fn_handler))
        .leptos_routes_with_context(&app_state, routes, context.clone(), {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .layer(from_fn_with_state(
            app_state.clone(),
            security::require_session_for_admin_pages,
        ))
        .with_state(app_state)
        .layer(sessions)
        .layer(from_fn_with_state(
            security.clone(),
            security::reject_cross_origin,
        ))
        .layer(from_fn_with_state(
            security.clone(),
            security::record_client_address,
        ))
        .layer(from_fn_with_state(security, security::security_headers))
        .layer(axum::middleware::from_fn(security::normalize_dot_segments))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            Duration::from_secs(config.body_timeout_secs),
        ))
        .layer(axum::middleware::from_fn(request_id::assign_request_id));
    retention::spawn(store.clone(), config.retention_days);
    let file_limit = connection::raise_file_limit();
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(config.header_timeout_secs),
        write_timeout: Duration::from_secs(config.write_timeout_secs.max(1)),
        max_connections: connection::connection_cap(file_limit, config.max_connections),
        max_per_address: config.max_connections_per_address.max(1),
        unlimited_addresses: config.trusted_proxies.clone().into(),
    };
    tracing::info!(
        file_limit,
        max_connections = limits.max_connections,
        max_per_address = limits.max_per_address,
        "connection limits"
    );
    Ok(Server {
        router,
        store,
        limits,
    })
}

/// Serves until `shutdown` completes, then drains connections and flushes
/// pending audit rows.
pub async fn serve(
    server: Server,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let Server {
        router,
        store,
        limits,
    } = server;
    connection::serve_connections(listener, router, limits, shutdown).await;
    store.flush().await?;
    Ok(())
}

/// Binds the configured address and serves until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), StartupError> {
    let server = build_server(&config).await?;
    let listener = TcpListener::bind(config.site_addr)
        .await
        .map_err(|source| StartupError::Listen {
            addr: config.site_addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(StartupError::Serve)?;
    tracing::info!(%addr, "callback-inbox listening");
    println!("callback-inbox is running: open http://{addr}/admin/callbacks");
    serve(server, listener, shutdown_signal()).await
}

/// `https://host[:port]` from a configured public URL.
fn normalize_origin(url: &str) -> Result<String, StartupError> {
    let trimmed = url.trim().trim_end_matches('/');
    let (scheme, rest) = trimmed.split_once("://").ok_or_else(|| {
        StartupError::Config(format!(
            "INBOX_PUBLIC_URL {url:?} needs a scheme, e.g. https://inbox.example.com"
        ))
    })?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || !matches!(scheme, "http" | "https") {
        return Err(StartupError::Config(format!(
            "INBOX_PUBLIC_URL {url:?} is not an http(s) URL"
        )));
    }
    Ok(format!("{scheme}://{host}"))
}

async fn server_fn_handler(State(state): State<AppState>, request: Request) -> impl IntoResponse {
    handle_server_fns_with_context(move || provide_context(state.clone()), request).await
}

/// The benchmark's ceiling: the same stack, no work.
async fn noop(body: axum::body::Bytes) -> impl IntoResponse {
    axum::Json(serde_json::json!({ "received": true, "bytes": body.len() }))
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

fn spawn_secret_refresh(secrets: SecretRing, store: Store) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SECRET_REFRESH);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(err) = secrets.refresh(&store).await {
                tracing::warn!(error = %err, "could not refresh webhook secrets");
            }
        }
    });
}

/// Shows a secret on stdout (not in the logs) with a signed example request.
pub fn print_secret_banner(title: &str, secret: &str, base_url: &str) {
    println!(
        "\n==== {title} ====\nexport LLM_WEBHOOK_SECRET={secret}\n\nTry it (in the same shell, after the export):\n{}\n\nShow it again with: callback-inbox secret show\n",
        curl_example(base_url)
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
