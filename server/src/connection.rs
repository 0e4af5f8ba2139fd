//! Accepting connections with limits on how many a client may hold and how
//! long it may take.
//!
//! `axum::serve` arms no timer and counts nothing, so a client that never
//! finishes its headers (slowloris), idles on a kept-alive connection, stops
//! reading a response, or simply opens a thousand sockets holds tasks and
//! file descriptors until the process runs out and `/healthz` goes dark.
//! This accept loop serves each connection with hyper's HTTP/1 builder and:
//! - a header-read timeout (hyper applies it to the first request's headers
//!   and to the idle wait before each later one);
//! - a write-progress timeout: a write that makes no progress for
//!   `write_timeout` fails and closes the connection (exports, streams and
//!   pages alike; a slow reader is fine, a stopped one is dropped);
//! - a cap on open connections, in total and per client address: a new
//!   connection over a cap closes the oldest *idle* connection (no request
//!   in progress, or headers still arriving) of the same kind, and is
//!   refused only when every such connection is busy.
//!
//! Bodies are bounded by the router (a body timeout layer, and the webhook's
//! own deadline and byte budget).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_io_timeout::TimeoutStream;
use tower::{Service, ServiceExt};

use crate::security::LocalAddress;

/// How long open connections may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// File descriptors kept free for everything but client connections
/// (database files and connections, the listener, logs).
const RESERVED_FILES: u64 = 128;

/// The limits every connection is held to.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// For the request headers, and for the idle wait between requests.
    pub header_timeout: Duration,
    /// Longest a response write may make no progress.
    pub write_timeout: Duration,
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections of one client address (IPv6: one /64).
    pub max_per_address: usize,
    /// Addresses not held to the per-address cap (trusted proxies: every
    /// client behind them shares their address).
    pub unlimited_addresses: Arc<[IpAddr]>,
}

/// Raises the soft limit of open files to the hard limit, and returns the
/// limit in force: each connection is a file.
pub fn raise_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// The connection cap a file limit allows, below any configured one.
pub fn connection_cap(file_limit: u64, configured: Option<usize>) -> usize {
    let allowed =
        usize::try_from(file_limit.saturating_sub(RESERVED_FILES).max(16)).unwrap_or(usize::MAX);
    configured.map_or(allowed, |wanted| wanted.min(allowed))
}

/// The address a per-address cap counts: IPv6 clients by their /64 (one
/// host usually holds a whole /64), IPv4 clients by address.
pub fn address_group(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
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
    let open = OpenConnections::new(limits.clone());
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
        let Some(admitted) = open.admit(peer.ip()) else {
            metrics::counter!("callback_inbox_connections_refused_total").increment(1);
            tracing::debug!(%peer, "connection refused: every connection over the cap is busy");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok().map(LocalAddress);
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let Ok(service) = make_service.call(peer).await;
        let busy = admitted.busy.clone();
        // Busy from the request's start (its body may still be arriving)
        // until its response body is done.
        let service =
            TowerToHyperService::new(tower::service_fn(move |mut request: Request<Incoming>| {
                let guard = BusyGuard::new(busy.clone());
                if let Some(local) = local {
                    request.extensions_mut().insert(local);
                }
                let call = service.clone().oneshot(request.map(Body::new));
                async move {
                    let response = call.await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| {
                        Body::new(TrackedBody {
                            body,
                            _guard: guard,
                        })
                    }))
                }
            }));
        let connection = builder.serve_connection(TokioIo::new(Box::pin(stream)), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let Admitted { close, .. } = admitted;
            tokio::select! {
                result = connection => if let Err(err) = result {
                    // Timeouts and resets end here: normal on the internet.
                    tracing::debug!(error = %err, %peer, "connection closed with an error");
                },
                // Closed to make room: dropping the connection closes its socket.
                _ = close => tracing::debug!(%peer, "idle connection closed to make room"),
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

/// Every open connection, oldest first, with whether a request is in progress.
#[derive(Clone)]
pub struct OpenConnections {
    limits: ConnectionLimits,
    registry: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    /// By age: ids grow with each accepted connection.
    entries: BTreeMap<u64, Entry>,
    per_group: HashMap<IpAddr, usize>,
}

struct Entry {
    group: IpAddr,
    busy: Arc<AtomicUsize>,
    close: Option<oneshot::Sender<()>>,
}

/// A connection let in: its requests mark it busy, `close` fires when it
/// must make room, and dropping it takes it off the registry.
pub struct Admitted {
    pub busy: Arc<AtomicUsize>,
    pub close: ClosedToMakeRoom,
}

/// Completes when the connection is chosen to make room for a newer one.
pub struct ClosedToMakeRoom {
    receiver: oneshot::Receiver<()>,
    _entry: EntryGuard,
}

impl Future for ClosedToMakeRoom {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match Pin::new(&mut self.receiver).poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(()),
            // The sender went with the entry: nobody can close us any more.
            Poll::Ready(Err(_)) | Poll::Pending => Poll::Pending,
        }
    }
}

struct EntryGuard {
    registry: Arc<Mutex<Registry>>,
    id: u64,
}

impl Drop for EntryGuard {
    fn drop(&mut self) {
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.remove(self.id);
    }
}

impl Registry {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        if let Some(count) = self.per_group.get_mut(&entry.group) {
            *count -= 1;
            if *count == 0 {
                self.per_group.remove(&entry.group);
            }
        }
        metrics::gauge!("callback_inbox_open_connections").set(self.entries.len() as f64);
        Some(entry)
    }

    /// Closes the oldest idle connection (of `group`, when given); false
    /// when every candidate is busy.
    fn close_oldest_idle(&mut self, group: Option<IpAddr>) -> bool {
        let victim = self.entries.iter().find_map(|(id, entry)| {
            let candidate = group.is_none_or(|group| entry.group == group)
                && entry.busy.load(Ordering::Acquire) == 0;
            candidate.then_some(*id)
        });
        let Some(id) = victim else {
            return false;
        };
        if let Some(mut entry) = self.remove(id)
            && let Some(close) = entry.close.take()
        {
            let _ = close.send(());
        }
        metrics::counter!("callback_inbox_connections_closed_for_room_total").increment(1);
        true
    }
}

