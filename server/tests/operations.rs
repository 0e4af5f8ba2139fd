//! The operator's view over real HTTP and a real database: the audit
//! log and its summary, secret usage, metrics, retention and export.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use inbox_core::accounts::Role;
use inbox_core::ingest::unix_micros;
use serde_json::{Value, json};
use sqlx::Row;
use support::{SECRET, TestServer, metric, sql};

const ENDPOINT: &str = "/api/webhooks/llm-callback";

async fn json_of(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"))
}

async fn outcome_counts(server: &TestServer) -> BTreeMap<String, i64> {
    let db = server.db().await;
    sqlx::query(
        "SELECT outcome, CAST(sum(count) AS bigint) FROM webhook_deliveries GROUP BY outcome",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

#[tokio::test]
async fn every_request_of_a_mixed_flood_is_in_the_audit_log_exactly_once() {
    let mut server = TestServer::start().await;
    let server_ref = Arc::new(server.client.clone());
    let base = server.base.clone();
    let mut tasks = Vec::new();
    for n in 0..400 {
        let client = server_ref.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let url = format!("{base}{ENDPOINT}");
            match n % 4 {
                // Unsigned, forged, and not JSON at all.
                0 => client.post(&url).body("{}").send().await.unwrap().status(),
                1 => client
                    .post(&url)
                    .header("x-webhook-signature", format!("sha256={}", "0".repeat(64)))
                    .body("{}")
                    .send()
                    .await
                    .unwrap()
                    .status(),
                _ => {
                    // Signed: half of them twice the same callback.
                    let body = format!(
                        r#"{{"job_id":"flood-{}","event":"workflow.completed"}}"#,
                        n / 2
                    );
                    let secret = inbox_core::signature::WebhookSecret::parse(SECRET).unwrap();
                    client
                        .post(&url)
                        .header(
                            "x-webhook-signature",
                            inbox_core::signature::sign_hex(&secret, body.as_bytes()),
                        )
                        .body(body)
                        .send()
                        .await
                        .unwrap()
                        .status()
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    server.stop().await;
    let counts = outcome_counts(&server).await;
    assert_eq!(counts.get("missing_signature"), Some(&100), "{counts:?}");
    assert_eq!(counts.get("invalid_signature"), Some(&100), "{counts:?}");
    assert_eq!(
        counts.get("accepted").copied().unwrap_or(0)
            + counts.get("duplicate").copied().unwrap_or(0),
        200,
        "{counts:?}"
    );
    assert_eq!(counts.get("duplicate"), Some(&100), "{counts:?}");
    // Each accepted audit row names its callback and the secret's label.
    let db = server.db().await;
    let unlinked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries d WHERE d.outcome IN ('accepted', 'duplicate')
           AND (d.secret_label IS DISTINCT FROM 'LLM_WEBHOOK_SECRET #1'
                OR NOT EXISTS (SELECT 1 FROM llm_callbacks c WHERE c.id = d.llm_callback_id))",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(unlinked, 0);
}

#[tokio::test]
async fn the_summary_percentiles_match_a_hand_computed_set() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let db = server.db().await;
    let received_at = sql::time(server.backend(), 1);
    let now = unix_micros(time::OffsetDateTime::now_utc());
    // 1 ms .. 100 ms, one request each, plus an aggregated row of 10
    // unsigned requests that took 0.2 ms, all within the hour.
    for ms in 1..=100i64 {
        sqlx::query(&format!(
            "INSERT INTO webhook_deliveries (received_at, outcome, http_status, processing_us, body_bytes, count)
             VALUES ({received_at}, 'accepted', 200, $2, 10, 1)"
        ))
        .bind(now - 60_000_000)
        .bind(ms * 1000)
        .execute(&db)
        .await
        .unwrap();
    }
    sqlx::query(&format!(
        "INSERT INTO webhook_deliveries (received_at, outcome, http_status, processing_us, body_bytes, count, aggregate_key)
         VALUES ({received_at}, 'missing_signature', 401, 200, 2, 10, 'k')"
    ))
    .bind(now - 120_000_000)
    .execute(&db)
    .await
    .unwrap();
    // And one old request outside the window.
    sqlx::query(&format!(
        "INSERT INTO webhook_deliveries (received_at, outcome, http_status, processing_us, body_bytes, count)
         VALUES ({received_at}, 'accepted', 200, 9000000, 10, 1)"
    ))
    .bind(now - 2 * 3_600_000_000)
    .execute(&db)
    .await
    .unwrap();

    let summary = json_of(
        server
            .call(
                "/api/deliveries/summary",
                Some(&cookie),
                &[("window", "1h")],
            )
            .await,
    )
    .await;
    assert_eq!(summary["window"], "1h");
    assert_eq!(summary["total"], 110);
    assert_eq!(summary["by_outcome"]["accepted"], 100);
    assert_eq!(summary["invalid_signature"], 10);
    // Sorted: ten at 0.2 ms, then 1..=100 ms. Nearest rank of 110 values:
    // p50 is the 55th (45 ms), p95 the 105th (95 ms), p99 the 109th (99 ms).
    assert_eq!(summary["processing_ms"]["p50"], 45.0);
    assert_eq!(summary["processing_ms"]["p95"], 95.0);
    assert_eq!(summary["processing_ms"]["p99"], 99.0);
    let bars = summary["buckets"].as_array().unwrap();
    assert!(bars.len() >= 60, "{} bars", bars.len());
    let charted: i64 = bars
        .iter()
        .flat_map(|bar| bar["by_outcome"].as_object().unwrap().values())
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(charted, 110);

    let bad = server
        .call(
            "/api/deliveries/summary",
            Some(&cookie),
            &[("window", "2y")],
        )
        .await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn the_deliveries_list_pages_by_keyset_and_filters_by_outcome() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let answer = json_of(
            server
                .post_signed(&format!(
                    r#"{{"job_id":"d{n}","event":"workflow.completed"}}"#
                ))
                .await,
        )
        .await;
        ids.push(answer["id"].as_str().unwrap().to_owned());
        server
            .client
            .post(server.url(ENDPOINT))
            .body("{}")
            .send()
            .await
            .unwrap();
    }
    server.store().await.flush().await.unwrap();
    let mut seen = Vec::new();
    let mut before = String::new();
    loop {
        let page = json_of(
            server
                .call(
                    "/api/deliveries/list",
                    Some(&cookie),
                    &[("outcome", "accepted"), ("limit", "2"), ("before", &before)],
                )
                .await,
        )
        .await;
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["outcome"], "accepted");
            assert_eq!(item["http_status"], 200);
            assert_eq!(item["count"], 1);
            assert_eq!(item["secret_label"], "LLM_WEBHOOK_SECRET #1");
            seen.push(item["llm_callback_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => before = next.to_owned(),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every accepted request once, newest first");

    let unsigned = json_of(
        server
            .call(
                "/api/deliveries/list",
                Some(&cookie),
                &[("outcome", "missing_signature")],
            )
            .await,
    )
    .await;
    let counted: i64 = unsigned["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, 5);
}

#[tokio::test]
async fn settings_show_when_each_secret_was_used_and_reveal_it_to_admins_only() {
    let server = TestServer::start_with(&[
        "--webhook-secret",
        &format!("{SECRET},the-next-secret-0123456789"),
    ])
    .await;
    let cookie = server.login_admin().await;
    // The banner's answer before any use is kept for 5 s: see
    // `concurrent_warnings_requests_share_one_computation_for_5_s`.
    assert_eq!(server.post_signed(r#"{"job_id":"s1"}"#).await.status(), 200);
    server.store().await.flush().await.unwrap();

    let settings = json_of(server.call("/api/admin/settings", Some(&cookie), &[]).await).await;
    let secrets = settings["secrets"].as_array().unwrap();
    assert_eq!(secrets[0]["label"], "LLM_WEBHOOK_SECRET #1");
    assert_eq!(secrets[0]["uses_24h"], 1);
    assert!(secrets[0]["last_used_at"].is_string());
    assert_eq!(secrets[1]["uses_24h"], 0);
    assert!(secrets[1]["last_used_at"].is_null());
    assert_eq!(settings["retention_days"], 30);
    let curl = settings["curl_example"].as_str().unwrap();
    assert!(
        curl.contains("$LLM_WEBHOOK_SECRET") && !curl.contains(SECRET),
        "{curl}"
    );
    assert!(!settings.to_string().contains(SECRET));
    let warnings = json_of(server.call("/api/inbox/warnings", Some(&cookie), &[]).await).await;
    assert_eq!(warnings["secret_unused"], false);
    assert_eq!(warnings["flag_mode"], false);

    let revealed = json_of(
        server
            .call(
                "/api/admin/settings/reveal-secret",
                Some(&cookie),
                &[("label", "LLM_WEBHOOK_SECRET #2")],
            )
            .await,
    )
    .await;
    assert_eq!(revealed, "the-next-secret-0123456789");

    let store = server.store().await;
    let hash = inbox_core::accounts::PasswordHasherPool::default()
        .hash("viewer password 123")
        .await
        .unwrap();
    store
        .create_user("viewer@example.com", &hash, Role::Viewer, 0)
        .await
        .unwrap();
    let viewer = server
        .login("viewer@example.com", "viewer password 123")
        .await
        .unwrap();
    let refused = server
        .call(
            "/api/admin/settings/reveal-secret",
            Some(&viewer),
            &[("label", "LLM_WEBHOOK_SECRET #1")],
        )
        .await;
    assert_eq!(refused.status(), 403);
}

// --- metrics ------------------------------------------------------------------

#[tokio::test]
async fn metrics_count_known_traffic() {
    let server = TestServer::start().await;
    let scrape = || async {
        let response = server
            .client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        response.text().await.unwrap()
    };
    let before = scrape().await;
    for n in 0..3 {
        server
            .post_signed(&format!(r#"{{"job_id":"m{n}","event":"e"}}"#))
            .await;
    }
    server.post_signed(r#"{"job_id":"m0","event":"e"}"#).await;
    for _ in 0..2 {
        server
            .client
            .post(server.url(ENDPOINT))
            .body("{}")
            .send()
            .await
            .unwrap();
    }
    let after = scrape().await;
    let delta = |series: &str| metric(&after, series) - metric(&before, series);
    assert_eq!(
        delta(r#"callback_inbox_webhook_requests_total{outcome="accepted",source="llm-callback"}"#),
        3.0,
        "{after}"
    );
    assert_eq!(
        delta(
            r#"callback_inbox_webhook_requests_total{outcome="duplicate",source="llm-callback"}"#
        ),
        1.0
    );
    assert_eq!(
        delta(
            r#"callback_inbox_webhook_requests_total{outcome="missing_signature",source="llm-callback"}"#
        ),
        2.0
    );
    assert_eq!(delta("callback_inbox_webhook_duplicates_total"), 1.0);
    assert_eq!(
        delta("callback_inbox_webhook_processing_seconds_count"),
        6.0
    );
    assert!(after.contains("callback_inbox_webhook_processing_seconds_bucket{le=\"0.01\"}"));
    assert!(after.contains("callback_inbox_store_batch_size"));
    assert!(after.contains("callback_inbox_active_sessions"));
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set() {
    let server = TestServer::start_with(&["--metrics-token", "scrape-token-123"]).await;
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = server
        .client
        .get(server.url("/metrics"))
        .header("authorization", "Bearer wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = server
        .client
        .get(server.url("/metrics"))
        .header("authorization", "Bearer scrape-token-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

// --- retention ----------------------------------------------------------------

#[tokio::test]
async fn retention_deletes_only_what_is_old_and_keeps_counts_consistent() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let store = server.store().await;
    let now = unix_micros(time::OffsetDateTime::now_utc());
    let day = 86_400_000_000i64;
    // 40-day-old callbacks (opened one by one) and fresh ones.
    for (n, age_days) in [(0, 40), (1, 40), (2, 40), (3, 1), (4, 0)] {
        let body = format!(r#"{{"job_id":"r{n}","event":"workflow.completed"}}"#);
        let payload: serde_json::Map<String, Value> = serde_json::from_str(&body).unwrap();
        let stored = store
            .insert_callback(inbox_core::store::NewCallback {
                id: uuid::Uuid::now_v7(),
                source: "llm-callback".to_owned(),
                callback_id: inbox_core::delivery::derive_delivery_id(
                    None,
                    &payload,
                    None,
                    body.as_bytes(),
                ),
                signature_valid: true,
                signature_scheme: None,
                verified_at_us: None,
                fields: inbox_core::fields::extract_fields(&payload, None, &body),
                payload: body,
                received_at_us: now - age_days * day,
            })
            .await
            .unwrap();
        if age_days == 40 {
            let id = stored.id.to_string();
            server
                .call("/api/callbacks/mark-viewed", Some(&cookie), &[("id", &id)])
                .await;
        }
    }
    // The fresh ones are viewed by a mark, which outlives the rows it covered.
    server
        .call("/api/callbacks/mark-all-viewed", Some(&cookie), &[])
        .await;
    let db = server.db().await;
    sqlx::query(&format!(
        "INSERT INTO webhook_deliveries (received_at, outcome, http_status, processing_us, body_bytes)
         VALUES ({}, 'accepted', 200, 5, 5), ({}, 'accepted', 200, 5, 5)",
        sql::time(server.backend(), 1),
        sql::time(server.backend(), 2),
    ))
    .bind(now - 40 * day)
    .bind(now)
    .execute(&db)
    .await
    .unwrap();
    // One fresh callback this admin has not viewed.
    server.post_signed(r#"{"job_id":"unviewed"}"#).await;

    let report = inbox_server::retention::purge(&store, 30).await.unwrap();
    assert_eq!(report.callbacks, 3);
    assert_eq!(report.views, 3);
    assert_eq!(report.deliveries, 1);

    let jobs: Vec<String> =
        sqlx::query_scalar("SELECT external_job_id FROM llm_callbacks ORDER BY created_at")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(jobs, ["r3", "r4", "unviewed"]);
    let (total, counted): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT total FROM callback_count), (SELECT count(*) FROM llm_callbacks)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(total, counted, "the trigger-kept count follows deletions");
    let history = json_of(
        server
            .call("/api/callbacks/history", Some(&cookie), &[])
            .await,
    )
    .await;
    assert_eq!(history["unread_count"], 1);
    assert_eq!(history["items"].as_array().unwrap().len(), 3);
    // Nothing left to remove.
    assert_eq!(
        inbox_server::retention::purge(&store, 30).await.unwrap(),
        inbox_core::store::PurgeReport::default()
    );
}

// --- export -------------------------------------------------------------------

async fn export(server: &TestServer, cookie: Option<&str>, query: &str) -> reqwest::Response {
    let mut request = server
        .client
        .get(server.url(&format!("/api/callbacks/export?{query}")));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn exports_round_trip_payloads_and_neutralise_spreadsheet_formulas() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    // Exact text: spacing, key order and a number beyond f64 precision.
    let bodies = [
        "{ \"job_id\" : \"x1\",\n  \"event\":\"workflow.completed\", \"big\": 12345678901234567890123 }".to_owned(),
        json!({"job_id": "=HYPERLINK(\"http://evil\")", "event": "workflow.failed", "error": "+1-2"}).to_string(),
    ];
    for body in &bodies {
        assert_eq!(server.post_signed(body).await.status(), 200);
    }
    // More than one export page.
    for n in 0..600 {
        server
            .post_signed(&format!(
                r#"{{"job_id":"bulk-{n}","event":"llm.step.completed"}}"#
            ))
            .await;
    }

    let response = export(&server, None, "format=json").await;
    assert_eq!(response.status(), 401);

    let response = export(&server, Some(&cookie), "format=json").await;
    assert_eq!(response.status(), 200);
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"callbacks-"),
        "{disposition}"
    );
    assert!(disposition.ends_with(".json\""), "{disposition}");
    let text = response.text().await.unwrap();
    assert!(
        text.contains(&bodies[0]),
        "the stored text appears byte for byte"
    );
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 602);

    let response = export(
        &server,
        Some(&cookie),
        "format=ndjson&event_type=workflow.completed",
    )
    .await;
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1);
    let record: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(record["payload"]["job_id"], "x1");
    assert!(lines[0].contains("\"big\":12345678901234567890123"));

    let response = export(
        &server,
        Some(&cookie),
        "format=csv&event_type=workflow.failed",
    )
    .await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let job = headers.iter().position(|h| h == "external_job_id").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][job], "'=HYPERLINK(\"http://evil\")");
    for cell in rows[0].iter() {
        assert!(
            !cell.starts_with(['=', '+', '-', '@']),
            "a cell a spreadsheet would run: {cell:?}"
        );
    }

    let response = export(&server, Some(&cookie), "format=xml").await;
    assert_eq!(response.status(), 400);
}

// --- API tokens ---------------------------------------------------------------

#[tokio::test]
async fn admins_create_list_and_revoke_tokens_through_the_api_and_viewers_cannot() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let created = server
        .call(
            "/api/admin/tokens/create",
            Some(&admin),
            &[("name", " ci ")],
        )
        .await;
    assert_eq!(created.status(), 200);
    let created = json_of(created).await;
    assert_eq!(created["name"], "ci");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cbi_"), "{created}");
    assert_eq!(created.as_object().unwrap().len(), 2, "{created}");

    let duplicate = server
        .call("/api/admin/tokens/create", Some(&admin), &[("name", "ci")])
        .await;
    assert_eq!(duplicate.status(), 400);
    let invalid = server
        .call("/api/admin/tokens/create", Some(&admin), &[("name", " ")])
        .await;
    assert_eq!(invalid.status(), 400);

    // Listed without the token or its hash.
    let listed = server.call("/api/admin/tokens", Some(&admin), &[]).await;
    assert_eq!(listed.status(), 200);
    let text = listed.text().await.unwrap();
    let hash = inbox_core::tokens::hash_token(&token);
    assert!(
        !text.contains(&token) && !text.contains(&hash) && !text.contains("cbi_"),
        "{text}"
    );
    let listed: Value = serde_json::from_str(&text).unwrap();
    let tokens = listed.as_array().unwrap();
    assert_eq!(tokens.len(), 1, "{listed}");
    assert_eq!(tokens[0]["email"], support::ADMIN_EMAIL);
    assert_eq!(tokens[0]["name"], "ci");
    assert!(tokens[0]["created_at"].is_string(), "{listed}");
    assert!(tokens[0]["last_used_at"].is_null(), "{listed}");
    assert!(tokens[0]["revoked_at"].is_null(), "{listed}");
    assert_eq!(tokens[0].as_object().unwrap().len(), 5, "{listed}");

    let history = |token: String| {
        let server = &server;
        async move {
            server
                .client
                .post(server.url("/api/callbacks/history"))
                .bearer_auth(token)
                .form(&[("q", "")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(history(token.clone()).await, 200);
    let listed = json_of(server.call("/api/admin/tokens", Some(&admin), &[]).await).await;
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");

    // A viewer may do none of it, not even list.
    let store = server.store().await;
    let hash = inbox_core::accounts::PasswordHasherPool::default()
        .hash("viewer password 123")
        .await
        .unwrap();
    store
        .create_user("viewer@example.com", &hash, Role::Viewer, 0)
        .await
        .unwrap();
    let viewer = server
        .login("viewer@example.com", "viewer password 123")
        .await
        .unwrap();
    let revoke = [("email", support::ADMIN_EMAIL), ("name", "ci")];
    for (path, fields) in [
        ("/api/admin/tokens", &[][..]),
        ("/api/admin/tokens/create", &[("name", "mine")][..]),
        ("/api/admin/tokens/revoke", &revoke[..]),
    ] {
        let response = server.call(path, Some(&viewer), fields).await;
        assert_eq!(response.status(), 403, "{path}");
    }
    assert_eq!(
        history(token.clone()).await,
        200,
        "the viewer revoked nothing"
    );

    let revoked = server
        .call("/api/admin/tokens/revoke", Some(&admin), &revoke)
        .await;
    assert_eq!(revoked.status(), 200);
    let revoked = json_of(revoked).await;
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert_eq!(history(token.clone()).await, 401);
    let again = server
        .call("/api/admin/tokens/revoke", Some(&admin), &revoke)
        .await;
    assert_eq!(again.status(), 404);
    let listed = json_of(server.call("/api/admin/tokens", Some(&admin), &[]).await).await;
    assert!(listed[0]["revoked_at"].is_string(), "{listed}");
}

// --- heavy reads and flood bounds (review, issue 16) ---------------------------

/// A week's summary reads every audit row of the week (about 1 s at 500,000
/// rows; 8 viewers at once took 11.7 s). Eight viewers asking at once now
/// share one computation, later requests reuse it for 5 s, and after that
/// it is computed afresh.
#[tokio::test]
async fn concurrent_summary_requests_share_one_computation_for_5_s() {
    const SERIES: &str = r#"callback_inbox_delivery_summary_computations_total{window="7d"}"#;
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let db = server.db().await;
    let insert = format!(
        "INSERT INTO webhook_deliveries (received_at, outcome, http_status, processing_us, body_bytes, count)
         VALUES ({}, 'accepted', 200, 1000, 10, 1)",
        sql::time(server.backend(), 1)
    );
    let minute_ago = || unix_micros(time::OffsetDateTime::now_utc()) - 60_000_000;
    sqlx::query(&insert)
        .bind(minute_ago())
        .execute(&db)
        .await
        .unwrap();

    let before = server.metric(SERIES).await;
    let asks: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(
                server
                    .client
                    .post(server.url("/api/deliveries/summary"))
                    .header("cookie", &cookie)
                    .form(&[("window", "7d")])
                    .send(),
            )
        })
        .collect();
    let first_answered = std::time::Instant::now();
    for ask in asks {
        let summary = json_of(ask.await.unwrap().unwrap()).await;
        assert_eq!(summary["total"], 1, "{summary}");
    }
    assert_eq!(
        server.metric(SERIES).await - before,
        1.0,
        "eight concurrent requests, one computation"
    );

    sqlx::query(&insert)
        .bind(minute_ago())
        .execute(&db)
        .await
        .unwrap();
    let summary = json_of(
        server
            .call(
                "/api/deliveries/summary",
                Some(&cookie),
                &[("window", "7d")],
            )
            .await,
    )
    .await;
    assert!(
        first_answered.elapsed() < std::time::Duration::from_secs(5),
        "the machine is too slow for this check"
    );
    assert_eq!(summary["total"], 1, "served from the cache within 5 s");

    tokio::time::sleep(
        std::time::Duration::from_millis(5_200).saturating_sub(first_answered.elapsed()),
    )
    .await;
    let summary = json_of(
        server
            .call(
                "/api/deliveries/summary",
                Some(&cookie),
                &[("window", "7d")],
            )
            .await,
    )
    .await;
    assert_eq!(summary["total"], 2, "computed afresh after 5 s");
    assert_eq!(server.metric(SERIES).await - before, 2.0);
}

/// The warnings banner is asked for by every admin page of every viewer,
/// and which secrets verified requests reads every verified audit row kept
/// (as heavy as a week's summary). Eight viewer requests at once share one
/// computation, later requests reuse it for 5 s, and after that it is
/// computed afresh.
#[tokio::test]
async fn concurrent_warnings_requests_share_one_computation_for_5_s() {
    const SERIES: &str = "callback_inbox_secret_uses_computations_total";
    let server = TestServer::start().await;
    let hash = inbox_core::accounts::PasswordHasherPool::default()
        .hash("viewer password 123")
        .await
        .unwrap();
    server
        .store()
        .await
        .create_user("viewer@example.com", &hash, Role::Viewer, 0)
        .await
        .unwrap();
    let viewer = server
        .login("viewer@example.com", "viewer password 123")
        .await
        .unwrap();
    let warnings =
        || async { json_of(server.call("/api/inbox/warnings", Some(&viewer), &[]).await).await };

    let before = server.metric(SERIES).await;
    let asks: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(
                server
                    .client
                    .post(server.url("/api/inbox/warnings"))
                    .header("cookie", &viewer)
                    .send(),
            )
        })
        .collect();
    let first_asked = std::time::Instant::now();
    for ask in asks {
        let answer = json_of(ask.await.unwrap().unwrap()).await;
        assert_eq!(answer["secret_unused"], true, "{answer}");
    }
    // The computation started after `first_asked` and before this.
    let all_answered = std::time::Instant::now();
    assert_eq!(
        server.metric(SERIES).await - before,
        1.0,
        "eight concurrent requests, one computation"
    );

    // Answered only once its audit row is committed.
    assert_eq!(server.post_signed(r#"{"job_id":"w1"}"#).await.status(), 200);
    let answer = warnings().await;
    assert!(
        first_asked.elapsed() < std::time::Duration::from_secs(5),
        "the machine is too slow for this check"
    );
    assert_eq!(
        answer["secret_unused"], true,
        "served from the cache within 5 s"
    );
    assert_eq!(server.metric(SERIES).await - before, 1.0);

    tokio::time::sleep(
        std::time::Duration::from_millis(5_100).saturating_sub(all_answered.elapsed()),
    )
    .await;
    let answer = warnings().await;
    assert_eq!(answer["secret_unused"], false, "computed afresh after 5 s");
    assert_eq!(server.metric(SERIES).await - before, 2.0);
}

/// Finding 10 of the review: unauthenticated requests were counted per
/// address, so 3,000 addresses made 3,000 audit rows a minute. Now each
/// minute has at most 50 rows of single addresses; the rest share one
/// "(many addresses)" row that counts them, so every request is counted.
#[tokio::test]
async fn requests_from_3000_addresses_make_at_most_51_audit_rows_a_minute() {
    const ADDRESSES: usize = 3_000;
    let mut server = TestServer::start_with(&["--trusted-proxies", "127.0.0.1"]).await;
    // All in one minute, unless the machine is very slow.
    let second = time::OffsetDateTime::now_utc().second();
    if second > 40 {
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(61 - second))).await;
    }
    let url = server.url(ENDPOINT);
    let mut senders = Vec::new();
    for task in 0..16 {
        let client = server.client.clone();
        let url = url.clone();
        senders.push(tokio::spawn(async move {
            for n in (task..ADDRESSES).step_by(16) {
                let status = client
                    .post(&url)
                    .header(
                        "x-forwarded-for",
                        format!("198.18.{}.{}", n / 250, n % 250 + 1),
                    )
                    .body("{}")
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 401);
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    server.stop().await;

    let db = server.db().await;
    let rows: Vec<(i64, i64, Option<String>)> = sqlx::query_as(&format!(
        "SELECT {}, count, remote_addr FROM webhook_deliveries WHERE aggregate_key IS NOT NULL",
        sql::micros(server.backend(), "received_at")
    ))
    .fetch_all(&db)
    .await
    .unwrap();
    let mut minutes: BTreeMap<i64, (usize, i64)> = BTreeMap::new();
    for (received_at, count, _) in &rows {
        let minute = minutes
            .entry(received_at.div_euclid(60_000_000))
            .or_default();
        minute.0 += 1;
        minute.1 += count;
    }
    println!("rows per minute (rows, requests): {minutes:?}");
    for (minute, (row_count, _)) in &minutes {
        assert!(*row_count <= 51, "{row_count} rows in minute {minute}");
    }
    assert_eq!(
        minutes.values().map(|(_, requests)| requests).sum::<i64>(),
        ADDRESSES as i64,
        "every request counted"
    );
    let shared: i64 = rows
        .iter()
        .filter(|(_, _, address)| address.as_deref() == Some("(many addresses)"))
        .map(|(_, count, _)| count)
        .sum();
    assert!(shared >= (ADDRESSES - 2 * 50) as i64, "{shared} shared");
}

/// The Settings page hands the browser its token list once. The server
/// runs a `<Transition>`'s children more than once; a resource made inside
/// them was serialized twice under two hydration ids, and the browser read
/// the first (discarded) copy: when that copy had failed, the page rendered
/// one branch on the server and another in the browser and went dead.
#[tokio::test]
async fn the_settings_page_serializes_its_token_list_once() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let created = server
        .call(
            "/api/admin/tokens/create",
            Some(&admin),
            &[("name", "hydration-probe")],
        )
        .await;
    assert_eq!(created.status(), 200);
    let page = server
        .client
        .get(server.url("/admin/settings"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let serialized: Vec<&str> = page
        .split("__RESOLVED_RESOURCES[")
        .skip(1)
        .filter(|entry| {
            let entry = entry.split("</script>").next().unwrap_or_default();
            entry.contains("hydration-probe")
        })
        .collect();
    assert_eq!(serialized.len(), 1, "{page}");
}
