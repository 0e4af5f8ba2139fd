//! `callback-inbox send`: signs a JSON callback and POSTs it, retrying
//! what may succeed later and keeping in the spool what did not succeed yet;
//! `send --flush` sends the spool again and `send --list` shows it.
//!
//! The callback is written to the spool *before* the first attempt and
//! removed after its 2xx (or its final refusal), so a kill at any instant
//! never loses it. A repeated delivery (killed between the 2xx and the
//! removal) is harmless: every attempt carries the same delivery id (the
//! same body, or the same `webhook-id`), and the inbox counts it as a retry.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use inbox_core::signature::{WebhookSecret, sign_hex, sign_standard};
use inbox_core::source_examples::TOKEN_VARIABLE;
use inbox_server::config::{SendArgs, SendScheme};
use time::OffsetDateTime;

use super::output::{Output, Style, TerminalText, clock, human_duration, rfc3339, terminal_safe};
use super::spool::{Entry, Spool, SpoolError};
use super::{
    EXIT_TEMPFAIL, answer_message, describe, event_header_value, http_client, jitter, parse_url,
    retry_after,
};

/// Attempts after which the waits grow exponentially.
const QUICK_ATTEMPTS: u32 = 2;
/// The longest `send` waits between two attempts; a longer `Retry-After`
/// ends the attempts, and the spool keeps the callback until then.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// The longest backoff of a spooled callback.
const MAX_SPOOL_DELAY: Duration = Duration::from_secs(3600);

/// What signs or authorizes a request: the secret for `hex` and
/// `standard` entries, the token for `send --hook`'s.
pub(super) struct Credentials {
    pub secret: Option<WebhookSecret>,
    pub token: Option<String>,
}

impl Credentials {
    /// Why an entry of `scheme` cannot be sent with these, if it cannot.
    fn missing(&self, scheme: SendScheme) -> Option<String> {
        match scheme {
            SendScheme::Hex | SendScheme::Standard if self.secret.is_none() => {
                Some("it needs the secret (--secret or LLM_WEBHOOK_SECRET); kept".to_owned())
            }
            SendScheme::Bearer if self.token.is_none() => {
                Some(format!("it needs the token ({TOKEN_VARIABLE}); kept"))
            }
            _ => None,
        }
    }
}

/// The token `send --hook` sends, from [`TOKEN_VARIABLE`]: `None` when
/// unset, empty, or not something a header can carry.
pub(super) fn hook_token() -> Option<String> {
    let token = std::env::var(TOKEN_VARIABLE).ok()?;
    let token = token.trim();
    let usable = !token.is_empty()
        && reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_ok();
    usable.then(|| token.to_owned())
}

/// How one attempt ended.
pub(super) enum Attempt {
    Delivered {
        status: u16,
        elapsed: Duration,
        answer: String,
    },
    /// Refused for good (a 4xx other than 408/429, or a redirect).
    Refused { status: u16, message: String },
    /// May succeed later: a network error, a timeout, 408, 429 or 5xx.
    Retry {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
        /// Could not connect at all.
        unreachable: bool,
    },
}

/// The spool folder: `--spool` (or `INBOX_SPOOL`), else `./spool`.
fn spool_dir(args: &SendArgs) -> PathBuf {
    args.spool.clone().unwrap_or_else(|| PathBuf::from("spool"))
}

pub async fn run(args: SendArgs) -> ExitCode {
    let out = Output::new(args.quiet);
    if args.list {
        return list(&args, &out);
    }
    let result = if args.flush {
        flush(&args, &out).await
    } else {
        send(&args, &out).await
    };
    result.unwrap_or_else(|message| {
        out.error(&message);
        ExitCode::FAILURE
    })
}

/// The secret from `--secret`, else from `LLM_WEBHOOK_SECRET` (its last
/// entry when the server's comma-separated list was given: the newest).
fn resolve_secret(flag: Option<&str>) -> Result<WebhookSecret, String> {
    let raw = match flag {
        Some(secret) => secret.to_owned(),
        None => std::env::var("LLM_WEBHOOK_SECRET")
            .ok()
            .and_then(|list| {
                list.split(',')
                    .map(str::trim)
                    .rfind(|secret| !secret.is_empty())
                    .map(str::to_owned)
            })
            .ok_or("no secret: pass --secret or set LLM_WEBHOOK_SECRET (nothing was sent)")?,
    };
    WebhookSecret::parse(&raw)
        .map_err(|err| format!("the secret cannot be used: {err} (nothing was sent)"))
}

