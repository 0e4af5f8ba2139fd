//! `callback-inbox listen`: follows an inbox's live feed with an API token
//! and forwards each new callback, byte for byte, to a URL on this machine.
//!
//! The feed is `GET /api/callbacks/stream` (Server-Sent Events, parsed by
//! [`super::event_stream`] over the response's chunks). Each event is handled in full (the payload
//! fetched from `/api/callbacks/detail`, forwarded, reported) before its id
//! becomes the `Last-Event-ID` of the next connection: a dropped connection
//! is reopened with backoff from exactly there, so nothing is missed and
//! nothing forwarded twice.

use std::time::{Duration, Instant};

use inbox_core::signature::{WebhookSecret, sign_hex};
use inbox_server::config::ListenArgs;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::event_stream::{MAX_EVENT_BYTES, SseEvent, SseParser, StreamItem};
use super::output::{Output, Style, TerminalText, clock, human_duration, rfc3339};
use super::{
    Backoff, answer_message, describe, event_header_value, http_client, parse_url, retry_after,
};

/// The inbox sends a comment every 15 s; this long without a byte means the
/// connection is dead even if no error says so.
const IDLE_LIMIT: Duration = Duration::from_secs(45);
/// Longest wait for one request that is not the stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per forward: the local app may be restarting.
const FORWARD_TRIES: u32 = 3;
/// Why talking to the inbox stopped.
#[derive(Debug)]
pub enum InboxError {
    /// Retrying will not help (the token was refused, the URL is not an inbox).
    Fatal(String),
    /// A network error or a server error: reconnect and resume.
    Retry(String),
    /// The callback does not exist (any more).
    NotFound,
}

/// The inbox, as one token's reader.
pub struct Inbox {
    client: reqwest::Client,
    pub base: String,
    token: String,
}

/// What `listen` and `replay` need of a callback.
#[derive(Debug, Deserialize)]
pub struct Detail {
    pub id: Uuid,
    pub event_type: Option<String>,
    pub workflow_name: Option<String>,
    /// The payload exactly as received.
    pub payload_text: String,
}

/// A feed event's data (a poll item).
#[derive(Debug, Deserialize)]
struct FeedItem {
    id: Uuid,
}

impl Inbox {
    pub fn new(server: &str, token: &str) -> Result<Self, String> {
        let base = parse_url(server, "--server")?
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        let token = token.trim();
        if token.is_empty() {
            return Err("--token is empty: create one with `callback-inbox token create`".into());
        }
        Ok(Self {
            // No whole-request timeout: the stream stays open for hours.
            client: http_client(None)?,
            base,
            token: token.to_owned(),
        })
    }

    fn refused(status: reqwest::StatusCode, text: &str) -> InboxError {
        match status.as_u16() {
            401 => InboxError::Fatal(
                "the inbox refused the token (401): it is unknown or revoked, or its account is disabled".to_owned(),
            ),
            408 | 429 | 500..=599 => {
                InboxError::Retry(format!("{status}: {}", answer_message(text)))
            }
            _ => InboxError::Fatal(format!("{status}: {}", answer_message(text))),
        }
    }

    /// Opens the live feed after `last_id` (or at its head).
    pub async fn open_stream(
        &self,
        last_id: Option<&str>,
    ) -> Result<reqwest::Response, InboxError> {
        let url = format!("{}/api/callbacks/stream", self.base);
        let mut request = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let response = request
            .send()
            .await
            .map_err(|err| InboxError::Retry(describe(&err)))?;
        let status = response.status();
        if status.as_u16() == 404 {
            return Err(InboxError::Fatal(format!(
                "no live feed at {url} (404): is --server the inbox's address?"
            )));
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(Self::refused(status, &text));
        }
        let is_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        if !is_stream {
            return Err(InboxError::Fatal(format!(
                "{url} did not answer with an event stream: is --server the inbox's address?"
            )));
        }
        Ok(response)
    }

    /// One stored callback, with its exact payload.
    pub async fn detail(&self, id: Uuid) -> Result<Detail, InboxError> {
        let response = self
            .client
            .post(format!("{}/api/callbacks/detail", self.base))
            .bearer_auth(&self.token)
            .form(&[("id", id.to_string())])
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|err| InboxError::Retry(describe(&err)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| InboxError::Retry(describe(&err)))?;
        if status.as_u16() == 404 {
            return Err(InboxError::NotFound);
        }
        if !status.is_success() {
            return Err(Self::refused(status, &text));
        }
        serde_json::from_str(&text).map_err(|err| {
            InboxError::Fatal(format!(
                "the inbox's answer for {id} is not a callback: {}",
                TerminalText(&err.to_string())
            ))
        })
    }
}

