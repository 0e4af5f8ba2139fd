//! Ready-to-paste examples of a sender for each preset: a signed `curl`,
//! or for Claude Code the hooks block of its `settings.json`.
//!
//! Secrets appear only as shell variables (`$CALLBACK_INBOX_SECRET`,
//! `$CALLBACK_INBOX_TOKEN`), never inlined, so an example can be shared.

use crate::source::Preset;

/// The variable the Claude Code hooks read their token from.
pub const TOKEN_VARIABLE: &str = "CALLBACK_INBOX_TOKEN";
/// The variable the curl examples read a source's secret from.
pub const SECRET_VARIABLE: &str = "CALLBACK_INBOX_SECRET";

/// The Claude Code hook events the inbox captures.
pub const CLAUDE_CODE_EVENTS: [&str; 7] = [
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "Stop",
    "SessionEnd",
    "Notification",
];

/// A source's URL on an inbox whose public base URL is `base_url`.
pub fn source_url(base_url: &str, name: &str) -> String {
    format!("{}/api/webhooks/{name}", base_url.trim_end_matches('/'))
}

/// How a sender of `preset` would send one test callback to `url`.
pub fn sender_example(preset: Preset, url: &str) -> String {
    let secret = SECRET_VARIABLE;
    let hmac_hex = |what: &str| {
        format!(
            "$(printf '%s' \"{what}\" | openssl dgst -sha256 -hmac \"${secret}\" | sed 's/^.* //')"
        )
    };
    match preset {
        Preset::ClaudeCode => claude_code_hooks(url, false),
        Preset::LlmCallback | Preset::Generic => format!(
            "BODY='{{\"job_id\":\"job_demo\",\"event\":\"workflow.completed\"}}'\n\
             curl -sS -X POST {url} -H 'Content-Type: application/json' \\\n  \
             -H \"X-Webhook-Signature: sha256={}\" -d \"$BODY\"",
            hmac_hex("$BODY")
        ),
        Preset::Github => format!(
            "BODY='{{\"action\":\"completed\",\"workflow_run\":{{\"name\":\"CI\",\"conclusion\":\"success\"}},\"repository\":{{\"full_name\":\"octo/demo\"}}}}'\n\
             curl -sS -X POST {url} -H 'Content-Type: application/json' \\\n  \
             -H 'X-GitHub-Event: workflow_run' -H \"X-GitHub-Delivery: $(uuidgen)\" \\\n  \
             -H \"X-Hub-Signature-256: sha256={}\" -d \"$BODY\"",
            hmac_hex("$BODY")
        ),
        Preset::Stripe => format!(
            "BODY='{{\"id\":\"evt_demo\",\"type\":\"payment_intent.succeeded\",\"data\":{{\"object\":{{\"id\":\"pi_demo\"}}}}}}'\n\
             T=$(date +%s)\n\
             curl -sS -X POST {url} -H 'Content-Type: application/json' \\\n  \
             -H \"Stripe-Signature: t=$T,v1={}\" -d \"$BODY\"",
            hmac_hex("$T.$BODY")
        ),
        Preset::Openai | Preset::Replicate => format!(
            "BODY='{{\"id\":\"demo\",\"type\":\"response.completed\",\"status\":\"succeeded\",\"data\":{{\"id\":\"resp_demo\"}}}}'\n\
             ID=msg_$(date +%s%N); T=$(date +%s)\n\
             KEY=$(printf '%s' \"${{{secret}#whsec_}}\" | base64 -d | od -An -tx1 | tr -d ' \\n')\n\
             SIG=$(printf '%s' \"$ID.$T.$BODY\" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$KEY -binary | base64)\n\
             curl -sS -X POST {url} -H 'Content-Type: application/json' \\\n  \
             -H \"webhook-id: $ID\" -H \"webhook-timestamp: $T\" -H \"webhook-signature: v1,$SIG\" -d \"$BODY\""
        ),
    }
}

/// The `hooks` block of Claude Code's `settings.json` for every captured
/// event. HTTP hooks post each event directly; with `through_cli` each
/// event goes through `callback-inbox send --hook`, which keeps what it
/// could not deliver and sends it with a later event.
pub fn claude_code_hooks(url: &str, through_cli: bool) -> String {
    let hook = if through_cli {
        serde_json::json!({
            "type": "command",
            "command": format!("callback-inbox send --hook --url {url}"),
            "timeout": 10,
        })
    } else {
        serde_json::json!({
            "type": "http",
            "url": url,
            "headers": { "Authorization": format!("Bearer ${TOKEN_VARIABLE}") },
            "allowedEnvVars": [TOKEN_VARIABLE],
            "timeout": 5,
        })
    };
    let mut hooks = serde_json::Map::new();
    for event in CLAUDE_CODE_EVENTS {
        let mut entry = serde_json::json!({ "hooks": [hook.clone()] });
        if matches!(event, "PreToolUse" | "PostToolUse") {
            entry["matcher"] = serde_json::Value::String("*".to_owned());
        }
        hooks.insert(event.to_owned(), serde_json::Value::Array(vec![entry]));
    }
    let block = serde_json::json!({ "hooks": hooks });
    serde_json::to_string_pretty(&block).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hooks_block_covers_every_event_and_never_inlines_the_token() {
        let block = claude_code_hooks("https://inbox.example/api/webhooks/claude-code", false);
        let parsed: serde_json::Value = serde_json::from_str(&block).unwrap();
        for event in CLAUDE_CODE_EVENTS {
            let hook = &parsed["hooks"][event][0]["hooks"][0];
            assert_eq!(hook["type"], "http", "{event}");
            assert_eq!(
                hook["url"],
                "https://inbox.example/api/webhooks/claude-code"
            );
            assert_eq!(
                hook["headers"]["Authorization"],
                "Bearer $CALLBACK_INBOX_TOKEN"
            );
            assert_eq!(hook["allowedEnvVars"][0], TOKEN_VARIABLE);
        }
        let through_cli = claude_code_hooks("http://127.0.0.1:3000/api/webhooks/cc", true);
        let parsed: serde_json::Value = serde_json::from_str(&through_cli).unwrap();
        assert_eq!(
            parsed["hooks"]["Stop"][0]["hooks"][0]["command"],
            "callback-inbox send --hook --url http://127.0.0.1:3000/api/webhooks/cc"
        );
    }

    #[test]
    fn curl_examples_read_the_secret_from_a_variable() {
        for preset in [
            Preset::Generic,
            Preset::Github,
            Preset::Stripe,
            Preset::Openai,
            Preset::Replicate,
        ] {
            let example = sender_example(preset, "http://h/api/webhooks/x");
            assert!(example.contains("CALLBACK_INBOX_SECRET"), "{example}");
            assert!(example.contains("http://h/api/webhooks/x"), "{example}");
        }
    }
}
