//! `callback-inbox send --hook --url URL`: a Claude Code command hook.
//!
//! Claude Code runs it on each event with the event's JSON on stdin. It
//! sends the event once with `Authorization: Bearer $CALLBACK_INBOX_TOKEN`
//! and an `Idempotency-Key` fixed for the event (its spool entry's id: every
//! retry is one delivery), keeps it in the spool when that fails, and after a delivery
//! sends what waits for the same URL, all within `--timeout` (3 s).
//!
//! It **prints nothing on stdout and always exits 0**: a hook's stdout can
//! reach the model, and a non-zero exit shows as a hook error. What went
//! wrong is at most one short line on stderr.
//!
//! Like `send`, the event is written to the spool *before* the attempt and
//! removed after its 2xx, so a hook killed at any instant loses nothing.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use inbox_server::config::{SendArgs, SendScheme};
use time::OffsetDateTime;
use tokio::time::Instant;

use inbox_core::source_examples::TOKEN_VARIABLE;

use super::output::TerminalText;
use super::send::{Attempt, Credentials, attempt, hook_token, spool_delay};
use super::spool::{Claim, Entry, Spool};
use super::{http_client, parse_url};

/// Below this, what is left of the time bound is not worth a request.
const MIN_REQUEST_TIME: Duration = Duration::from_millis(100);
/// Past the time bound, for recording a failed attempt in the spool.
const RECORD_TIME: Duration = Duration::from_millis(500);

/// Why an event was not sent at all (nothing is kept).
#[derive(Debug, thiserror::Error)]
enum HookError {
    #[error("{0}")]
    Url(String),
    #[error("stdin did not end within the time bound; nothing sent")]
    StdinTimeout,
    #[error("cannot read stdin: {0}; nothing sent")]
    Stdin(std::io::Error),
    #[error("the event is over {limit} bytes (INBOX_MAX_BODY_BYTES); nothing sent")]
    TooLarge { limit: usize },
    #[error("stdin is not a JSON object (a hook event); nothing sent")]
    NotAnEvent,
}

/// Runs the hook and always exits 0 (see the module).
pub async fn run(args: SendArgs, max_body_bytes: usize) -> ExitCode {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs());
    // A task of its own: even a panic ends as exit 0. Every wait in it ends
    // by the deadline; the outer bound is a backstop, a little later so that
    // a failed attempt is recorded (the event is spooled before any request).
    let task = tokio::spawn(hook(args, max_body_bytes, deadline));
    let note = match tokio::time::timeout_at(deadline + RECORD_TIME, task).await {
        Ok(Ok(note)) => note,
        Ok(Err(_)) => Some("the hook failed; the event, if read, is in the spool".to_owned()),
        Err(_) => None,
    };
    if let Some(note) = note {
        eprintln!("callback-inbox: {note}");
    }
    ExitCode::SUCCESS
}

/// Everything the hook does; returns the line for stderr, if any.
async fn hook(args: SendArgs, max_body_bytes: usize, deadline: Instant) -> Option<String> {
    let read = async {
        let url = parse_url(args.url.as_deref().unwrap_or_default(), "--url")
            .map_err(HookError::Url)?
            .to_string();
        let body = read_event(max_body_bytes, deadline).await?;
        Ok::<_, HookError>((url, body))
    };
    let (url, body) = match read.await {
        Ok(read) => read,
        Err(err) => return Some(err.to_string()),
    };
    let spool = args.spool.clone().or_else(default_spool).map(Spool::new);
    let mut entry = Entry::new(&url, SendScheme::Bearer, body, OffsetDateTime::now_utc());
    // Where the event waits, said in the note when it is not delivered now.
    let mut kept_in = Err("no spool folder (set HOME or pass --spool)".to_owned());
    let claim = spool.as_ref().and_then(|spool| match spool.add(&entry) {
        Ok(claim) => {
            kept_in = Ok(TerminalText(&spool.dir().display().to_string()).to_string());
            Some(claim)
        }
        Err(err) => {
            kept_in = Err(format!("the spool cannot be written: {err}"));
            None
        }
    });
    let kept = |why: &str| match &kept_in {
        Ok(dir) => format!("{why}; kept in {dir}, sent with a later event"),
        Err(reason) => format!("{why}; lost: {reason}"),
    };
    let Some(token) = hook_token() else {
        return Some(kept(&format!("{TOKEN_VARIABLE} is not set")));
    };
    let credentials = Credentials {
        secret: None,
        token: Some(token),
    };
    let client = match http_client(None) {
        Ok(client) => client,
        Err(message) => return Some(kept(&message)),
    };
    entry.attempts += 1;
    let outcome = attempt(&client, &url, &entry, &credentials, Some(left(deadline))).await;
    let (Some(spool), Some(claim)) = (spool, claim) else {
        return match outcome {
            Attempt::Delivered { .. } => None,
            Attempt::Refused { message, .. } | Attempt::Retry { error: message, .. } => {
                Some(kept(&format!("not delivered ({message})")))
            }
        };
    };
    match outcome {
        Attempt::Delivered { .. } => {
            // Removed after the 2xx; should that fail, a later flush sends
            // it again, which the inbox counts as the same delivery.
            let _ = claim.remove(&spool);
            flush_waiting(&spool, &url, &client, &credentials, deadline).await
        }
        outcome => match keep_or_fail(&spool, claim, entry, outcome) {
            Ok(why) => Some(kept(&why)),
            Err(why) => Some(why),
        },
    }
}