/// The callback to send: the file's (or stdin's) text, which must be a
/// JSON object. Sent byte for byte as read.
fn read_input(file: Option<&Path>) -> Result<String, String> {
    let (bytes, name) = match file {
        Some(path) if path.as_os_str() == "-" => (read_stdin()?, "stdin".to_owned()),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|err| match err.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("{}: no such file (nothing was sent)", path.display())
                }
                _ => format!("cannot read {}: {err} (nothing was sent)", path.display()),
            })?;
            (bytes, path.display().to_string())
        }
        None if std::io::stdin().is_terminal() => {
            return Err(
                "nothing to send: give a FILE, or - to read the callback from stdin".to_owned(),
            );
        }
        None => (read_stdin()?, "stdin".to_owned()),
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{name} is not UTF-8 text, so not JSON (nothing was sent)"))?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Ok(text),
        Ok(other) => {
            let kind = match other {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            };
            Err(format!(
                "{name} holds {kind}, but a callback is a JSON object ({{\"job_id\": …, \"event\": …}}); nothing was sent"
            ))
        }
        Err(err) => Err(format!("{name} is not JSON: {err} (nothing was sent)")),
    }
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read stdin: {err}"))?;
    Ok(bytes)
}

/// One signed (or token-authorized) POST of `entry` to `url`, within
/// `timeout` when given (else the client's). `credentials` must hold what
/// the entry's scheme needs ([`Credentials::missing`]).
pub(super) async fn attempt(
    client: &reqwest::Client,
    url: &str,
    entry: &Entry,
    credentials: &Credentials,
    timeout: Option<Duration>,
) -> Attempt {
    let body = entry.body.as_bytes();
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    let missing = || Attempt::Retry {
        status: None,
        error: credentials.missing(entry.scheme).unwrap_or_default(),
        retry_after: None,
        unreachable: false,
    };
    match (entry.scheme, &credentials.secret, &credentials.token) {
        (SendScheme::Hex, Some(secret), _) => {
            request = request.header("x-webhook-signature", sign_hex(secret, body));
        }
        (SendScheme::Bearer, _, Some(token)) => {
            request = request
                .header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"))
                .header("idempotency-key", entry.idempotency_key());
        }
        (SendScheme::Standard, Some(secret), _) => {
            // The id is the callback's; the timestamp and signature are
            // fresh for every attempt, so no retry is ever stale.
            let id = entry
                .webhook_id
                .clone()
                .unwrap_or_else(|| format!("msg_{}", entry.id.simple()));
            let timestamp = OffsetDateTime::now_utc().unix_timestamp();
            request = request
                .header(
                    "webhook-signature",
                    sign_standard(secret, &id, timestamp, body),
                )
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string());
        }
        _ => return missing(),
    }
    if entry.scheme != SendScheme::Bearer
        && let Some(event) = entry.fields().event_type
    {
        // Whatever the name holds, the callback goes out.
        request = request.header("x-webhook-event", event_header_value(&event));
    }
    let started = Instant::now();
    let response = match request.body(entry.body.clone()).send().await {
        Ok(response) => response,
        Err(err) => {
            return Attempt::Retry {
                status: None,
                error: describe(&err),
                retry_after: None,
                unreachable: err.is_connect(),
            };
        }
    };
    let status = response.status();
    let wait = retry_after(response.headers());
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    let elapsed = started.elapsed();
    let code = status.as_u16();
    if status.is_success() {
        Attempt::Delivered {
            status: code,
            elapsed,
            answer: text,
        }
    } else if code == 408 || code == 429 || status.is_server_error() {
        Attempt::Retry {
            status: Some(code),
            error: format!("{status}: {}", answer_message(&text)),
            retry_after: wait,
            unreachable: false,
        }
    } else if status.is_redirection() {
        Attempt::Refused {
            status: code,
            message: format!(
                "{status}: the URL redirects{}; send to the final URL instead",
                location
                    .map(|to| format!(" to {}", TerminalText(&to)))
                    .unwrap_or_default()
            ),
        }
    } else {
        Attempt::Refused {
            status: code,
            message: format!("{status}: {}", answer_message(&text)),
        }
    }
}

