//! The commands of the `callback-inbox` binary besides `serve`: database
//! and account management (run beside the server, on its database), and
//! the companion commands that talk HTTP to an inbox: `send` (with its
//! spool, and as a Claude Code hook), `listen` and `replay` (docs/cli.md,
//! "Sending callbacks from the command line", "Receiving on your machine").

mod event_stream;
mod hook;
mod listen;
mod manage;
mod output;
mod replay;
mod send;
mod source;
mod spool;
mod token;

use std::process::ExitCode;
use std::time::Duration;

use inbox_server::config::{Cli, Command};
pub use output::remember_local_offset;
use output::terminal_safe;

/// `EX_TEMPFAIL` (sysexits.h): not delivered now, kept to try again.
pub const EXIT_TEMPFAIL: u8 = 75;
/// Longest wait for a connection to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("callback-inbox/", env!("CARGO_PKG_VERSION"));

/// Whether the command is one of the HTTP companions, which log only
/// warnings by default (their output is what they print).
pub fn is_companion(cli: &Cli) -> bool {
    matches!(
        cli.command,
        Some(
            Command::Send(_)
                | Command::Listen(_)
                | Command::Replay(_)
                | Command::Token(_)
                | Command::Source(_)
        )
    )
}

/// Whether the command is `send --hook`, which reads no `.env`: it runs in
/// whatever project folder Claude Code works in, whose `.env` is not the
/// user's to trust (it could point the spool elsewhere).
pub fn is_hook(cli: &Cli) -> bool {
    matches!(&cli.command, Some(Command::Send(args)) if args.hook)
}

pub async fn run(cli: Cli) -> ExitCode {
    let config = cli.config;
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Send(args) if args.hook => {
            return hook::run(*args, config.max_body_bytes).await;
        }
        Command::Send(args) => return send::run(*args).await,
        Command::Listen(args) => return listen::run(*args).await,
        Command::Replay(args) => return replay::run(*args).await,
        Command::Token(command) => token::run(command, &config).await,
        Command::Source(command) => source::run(command, &config)
            .await
            .map_err(|err| err.to_string()),
        command => manage::run(command, config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// An HTTP client for the companions: rustls, no redirects (a redirected
/// POST would silently become a GET), a connect timeout, and `timeout` for
/// each whole request when given.
fn http_client(timeout: Option<Duration>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT.min(timeout.unwrap_or(CONNECT_TIMEOUT)));
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    builder
        .build()
        .map_err(|err| format!("cannot start the HTTP client: {err}"))
}

/// Checks that `url` is an http(s) URL, for a clear message before any
/// request.
fn parse_url(url: &str, what: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|err| format!("{what} {url:?} is not a URL: {err}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("{what} {url:?} must be an http:// or https:// URL"));
    }
    Ok(parsed)
}

/// What went wrong with a request, in a few words: the innermost cause
/// (`Connection refused (os error 111)`), or that it timed out. Safe to
/// print (a cause may quote what the other side sent).
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_owned();
    }
    let mut cause: &dyn std::error::Error = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let text = terminal_safe(&cause.to_string());
    if err.is_connect() && !text.to_lowercase().contains("connect") {
        format!("cannot connect: {text}")
    } else {
        text
    }
}

/// `Retry-After` in seconds (the form webhook receivers send).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The message of an error answer: its JSON `error` field, else the start
/// of its text; escaped for the terminal (it is the other side's text).
fn answer_message(text: &str) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text)
        && let Some(serde_json::Value::String(message)) = map.get("error")
    {
        return terminal_safe(message);
    }
    let text = text.trim();
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("{}…", terminal_safe(&cut))
    } else {
        terminal_safe(&cut)
    }
}

/// The `X-Webhook-Event` header for an event name. A header value cannot
/// hold control characters (and non-ASCII is obsolete there), yet the
/// callback must still go out: such a name is sent percent-encoded as UTF-8
/// (RFC 3986, `%` included); a name of printable ASCII is sent as it is.
fn event_header_value(event: &str) -> reqwest::header::HeaderValue {
    let plain = |byte: u8| byte.is_ascii_graphic() || byte == b' ';
    let text = if event.bytes().all(plain) {
        event.to_owned()
    } else {
        let mut encoded = String::with_capacity(event.len() * 3);
        for byte in event.bytes() {
            if plain(byte) && byte != b'%' {
                encoded.push(char::from(byte));
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        encoded
    };
    reqwest::header::HeaderValue::from_str(&text)
        // Unreachable (printable ASCII only), but never worth a lost callback.
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid"))
}

/// `duration` scaled by a random factor in [0.5, 1]: spreads out retries
/// of many senders that failed at the same moment.
fn jitter(duration: Duration) -> Duration {
    use rand::Rng;
    duration.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// Waits before reconnecting: 0.5 s doubling up to 30 s, with jitter;
/// reset by a good connection.
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn new() -> Self {
        Self { failures: 0 }
    }

    fn next_delay(&mut self) -> Duration {
        let base = Duration::from_millis(500).saturating_mul(1 << self.failures.min(6));
        self.failures += 1;
        jitter(base.min(Duration::from_secs(30)))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_shown_by_their_message() {
        assert_eq!(
            answer_message("{\"error\":\"invalid or missing webhook signature\"}"),
            "invalid or missing webhook signature"
        );
        assert_eq!(answer_message("  Bad Gateway\n"), "Bad Gateway");
        assert_eq!(answer_message(&"x".repeat(300)).chars().count(), 201);
    }

    #[test]
    fn error_answers_cannot_act_on_the_terminal() {
        let forged = answer_message("{\"error\":\"no\\n\\u001b[2K06:05:08  x  → 200 OK\"}");
        assert_eq!(forged, "no\\n\\u{1b}[2K06:05:08  x  → 200 OK");
        assert!(!answer_message("bad\r\u{9b}gateway").contains(['\r', '\u{9b}']));
    }

    #[test]
    fn any_event_name_makes_a_header() {
        assert_eq!(
            event_header_value("workflow.completed"),
            "workflow.completed"
        );
        assert_eq!(event_header_value("50% done"), "50% done");
        assert_eq!(
            event_header_value("a\r\nX-Injected: 1"),
            "a%0D%0AX-Injected: 1"
        );
        assert_eq!(event_header_value("tâche 100%"), "t%C3%A2che 100%25");
        assert_eq!(event_header_value("\u{1b}[2K"), "%1B[2K");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn reconnect_delays_grow_to_a_cap_and_reset() {
        let mut backoff = Backoff::new();
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500));
        for _ in 0..20 {
            assert!(backoff.next_delay() <= Duration::from_secs(30));
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(500));
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(parse_url("http://127.0.0.1:3000/x", "--url").is_ok());
        assert!(parse_url("https://inbox.example.com", "--url").is_ok());
        for bad in ["ftp://x", "localhost:3000", "", "http://"] {
            assert!(parse_url(bad, "--url").is_err(), "{bad}");
        }
    }
}