/// Posts callbacks to a local URL, signed when a secret is given.
pub struct Forwarder {
    client: reqwest::Client,
    pub url: String,
    secret: Option<WebhookSecret>,
}

/// How one forward went.
pub struct Forwarded {
    pub at: OffsetDateTime,
    pub id: Uuid,
    pub event: Option<String>,
    pub workflow: Option<String>,
    /// The local status, or why there was none.
    pub status: Result<u16, String>,
    pub elapsed: Duration,
    pub tries: u32,
}

impl Forwarded {
    pub fn ok(&self) -> bool {
        matches!(self.status, Ok(status) if (200..300).contains(&status))
    }
}

impl Forwarder {
    pub fn new(url: &str, secret: Option<&str>) -> Result<Self, String> {
        let url = parse_url(url, "the local URL")?.to_string();
        // The local app verifies with the secret's text as it has it: its
        // bytes are the key, whatever they look like.
        let secret = match secret {
            Some("") => return Err("--secret is empty".to_owned()),
            Some(secret) => Some(WebhookSecret::from_bytes(secret.as_bytes().to_vec())),
            None => None,
        };
        Ok(Self {
            client: http_client(Some(REQUEST_TIMEOUT))?,
            url,
            secret,
        })
    }

    /// POSTs the payload, byte for byte; tries again (a few times, briefly)
    /// when the local app is not reachable or answers 408, 429 or 5xx.
    pub async fn forward(&self, detail: &Detail) -> Forwarded {
        let at = OffsetDateTime::now_utc();
        let mut tries = 0;
        loop {
            tries += 1;
            let started = Instant::now();
            let (status, wait) = self.post(detail).await;
            let elapsed = started.elapsed();
            let retryable = match &status {
                Ok(code) => matches!(code, 408 | 429 | 500..=599),
                Err(_) => true,
            };
            if !retryable || tries >= FORWARD_TRIES {
                return Forwarded {
                    at,
                    id: detail.id,
                    event: detail.event_type.clone(),
                    workflow: detail.workflow_name.clone(),
                    status,
                    elapsed,
                    tries,
                };
            }
            let delay = Duration::from_millis(500) * 3u32.pow(tries - 1);
            tokio::time::sleep(wait.unwrap_or(delay).min(Duration::from_secs(5))).await;
        }
    }

    async fn post(&self, detail: &Detail) -> (Result<u16, String>, Option<Duration>) {
        let body = detail.payload_text.as_bytes();
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-callback-inbox-id", detail.id.to_string());
        if let Some(secret) = &self.secret {
            request = request.header("x-webhook-signature", sign_hex(secret, body));
        }
        if let Some(event) = &detail.event_type {
            // Whatever the name holds, the callback goes out.
            request = request.header("x-webhook-event", event_header_value(event));
        }
        match request.body(detail.payload_text.clone()).send().await {
            Ok(response) => {
                let wait = retry_after(response.headers());
                let status = response.status().as_u16();
                // Read the answer, so the connection can be used again.
                let _ = response.bytes().await;
                (Ok(status), wait)
            }
            Err(err) => (Err(describe(&err)), None),
        }
    }
}

/// Prints one forward: a line of text, or one JSON object. The event and
/// workflow come from the payload: escaped, so that they cannot forge a
/// line or act on the terminal.
pub fn report(out: &Output, json: bool, forwarded: &Forwarded, hint: Option<&str>) {
    let ms = forwarded.elapsed.as_millis();
    if json {
        out.json(&serde_json::json!({
            "time": rfc3339(forwarded.at),
            "id": forwarded.id,
            "event": forwarded.event,
            "workflow": forwarded.workflow,
            "status": forwarded.status.as_ref().ok(),
            "ok": forwarded.ok(),
            "ms": ms,
            "tries": forwarded.tries,
            "error": forwarded.status.as_ref().err(),
        }));
        return;
    }
    let status = match &forwarded.status {
        Ok(code) => {
            let text = reqwest::StatusCode::from_u16(*code)
                .map_or_else(|_| code.to_string(), |status| status.to_string());
            out.paint(
                if forwarded.ok() {
                    Style::Good
                } else {
                    Style::Bad
                },
                &text,
            )
        }
        Err(error) => out.paint(Style::Bad, &TerminalText(error).to_string()),
    };
    let event = forwarded.event.as_deref().map_or_else(
        || "(no event)".to_owned(),
        |event| TerminalText(event).to_string(),
    );
    let workflow = forwarded.workflow.as_deref().map_or_else(
        || "-".to_owned(),
        |workflow| TerminalText(workflow).to_string(),
    );
    let mut line = format!(
        "{}  {}  {workflow}  → {status}  {}",
        out.paint(Style::Dim, &clock(forwarded.at)),
        out.paint(Style::Bold, &event),
        human_duration(forwarded.elapsed),
    );
    if forwarded.tries > 1 {
        line.push_str(&format!(" ({} tries)", forwarded.tries));
    }
    if !forwarded.ok()
        && let Some(hint) = hint
    {
        line.push_str(&format!("  {}", out.paint(Style::Dim, hint)));
    }
    out.line(&line);
}

