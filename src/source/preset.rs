//! Presets: what a source of a known kind needs by default (schemes, field
//! rules, the answer it expects) and how its events read as a status.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::mapping::{FieldRule, Mapping, MappingField};
use super::scheme::{DEFAULT_TOKEN_HEADER, SourceScheme};
use crate::fields::{CallbackStatus, status_from_event, status_word};

/// A kind of sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The original callback format (`job_id`, `event`, …).
    LlmCallback,
    /// OpenAI's webhooks (Standard Webhooks); also fits Gemini and Anthropic agents.
    Openai,
    /// Replicate's prediction webhooks (Standard Webhooks).
    Replicate,
    /// GitHub's webhooks (`X-Hub-Signature-256`).
    Github,
    /// Stripe's events (`Stripe-Signature`).
    Stripe,
    /// Claude Code's HTTP hooks, authenticated by a bearer token.
    ClaudeCode,
    /// Anything else that signs with the hex scheme.
    Generic,
}

/// What a stored callback is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerKind {
    /// `{"received":true,"id":…,"duplicate":…}`.
    Json,
    /// A 2xx with no body and the id in `x-callback-inbox-id`: Claude Code
    /// adds a hook answer's text to the model's context.
    Empty,
}

impl AnswerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Empty => "empty",
        }
    }
}