/// The wait after `failed` attempts of one `send`: two quick retries, then
/// 1 s doubling up to 30 s, with jitter.
fn attempt_delay(failed: u32) -> Duration {
    match failed {
        0 | 1 => Duration::from_millis(250),
        2 => Duration::from_millis(500),
        n => jitter(Duration::from_secs(1 << (n - QUICK_ATTEMPTS - 1).min(5))),
    }
}

/// When a spooled callback is due again after `attempts` attempts: 2^n
/// seconds (at least 30 s, at most an hour), with jitter.
pub(super) fn spool_delay(attempts: u32) -> Duration {
    let seconds = 1u64 << attempts.min(12);
    jitter(Duration::from_secs(seconds).clamp(Duration::from_secs(30), MAX_SPOOL_DELAY))
}

/// What the inbox answered, in a few words: `200 in 12 ms (id …, duplicate)`.
fn delivered_text(out: &Output, status: u16, elapsed: Duration, answer: &str) -> String {
    let mut text = format!(
        "{} in {}",
        out.paint(Style::Good, &status.to_string()),
        human_duration(elapsed)
    );
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(answer) {
        if let Some(id) = map.get("id").and_then(|id| id.as_str()) {
            text.push_str(&format!(", id {}", TerminalText(id)));
        }
        if map.get("duplicate") == Some(&serde_json::Value::Bool(true)) {
            text.push_str(", a retry of a stored callback");
        }
    }
    text
}

/// `send FILE`: validate, spool, attempt, and keep what failed.
async fn send(args: &SendArgs, out: &Output) -> Result<ExitCode, String> {
    let body = read_input(args.file.as_deref())?;
    let secret = resolve_secret(args.secret.as_deref())?;
    let url = args
        .url
        .as_deref()
        .ok_or("no --url: where should the callback go? (nothing was sent)")?;
    let url = parse_url(url, "--url")?.to_string();
    let client = http_client(Some(Duration::from_secs(args.timeout_secs())))?;
    let spool = Spool::new(spool_dir(args));
    let credentials = Credentials {
        secret: Some(secret),
        token: None,
    };
    let mut entry = Entry::new(&url, args.scheme, body, OffsetDateTime::now_utc());
    let claim = match spool.add(&entry) {
        Ok(claim) => Some(claim),
        Err(err) => {
            out.warn(&format!(
                "cannot write to the spool {}: {err}; sending without it",
                spool.dir().display()
            ));
            None
        }
    };
    let label = entry.label();
    let wait_hint = loop {
        entry.attempts += 1;
        match attempt(&client, &url, &entry, &credentials, None).await {
            Attempt::Delivered {
                status,
                elapsed,
                answer,
            } => {
                if let Some(claim) = claim
                    && let Err(err) = claim.remove(&spool)
                {
                    out.warn(&format!(
                        "delivered, but its spool file could not be removed ({err}); a flush would deliver it again, which the inbox recognises as a retry"
                    ));
                }
                if !out.quiet() {
                    out.line(&format!(
                        "delivered {label}: {}",
                        delivered_text(out, status, elapsed, &answer)
                    ));
                }
                return Ok(ExitCode::SUCCESS);
            }
            Attempt::Refused { message, .. } => {
                if let Some(claim) = claim
                    && let Err(err) = claim.remove(&spool)
                {
                    out.warn(&format!("its spool file could not be removed: {err}"));
                }
                out.error(&format!(
                    "refused {label}: {message}; not retried, not spooled"
                ));
                return Ok(ExitCode::FAILURE);
            }
            Attempt::Retry {
                status,
                error,
                retry_after,
                ..
            } => {
                entry.last_status = status;
                entry.last_error = Some(error.clone());
                let wait = retry_after.unwrap_or_else(|| attempt_delay(entry.attempts));
                if entry.attempts >= args.attempts || wait > MAX_WAIT {
                    break retry_after;
                }
                out.info(&format!(
                    "attempt {}/{} failed: {error}; again in {}{}",
                    entry.attempts,
                    args.attempts,
                    human_duration(wait),
                    if retry_after.is_some() {
                        " (Retry-After)"
                    } else {
                        ""
                    }
                ));
                tokio::time::sleep(wait).await;
            }
        }
    };
    // Not delivered: keep it, due again after a backoff (or Retry-After).
    let now = OffsetDateTime::now_utc();
    let delay = wait_hint.unwrap_or_else(|| spool_delay(entry.attempts));
    entry.next_attempt_at = now + delay;
    let error = entry.last_error.clone().unwrap_or_default();
    let Some(mut claim) = claim else {
        out.error(&format!(
            "not delivered after {} attempts ({error}), and the spool cannot be written",
            entry.attempts
        ));
        return Ok(ExitCode::FAILURE);
    };
    if let Err(err) = claim.update(&spool, entry.clone()) {
        out.warn(&format!(
            "could not record the attempts in the spool ({err}); the callback stays spooled as it was"
        ));
    }
    out.error(&format!(
        "not delivered after {} attempt{}: {error}",
        entry.attempts,
        if entry.attempts == 1 { "" } else { "s" }
    ));
    if !out.quiet() {
        out.line(&format!(
            "spooled {label} as {}; due again after {} ({}); send it with: callback-inbox send --flush{}",
            claim.path.display(),
            clock(entry.next_attempt_at),
            human_duration(delay),
            spool_flag(args)
        ));
    }
    Ok(ExitCode::from(EXIT_TEMPFAIL))
}