/// Records a failed attempt in the claimed entry: `Ok` when it is kept for
/// later, `Err` when the inbox refused it for good (moved to `failed/`);
/// either way, what happened.
fn keep_or_fail(
    spool: &Spool,
    mut claim: Claim,
    mut entry: Entry,
    outcome: Attempt,
) -> Result<String, String> {
    let now = OffsetDateTime::now_utc();
    let (status, error, wait) = match outcome {
        Attempt::Delivered { .. } => return Ok(String::new()),
        Attempt::Refused { status, message } if !fixable(status) => {
            entry.last_status = Some(status);
            entry.last_error = Some(message.clone());
            claim.entry = entry;
            let _ = claim.fail(spool);
            return Err(format!(
                "refused ({message}); moved to {}",
                TerminalText(&spool.failed_dir().display().to_string())
            ));
        }
        Attempt::Refused { status, message } => (Some(status), message, None),
        Attempt::Retry {
            status,
            error,
            retry_after,
            ..
        } => (status, error, retry_after),
    };
    entry.last_status = status;
    entry.last_error = Some(error.clone());
    entry.next_attempt_at = now + wait.unwrap_or_else(|| spool_delay(entry.attempts));
    let _ = claim.update(spool, entry);
    Ok(format!("not delivered ({error})"))
}

/// A refusal that a fix on the inbox or in the environment ends (a wrong
/// or rotated token, a disabled or not yet created source): the event is
/// kept, not failed.
fn fixable(status: u16) -> bool {
    matches!(status, 401 | 403 | 404)
}

/// After a delivery to `url`: sends what waits for that URL, oldest first,
/// until the time bound. The delivery shows that the inbox is reachable,
/// the token right and the source on, so what failed for one of those
/// reasons goes now; what the inbox answered with an error (5xx, 429)
/// waits for its backoff. Entries for other URLs are left alone: the token
/// goes only where this hook was told to send it.
async fn flush_waiting(
    spool: &Spool,
    url: &str,
    client: &reqwest::Client,
    credentials: &Credentials,
    deadline: Instant,
) -> Option<String> {
    // What a hook killed mid-write left behind.
    spool.clean_temp_files();
    let paths = spool.paths().ok()?;
    let mut sent = 0;
    for path in paths {
        if left(deadline) < MIN_REQUEST_TIME {
            break;
        }
        // Busy (another hook sends it), gone, or not this spool's: skipped.
        let Ok(Some(claim)) = spool.claim(&path) else {
            continue;
        };
        let entry = &claim.entry;
        let ready = entry.next_attempt_at <= OffsetDateTime::now_utc()
            || entry.last_status.is_none_or(fixable);
        if entry.scheme != SendScheme::Bearer || entry.url != url || !ready {
            continue;
        }
        let mut entry = entry.clone();
        entry.attempts += 1;
        match attempt(client, url, &entry, credentials, Some(left(deadline))).await {
            Attempt::Delivered { .. } => {
                sent += 1;
                let _ = claim.remove(spool);
            }
            outcome @ Attempt::Refused { .. } => {
                let _ = keep_or_fail(spool, claim, entry, outcome);
            }
            outcome @ Attempt::Retry { .. } => {
                // The inbox is in trouble (or the time is up): the rest waits.
                let why = keep_or_fail(spool, claim, entry, outcome).unwrap_or_else(|why| why);
                return Some(format!(
                    "delivered, and {sent} waiting event(s); the next one: {why}"
                ));
            }
        }
    }
    None
}

/// The time left before `deadline`.
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// The hook's event: stdin, at most `limit` bytes, which must end before
/// `deadline` and hold a JSON object. Read on a thread of its own: a
/// stdin that never ends must not keep the process alive past its bound.
async fn read_event(limit: usize, deadline: Instant) -> Result<String, HookError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let read = std::io::stdin()
            .lock()
            .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut bytes)
            .map(|_| bytes);
        let _ = sender.send(read);
    });
    let bytes = tokio::time::timeout_at(deadline, receiver)
        .await
        .map_err(|_| HookError::StdinTimeout)?
        .map_err(|_| HookError::StdinTimeout)?
        .map_err(HookError::Stdin)?;
    if bytes.len() > limit {
        return Err(HookError::TooLarge { limit });
    }
    let text = String::from_utf8(bytes).map_err(|_| HookError::NotAnEvent)?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Ok(text),
        _ => Err(HookError::NotAnEvent),
    }
}

/// Where a hook keeps what it could not deliver: a folder of the user's
/// (not of the project Claude Code works in, which is the hook's working
/// folder): `$XDG_STATE_HOME/callback-inbox/hook-spool`, else
/// `~/.local/state/callback-inbox/hook-spool`.
fn default_spool() -> Option<PathBuf> {
    let absolute = |value: std::ffi::OsString| {
        let path = PathBuf::from(value);
        path.is_absolute().then_some(path)
    };
    let state = std::env::var_os("XDG_STATE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|home| home.join(".local").join("state"))
        })?;
    Some(state.join("callback-inbox").join("hook-spool"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_a_fix_can_end_keep_the_event() {
        assert!(fixable(401) && fixable(403) && fixable(404));
        assert!(!fixable(400) && !fixable(413) && !fixable(422));
    }

    #[tokio::test]
    async fn time_left_never_goes_below_zero() {
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(left(past), Duration::ZERO);
        assert!(left(Instant::now() + Duration::from_secs(5)) > Duration::from_secs(4));
    }
}