impl Preset {
    pub const ALL: [Self; 7] = [
        Self::LlmCallback,
        Self::Openai,
        Self::Replicate,
        Self::Github,
        Self::Stripe,
        Self::ClaudeCode,
        Self::Generic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LlmCallback => "llm-callback",
            Self::Openai => "openai",
            Self::Replicate => "replicate",
            Self::Github => "github",
            Self::Stripe => "stripe",
            Self::ClaudeCode => "claude-code",
            Self::Generic => "generic",
        }
    }

    /// The preset named exactly `s` (as stored); [`FromStr`] explains a miss.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|preset| preset.as_str() == s)
    }

    /// The schemes a new source of this kind accepts, in the order tried.
    pub fn schemes(self) -> &'static [SourceScheme] {
        match self {
            Self::LlmCallback => &[SourceScheme::Hex, SourceScheme::Standard],
            Self::Openai | Self::Replicate => &[SourceScheme::Standard],
            Self::Github => &[SourceScheme::Github],
            Self::Stripe => &[SourceScheme::Stripe],
            Self::ClaudeCode => &[SourceScheme::Token],
            Self::Generic => &[SourceScheme::Hex],
        }
    }

    /// The preset's rules, in [`MappingField::ALL`] order.
    fn rule_texts(self) -> [Option<&'static str>; 5] {
        match self {
            // The optional step of the built-in id is two places: with it, then without.
            Self::LlmCallback => [
                Some(
                    "header:webhook-id,json:/job_id+json:/event+json:/step_id,json:/job_id+json:/event,sha256",
                ),
                Some("json:/job_id"),
                Some("json:/event"),
                Some("json:/workflow_name"),
                Some("json:/error_message,json:/error"),
            ],
            Self::Openai => [
                Some("header:webhook-id"),
                Some("json:/data/id"),
                Some("json:/type"),
                None,
                None,
            ],
            Self::Replicate => [
                Some("header:webhook-id"),
                Some("json:/id"),
                Some("json:/status"),
                Some("json:/model"),
                Some("json:/error"),
            ],
            Self::Github => [
                Some("header:X-GitHub-Delivery"),
                Some("json:/repository/full_name"),
                Some("header:X-GitHub-Event"),
                Some("json:/workflow_run/name"),
                None,
            ],
            Self::Stripe => [
                Some("json:/id"),
                Some("json:/data/object/id"),
                Some("json:/type"),
                None,
                None,
            ],
            Self::ClaudeCode => [
                Some("header:Idempotency-Key,sha256"),
                Some("json:/session_id"),
                Some("json:/hook_event_name"),
                Some("json:/cwd"),
                Some("json:/error"),
            ],
            Self::Generic => [
                Some("header:Idempotency-Key,sha256"),
                None,
                Some("json:/event,json:/type"),
                None,
                Some("json:/error"),
            ],
        }
    }

    /// The preset's default rules (a source's overrides apply on top).
    pub fn mapping(self) -> Mapping {
        let mut mapping = Mapping::default();
        for (field, text) in MappingField::ALL.into_iter().zip(self.rule_texts()) {
            let rule =
                text.map(|text| FieldRule::parse(text).expect("preset rules are valid (tested)"));
            match field {
                MappingField::Id => mapping.id_from = rule,
                MappingField::Group => mapping.group_from = rule,
                MappingField::Event => mapping.event_from = rule,
                MappingField::Workflow => mapping.workflow_from = rule,
                MappingField::Error => mapping.error_from = rule,
            }
        }
        mapping
    }

    pub fn answer(self) -> AnswerKind {
        match self {
            Self::ClaudeCode => AnswerKind::Empty,
            _ => AnswerKind::Json,
        }
    }

    /// The token header a new source of this kind reads, when it uses the
    /// `token` scheme.
    pub fn default_token_header(self) -> Option<&'static str> {
        match self {
            Self::ClaudeCode => Some(DEFAULT_TOKEN_HEADER),
            _ => None,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.trim()).ok_or_else(|| UnknownPreset {
            name: s.trim().chars().take(40).collect(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{name}` is not a preset; use llm-callback, openai, replicate, github, stripe, claude-code or generic"
)]
pub struct UnknownPreset {
    pub name: String,
}

/// A callback's status from its mapped event (and, for some presets, its
/// payload).
///
/// - every preset: the event's last dot-separated word, as for the built-in
///   source ([`status_from_event`]: `response.completed` is completed,
///   `llm.step.completed` in progress);
/// - `llm-callback`, `generic`: when the event says nothing, the payload's
///   `status` word, as the built-in source does;
/// - all but `llm-callback`: a last word `cancelled`, `canceled`, `expired`,
///   `incomplete` or ending in `_failed` (`payment_failed`) is failed;
/// - `replicate` (the event is the prediction's `status`): `starting`,
///   `processing` in progress, `succeeded` completed, `failed`, `canceled`
///   failed;
/// - `github`: `workflow_run`, `workflow_job`, `check_run`, `check_suite`
///   read `/<event>/conclusion`: `success`, `neutral`, `skipped` completed;
///   `failure`, `cancelled`, `timed_out`, `startup_failure`, `stale` failed;
///   none yet (or `action_required`) in progress;
/// - `claude-code` (the event is the hook's name): `SessionEnd` completed,
///   any other hook in progress, a failed tool included (its error is
///   mapped; the session goes on).
pub fn status_of(preset: Preset, event: Option<&str>, payload: &Value) -> CallbackStatus {
    let event = event.map(str::trim).filter(|event| !event.is_empty());
    match preset {
        Preset::LlmCallback => event_or_payload_status(event, payload),
        Preset::Generic => with_stop_words(event_or_payload_status(event, payload), event),
        Preset::Openai | Preset::Stripe => with_stop_words(status_from_event(event), event),
        Preset::Replicate => match event {
            Some("starting" | "processing") => CallbackStatus::InProgress,
            Some("succeeded") => CallbackStatus::Completed,
            Some("failed" | "canceled") => CallbackStatus::Failed,
            _ => with_stop_words(status_from_event(event), event),
        },
        Preset::Github => match event {
            Some(kind @ ("workflow_run" | "workflow_job" | "check_run" | "check_suite")) => {
                github_conclusion(payload.get(kind).and_then(|run| run.get("conclusion")))
            }
            _ => with_stop_words(status_from_event(event), event),
        },
        Preset::ClaudeCode => match event {
            None => CallbackStatus::Unknown,
            Some("SessionEnd") => CallbackStatus::Completed,
            Some(_) => CallbackStatus::InProgress,
        },
    }
}

/// The built-in rule: the event, else the payload's `status` word.
fn event_or_payload_status(event: Option<&str>, payload: &Value) -> CallbackStatus {
    match status_from_event(event) {
        CallbackStatus::Unknown => payload
            .get("status")
            .and_then(Value::as_str)
            .map_or(CallbackStatus::Unknown, |status| status_word(status.trim())),
        status => status,
    }
}

/// Providers' words for a run that ended without completing.
fn with_stop_words(status: CallbackStatus, event: Option<&str>) -> CallbackStatus {
    const STOPPED: &[&str] = &["cancelled", "canceled", "expired", "incomplete"];
    if status != CallbackStatus::Unknown {
        return status;
    }
    let last = event
        .and_then(|event| event.rsplit('.').next())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if STOPPED.contains(&last.as_str()) || last.ends_with("_failed") {
        CallbackStatus::Failed
    } else {
        status
    }
}

fn github_conclusion(conclusion: Option<&Value>) -> CallbackStatus {
    match conclusion.and_then(Value::as_str) {
        None | Some("action_required") => CallbackStatus::InProgress,
        Some("success" | "neutral" | "skipped") => CallbackStatus::Completed,
        Some("failure" | "cancelled" | "timed_out" | "startup_failure" | "stale") => {
            CallbackStatus::Failed
        }
        Some(_) => CallbackStatus::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{SignatureScheme, WebhookSecret, sign_standard};
    use crate::source::headers::RequestHeaders;
    use crate::source::mapping::{MappedFields, MappingOverrides, map_callback};
    use crate::source::scheme::{sign_github, sign_stripe, verify_source_signature};
    use serde_json::json;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn map(preset: Preset, pairs: &[(&str, &str)], body: &str) -> (MappedFields, CallbackStatus) {
        let payload: Value = serde_json::from_str(body).unwrap();
        let mapped = map_callback(
            &preset.mapping(),
            &RequestHeaders::new(pairs.to_vec()),
            &payload,
            body.as_bytes(),
        );
        let status = status_of(preset, mapped.event.as_deref(), &payload);
        (mapped, status)
    }

    fn verified(preset: Preset, pairs: &[(&str, &str)], body: &str, now: i64) -> SignatureScheme {
        verify_source_signature(
            preset.schemes(),
            preset.default_token_header(),
            &RequestHeaders::new(pairs.to_vec()),
            body.as_bytes(),
            &[WebhookSecret::parse(SECRET).unwrap()],
            now,
            300,
        )
        .unwrap()
        .scheme
    }

    #[test]
    fn names_round_trip() {
        for preset in Preset::ALL {
            assert_eq!(Preset::parse(preset.as_str()), Some(preset));
            assert_eq!(preset.to_string().parse::<Preset>(), Ok(preset));
            assert_eq!(
                serde_json::to_string(&preset).unwrap(),
                format!("\"{preset}\"")
            );
        }
        assert_eq!(Preset::parse("claude_code"), None);
        let err = "Zapier".parse::<Preset>().unwrap_err();
        assert!(
            err.to_string()
                .contains("`Zapier` is not a preset; use llm-callback"),
            "{err}"
        );
        assert_eq!(
            serde_json::to_string(&AnswerKind::Empty).unwrap(),
            "\"empty\""
        );
        assert_eq!(AnswerKind::Json.as_str(), "json");
    }

    #[test]
    fn every_preset_matches_the_contract_table() {
        let table = |preset: Preset| {
            let mapping = preset.mapping();
            let rules: Vec<String> = MappingField::ALL
                .into_iter()
                .map(|field| {
                    mapping
                        .rule(field)
                        .map_or("—".to_owned(), ToString::to_string)
                })
                .collect();
            (
                SourceScheme::format_list(preset.schemes()),
                rules,
                preset.answer(),
            )
        };
        let row = |schemes: &str, rules: [&str; 5], answer| {
            (
                schemes.to_owned(),
                rules.map(str::to_owned).to_vec(),
                answer,
            )
        };
        assert_eq!(
            table(Preset::LlmCallback),
            row(
                "hex,standard",
                [
                    "header:webhook-id,json:/job_id+json:/event+json:/step_id,json:/job_id+json:/event,sha256",
                    "json:/job_id",
                    "json:/event",
                    "json:/workflow_name",
                    "json:/error_message,json:/error",
                ],
                AnswerKind::Json
            )
        );
        assert_eq!(
            table(Preset::Openai),
            row(
                "standard",
                ["header:webhook-id", "json:/data/id", "json:/type", "—", "—"],
                AnswerKind::Json
            )
        );
        assert_eq!(
            table(Preset::Replicate),
            row(
                "standard",
                [
                    "header:webhook-id",
                    "json:/id",
                    "json:/status",
                    "json:/model",
                    "json:/error"
                ],
                AnswerKind::Json
            )
        );
        assert_eq!(
            table(Preset::Github),
            row(
                "github",
                [
                    "header:X-GitHub-Delivery",
                    "json:/repository/full_name",
                    "header:X-GitHub-Event",
                    "json:/workflow_run/name",
                    "—"
                ],
                AnswerKind::Json
            )
        );
        assert_eq!(
            table(Preset::Stripe),
            row(
                "stripe",
                ["json:/id", "json:/data/object/id", "json:/type", "—", "—"],
                AnswerKind::Json
            )
        );
        assert_eq!(
            table(Preset::ClaudeCode),
            row(
                "token",
                [
                    "header:Idempotency-Key,sha256",
                    "json:/session_id",
                    "json:/hook_event_name",
                    "json:/cwd",
                    "json:/error"
                ],
                AnswerKind::Empty
            )
        );
        assert_eq!(
            table(Preset::Generic),
            row(
                "hex",
                [
                    "header:Idempotency-Key,sha256",
                    "—",
                    "json:/event,json:/type",
                    "—",
                    "json:/error"
                ],
                AnswerKind::Json
            )
        );
        for preset in Preset::ALL {
            assert_eq!(preset.mapping().validate(), Ok(()), "{preset}");
            let expected = (preset == Preset::ClaudeCode).then_some("Authorization");
            assert_eq!(preset.default_token_header(), expected);
        }
    }

    #[test]
    fn llm_callback_preset_keys_job_events_and_steps() {
        let (step, _) = map(
            Preset::LlmCallback,
            &[],
            r#"{"job_id":"job_8f2c","event":"llm.step.completed","step_id":"s1"}"#,
        );
        assert_eq!(
            step.delivery_id.as_str(),
            "jjj:job_8f2c:llm.step.completed:s1"
        );
        let (fields, status) = map(
            Preset::LlmCallback,
            &[],
            r#"{"job_id":"job_8f2c","event":"workflow.failed","workflow_name":"summarize-pdf","error":{"message":"context length exceeded"}}"#,
        );
        assert_eq!(fields.delivery_id.as_str(), "jj:job_8f2c:workflow.failed");
        assert_eq!(fields.group.as_deref(), Some("job_8f2c"));
        assert_eq!(fields.workflow.as_deref(), Some("summarize-pdf"));
        assert_eq!(fields.error.as_deref(), Some("context length exceeded"));
        assert_eq!(status, CallbackStatus::Failed);
        let (with_header, status) = map(
            Preset::LlmCallback,
            &[("webhook-id", "msg_1")],
            r#"{"job_id":"j","status":"running"}"#,
        );
        assert_eq!(with_header.delivery_id.as_str(), "h:msg_1");
        assert_eq!(status, CallbackStatus::InProgress);
    }

    #[test]
    fn openai_response_completed() {
        let body = r#"{"object":"event","id":"evt_685343a1381c819085d44c354e1b330e","type":"response.completed","created_at":1750287018,"data":{"id":"resp_685343a0d8c88190a2a40ce6ea7bd8b6"}}"#;
        let signature = sign_standard(
            &WebhookSecret::parse(SECRET).unwrap(),
            "wh_685343a1381c819085d44c354e1b330e",
            1_750_287_019,
            body.as_bytes(),
        );
        let pairs = [
            ("webhook-id", "wh_685343a1381c819085d44c354e1b330e"),
            ("webhook-timestamp", "1750287019"),
            ("webhook-signature", signature.as_str()),
        ];
        assert_eq!(
            verified(Preset::Openai, &pairs, body, 1_750_287_020),
            SignatureScheme::StandardWebhooks
        );
        let (fields, status) = map(Preset::Openai, &pairs, body);
        assert_eq!(
            fields.delivery_id.as_str(),
            "h:wh_685343a1381c819085d44c354e1b330e"
        );
        assert_eq!(
            fields.group.as_deref(),
            Some("resp_685343a0d8c88190a2a40ce6ea7bd8b6")
        );
        assert_eq!(fields.event.as_deref(), Some("response.completed"));
        assert_eq!((fields.workflow, fields.error), (None, None));
        assert_eq!(status, CallbackStatus::Completed);
        for (event, expected) in [
            ("response.failed", CallbackStatus::Failed),
            ("response.cancelled", CallbackStatus::Failed),
            ("response.incomplete", CallbackStatus::Failed),
            ("batch.expired", CallbackStatus::Failed),
            ("fine_tuning.job.succeeded", CallbackStatus::Completed),
            ("realtime.call.incoming", CallbackStatus::Unknown),
        ] {
            assert_eq!(
                status_of(Preset::Openai, Some(event), &json!({})),
                expected,
                "{event}"
            );
        }
    }

    #[test]
    fn replicate_prediction_lifecycle() {
        let prediction = |status: &str, error: &str| {
            format!(
                r#"{{"id":"ufawqhfynnddngldkgtslldrkq","model":"replicate/hello-world","version":"5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa","input":{{"text":"Alice"}},"logs":"","output":null,"error":{error},"status":"{status}","created_at":"2023-09-08T16:19:34.765994657Z","urls":{{"get":"https://api.replicate.com/v1/predictions/ufawqhfynnddngldkgtslldrkq","cancel":"https://api.replicate.com/v1/predictions/ufawqhfynnddngldkgtslldrkq/cancel"}}}}"#
            )
        };
        let pairs = [("webhook-id", "msg_2VQ4uW1hYsTz0cpBZ0pgVdGvVdM")];
        let (fields, status) = map(Preset::Replicate, &pairs, &prediction("starting", "null"));
        assert_eq!(
            fields.delivery_id.as_str(),
            "h:msg_2VQ4uW1hYsTz0cpBZ0pgVdGvVdM"
        );
        assert_eq!(fields.group.as_deref(), Some("ufawqhfynnddngldkgtslldrkq"));
        assert_eq!(fields.event.as_deref(), Some("starting"));
        assert_eq!(fields.workflow.as_deref(), Some("replicate/hello-world"));
        assert_eq!(fields.error, None);
        assert_eq!(status, CallbackStatus::InProgress);
        for (state, error, expected) in [
            ("processing", "null", CallbackStatus::InProgress),
            ("succeeded", "null", CallbackStatus::Completed),
            ("failed", r#""CUDA out of memory""#, CallbackStatus::Failed),
            ("canceled", "null", CallbackStatus::Failed),
        ] {
            let (fields, status) = map(Preset::Replicate, &pairs, &prediction(state, error));
            assert_eq!(status, expected, "{state}");
            if state == "failed" {
                assert_eq!(fields.error.as_deref(), Some("CUDA out of memory"));
            }
        }
    }

    #[test]
    fn github_workflow_run() {
        let run = |action: &str, conclusion: &str| {
            format!(
                r#"{{"action":"{action}","workflow_run":{{"id":30433642,"name":"Build","head_branch":"main","head_sha":"acb5820ced9479c074f688cc328bf03f341a511d","run_number":562,"event":"push","status":"completed","conclusion":{conclusion},"workflow_id":159038,"html_url":"https://github.com/octo-org/octo-repo/actions/runs/30433642"}},"workflow":{{"id":159038,"name":"Build"}},"repository":{{"id":1296269,"name":"octo-repo","full_name":"octo-org/octo-repo"}},"sender":{{"login":"octocat","id":1}}}}"#
            )
        };
        let body = run("completed", r#""success""#);
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let signature = sign_github(&secret, body.as_bytes());
        let pairs = [
            ("X-GitHub-Event", "workflow_run"),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("X-GitHub-Hook-ID", "292430182"),
            ("X-Hub-Signature-256", signature.as_str()),
        ];
        assert_eq!(
            verified(Preset::Github, &pairs, &body, 0),
            SignatureScheme::GithubSha256
        );
        let (fields, status) = map(Preset::Github, &pairs, &body);
        assert_eq!(
            fields.delivery_id.as_str(),
            "h:72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        assert_eq!(fields.group.as_deref(), Some("octo-org/octo-repo"));
        assert_eq!(fields.event.as_deref(), Some("workflow_run"));
        assert_eq!(fields.workflow.as_deref(), Some("Build"));
        assert_eq!(status, CallbackStatus::Completed);
        for (action, conclusion, expected) in [
            ("requested", "null", CallbackStatus::InProgress),
            ("in_progress", "null", CallbackStatus::InProgress),
            ("completed", r#""failure""#, CallbackStatus::Failed),
            ("completed", r#""cancelled""#, CallbackStatus::Failed),
            ("completed", r#""timed_out""#, CallbackStatus::Failed),
            ("completed", r#""skipped""#, CallbackStatus::Completed),
        ] {
            let (_, status) = map(Preset::Github, &pairs, &run(action, conclusion));
            assert_eq!(status, expected, "{action} {conclusion}");
        }
        let job = json!({"action": "completed", "workflow_job": {"conclusion": "failure"}});
        assert_eq!(
            status_of(Preset::Github, Some("workflow_job"), &job),
            CallbackStatus::Failed
        );
        assert_eq!(
            status_of(Preset::Github, Some("push"), &json!({})),
            CallbackStatus::Unknown
        );
    }

    #[test]
    fn stripe_payment_intent_succeeded() {
        let body = r#"{"id":"evt_3MtwBwLkdIwHu7ix28a3tqPa","object":"event","api_version":"2022-11-15","created":1680064028,"data":{"object":{"id":"pi_3MtwBwLkdIwHu7ix28a3tqPa","object":"payment_intent","amount":2000,"currency":"usd","status":"succeeded"}},"livemode":false,"pending_webhooks":1,"request":{"id":"req_9MGzHSHZBq4Qbj","idempotency_key":"a4b6cfbb-4f0b-43e3-a4b1-1d4c7ed1f1a0"},"type":"payment_intent.succeeded"}"#;
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let signature = sign_stripe(&secret, 1_680_064_030, body.as_bytes());
        let pairs = [("Stripe-Signature", signature.as_str())];
        assert_eq!(
            verified(Preset::Stripe, &pairs, body, 1_680_064_031),
            SignatureScheme::StripeV1
        );
        let (fields, status) = map(Preset::Stripe, &pairs, body);
        assert_eq!(
            fields.delivery_id.as_str(),
            "j:evt_3MtwBwLkdIwHu7ix28a3tqPa"
        );
        assert_eq!(fields.group.as_deref(), Some("pi_3MtwBwLkdIwHu7ix28a3tqPa"));
        assert_eq!(fields.event.as_deref(), Some("payment_intent.succeeded"));
        assert_eq!(status, CallbackStatus::Completed);
        for (event, expected) in [
            ("payment_intent.payment_failed", CallbackStatus::Failed),
            ("payment_intent.canceled", CallbackStatus::Failed),
            ("charge.failed", CallbackStatus::Failed),
            ("checkout.session.completed", CallbackStatus::Completed),
            ("payment_intent.created", CallbackStatus::Unknown),
        ] {
            assert_eq!(
                status_of(Preset::Stripe, Some(event), &json!({})),
                expected,
                "{event}"
            );
        }
    }

    /// The seven hook inputs `callback-inbox source hooks` subscribes to, as
    /// Claude Code documents them (common fields plus each event's own).
    fn claude_hooks() -> Vec<(&'static str, Value)> {
        let common = |event: &str| {
            json!({
                "session_id": "abc123",
                "transcript_path": "/Users/me/.claude/projects/my-project/00893aaf-19fa-41d2-8238-13269b9b3ca0.jsonl",
                "cwd": "/Users/me/my-project",
                "permission_mode": "default",
                "hook_event_name": event,
            })
        };
        let with = |event: &str, extra: Value| {
            let mut payload = common(event);
            for (key, value) in extra.as_object().unwrap() {
                payload[key] = value.clone();
            }
            payload
        };
        vec![
            (
                "SessionStart",
                with(
                    "SessionStart",
                    json!({"source": "startup", "model": "claude-sonnet-4-5"}),
                ),
            ),
            (
                "UserPromptSubmit",
                with(
                    "UserPromptSubmit",
                    json!({"prompt": "Write a function to calculate the factorial of a number"}),
                ),
            ),
            (
                "PreToolUse",
                with(
                    "PreToolUse",
                    json!({
                        "tool_name": "Write",
                        "tool_input": {"file_path": "/Users/me/my-project/factorial.py", "content": "def factorial(n): ..."},
                        "tool_use_id": "toolu_01ABC123def456ghi789JKL"
                    }),
                ),
            ),
            (
                "PostToolUse",
                with(
                    "PostToolUse",
                    json!({
                        "tool_name": "Write",
                        "tool_input": {"file_path": "/Users/me/my-project/factorial.py", "content": "def factorial(n): ..."},
                        "tool_response": {"filePath": "/Users/me/my-project/factorial.py", "success": true},
                        "tool_use_id": "toolu_01ABC123def456ghi789JKL"
                    }),
                ),
            ),
            ("Stop", with("Stop", json!({"stop_hook_active": false}))),
            (
                "SessionEnd",
                with("SessionEnd", json!({"reason": "prompt_input_exit"})),
            ),
            (
                "Notification",
                with(
                    "Notification",
                    json!({
                        "message": "Claude needs your permission to use Bash",
                        "notification_type": "permission_prompt"
                    }),
                ),
            ),
        ]
    }

    #[test]
    fn claude_code_hooks_map_to_their_session() {
        let token = "cbi_live_0123456789abcdef0123456789";
        let bearer = format!("Bearer {token}");
        for (event, payload) in claude_hooks() {
            let body = payload.to_string();
            let pairs = [
                ("Authorization", bearer.as_str()),
                ("Idempotency-Key", "evt-2f6c1b"),
            ];
            let scheme = verify_source_signature(
                Preset::ClaudeCode.schemes(),
                Preset::ClaudeCode.default_token_header(),
                &RequestHeaders::new(pairs.to_vec()),
                body.as_bytes(),
                &[WebhookSecret::parse(token).unwrap()],
                0,
                300,
            )
            .unwrap()
            .scheme;
            assert_eq!(scheme, SignatureScheme::Token);
            let (fields, status) = map(Preset::ClaudeCode, &pairs, &body);
            assert_eq!(fields.delivery_id.as_str(), "h:evt-2f6c1b", "{event}");
            assert_eq!(fields.group.as_deref(), Some("abc123"), "{event}");
            assert_eq!(fields.event.as_deref(), Some(event));
            assert_eq!(fields.workflow.as_deref(), Some("/Users/me/my-project"));
            assert_eq!(fields.error, None, "{event}");
            let expected = if event == "SessionEnd" {
                CallbackStatus::Completed
            } else {
                CallbackStatus::InProgress
            };
            assert_eq!(status, expected, "{event}");
            // An HTTP hook sends no Idempotency-Key: the body's hash is the id.
            let (fields, _) = map(
                Preset::ClaudeCode,
                &[("Authorization", bearer.as_str())],
                &body,
            );
            assert!(
                fields.delivery_id.as_str().starts_with("sha256:"),
                "{event}"
            );
        }
    }

    #[test]
    fn a_failed_claude_code_tool_maps_its_error_and_stays_in_progress() {
        let payload = json!({
            "session_id": "abc123", "transcript_path": "/tmp/t.jsonl", "cwd": "/repo",
            "hook_event_name": "PostToolUseFailure", "tool_name": "Bash",
            "tool_input": {"command": "npm test"}, "tool_use_id": "toolu_01",
            "error": "Command exited with non-zero status code 1", "is_interrupt": false
        });
        let (fields, status) = map(Preset::ClaudeCode, &[], &payload.to_string());
        assert_eq!(
            fields.error.as_deref(),
            Some("Command exited with non-zero status code 1")
        );
        assert_eq!(status, CallbackStatus::InProgress);
        assert_eq!(
            status_of(Preset::ClaudeCode, None, &payload),
            CallbackStatus::Unknown
        );
    }

    #[test]
    fn generic_preset_reads_event_or_type_and_the_idempotency_key() {
        let (fields, status) = map(
            Preset::Generic,
            &[("Idempotency-Key", "order-42-paid")],
            r#"{"type":"order.completed","error":null}"#,
        );
        assert_eq!(fields.delivery_id.as_str(), "h:order-42-paid");
        assert_eq!(fields.event.as_deref(), Some("order.completed"));
        assert_eq!(fields.group, None);
        assert_eq!(status, CallbackStatus::Completed);
        let (_, status) = map(Preset::Generic, &[], r#"{"status":"failed"}"#);
        assert_eq!(status, CallbackStatus::Failed);
    }

    #[test]
    fn overrides_apply_on_top_of_a_preset() {
        let overrides = MappingOverrides {
            group_from: Some("json:/repository/full_name+json:/workflow_run/id".into()),
            error_from: Some("json:/workflow_run/conclusion".into()),
            ..MappingOverrides::default()
        };
        let mapping = Preset::Github.mapping().with_overrides(&overrides).unwrap();
        let body = r#"{"workflow_run":{"id":30433642,"name":"Build","conclusion":"failure"},"repository":{"full_name":"octo-org/octo-repo"}}"#;
        let payload: Value = serde_json::from_str(body).unwrap();
        let fields = map_callback(
            &mapping,
            &RequestHeaders::new(vec![
                ("X-GitHub-Delivery", "d-1"),
                ("X-GitHub-Event", "workflow_run"),
            ]),
            &payload,
            body.as_bytes(),
        );
        assert_eq!(fields.group.as_deref(), Some("octo-org/octo-repo:30433642"));
        assert_eq!(fields.error.as_deref(), Some("failure"));
        assert_eq!(fields.delivery_id.as_str(), "h:d-1");
    }
}