/// ` --spool DIR` when not the default, for printed commands.
fn spool_flag(args: &SendArgs) -> String {
    match &args.spool {
        Some(dir) if dir != Path::new("spool") => format!(" --spool {}", dir.display()),
        _ => String::new(),
    }
}

#[derive(Default)]
struct FlushCounts {
    delivered: usize,
    waiting: usize,
    failed: usize,
    /// Files this spool did not write: never sent.
    refused: usize,
    not_due: usize,
    busy: usize,
}

/// `send --flush`: every spooled callback (with `--due`, those due), once,
/// oldest first.
async fn flush(args: &SendArgs, out: &Output) -> Result<ExitCode, String> {
    // Entries of `send --hook` need the token instead: with it set, a
    // flush goes ahead without a secret (and keeps the entries that need one).
    let token = hook_token();
    let secret = match resolve_secret(args.secret.as_deref()) {
        Ok(secret) => Some(secret),
        Err(_) if args.secret.is_none() && token.is_some() => None,
        Err(message) => return Err(message),
    };
    let credentials = Credentials { secret, token };
    let override_url = match &args.url {
        Some(url) => Some(parse_url(url, "--url")?.to_string()),
        None => None,
    };
    let spool = Spool::new(spool_dir(args));
    // Someone else could have planted or swapped what is in it.
    spool.check().map_err(|err| err.to_string())?;
    let cleaned = spool.clean_temp_files();
    if cleaned > 0 {
        out.info(&format!(
            "removed {cleaned} temporary file{} of an interrupted writer",
            if cleaned == 1 { "" } else { "s" }
        ));
    }
    let paths = spool
        .paths()
        .map_err(|err| format!("cannot read the spool {}: {err}", spool.dir().display()))?;
    if paths.is_empty() {
        out.info(&format!("nothing to flush in {}", spool.dir().display()));
        return Ok(ExitCode::SUCCESS);
    }
    let client = http_client(Some(Duration::from_secs(args.timeout_secs())))?;
    let mut counts = FlushCounts::default();
    let mut unreachable: Vec<String> = Vec::new();
    for path in paths {
        // A planted file's name is someone else's text.
        let name = path
            .file_name()
            .map(|name| terminal_safe(&name.to_string_lossy()))
            .unwrap_or_default();
        let mut claim = match spool.claim(&path) {
            Ok(Some(claim)) => claim,
            // Another process (a flush, or the `send` that wrote it) is sending it, or just did.
            Ok(None) => {
                counts.busy += 1;
                continue;
            }
            Err(SpoolError::Refused(refusal)) => {
                counts.refused += 1;
                out.error(&format!(
                    "refused {name}: this spool did not write it ({refusal}); not sent, and left where it is: remove it once you know where it came from"
                ));
                continue;
            }
            Err(err @ SpoolError::Unreadable(_)) => {
                counts.failed += 1;
                match spool.set_aside(&path) {
                    Ok(to) => out.error(&format!(
                        "{name} is not a spooled callback ({err}); moved to {}",
                        to.display()
                    )),
                    Err(move_err) => out.error(&format!(
                        "{name} is not a spooled callback ({err}), and could not be moved: {move_err}"
                    )),
                }
                continue;
            }
            // The key is unusable: nothing in this spool can be trusted.
            Err(err @ SpoolError::BadKey { .. }) => return Err(err.to_string()),
            Err(err) => {
                counts.waiting += 1;
                out.error(&format!("cannot read {name}: {err}"));
                continue;
            }
        };
        let now = OffsetDateTime::now_utc();
        if args.due && claim.entry.next_attempt_at > now {
            counts.not_due += 1;
            continue;
        }
        let url = override_url
            .clone()
            .unwrap_or_else(|| claim.entry.url.clone());
        if unreachable.contains(&url) {
            counts.waiting += 1;
            continue;
        }
        let label = claim.entry.label();
        if let Some(why) = credentials.missing(claim.entry.scheme) {
            counts.waiting += 1;
            out.warn(&format!("{label} ({name}): {why}"));
            continue;
        }
        let mut entry = claim.entry.clone();
        entry.attempts += 1;
        match attempt(&client, &url, &entry, &credentials, None).await {
            Attempt::Delivered {
                status,
                elapsed,
                answer,
            } => {
                counts.delivered += 1;
                if let Err(err) = claim.remove(&spool) {
                    out.warn(&format!(
                        "{name} was delivered but could not be removed ({err}); the next flush delivers it again, which the inbox recognises as a retry"
                    ));
                }
                if !out.quiet() {
                    out.line(&format!(
                        "delivered {label} ({name}): {}",
                        delivered_text(out, status, elapsed, &answer)
                    ));
                }
            }
            Attempt::Refused { status, message } => {
                counts.failed += 1;
                entry.last_status = Some(status);
                entry.last_error = Some(message.clone());
                claim.entry = entry;
                match claim.fail(&spool) {
                    Ok(to) => out.error(&format!(
                        "refused {label} ({name}): {message}; moved to {}",
                        to.display()
                    )),
                    Err(err) => out.error(&format!(
                        "refused {label} ({name}): {message}; could not move it to failed/: {err}"
                    )),
                }
            }
            Attempt::Retry {
                status,
                error,
                retry_after,
                unreachable: down,
            } => {
                counts.waiting += 1;
                let delay = retry_after.unwrap_or_else(|| spool_delay(entry.attempts));
                entry.last_status = status;
                entry.last_error = Some(error.clone());
                entry.next_attempt_at = OffsetDateTime::now_utc() + delay;
                let due = clock(entry.next_attempt_at);
                if let Err(err) = claim.update(&spool, entry) {
                    out.warn(&format!("could not record the attempt in {name}: {err}"));
                }
                if down {
                    // The rest for this URL would fail the same way.
                    unreachable.push(url.clone());
                }
                if !out.quiet() {
                    out.line(&format!(
                        "{} {label} ({name}): {error}; due again after {due}",
                        out.paint(Style::Warn, "kept")
                    ));
                }
            }
        }
    }
    let mut summary = format!(
        "{} delivered, {} still waiting, {} failed",
        counts.delivered, counts.waiting, counts.failed
    );
    if counts.refused > 0 {
        summary.push_str(&format!(
            ", {} refused (not written by this spool; not sent)",
            counts.refused
        ));
    }
    if counts.not_due > 0 {
        summary.push_str(&format!(", {} not due yet", counts.not_due));
    }
    if counts.busy > 0 {
        summary.push_str(&format!(", {} being sent by another process", counts.busy));
    }
    if !unreachable.is_empty() {
        summary.push_str(&format!(" ({} unreachable)", unreachable.join(", ")));
    }
    out.info(&summary);
    Ok(if counts.failed > 0 || counts.refused > 0 {
        ExitCode::FAILURE
    } else if counts.waiting > 0 {
        ExitCode::from(EXIT_TEMPFAIL)
    } else {
        ExitCode::SUCCESS
    })
}

