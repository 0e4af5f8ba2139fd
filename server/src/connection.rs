//! Accepting connections with limits on how long a client may take.
//!
//! `axum::serve` arms no timer, so a client that never finishes its headers
//! (slowloris) or idles on a kept-alive connection holds a task and a socket
//! forever. This accept loop serves each connection with hyper's HTTP/1
//! builder and a header-read timeout, which hyper applies both to the first
//! request's headers and to the idle wait before each later request. Bodies
//! are bounded by the router (a body timeout layer, and the webhook's own
//! deadline and byte budget).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

/// How long open connections may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Time limits every connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// For the request headers, and for the idle wait between requests.
    pub header_timeout: Duration,
}

/// Serves `router` on every accepted connection until `shutdown` completes,
/// then gives open connections [`SHUTDOWN_GRACE`] to finish.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(service) = make_service.call(peer).await;
        let service = TowerToHyperService::new(
            service.map_request(|request: Request<Incoming>| request.map(axum::body::Body::new)),
        );
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // Timeouts and resets end here: normal on the internet.
                tracing::debug!(error = %err, %peer, "connection closed with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}
