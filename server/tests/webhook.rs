//! The webhook over real HTTP on loopback, against a real database (SQLite
//! or PostgreSQL, as the run chooses).

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::Row;
use support::{SECRET, TestServer, now_unix, sql};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ENDPOINT: &str = "/api/webhooks/llm-callback";

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

async fn audit_outcomes(server: &TestServer) -> Vec<(String, i64)> {
    let db = server.db().await;
    sqlx::query("SELECT outcome, http_status FROM webhook_deliveries ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn signed_callback_is_stored_with_its_extracted_fields() {
    let mut server = TestServer::start().await;
    let body = r#"{"job_id":"job_8f2c","event":"workflow.failed","workflow_name":"summarize-pdf","status":"failed","error_message":"context length exceeded","timestamp":"2026-11-21T10:00:00Z"}"#;
    let response = server.post_signed(body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let answer = json_of(response).await;
    assert_eq!(answer["received"], true);
    assert_eq!(answer["duplicate"], false);
    let id: uuid::Uuid = answer["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 7, "ids are time-ordered UUIDv7");

    let db = server.db().await;
    let backend = server.backend();
    let row = sqlx::query(&format!(
        "SELECT callback_id, CASE WHEN signature_valid THEN 1 ELSE 0 END AS signature_valid,
                signature_scheme, signature_header,
                CASE WHEN verified_at IS NULL THEN 0 ELSE 1 END AS verified, payload,
                payload_preview, external_job_id, workflow_name, event_type, status, error_message,
                delivery_count, {created} AS created_at,
                CASE WHEN created_at = updated_at THEN 1 ELSE 0 END AS unchanged
         FROM llm_callbacks WHERE id = {id}",
        created = sql::micros(backend, "created_at"),
        id = sql::uuid(backend, 1),
    ))
    .bind(id.to_string())
    .fetch_one(&db)
    .await
    .expect("row is on disk");
    assert_eq!(
        row.get::<String, _>("callback_id"),
        "job:job_8f2c:workflow.failed"
    );
    assert_eq!(row.get::<i64, _>("signature_valid"), 1);
    assert_eq!(row.get::<String, _>("signature_scheme"), "hmac_sha256_hex");
    assert_eq!(
        row.get::<String, _>("signature_header"),
        "x-webhook-signature"
    );
    assert_eq!(row.get::<i64, _>("verified"), 1);
    assert_eq!(
        row.get::<String, _>("payload"),
        body,
        "payload stored byte for byte"
    );
    assert_eq!(
        row.get::<String, _>("payload_preview"),
        body.chars().take(200).collect::<String>()
    );
    assert_eq!(row.get::<String, _>("external_job_id"), "job_8f2c");
    assert_eq!(row.get::<String, _>("workflow_name"), "summarize-pdf");
    assert_eq!(row.get::<String, _>("event_type"), "workflow.failed");
    assert_eq!(row.get::<String, _>("status"), "failed");
    assert_eq!(
        row.get::<String, _>("error_message"),
        "context length exceeded"
    );
    assert_eq!(row.get::<i64, _>("delivery_count"), 1);
    assert_eq!(row.get::<i64, _>("unchanged"), 1, "updated_at = created_at");
    let created: i64 = row.get("created_at");
    let now_us = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
    assert!(
        (now_us - i128::from(created)).abs() < 60_000_000,
        "created at the time of receipt, in Unix microseconds: {created}"
    );

    server.stop().await;
    assert_eq!(
        audit_outcomes(&server).await,
        vec![("accepted".to_owned(), 200)]
    );
}

#[tokio::test]
async fn retries_with_a_fresh_timestamp_return_the_original_id_and_count_deliveries() {
    let server = TestServer::start().await;
    let first = json_of(server.post_signed(r#"{"job_id":"j1","event":"workflow.completed","timestamp":"2026-11-21T10:00:00Z"}"#).await).await;
    let retry = server
        .post_signed(
            r#"{"job_id":"j1","event":"workflow.completed","timestamp":"2026-11-21T10:00:07Z"}"#,
        )
        .await;
    assert_eq!(retry.status(), 200);
    let retry = json_of(retry).await;
    assert_eq!(retry["id"], first["id"]);
    assert_eq!(retry["duplicate"], true);

    // A different event of the same job is a different callback.
    let other = json_of(
        server
            .post_signed(r#"{"job_id":"j1","event":"workflow.failed"}"#)
            .await,
    )
    .await;
    assert_ne!(other["id"], first["id"]);
    assert_eq!(other["duplicate"], false);

    let db = server.db().await;
    let (count, moved): (i64, i64) = sqlx::query_as(
        "SELECT delivery_count, CASE WHEN updated_at > created_at THEN 1 ELSE 0 END
         FROM llm_callbacks WHERE callback_id = 'job:j1:workflow.completed'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(count, 2);
    assert_eq!(moved, 1, "updated_at moves on a retry");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_callbacks")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rows, 2);
    let counted: i64 = sqlx::query_scalar("SELECT total FROM callback_count")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(counted, rows, "retries do not count as new callbacks");
}

#[tokio::test]
async fn an_unsigned_callback_in_flag_mode_may_take_its_event_from_the_header() {
    // The header is not signed, so only callbacks stored unverified use it.
    let server = TestServer::start_with(&["--signature-mode", "flag"]).await;
    let body = r#"{"job_id":"j2","workflow_name":"wf"}"#;
    let response = server
        .client
        .post(server.url(ENDPOINT))
        .header("x-webhook-event", "llm.step.completed")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let db = server.db().await;
    let (event, callback_id, status): (String, String, String) =
        sqlx::query_as("SELECT event_type, callback_id, status FROM llm_callbacks")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(event, "llm.step.completed");
    assert!(
        callback_id.starts_with("unverified:") && callback_id.contains("job:j2:llm.step.completed"),
        "{callback_id}"
    );
    assert_eq!(status, "in_progress");
}

#[tokio::test]
async fn standard_webhooks_signatures_are_accepted_and_keyed_by_webhook_id() {
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let server = TestServer::start_with(&["--webhook-secret", secret]).await;
    let body = r#"{"job_id":"j3","event":"workflow.completed"}"#;
    let first = server
        .post_standard("msg_1", now_unix(), body, secret)
        .await;
    assert_eq!(first.status(), 200);
    let first = json_of(first).await;
    let again = json_of(
        server
            .post_standard("msg_1", now_unix(), body, secret)
            .await,
    )
    .await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["duplicate"], true);

    let db = server.db().await;
    let (callback_id, scheme, header): (String, String, String) =
        sqlx::query_as("SELECT callback_id, signature_scheme, signature_header FROM llm_callbacks")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(callback_id, "wh:msg_1");
    assert_eq!(scheme, "standard_webhooks");
    assert_eq!(header, "webhook-signature");
}

#[tokio::test]
async fn stale_standard_webhooks_timestamp_is_401_and_audited() {
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let mut server = TestServer::start_with(&["--webhook-secret", secret]).await;
    let response = server
        .post_standard("msg_old", now_unix() - 301, r#"{"a":1}"#, secret)
        .await;
    assert_eq!(response.status(), 401);
    server.stop().await;
    assert_eq!(
        audit_outcomes(&server).await,
        vec![("stale_timestamp".to_owned(), 401)]
    );
}

#[tokio::test]
async fn missing_forged_and_truncated_signatures_are_401_with_a_generic_body() {
    let mut server = TestServer::start().await;
    let body = r#"{"job_id":"j4","event":"workflow.completed"}"#;
    let secret = inbox_core::signature::WebhookSecret::parse(SECRET).unwrap();
    let good = inbox_core::signature::sign_hex(&secret, body.as_bytes());
    let forged = inbox_core::signature::sign_hex(
        &inbox_core::signature::WebhookSecret::parse("not-the-secret-at-all").unwrap(),
        body.as_bytes(),
    );
    let truncated = good[..good.len() - 2].to_owned();
    let cases: Vec<Option<String>> = vec![
        None,
        Some(forged),
        Some(truncated),
        Some(String::new()),
        Some("sha256=".into()),
    ];
    for signature in cases {
        let mut request = server.client.post(server.url(ENDPOINT)).body(body);
        if let Some(signature) = &signature {
            request = request.header("x-webhook-signature", signature);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{signature:?}");
        assert_eq!(
            json_of(response).await,
            json!({ "error": "invalid or missing webhook signature" })
        );
    }
    let db = server.db().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_callbacks")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rows, 0, "nothing rejected is stored");
    server.stop().await;
    let outcomes: Vec<String> = audit_outcomes(&server)
        .await
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(outcomes[0], "missing_signature");
    assert!(
        outcomes[1..].iter().all(|o| o == "invalid_signature"),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn malformed_json_after_a_valid_signature_is_400_with_a_clear_message() {
    let mut server = TestServer::start().await;
    let response = server.post_signed(r#"{"job_id": "j5", "event": "#).await;
    assert_eq!(response.status(), 400);
    assert!(
        json_of(response).await["error"]
            .as_str()
            .unwrap()
            .starts_with("the body is not valid JSON")
    );
    let response = server.post_signed(r#"[1, 2, 3]"#).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        json_of(response).await["error"],
        "the body is JSON but not an object (it is an array); send a JSON object"
    );
    server.stop().await;
    assert_eq!(
        audit_outcomes(&server).await,
        vec![("malformed".to_owned(), 400), ("malformed".to_owned(), 400)]
    );
}

#[tokio::test]
async fn flag_mode_stores_unsigned_callbacks_marked_invalid() {
    let server =
        TestServer::start_with(&["--webhook-secret", SECRET, "--signature-mode", "flag"]).await;
    let body = r#"{"job_id":"j6","event":"workflow.completed"}"#;
    let response = server
        .client
        .post(server.url(ENDPOINT))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The genuine callback with the same job and event still gets its own row.
    let genuine = json_of(server.post_signed(body).await).await;
    assert_eq!(genuine["duplicate"], false);
    let db = server.db().await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT callback_id, CASE WHEN signature_valid THEN 1 ELSE 0 END
         FROM llm_callbacks ORDER BY created_at",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows[0].1 == 0 && rows[0].0.starts_with("unverified:"),
        "{rows:?}"
    );
    assert_eq!(rows[1].1, 1);
}

#[tokio::test]
async fn several_configured_secrets_are_all_accepted() {
    let server = TestServer::start_with(&[
        "--webhook-secret",
        "old-secret-1234-abcd,new-secret-5678-efgh",
    ])
    .await;
    assert_eq!(
        server
            .post_signed_with(r#"{"job_id":"a","event":"e"}"#, "old-secret-1234-abcd")
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .post_signed_with(r#"{"job_id":"b","event":"e"}"#, "new-secret-5678-efgh")
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .post_signed_with(r#"{"job_id":"c","event":"e"}"#, "some-other-secret-xyz")
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn without_a_configured_secret_one_is_generated_stored_and_enforced() {
    let server = TestServer::start_with(&["--no-secret"]).await;
    let db = server.db().await;
    let secret: String = sqlx::query_scalar("SELECT secret FROM webhook_secrets")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(secret.len(), 64, "256 random bits as hex");
    let unsigned = server
        .client
        .post(server.url(ENDPOINT))
        .body(r#"{"a":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_eq!(
        server
            .post_signed_with(r#"{"a":1}"#, &secret)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn oversized_body_with_content_length_gets_413_after_the_client_wrote_it_all() {
    let mut server =
        TestServer::start_with(&["--webhook-secret", SECRET, "--max-body-bytes", "1024"]).await;
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1500));
    let response = server.post_signed(&body).await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        json_of(response).await["error"],
        "body is 1,510 bytes; the limit is 1,024 bytes"
    );
    server.stop().await;
    assert_eq!(
        audit_outcomes(&server).await,
        vec![("too_large".to_owned(), 413)]
    );
}

#[tokio::test]
async fn oversized_chunked_body_without_content_length_gets_413() {
    let server =
        TestServer::start_with(&["--webhook-secret", SECRET, "--max-body-bytes", "4096"]).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {ENDPOINT} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ntransfer-encoding: chunked\r\nx-webhook-signature: sha256={}\r\n\r\n",
        server.addr,
        // Of a valid form (a malformed one is answered 401 before the body).
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // 8 chunks of 1 KiB: twice the limit, written in full like a naive sender.
    let chunk = vec![b'a'; 1024];
    for _ in 0..8 {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(&chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("body is larger than the limit of 4,096 bytes"),
        "{answer}"
    );
}

#[tokio::test]
async fn request_ids_are_generated_or_kept_when_sensible() {
    let server = TestServer::start().await;
    let generated = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(generated.status(), 200);
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    let kept = server
        .client
        .get(server.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "abc-123");
    let replaced = server
        .client
        .get(server.url("/healthz"))
        .header("x-request-id", "bad id!")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "bad id!");
}

#[tokio::test]
async fn audit_rows_hold_no_body_and_no_secret() {
    let mut server = TestServer::start().await;
    let marker = "very-private-payload-text";
    server
        .post_signed(&format!(
            r#"{{"job_id":"j7","event":"e","note":"{marker}"}}"#
        ))
        .await;
    server
        .client
        .post(server.url(ENDPOINT))
        .body(format!(r#"{{"note":"{marker}"}}"#))
        .send()
        .await
        .unwrap();
    server.stop().await;
    let db = server.db().await;
    let dump: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT concat_ws('|', {received_at}, request_id, outcome, http_status, processing_us, body_bytes,
                remote_addr, callback_id, {llm_callback_id}, signature_scheme)
         FROM webhook_deliveries",
        received_at = sql::micros(server.backend(), "received_at"),
        llm_callback_id = sql::uuid_text(server.backend(), "llm_callback_id"),
    ))
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(dump.len(), 2);
    for row in &dump {
        assert!(!row.contains(marker) && !row.contains(SECRET), "{row}");
        assert!(row.contains("127.0.0.1"), "remote address recorded: {row}");
    }
}

#[tokio::test]
async fn concurrent_retries_make_exactly_one_row_per_callback() {
    let server = Arc::new(TestServer::start().await);
    const CALLBACKS: usize = 16;
    const SENDERS: usize = 64;
    const RETRIES: usize = 4;
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for retry in 0..RETRIES {
                let job = (sender + retry) % CALLBACKS;
                let body = format!(r#"{{"job_id":"job-{job}","event":"workflow.completed","attempt":{retry},"sender":{sender}}}"#);
                let response = server.post_signed(&body).await;
                assert_eq!(response.status(), 200);
                let answer: Value = response.json().await.unwrap();
                ids.push((job, answer["id"].as_str().unwrap().to_owned()));
            }
            ids
        }));
    }
    let mut id_of_job: HashMap<usize, String> = HashMap::new();
    for task in tasks {
        for (job, id) in task.await.unwrap() {
            let known = id_of_job.entry(job).or_insert_with(|| id.clone());
            assert_eq!(
                *known, id,
                "every delivery of job {job} answers the same id"
            );
        }
    }
    let db = server.db().await;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT external_job_id, delivery_count FROM llm_callbacks")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(rows.len(), CALLBACKS);
    let total: i64 = rows.iter().map(|(_, count)| count).sum();
    assert_eq!(total as usize, SENDERS * RETRIES);
    for (job, count) in rows {
        assert_eq!(count as usize, SENDERS * RETRIES / CALLBACKS, "{job}");
    }
}

/// `\u0000` is valid JSON, but PostgreSQL's `text` and `jsonb` cannot hold
/// U+0000: such a callback must still be stored (not a 500), its body byte
/// for byte, and its detail and history must still load.
#[tokio::test]
async fn a_nul_escape_in_the_payload_is_stored_and_readable() {
    let server = TestServer::start().await;
    let body = r#"{"job_id":"nul\u0000job","event":"workflow.failed","workflow_name":"wf\u0000","error_message":"bad\u0000byte"}"#;
    let response = server.post_signed(body).await;
    assert_eq!(response.status(), 200);
    let answer = json_of(response).await;
    let id = answer["id"].as_str().unwrap().to_owned();
    let cookie = server.login_admin().await;
    let detail = json_of(
        server
            .call("/api/callbacks/detail", Some(&cookie), &[("id", &id)])
            .await,
    )
    .await;
    assert_eq!(detail["payload_text"], body, "the body byte for byte");
    assert_eq!(detail["payload"]["job_id"], "nul\u{0}job");
    let history = json_of(
        server
            .call(
                "/api/callbacks/history",
                Some(&cookie),
                &[("q", "nul\u{0}job")],
            )
            .await,
    )
    .await;
    let found: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, [id.as_str()], "searching for the job id finds it");
    // A retry is still recognised as the same callback.
    let again = json_of(server.post_signed(body).await).await;
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["duplicate"], true);
}

/// A number serde_json reads (as 0) but PostgreSQL's numeric cannot hold:
/// the callback is stored, exact, on both databases.
#[tokio::test]
async fn a_number_beyond_the_databases_range_is_stored_exactly() {
    let server = TestServer::start().await;
    let body = r#"{"job_id":"tiny-number","event":"workflow.completed","score":1e-20000}"#;
    let response = server.post_signed(body).await;
    assert_eq!(response.status(), 200);
    let id = json_of(response).await["id"].as_str().unwrap().to_owned();
    let cookie = server.login_admin().await;
    let detail = json_of(
        server
            .call("/api/callbacks/detail", Some(&cookie), &[("id", &id)])
            .await,
    )
    .await;
    assert_eq!(detail["payload_text"], body);
    assert_eq!(detail["external_job_id"], "tiny-number");
}