/// `send --list`: what waits (and what failed), and why.
fn list(args: &SendArgs, out: &Output) -> ExitCode {
    let spool = Spool::new(spool_dir(args));
    if let Err(err) = spool.check() {
        out.error(&err.to_string());
        return ExitCode::FAILURE;
    }
    let (waiting, failed) = match (spool.paths(), spool.failed_paths()) {
        (Ok(waiting), Ok(failed)) => (waiting, failed),
        (Err(err), _) | (_, Err(err)) => {
            out.error(&format!(
                "cannot read the spool {}: {err}",
                spool.dir().display()
            ));
            return ExitCode::FAILURE;
        }
    };
    let now = OffsetDateTime::now_utc();
    if !args.json && !out.quiet() {
        out.info(&format!(
            "{}: {} waiting, {} failed",
            spool.dir().display(),
            waiting.len(),
            failed.len()
        ));
    }
    let states = waiting
        .iter()
        .map(|path| (path, "waiting"))
        .chain(failed.iter().map(|path| (path, "failed")));
    for (path, state) in states {
        let entry = match spool.read(path) {
            Ok(entry) => entry,
            Err(err) => {
                out.warn(&format!(
                    "{}: {err}",
                    TerminalText(&path.display().to_string())
                ));
                continue;
            }
        };
        let due = state == "waiting" && entry.next_attempt_at <= now;
        let fields = entry.fields();
        if args.json {
            out.json(&serde_json::json!({
                "file": path.display().to_string(),
                "state": state,
                "id": entry.id,
                "url": entry.url,
                "scheme": entry.scheme,
                "webhook_id": entry.webhook_id,
                "delivery_id": entry.delivery_id(),
                "job_id": fields.external_job_id,
                "event": fields.event_type,
                "attempts": entry.attempts,
                "created_at": rfc3339(entry.created_at),
                "next_attempt_at": rfc3339(entry.next_attempt_at),
                "due": due,
                "last_status": entry.last_status,
                "last_error": entry.last_error,
            }));
            continue;
        }
        let when = if state == "failed" {
            out.paint(Style::Bad, "failed")
        } else if due {
            out.paint(Style::Warn, "due now")
        } else {
            format!(
                "due in {} ({})",
                human_duration((entry.next_attempt_at - now).unsigned_abs()),
                clock(entry.next_attempt_at)
            )
        };
        let why = entry.last_error.as_deref().unwrap_or("not tried yet");
        out.line(&format!(
            "{}  {}  {when}  {} attempt{}  {}  -> {}",
            TerminalText(&path.file_name().unwrap_or_default().to_string_lossy()),
            entry.label(),
            entry.attempts,
            if entry.attempts == 1 { "" } else { "s" },
            out.paint(Style::Dim, &terminal_safe(why)),
            TerminalText(&entry.url)
        ));
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_retries_quickly_then_backs_off_to_a_cap() {
        assert_eq!(attempt_delay(1), Duration::from_millis(250));
        assert_eq!(attempt_delay(2), Duration::from_millis(500));
        let third = attempt_delay(3);
        assert!(third >= Duration::from_millis(500) && third <= Duration::from_secs(1));
        let fourth = attempt_delay(4);
        assert!(fourth >= Duration::from_secs(1) && fourth <= Duration::from_secs(2));
        assert!(attempt_delay(40) <= Duration::from_secs(32));
    }

    #[test]
    fn spooled_callbacks_back_off_from_half_a_minute_to_an_hour() {
        assert!(
            spool_delay(1) >= Duration::from_secs(15) && spool_delay(1) <= Duration::from_secs(30)
        );
        assert!(
            spool_delay(8) >= Duration::from_secs(128)
                && spool_delay(8) <= Duration::from_secs(256)
        );
        assert!(spool_delay(99) <= MAX_SPOOL_DELAY);
    }

    #[test]
    fn input_must_be_a_json_object() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let object = write("ok.json", "{\"job_id\": \"j\"}\n");
        assert_eq!(read_input(Some(&object)).unwrap(), "{\"job_id\": \"j\"}\n");
        let array = read_input(Some(&write("a.json", "[1]"))).unwrap_err();
        assert!(array.contains("holds an array"), "{array}");
        let text = read_input(Some(&write("t.json", "hello"))).unwrap_err();
        assert!(text.contains("is not JSON"), "{text}");
        let missing = read_input(Some(&dir.path().join("nope.json"))).unwrap_err();
        assert!(missing.contains("no such file"), "{missing}");
    }

    #[test]
    fn the_newest_secret_of_a_list_is_used() {
        assert!(resolve_secret(Some("short")).is_err());
        let secret = resolve_secret(Some("a-secret-of-enough-bytes")).unwrap();
        assert_eq!(secret.as_bytes(), b"a-secret-of-enough-bytes");
    }
}
