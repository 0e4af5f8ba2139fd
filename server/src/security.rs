//! Request hardening for the dashboard: client address, cross-origin
//! rejection, security headers, and the sign-in redirect for admin pages.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use app::auth::server::session_user;
use app::state::{AppState, ClientAddress};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, ORIGIN, REFERRER_POLICY,
    STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tower_sessions::Session;

pub const WEBHOOK_PREFIX: &str = "/api/webhooks/";

/// Whether `path` is a source's webhook (`/api/webhooks/{name}`, one segment).
pub fn is_webhook_path(path: &str) -> bool {
    path.strip_prefix(WEBHOOK_PREFIX)
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// Policy for responses that carry no page (JSON, files): nothing may run.
const STRICT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Settings of the request hardening layers.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub trusted_proxies: Arc<[IpAddr]>,
    /// Accepted `Origin` besides the server's own address, normalised
    /// (`scheme://host[:port]`).
    pub public_origin: Option<String>,
    pub secure_cookies: bool,
}

/// Records the client address (trusted proxies applied) for later layers.
pub async fn record_client_address(
    State(settings): State<Arc<SecuritySettings>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = client_address(peer, request.headers(), &settings.trusted_proxies);
    request.extensions_mut().insert(ClientAddress(address));
    next.run(request).await
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// nearest untrusted hop of `X-Forwarded-For`.
pub fn client_address(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer_ip = peer.ip();
    if !trusted.contains(&peer_ip) {
        return peer_ip;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .rev()
        .find(|hop| !trusted.contains(hop))
        .unwrap_or(peer_ip)
}

/// Rejects state-changing requests from other sites (CSRF), except the
/// webhook, which is called by machines and authenticated by its signature.
pub async fn reject_cross_origin(
    State(settings): State<Arc<SecuritySettings>>,
    request: Request,
    next: Next,
) -> Response {
    let safe_method = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe_method || is_webhook_path(request.uri().path()) {
        return next.run(request).await;
    }
    // The address the client reached (the socket's, which no header can
    // change); without it (a router served some other way) only the
    // public URL is accepted.
    let allowed = request
        .extensions()
        .get::<LocalAddress>()
        .map(|local| allowed_origins(local.0, settings.public_origin.as_deref()))
        .unwrap_or_else(|| settings.public_origin.iter().cloned().collect());
    if is_cross_origin(request.headers(), &allowed) {
        tracing::info!(path = %request.uri().path(), "cross-origin request rejected");
        return (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({ "error": "cross-origin request rejected", "code": "forbidden" })),
        )
            .into_response();
    }
    next.run(request).await
}

/// The local address of the connection a request came on (set by the
/// accept loop).
#[derive(Debug, Clone, Copy)]
pub struct LocalAddress(pub SocketAddr);

/// The cross-origin rule (docs/security.md). `Origin` is compared with
/// the pinned `allowed` origins, not with the request's `Host`, which a
/// client (or a DNS-rebinding page) chooses freely.
pub fn is_cross_origin(headers: &HeaderMap, allowed: &[String]) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    match text("sec-fetch-site") {
        Some("same-origin" | "none") => return false,
        Some("cross-site" | "same-site") => return true,
        _ => {}
    }
    let Some(origin) = text(ORIGIN.as_str()) else {
        // Neither header: not a browser, so not CSRF (scripts, curl).
        return false;
    };
    let origin = origin.trim_end_matches('/');
    !allowed
        .iter()
        .any(|allowed| origin.eq_ignore_ascii_case(allowed))
}

