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
    CONTENT_SECURITY_POLICY, HOST, LOCATION, ORIGIN, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tower_sessions::Session;

pub const WEBHOOK_PATH: &str = "/api/webhooks/llm-callback";

/// Policy for responses that carry no page (JSON, files): nothing may run.
const STRICT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Settings of the request hardening layers.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub trusted_proxies: Arc<[IpAddr]>,
    /// Accepted `Origin` besides the request's own, normalised (`scheme://host[:port]`).
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
    if safe_method || request.uri().path() == WEBHOOK_PATH {
        return next.run(request).await;
    }
    if is_cross_origin(request.headers(), settings.public_origin.as_deref()) {
        tracing::info!(path = %request.uri().path(), "cross-origin request rejected");
        return (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({ "error": "cross-origin request rejected", "code": "forbidden" })),
        )
            .into_response();
    }
    next.run(request).await
}

/// The cross-origin rule (README, "Security").
pub fn is_cross_origin(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
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
    let own = text(HOST.as_str()).map(|host| (format!("http://{host}"), format!("https://{host}")));
    let is_own = own.is_some_and(|(http, https)| {
        origin.eq_ignore_ascii_case(&http) || origin.eq_ignore_ascii_case(&https)
    });
    let is_public = public_origin.is_some_and(|public| origin.eq_ignore_ascii_case(public));
    !(is_own || is_public)
}

/// Headers every response gets; pages set their own CSP (with the nonce of
/// their hydration script), everything else gets a strict one.
pub async fn security_headers(
    State(settings): State<Arc<SecuritySettings>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
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
            None
        ));
        assert!(!is_cross_origin(
            &headers(&[("sec-fetch-site", "none")]),
            None
        ));
        assert!(is_cross_origin(
            &headers(&[("sec-fetch-site", "cross-site")]),
            None
        ));
        assert!(is_cross_origin(
            &headers(&[("sec-fetch-site", "same-site")]),
            None
        ));
        // Even with a matching Origin, cross-site fetch metadata wins.
        assert!(is_cross_origin(
            &headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://a:1"),
                ("host", "a:1")
            ]),
            None
        ));
    }

    #[test]
    fn origin_must_be_our_own_or_the_public_url() {
        let own = headers(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000"),
        ]);
        assert!(!is_cross_origin(&own, None));
        let other = headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:3000"),
        ]);
        assert!(is_cross_origin(&other, None));
        let public = headers(&[
            ("origin", "https://inbox.example.com"),
            ("host", "10.0.0.5:3000"),
        ]);
        assert!(!is_cross_origin(&public, Some("https://inbox.example.com")));
        assert!(is_cross_origin(
            &headers(&[("origin", "null"), ("host", "a")]),
            None
        ));
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
        assert!(!is_cross_origin(&HeaderMap::new(), None));
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
