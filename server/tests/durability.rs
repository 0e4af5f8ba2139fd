//! Every callback answered 2xx is on disk, even when the server is killed
//! with SIGKILL in the middle of a burst.

mod support;

use std::process::Stdio;
use std::time::Duration;

use inbox_core::signature::{WebhookSecret, sign_hex};
use support::{SECRET, TestDatabase};

#[tokio::test]
async fn callbacks_answered_2xx_survive_kill_9_mid_burst() {
    let database = TestDatabase::fresh().await;
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_callback-inbox"))
        .env("DATABASE_URL", &database.url)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LLM_WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("server binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_until_healthy(&client, &base).await;

    let mut tasks = Vec::new();
    for sender in 0..32 {
        let client = client.clone();
        let base = base.clone();
        let signature_key = WebhookSecret::parse(SECRET).unwrap();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0.. {
                let body = format!(r#"{{"job_id":"s{sender}-n{n}","event":"workflow.completed"}}"#);
                let sent = client
                    .post(format!("{base}/api/webhooks/llm-callback"))
                    .header(
                        "x-webhook-signature",
                        sign_hex(&signature_key, body.as_bytes()),
                    )
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 200 => {
                        let answer: serde_json::Value = match response.json().await {
                            Ok(answer) => answer,
                            Err(_) => break,
                        };
                        acknowledged.push(answer["id"].as_str().unwrap().to_owned());
                    }
                    _ => break, // the server is gone
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    child.start_kill().expect("SIGKILL sent"); // tokio's kill is SIGKILL on Unix
    child.wait().await.unwrap();

    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(
        acknowledged.len() > 50,
        "the burst was under way: {} acknowledged",
        acknowledged.len()
    );

    // Reopen the database the way a restarted server would (with SQLite,
    // WAL recovery included).
    let store = inbox_core::store::Store::open(&database.url).await.unwrap();
    for id in &acknowledged {
        let found = store
            .callback_detail(uuid::Uuid::nil(), uuid::Uuid::parse_str(id).unwrap())
            .await
            .unwrap();
        assert!(
            found.is_some(),
            "acknowledged callback {id} is missing after kill -9"
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until_healthy(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become healthy");
}