pub async fn run(args: ListenArgs) -> std::process::ExitCode {
    let out = Output::new(args.quiet);
    match listen(&args, &out).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            out.clear_status();
            out.error(&message);
            std::process::ExitCode::FAILURE
        }
    }
}

async fn listen(args: &ListenArgs, out: &Output) -> Result<(), String> {
    let inbox = Inbox::new(&args.server, &args.token)?;
    let forwarder = Forwarder::new(&args.forward, args.secret.as_deref())?;
    let target = format!("{} → {}", inbox.base, forwarder.url);
    let mut last_id: Option<String> = None;
    let mut backoff = Backoff::new();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let ended = tokio::select! {
            _ = &mut stop => break,
            ended = follow(&inbox, &forwarder, &mut last_id, &mut backoff, out, args, &target) => ended,
        };
        let reason = match ended {
            InboxError::Fatal(message) => return Err(message),
            InboxError::Retry(reason) => reason,
            InboxError::NotFound => "not found".to_owned(),
        };
        let delay = backoff.next_delay();
        out.status(&format!(
            "listening on {target} (disconnected: {reason}; again in {})",
            human_duration(delay)
        ));
        tokio::select! {
            _ = &mut stop => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    out.clear_status();
    out.info("stopped");
    Ok(())
}

/// One connection: opens the feed after `last_id` and handles its events
/// until it fails; returns why.
async fn follow(
    inbox: &Inbox,
    forwarder: &Forwarder,
    last_id: &mut Option<String>,
    backoff: &mut Backoff,
    out: &Output,
    args: &ListenArgs,
    target: &str,
) -> InboxError {
    out.status(&format!("listening on {target} (connecting)"));
    let mut response = match inbox.open_stream(last_id.as_deref()).await {
        Ok(response) => response,
        Err(err) => return err,
    };
    backoff.reset();
    out.status(&format!("listening on {target} (connected)"));
    let mut parser = SseParser::default();
    loop {
        let chunk = match tokio::time::timeout(IDLE_LIMIT, response.chunk()).await {
            Err(_) => {
                return InboxError::Retry(format!("nothing heard for {} s", IDLE_LIMIT.as_secs()));
            }
            Ok(Err(err)) => return InboxError::Retry(describe(&err)),
            Ok(Ok(None)) => return InboxError::Retry("the inbox ended the stream".to_owned()),
            Ok(Ok(Some(chunk))) => chunk,
        };
        for item in parser.push(&chunk) {
            let event = match item {
                StreamItem::Event(event) => event,
                StreamItem::Oversized => {
                    out.warn(&format!(
                        "skipped an event of the live feed larger than {} MiB (the inbox's are a few hundred bytes); the rest of it is discarded as it arrives: is --server an inbox?",
                        MAX_EVENT_BYTES >> 20
                    ));
                    continue;
                }
            };
            if event.event == "callback"
                && let Err(err) = handle(inbox, forwarder, &event, out, args).await
            {
                // Not handled: the next connection resumes before it.
                return err;
            }
            if event.id.is_some() {
                *last_id = event.id;
            }
        }
    }
}

/// Forwards the callback an event announces.
async fn handle(
    inbox: &Inbox,
    forwarder: &Forwarder,
    event: &SseEvent,
    out: &Output,
    args: &ListenArgs,
) -> Result<(), InboxError> {
    let item: FeedItem = match serde_json::from_str(&event.data) {
        Ok(item) => item,
        Err(err) => {
            out.warn(&format!(
                "skipped an event that is not a callback: {}",
                TerminalText(&err.to_string())
            ));
            return Ok(());
        }
    };
    let detail = match inbox.detail(item.id).await {
        Ok(detail) => detail,
        Err(InboxError::NotFound) => {
            out.warn(&format!(
                "callback {} is gone (removed by retention?)",
                item.id
            ));
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let forwarded = forwarder.forward(&detail).await;
    // No token in the hint: it is read from INBOX_TOKEN, off the command line.
    let hint = format!(
        "replay with: callback-inbox replay {} --server {} --to {}",
        detail.id,
        TerminalText(&inbox.base),
        TerminalText(&forwarder.url)
    );
    report(out, args.json, &forwarded, Some(&hint));
    Ok(())
}