impl OpenConnections {
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            registry: Arc::default(),
        }
    }

    /// Lets a connection from `address` in, making room first when a cap
    /// is reached; `None` when there is no room to make.
    pub fn admit(&self, address: IpAddr) -> Option<Admitted> {
        let group = address_group(address);
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let limited = !self.limits.unlimited_addresses.contains(&address);
        if limited
            && registry.per_group.get(&group).copied().unwrap_or(0) >= self.limits.max_per_address
            && !registry.close_oldest_idle(Some(group))
        {
            return None;
        }
        if registry.entries.len() >= self.limits.max_connections
            && !registry.close_oldest_idle(None)
        {
            return None;
        }
        let id = registry.next_id;
        registry.next_id += 1;
        let busy = Arc::new(AtomicUsize::new(0));
        let (sender, receiver) = oneshot::channel();
        registry.entries.insert(
            id,
            Entry {
                group,
                busy: busy.clone(),
                close: Some(sender),
            },
        );
        *registry.per_group.entry(group).or_default() += 1;
        metrics::gauge!("callback_inbox_open_connections").set(registry.entries.len() as f64);
        drop(registry);
        Some(Admitted {
            busy,
            close: ClosedToMakeRoom {
                receiver,
                _entry: EntryGuard {
                    registry: self.registry.clone(),
                    id,
                },
            },
        })
    }

    /// Open connections in all.
    pub fn len(&self) -> usize {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counts a request as in progress from its start until its response body
/// is finished or dropped.
struct BusyGuard(Arc<AtomicUsize>);

impl BusyGuard {
    fn new(busy: Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        Self(busy)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection marked busy while it streams.
struct TrackedBody {
    body: Body,
    _guard: BusyGuard,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn limits(total: usize, per_address: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections: total,
            max_per_address: per_address,
            unlimited_addresses: Arc::from(vec!["10.0.0.1".parse::<IpAddr>().unwrap()]),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn a_new_connection_over_the_cap_closes_the_oldest_idle_one() {
        let open = OpenConnections::new(limits(3, 100));
        let mut first = open.admit(ip("192.0.2.1")).unwrap();
        let second = open.admit(ip("192.0.2.2")).unwrap();
        let _third = open.admit(ip("192.0.2.3")).unwrap();
        // The oldest is busy: the second goes.
        second.busy.fetch_add(1, Ordering::AcqRel);
        first.busy.fetch_add(1, Ordering::AcqRel);
        second.busy.fetch_sub(1, Ordering::AcqRel);
        let _fourth = open.admit(ip("192.0.2.4")).unwrap();
        tokio::time::timeout(Duration::from_secs(1), second.close)
            .await
            .expect("the oldest idle connection is closed");
        assert_eq!(open.len(), 3);
        // Only busy ones left over the cap: refused.
        assert!(
            (&mut first.close).now_or_never().is_none(),
            "a busy connection stays"
        );
    }

    #[tokio::test]
    async fn every_connection_busy_means_the_new_one_is_refused() {
        let open = OpenConnections::new(limits(2, 100));
        let a = open.admit(ip("192.0.2.1")).unwrap();
        let b = open.admit(ip("192.0.2.2")).unwrap();
        a.busy.fetch_add(1, Ordering::AcqRel);
        b.busy.fetch_add(1, Ordering::AcqRel);
        assert!(open.admit(ip("192.0.2.3")).is_none());
        drop(a);
        assert!(
            open.admit(ip("192.0.2.3")).is_some(),
            "a closed one frees its place"
        );
    }

    #[tokio::test]
    async fn one_address_makes_room_among_its_own_connections_only() {
        let open = OpenConnections::new(limits(100, 2));
        let other = open.admit(ip("192.0.2.9")).unwrap();
        let old = open.admit(ip("192.0.2.1")).unwrap();
        let _newer = open.admit(ip("192.0.2.1")).unwrap();
        let _newest = open.admit(ip("192.0.2.1")).unwrap();
        tokio::time::timeout(Duration::from_secs(1), old.close)
            .await
            .expect("the address's oldest idle connection is closed");
        assert!(other.close.now_or_never().is_none());
        // IPv6 addresses of one /64 are one client; trusted proxies are not capped.
        let _a = open.admit(ip("2001:db8::1")).unwrap();
        let _b = open.admit(ip("2001:db8::2")).unwrap();
        let mut busy = Vec::new();
        for _ in 0..2 {
            let admitted = open.admit(ip("2001:db8::3")).unwrap();
            admitted.busy.fetch_add(1, Ordering::AcqRel);
            busy.push(admitted);
        }
        assert!(open.admit(ip("2001:db8::4")).is_none());
        assert!(open.admit(ip("2001:db8:0:1::4")).is_some());
        let proxied: Vec<_> = (0..5).map(|_| open.admit(ip("10.0.0.1"))).collect();
        assert!(proxied.iter().all(Option::is_some));
    }

    #[test]
    fn the_cap_leaves_files_for_the_database() {
        assert_eq!(connection_cap(1024, None), 896);
        assert_eq!(connection_cap(1024, Some(100)), 100);
        assert_eq!(connection_cap(65_536, Some(100_000)), 65_408);
        assert_eq!(connection_cap(10, None), 16);
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_64() {
        assert_eq!(
            address_group(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(address_group(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_group(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }
}
