//! The live feed seen from a client: a callback whose body arrives slowly,
//! and an open event stream.

use std::net::SocketAddr;
use std::time::Duration;

use inbox_core::signature::{WebhookSecret, sign_hex};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::SECRET;

const ENDPOINT: &str = "/api/webhooks/llm-callback";

/// A signed callback whose body is sent in two halves: the request starts
/// now, and commits only when [`SlowSender::finish`] sends the rest.
pub struct SlowSender {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl SlowSender {
    pub async fn start(addr: SocketAddr, job: &str) -> Self {
        let body = format!(r#"{{"job_id":"{job}","event":"workflow.completed"}}"#);
        let signature = sign_hex(&WebhookSecret::parse(SECRET).unwrap(), body.as_bytes());
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Webhook-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let half = body.len() / 2;
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body.as_bytes()[..half]).await.unwrap();
        // Let the server start the request (and stamp its time) first.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Self {
            stream,
            rest: body.as_bytes()[half..].to_vec(),
        }
    }

    pub async fn finish(mut self) {
        self.stream.write_all(&self.rest).await.unwrap();
        let mut answer = Vec::new();
        self.stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

/// An open event stream and what it delivered so far.
pub struct EventStream {
    response: reqwest::Response,
    seen: String,
}

impl EventStream {
    pub async fn open(
        client: &reqwest::Client,
        base: &str,
        cookie: &str,
        last_event_id: Option<&str>,
    ) -> Self {
        let mut request = client
            .get(format!("{base}/api/callbacks/stream"))
            .header("cookie", cookie)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            seen: String::new(),
        }
    }

    /// A stream already opened by the caller (with a token, say).
    pub fn from_response(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        Self {
            response,
            seen: String::new(),
        }
    }

    /// Waits for the next `callback` event: (its id, its data).
    pub async fn next_callback(&mut self) -> (String, Value) {
        self.next_callback_within(Duration::from_secs(5)).await
    }

    /// The next `callback` event, waiting at most `limit`.
    pub async fn next_callback_within(&mut self, limit: Duration) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.seen.find("\n\n") {
                let block: String = self.seen.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|line| line.strip_prefix(name))
                        .map(str::to_owned)
                };
                if field("event: ").as_deref() == Some("callback") {
                    let data = serde_json::from_str(&field("data: ").unwrap()).unwrap();
                    return (field("id: ").unwrap(), data);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("a callback event in time")
                .unwrap()
                .expect("the stream stays open");
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Whether the server ends the stream within `limit`.
    pub async fn ends_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Ok(Ok(Some(_))) => {}
            }
        }
    }
}