/// The origins browsers use to reach a server at `listen` (the address a
/// connection came in on): the address itself over http and https, the
/// loopback names when it is a loopback address, and the public URL.
pub fn allowed_origins(listen: SocketAddr, public_origin: Option<&str>) -> Vec<String> {
    let port = listen.port();
    let mut hosts = Vec::new();
    let ip = listen.ip();
    if !ip.is_unspecified() {
        hosts.push(match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    if ip.is_loopback() || ip.is_unspecified() {
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            if !hosts.iter().any(|known| known == host) {
                hosts.push(host.to_owned());
            }
        }
    }
    let mut origins: Vec<String> = hosts
        .iter()
        .flat_map(|host| {
            [
                format!("http://{host}:{port}"),
                format!("https://{host}:{port}"),
            ]
        })
        .collect();
    origins.extend(public_origin.map(str::to_owned));
    origins
}

/// Whether a response to `path` must never be kept by a browser or proxy:
/// admin pages and API answers carry user data (an invitation answer even
/// carries a password).
fn is_private_path(path: &str) -> bool {
    path == "/login"
        || path == "/admin"
        || path.starts_with("/admin/")
        || path.starts_with("/api/")
        || path == "/metrics"
}

/// Headers every response gets; pages set their own CSP (with the nonce of
/// their hydration script), everything else gets a strict one.
pub async fn security_headers(
    State(settings): State<Arc<SecuritySettings>>,
    request: Request,
    next: Next,
) -> Response {
    let private = is_private_path(request.uri().path());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if private {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(STRICT_CSP),
        );
    }
    if settings.secure_cookies {
        headers.insert(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

/// Sends a path with dot segments (`/x/../admin`, also percent-encoded) or
/// empty segments to its normal form with a 308, so that every later check
/// sees the path the router will serve.
pub async fn normalize_dot_segments(request: Request, next: Next) -> Response {
    let Some(normal) = normalized_path(request.uri().path()) else {
        return next.run(request).await;
    };
    // A `\` is percent-encoded: browsers read `/\host` as `//host`, a
    // redirect to another site.
    let normal = normal.replace('\\', "%5C");
    let location = match request.uri().query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    (StatusCode::PERMANENT_REDIRECT, [(LOCATION, location)]).into_response()
}

/// The path with `.`/`..` segments resolved and empty ones dropped, or
/// `None` when it is already normal.
pub fn normalized_path(path: &str) -> Option<String> {
    let is_dot = |seg: &str| seg == "." || seg.eq_ignore_ascii_case("%2e");
    let is_dot_dot = |seg: &str| {
        seg.len() >= 2 && seg.len() <= 6 && seg.replace("%2e", ".").replace("%2E", ".") == ".."
    };
    let rest = path.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let mut changed = false;
    let mut trailing_slash = false;
    for (i, segment) in segments.into_iter().enumerate() {
        if is_dot(segment) {
            changed = true;
            trailing_slash = i == last;
        } else if is_dot_dot(segment) {
            changed = true;
            out.pop();
            trailing_slash = i == last;
        } else if segment.is_empty() {
            if i == last {
                trailing_slash = true;
            } else {
                changed = true;
            }
        } else {
            out.push(segment);
            trailing_slash = false;
        }
    }
    if !changed {
        return None;
    }
    let mut normal = format!("/{}", out.join("/"));
    if trailing_slash && !out.is_empty() {
        normal.push('/');
    }
    Some(normal)
}

/// Admin pages need a signed-in user; without one the browser goes to the
/// sign-in page, which brings it back afterwards.
pub async fn require_session_for_admin_pages(
    State(state): State<AppState>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !(path == "/admin" || path.starts_with("/admin/")) {
        return next.run(request).await;
    }
    match session_user(&session, &state).await {
        Ok(Some(_)) => next.run(request).await,
        Ok(None) => {
            let target = request
                .uri()
                .path_and_query()
                .map_or(path, |pq| pq.as_str());
            let next_param = app::url::encode_query_value(target);
            // 302, as the contract says (axum's Redirect::to is a 303).
            (
                StatusCode::FOUND,
                [(LOCATION, format!("/login?next={next_param}"))],
            )
                .into_response()
        }
        Err(err) => {
            tracing::error!(error = %err, "session check failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn fetch_metadata_decides_first() {
        assert!(!is_cross_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            &[]
        ));
        assert!(!is_cross_origin(
            &headers(&[("sec-fetch-site", "none")]),
            &[]
        ));
        assert!(is_cross_origin(
            &headers(&[("sec-fetch-site", "cross-site")]),
            &[]
        ));
        assert!(is_cross_origin(
            &headers(&[("sec-fetch-site", "same-site")]),
            &[]
        ));
        // Even with a matching Origin, cross-site fetch metadata wins.
        assert!(is_cross_origin(
            &headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://a:1"),
                ("host", "a:1")
            ]),
            &["http://a:1".to_owned()]
        ));
    }

    #[test]
    fn origin_must_be_our_own_or_the_public_url() {
        let listen: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let allowed = allowed_origins(listen, None);
        let own = headers(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000"),
        ]);
        assert!(!is_cross_origin(&own, &allowed));
        let localhost = headers(&[("origin", "http://localhost:3000")]);
        assert!(!is_cross_origin(&localhost, &allowed));
        let other = headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:3000"),
        ]);
        assert!(is_cross_origin(&other, &allowed));
        // A Host header the client chose proves nothing.
        let spoofed = headers(&[("origin", "http://evil.example"), ("host", "evil.example")]);
        assert!(is_cross_origin(&spoofed, &allowed));
        let behind_proxy: SocketAddr = "10.0.0.5:3000".parse().unwrap();
        let allowed = allowed_origins(behind_proxy, Some("https://inbox.example.com"));
        let public = headers(&[
            ("origin", "https://inbox.example.com"),
            ("host", "10.0.0.5:3000"),
        ]);
        assert!(!is_cross_origin(&public, &allowed));
        assert!(is_cross_origin(
            &headers(&[("origin", "null"), ("host", "a")]),
            &allowed
        ));
    }

    #[test]
    fn private_paths_are_never_cached() {
        for path in [
            "/admin/callbacks",
            "/api/callbacks/poll",
            "/api/admin/users",
            "/login",
        ] {
            assert!(is_private_path(path), "{path}");
        }
        for path in ["/pkg/callback-inbox.wasm", "/healthz", "/favicon.ico"] {
            assert!(!is_private_path(path), "{path}");
        }
    }

    #[test]
    fn dot_segments_are_resolved_before_any_check() {
        assert_eq!(normalized_path("/admin/callbacks"), None);
        assert_eq!(normalized_path("/admin/"), None);
        assert_eq!(normalized_path("/"), None);
        assert_eq!(
            normalized_path("/x/../admin/callbacks").as_deref(),
            Some("/admin/callbacks")
        );
        assert_eq!(
            normalized_path("/x/%2e%2E/admin/callbacks").as_deref(),
            Some("/admin/callbacks")
        );
        assert_eq!(normalized_path("/./admin").as_deref(), Some("/admin"));
        assert_eq!(
            normalized_path("//admin//users").as_deref(),
            Some("/admin/users")
        );
        assert_eq!(normalized_path("/../../..").as_deref(), Some("/"));
        assert_eq!(normalized_path("/admin/..").as_deref(), Some("/"));
        assert_eq!(normalized_path("/a/b/.").as_deref(), Some("/a/b/"));
    }

    #[test]
    fn requests_without_browser_headers_are_allowed() {
        assert!(!is_cross_origin(&HeaderMap::new(), &[]));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let map = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.2")]);
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let peer = SocketAddr::new(proxy, 4000);
        assert_eq!(client_address(peer, &map, &[]), proxy);
        assert_eq!(
            client_address(peer, &map, &[proxy]),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }
}
