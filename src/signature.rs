//! Webhook signature verification.
//!
//! Two schemes are accepted here: `X-Webhook-Signature` (hex HMAC-SHA256 of the raw
//! body, GitHub style) and Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`, as OpenAI and Replicate send); the schemes only other
//! sources use (GitHub, Stripe, a shared token) live in
//! [`crate::source::scheme`]. Verification runs on the
//! raw bytes before any JSON parsing, compares MACs only through
//! [`Mac::verify_slice`] (constant time), and bounds every header so a hostile
//! request cannot make us do much work.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 tag. Checked before verifying: a verifier that
/// compares a truncated (or empty) tag as a prefix accepts forgeries.
pub(crate) const MAC_LEN: usize = 32;
/// Prefix of Standard Webhooks secrets; the rest is the base64 key.
const WHSEC_PREFIX: &str = "whsec_";
/// Optional prefix of `X-Webhook-Signature` values.
const SHA256_PREFIX: &str = "sha256=";
/// Upper bound for `webhook-signature`: a few entries during rotation are
/// normal, kilobytes of them are an attack.
pub(crate) const MAX_SIGNATURE_HEADER_BYTES: usize = 4 * 1024;
pub(crate) const MAX_SIGNATURE_ENTRIES: usize = 16;
/// Ids are short tokens (`msg_<27 chars>`); anything far longer is not one.
const MAX_WEBHOOK_ID_BYTES: usize = 512;
/// `i64::MAX` has 19 digits.
pub(crate) const MAX_TIMESTAMP_DIGITS: usize = 19;

/// Secrets whose `whsec_` payload may omit base64 padding: they are pasted by
/// hand from dashboards, and leniency here costs nothing.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Shortest secret accepted, in bytes: below it an HMAC key can be guessed.
pub const MIN_SECRET_BYTES: usize = 16;

/// A webhook signing key. Deliberately neither `Serialize` nor a revealing
/// `Debug`, so it cannot end up in a response or a log line.
#[derive(Clone)]
pub struct WebhookSecret {
    bytes: Vec<u8>,
    /// For a `whsec_…` secret: the text itself. Senders of the hex scheme
    /// that were handed the secret verbatim sign with its literal bytes.
    literal: Option<Vec<u8>>,
    /// Where it came from ("LLM_WEBHOOK_SECRET #1"); never the secret.
    label: String,
    /// Its last four characters, for telling secrets apart on screen.
    tail: String,
    /// The text it was configured as, for an admin's explicit "reveal".
    text: String,
}

impl WebhookSecret {
    /// Parses a configured secret: `whsec_<base64>` is decoded (Standard
    /// Webhooks), anything else is used as its UTF-8 bytes (the hex scheme's
    /// senders usually share a plain string). Secrets shorter than
    /// [`MIN_SECRET_BYTES`] are refused.
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(SecretError::Empty);
        }
        let (bytes, literal) = match raw.strip_prefix(WHSEC_PREFIX) {
            Some(encoded) => (
                SECRET_BASE64
                    .decode(encoded)
                    .map_err(|_| SecretError::InvalidBase64)?,
                Some(raw.as_bytes().to_vec()),
            ),
            None => (raw.as_bytes().to_vec(), None),
        };
        if bytes.is_empty() {
            return Err(SecretError::Empty);
        }
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { bytes: bytes.len() });
        }
        let tail_start = raw.char_indices().rev().nth(3).map_or(0, |(at, _)| at);
        Ok(Self {
            bytes,
            literal,
            label: String::new(),
            tail: raw[tail_start..].to_owned(),
            text: raw.to_owned(),
        })
    }

    /// A secret used as its literal text, `whsec_` prefix and all: how
    /// Stripe, GitHub and token senders use theirs. Shorter than
    /// [`MIN_SECRET_BYTES`] is refused.
    pub fn literal(raw: &str) -> Result<Self, SecretError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(SecretError::Empty);
        }
        if raw.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { bytes: raw.len() });
        }
        let tail_start = raw.char_indices().rev().nth(3).map_or(0, |(at, _)| at);
        Ok(Self {
            bytes: raw.as_bytes().to_vec(),
            literal: Some(raw.as_bytes().to_vec()),
            label: String::new(),
            tail: raw[tail_start..].to_owned(),
            text: raw.to_owned(),
        })
    }

    /// A key of raw bytes, any length (tests, benchmarks, the fuzzer).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            literal: None,
            label: String::new(),
            tail: String::new(),
            text: String::new(),
        }
    }

    /// Names where the secret came from, for logs and the settings page.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The secret as the settings page shows it: only its last characters.
    pub fn masked(&self) -> String {
        format!("••••••••{}", self.tail)
    }

    /// The whole secret as configured. Only for an admin who asked to see it.
    pub fn reveal(&self) -> &str {
        &self.text
    }

    /// The key the hex and Standard Webhooks schemes sign with: a `whsec_`
    /// secret's decoded bytes, any other secret's text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The secret's text as configured, never base64-decoded. GitHub, Stripe
    /// (whose `whsec_…` secrets are keys as written) and shared tokens use
    /// these bytes. For [`WebhookSecret::from_bytes`] it is those bytes.
    pub fn literal_bytes(&self) -> &[u8] {
        self.literal.as_deref().unwrap_or(&self.bytes)
    }

    fn mac(&self) -> HmacSha256 {
        mac_for(&self.bytes)
    }

    /// Every key this secret may sign with in the hex scheme.
    fn hex_keys(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.bytes.as_slice()).chain(self.literal.as_deref())
    }
}

pub(crate) fn mac_for(key: &[u8]) -> HmacSha256 {
    // HMAC hashes over-long keys and pads short ones, so every length is valid.
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// Parses a comma-separated list of secrets (several are active while one is
/// rotated out), labelled `LLM_WEBHOOK_SECRET #n`. Empty items are skipped;
/// at least one secret is required. A secret that contains a comma belongs
/// in the secrets file ([`parse_secret_file`]).
pub fn parse_secret_list(raw: &str) -> Result<Vec<WebhookSecret>, SecretError> {
    let secrets = raw
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .enumerate()
        .map(|(n, item)| {
            WebhookSecret::parse(item)
                .map(|secret| secret.with_label(format!("LLM_WEBHOOK_SECRET #{}", n + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if secrets.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(secrets)
}

/// Parses a secrets file: one secret per line, any characters (commas
/// included), surrounding whitespace ignored, blank lines skipped. Labelled
/// `secrets file line n`.
pub fn parse_secret_file(text: &str) -> Result<Vec<WebhookSecret>, SecretError> {
    let secrets = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            WebhookSecret::parse(line)
                .map(|secret| secret.with_label(format!("secrets file line {}", n + 1)))
                .map_err(|err| SecretError::InFileLine {
                    line: n + 1,
                    reason: Box::new(err),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if secrets.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(secrets)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "the webhook secret is empty; set it to a long random string or to the `whsec_...` value the sender shows"
    )]
    Empty,
    #[error(
        "the webhook secret starts with `whsec_` but the rest is not valid base64; copy the whole secret from the sender again"
    )]
    InvalidBase64,
    #[error(
        "a webhook secret of {bytes} bytes is too short to be safe (at least 16); generate one with `openssl rand -hex 32`"
    )]
    TooShort { bytes: usize },
    #[error("line {line} of the secrets file: {reason}")]
    InFileLine {
        line: usize,
        reason: Box<SecretError>,
    },
}

/// The signature-related request headers, borrowed from the request so this
/// module needs no HTTP types. `None` means the header was absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    /// `X-Webhook-Signature`: `<hex>` or `sha256=<hex>` of HMAC-SHA256(raw body).
    pub x_webhook_signature: Option<&'a str>,
    /// Standard Webhooks `webhook-id`.
    pub webhook_id: Option<&'a str>,
    /// Standard Webhooks `webhook-timestamp` (Unix seconds).
    pub webhook_timestamp: Option<&'a str>,
    /// Standard Webhooks `webhook-signature`: `v1,<base64> v1,<base64> ...`.
    pub webhook_signature: Option<&'a str>,
}

impl SignatureHeaders<'_> {
    /// The scheme [`verify_signature`] will apply, or `None` when no signature
    /// header is present. Lets callers record the scheme of a rejected request.
    pub fn scheme(&self) -> Option<SignatureScheme> {
        if self.webhook_id.is_some()
            || self.webhook_timestamp.is_some()
            || self.webhook_signature.is_some()
        {
            Some(SignatureScheme::StandardWebhooks)
        } else if self.x_webhook_signature.is_some() {
            Some(SignatureScheme::HmacSha256Hex)
        } else {
            None
        }
    }
}

/// How a request was signed, as stored with each callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    HmacSha256Hex,
    StandardWebhooks,
    /// `X-Hub-Signature-256: sha256=<hex>` (GitHub).
    GithubSha256,
    /// `Stripe-Signature: t=<unix>,v1=<hex>` (Stripe).
    StripeV1,
    /// A shared token in a header (`Authorization: Bearer <token>` by default).
    Token,
}

impl SignatureScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256Hex => "hmac_sha256_hex",
            Self::StandardWebhooks => "standard_webhooks",
            Self::GithubSha256 => "github_sha256",
            Self::StripeV1 => "stripe_v1",
            Self::Token => "token",
        }
    }

    /// The header that carries the signature in this scheme (lowercase, as
    /// HTTP/2 sends it). For [`SignatureScheme::Token`] this is the default;
    /// a source may name another header.
    pub fn header_name(self) -> &'static str {
        match self {
            Self::HmacSha256Hex => "x-webhook-signature",
            Self::StandardWebhooks => "webhook-signature",
            Self::GithubSha256 => "x-hub-signature-256",
            Self::StripeV1 => "stripe-signature",
            Self::Token => "authorization",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hmac_sha256_hex" => Some(Self::HmacSha256Hex),
            "standard_webhooks" => Some(Self::StandardWebhooks),
            "github_sha256" => Some(Self::GithubSha256),
            "stripe_v1" => Some(Self::StripeV1),
            "token" => Some(Self::Token),
            _ => None,
        }
    }
}

impl fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A successful verification: which scheme, and which configured secret
/// matched (so operators can tell when the old one stops being used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub scheme: SignatureScheme,
    pub secret_index: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "no signature header; sign the raw body with HMAC-SHA256 and send it as X-Webhook-Signature, or send the Standard Webhooks headers"
    )]
    Missing,
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    #[error(
        "the signature does not match any configured secret; check that the sender signs the raw body with the current secret"
    )]
    Mismatch,
    #[error(
        "the signed timestamp (webhook-timestamp, or t= of Stripe-Signature) is {skew_secs} s from the server clock, outside the tolerance; check the sender's clock and send a fresh request"
    )]
    StaleTimestamp {
        /// Server time minus the timestamp: positive when the request is old,
        /// negative when it claims to come from the future.
        skew_secs: i64,
    },
    #[error("no webhook secret is configured; configure one before accepting callbacks")]
    NoSecrets,
}

/// Verifies a webhook request against every configured secret.
///
/// If any Standard Webhooks header is present that scheme is used (all three
/// headers are then required), otherwise `X-Webhook-Signature`. Parsing and
/// the timestamp check happen before any HMAC is computed, so malformed and
/// replayed requests cost almost nothing.
pub fn verify_signature(
    headers: &SignatureHeaders<'_>,
    body: &[u8],
    secrets: &[WebhookSecret],
    now_unix_secs: i64,
    tolerance_secs: u64,
) -> Result<Verified, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecrets);
    }
    match headers.scheme() {
        Some(SignatureScheme::StandardWebhooks) => {
            verify_standard(headers, body, secrets, now_unix_secs, tolerance_secs)
        }
        Some(SignatureScheme::HmacSha256Hex) => {
            let value = headers.x_webhook_signature.unwrap_or_default();
            verify_hex(value, body, secrets)
        }
        // `SignatureHeaders::scheme` never names the other sources' schemes.
        None
        | Some(
            SignatureScheme::GithubSha256 | SignatureScheme::StripeV1 | SignatureScheme::Token,
        ) => Err(SignatureError::Missing),
    }
}

/// Checks everything about the signature headers that does not need the
/// body: their form (lengths, hex, base64, entry count) and, for Standard
/// Webhooks, the timestamp's freshness. A request that fails here cannot
/// be valid whatever its body, so the server answers it without reading
/// (or holding) a byte of the body.
pub fn check_signature_form(
    headers: &SignatureHeaders<'_>,
    now_unix_secs: i64,
    tolerance_secs: u64,
) -> Result<SignatureScheme, SignatureError> {
    match headers.scheme() {
        Some(SignatureScheme::StandardWebhooks) => {
            parse_webhook_id(headers.webhook_id)?;
            let timestamp = parse_timestamp(headers.webhook_timestamp)?;
            parse_standard_signatures(headers.webhook_signature)?;
            check_freshness(timestamp, now_unix_secs, tolerance_secs)?;
            Ok(SignatureScheme::StandardWebhooks)
        }
        Some(SignatureScheme::HmacSha256Hex) => {
            parse_hex_signature(headers.x_webhook_signature.unwrap_or_default())?;
            Ok(SignatureScheme::HmacSha256Hex)
        }
        // `SignatureHeaders::scheme` never names the other sources' schemes.
        None
        | Some(
            SignatureScheme::GithubSha256 | SignatureScheme::StripeV1 | SignatureScheme::Token,
        ) => Err(SignatureError::Missing),
    }
}

fn verify_hex(
    value: &str,
    body: &[u8],
    secrets: &[WebhookSecret],
) -> Result<Verified, SignatureError> {
    let expected = parse_hex_signature(value)?;
    for (secret_index, secret) in secrets.iter().enumerate() {
        for key in secret.hex_keys() {
            let mut mac = mac_for(key);
            mac.update(body);
            if mac.verify_slice(&expected).is_ok() {
                return Ok(Verified {
                    scheme: SignatureScheme::HmacSha256Hex,
                    secret_index,
                });
            }
        }
    }
    Err(SignatureError::Mismatch)
}

fn parse_hex_signature(value: &str) -> Result<[u8; MAC_LEN], SignatureError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(SignatureError::Malformed("X-Webhook-Signature is empty"));
    }
    let hex_digits = match value.get(..SHA256_PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(SHA256_PREFIX) => &value[SHA256_PREFIX.len()..],
        _ => value,
    };
    // Exact length first: this also bounds the work spent on a hostile value.
    if hex_digits.len() != MAC_LEN * 2 {
        return Err(SignatureError::Malformed(
            "X-Webhook-Signature must be 64 hex digits, optionally prefixed by `sha256=`",
        ));
    }
    let mut expected = [0u8; MAC_LEN];
    hex::decode_to_slice(hex_digits, &mut expected).map_err(|_| {
        SignatureError::Malformed("X-Webhook-Signature contains a non-hex character")
    })?;
    Ok(expected)
}

fn verify_standard(
    headers: &SignatureHeaders<'_>,
    body: &[u8],
    secrets: &[WebhookSecret],
    now_unix_secs: i64,
    tolerance_secs: u64,
) -> Result<Verified, SignatureError> {
    let id = parse_webhook_id(headers.webhook_id)?;
    let timestamp = parse_timestamp(headers.webhook_timestamp)?;
    let signatures = parse_standard_signatures(headers.webhook_signature)?;

    // Replay protection before any HMAC: a stale request is rejected for free,
    // whatever its signature.
    check_freshness(timestamp, now_unix_secs, tolerance_secs)?;

    for (secret_index, secret) in secrets.iter().enumerate() {
        let mac = standard_mac(secret, id, timestamp, body);
        if signatures
            .iter()
            .any(|signature| mac.clone().verify_slice(signature).is_ok())
        {
            return Ok(Verified {
                scheme: SignatureScheme::StandardWebhooks,
                secret_index,
            });
        }
    }
    Err(SignatureError::Mismatch)
}

/// Rejects a signed timestamp more than `tolerance_secs` away from now, in
/// either direction (a replay, or a sender whose clock is off).
pub(crate) fn check_freshness(
    timestamp: i64,
    now_unix_secs: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    // i128 so that no pair of i64 values can overflow the difference.
    let skew = i128::from(now_unix_secs) - i128::from(timestamp);
    if skew.unsigned_abs() > u128::from(tolerance_secs) {
        let skew_secs = i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX });
        return Err(SignatureError::StaleTimestamp { skew_secs });
    }
    Ok(())
}

fn parse_webhook_id(value: Option<&str>) -> Result<&str, SignatureError> {
    let id = value
        .ok_or(SignatureError::Malformed(
            "webhook-signature requires a webhook-id header",
        ))?
        .trim();
    if id.is_empty() {
        return Err(SignatureError::Malformed("webhook-id is empty"));
    }
    if id.len() > MAX_WEBHOOK_ID_BYTES {
        return Err(SignatureError::Malformed("webhook-id is too long"));
    }
    Ok(id)
}

fn parse_timestamp(value: Option<&str>) -> Result<i64, SignatureError> {
    const NOT_UNIX_SECONDS: SignatureError =
        SignatureError::Malformed("webhook-timestamp must be a Unix time in whole seconds");
    let raw = value
        .ok_or(SignatureError::Malformed(
            "webhook-signature requires a webhook-timestamp header",
        ))?
        .trim();
    // Digits only: `str::parse` would also take `+`/`-`, which no sender emits.
    if raw.is_empty()
        || raw.len() > MAX_TIMESTAMP_DIGITS
        || !raw.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(NOT_UNIX_SECONDS);
    }
    raw.parse().map_err(|_| NOT_UNIX_SECONDS)
}

fn parse_standard_signatures(value: Option<&str>) -> Result<Vec<[u8; MAC_LEN]>, SignatureError> {
    let raw = value.ok_or(SignatureError::Malformed(
        "webhook-id and webhook-timestamp require a webhook-signature header",
    ))?;
    if raw.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(SignatureError::Malformed("webhook-signature is too long"));
    }
    let mut signatures = Vec::new();
    for (position, entry) in raw.split_ascii_whitespace().enumerate() {
        if position >= MAX_SIGNATURE_ENTRIES {
            return Err(SignatureError::Malformed(
                "webhook-signature has more than 16 entries",
            ));
        }
        let (version, encoded) = entry.split_once(',').ok_or(SignatureError::Malformed(
            "webhook-signature entries must look like `v1,<base64>`",
        ))?;
        if version != "v1" {
            // Other versions (e.g. asymmetric `v1a`) are not ours to check.
            continue;
        }
        // Strict base64 and an exact decoded length: an empty or short `v1,`
        // must never be compared as a prefix of the real MAC.
        let decoded = STANDARD.decode(encoded).map_err(|_| {
            SignatureError::Malformed("webhook-signature v1 entry is not valid base64")
        })?;
        let signature: [u8; MAC_LEN] = decoded.try_into().map_err(|_| {
            SignatureError::Malformed("webhook-signature v1 entry is not a 32-byte HMAC-SHA256")
        })?;
        signatures.push(signature);
    }
    if signatures.is_empty() {
        return Err(SignatureError::Malformed(
            "webhook-signature has no `v1,<base64>` entry",
        ));
    }
    Ok(signatures)
}

/// HMAC over `id.timestamp.body`, fed piecewise so the body is not copied.
fn standard_mac(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = secret.mac();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Signs a body for `X-Webhook-Signature`: `sha256=<lowercase hex>`.
pub fn sign_hex(secret: &WebhookSecret, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(body);
    format!(
        "{SHA256_PREFIX}{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Signs a request for `webhook-signature`: `v1,<base64>`.
pub fn sign_standard(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = standard_mac(secret, id, timestamp, body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    const GITHUB_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    const SW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SW_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SW_TIMESTAMP: i64 = 1_649_367_553;
    const SW_TIMESTAMP_STR: &str = "1649367553";
    const SW_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SW_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    const TOLERANCE: u64 = 300;

    fn secret(raw: &str) -> WebhookSecret {
        WebhookSecret::parse(raw).unwrap()
    }

    #[test]
    fn signature_form_is_judged_without_the_body() {
        let good_hex = hex_headers(GITHUB_SIGNATURE);
        assert_eq!(
            check_signature_form(&good_hex, SW_TIMESTAMP, TOLERANCE),
            Ok(SignatureScheme::HmacSha256Hex)
        );
        for bad in [
            "sha256=abc",
            "",
            "zz".repeat(32).as_str(),
            &"a".repeat(4096),
        ] {
            assert!(
                check_signature_form(&hex_headers(bad), SW_TIMESTAMP, TOLERANCE).is_err(),
                "{bad:?}"
            );
        }
        let standard = SignatureHeaders {
            webhook_id: Some(SW_ID),
            webhook_timestamp: Some(SW_TIMESTAMP_STR),
            webhook_signature: Some(SW_SIGNATURE),
            ..SignatureHeaders::default()
        };
        assert_eq!(
            check_signature_form(&standard, SW_TIMESTAMP, TOLERANCE),
            Ok(SignatureScheme::StandardWebhooks)
        );
        // Stale, short or missing parts fail before any body is read.
        assert!(matches!(
            check_signature_form(&standard, SW_TIMESTAMP + 301, TOLERANCE),
            Err(SignatureError::StaleTimestamp { .. })
        ));
        let short = SignatureHeaders {
            webhook_signature: Some("v1,AAAA"),
            ..standard
        };
        assert!(check_signature_form(&short, SW_TIMESTAMP, TOLERANCE).is_err());
        assert_eq!(
            check_signature_form(&SignatureHeaders::default(), SW_TIMESTAMP, TOLERANCE),
            Err(SignatureError::Missing)
        );
    }

    fn hex_headers(value: &str) -> SignatureHeaders<'_> {
        SignatureHeaders {
            x_webhook_signature: Some(value),
            ..SignatureHeaders::default()
        }
    }

    fn standard_headers<'a>(
        id: &'a str,
        timestamp: &'a str,
        signature: &'a str,
    ) -> SignatureHeaders<'a> {
        SignatureHeaders {
            webhook_id: Some(id),
            webhook_timestamp: Some(timestamp),
            webhook_signature: Some(signature),
            ..SignatureHeaders::default()
        }
    }

    fn verify_github(value: &str) -> Result<Verified, SignatureError> {
        verify_signature(
            &hex_headers(value),
            GITHUB_BODY,
            &[secret(GITHUB_SECRET)],
            0,
            TOLERANCE,
        )
    }

    fn verify_sw(signature: &str, now: i64) -> Result<Verified, SignatureError> {
        verify_signature(
            &standard_headers(SW_ID, SW_TIMESTAMP_STR, signature),
            SW_BODY,
            &[secret(SW_SECRET)],
            now,
            TOLERANCE,
        )
    }

    const HEX_OK: Result<Verified, SignatureError> = Ok(Verified {
        scheme: SignatureScheme::HmacSha256Hex,
        secret_index: 0,
    });
    const SW_OK: Result<Verified, SignatureError> = Ok(Verified {
        scheme: SignatureScheme::StandardWebhooks,
        secret_index: 0,
    });

    fn is_malformed<T>(result: &Result<T, SignatureError>) -> bool {
        matches!(result, Err(SignatureError::Malformed(_)))
    }

    // --- published vectors -------------------------------------------------

    #[test]
    fn github_vector_signs_as_published() {
        assert_eq!(
            sign_hex(&secret(GITHUB_SECRET), GITHUB_BODY),
            GITHUB_SIGNATURE
        );
    }

    #[test]
    fn github_vector_verifies_with_prefix() {
        assert_eq!(verify_github(GITHUB_SIGNATURE), HEX_OK);
    }

    #[test]
    fn github_vector_verifies_without_prefix() {
        assert_eq!(verify_github(&GITHUB_SIGNATURE["sha256=".len()..]), HEX_OK);
    }

    #[test]
    fn github_vector_verifies_in_uppercase_hex() {
        let upper = format!(
            "sha256={}",
            GITHUB_SIGNATURE["sha256=".len()..].to_ascii_uppercase()
        );
        assert_eq!(verify_github(&upper), HEX_OK);
        assert_eq!(verify_github(&upper["sha256=".len()..]), HEX_OK);
    }

    #[test]
    fn standard_webhooks_vector_signs_as_published() {
        assert_eq!(
            sign_standard(&secret(SW_SECRET), SW_ID, SW_TIMESTAMP, SW_BODY),
            SW_SIGNATURE
        );
    }

    #[test]
    fn standard_webhooks_vector_verifies() {
        assert_eq!(verify_sw(SW_SIGNATURE, SW_TIMESTAMP), SW_OK);
    }

    #[test]
    fn standard_webhooks_matches_last_of_several_entries() {
        let other = sign_standard(
            &secret("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            SW_ID,
            SW_TIMESTAMP,
            SW_BODY,
        );
        let header = format!("{other} v1,{} {SW_SIGNATURE}", STANDARD.encode([7u8; 32]));
        assert_eq!(verify_sw(&header, SW_TIMESTAMP), SW_OK);
    }

    #[test]
    fn standard_webhooks_ignores_other_versions() {
        let header = format!("v2,not-even-base64!! {SW_SIGNATURE} v1a,xyz");
        assert_eq!(verify_sw(&header, SW_TIMESTAMP), SW_OK);
    }

    #[test]
    fn only_unknown_versions_is_malformed() {
        assert!(is_malformed(&verify_sw(
            "v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            SW_TIMESTAMP
        )));
    }

    // --- bad inputs ----------------------------------------------------------

    #[test]
    fn empty_v1_signature_is_rejected() {
        assert!(is_malformed(&verify_sw("v1,", SW_TIMESTAMP)));
        assert!(is_malformed(&verify_sw(
            &format!("v1, {SW_SIGNATURE}"),
            SW_TIMESTAMP
        )));
    }

    #[test]
    fn short_v1_signature_is_rejected() {
        // A valid prefix of the real MAC, still refused rather than compared.
        let real = STANDARD.decode(&SW_SIGNATURE[3..]).unwrap();
        let short = format!("v1,{}", STANDARD.encode(&real[..16]));
        assert!(is_malformed(&verify_sw(&short, SW_TIMESTAMP)));
        assert!(is_malformed(&verify_sw("v1,AAAA", SW_TIMESTAMP)));
    }

    #[test]
    fn invalid_base64_signature_is_rejected() {
        assert!(is_malformed(&verify_sw("v1,@@@@", SW_TIMESTAMP)));
        assert!(is_malformed(&verify_sw("v1", SW_TIMESTAMP)));
    }

    #[test]
    fn truncated_hex_is_rejected() {
        assert!(is_malformed(&verify_github(
            &GITHUB_SIGNATURE[..GITHUB_SIGNATURE.len() - 1]
        )));
        assert!(is_malformed(&verify_github("sha256=")));
        assert!(is_malformed(&verify_github("sha256=7571")));
    }

    #[test]
    fn non_hex_signature_is_rejected() {
        let bad = GITHUB_SIGNATURE.replace('e', "g");
        assert!(is_malformed(&verify_github(&bad)));
    }

    #[test]
    fn header_with_only_spaces_is_rejected() {
        assert!(is_malformed(&verify_github("   ")));
        assert!(is_malformed(&verify_sw("   ", SW_TIMESTAMP)));
    }

    #[test]
    fn no_signature_header_is_missing() {
        let result = verify_signature(
            &SignatureHeaders::default(),
            GITHUB_BODY,
            &[secret(GITHUB_SECRET)],
            0,
            TOLERANCE,
        );
        assert_eq!(result, Err(SignatureError::Missing));
    }

    #[test]
    fn standard_webhooks_without_id_or_timestamp_is_malformed() {
        let secrets = [secret(SW_SECRET)];
        let without_id = SignatureHeaders {
            webhook_id: None,
            ..standard_headers(SW_ID, SW_TIMESTAMP_STR, SW_SIGNATURE)
        };
        let without_timestamp = SignatureHeaders {
            webhook_timestamp: None,
            ..standard_headers(SW_ID, SW_TIMESTAMP_STR, SW_SIGNATURE)
        };
        let id_only = SignatureHeaders {
            webhook_id: Some(SW_ID),
            // A hex signature does not rescue an incomplete Standard Webhooks set.
            x_webhook_signature: Some(GITHUB_SIGNATURE),
            ..SignatureHeaders::default()
        };
        for headers in [without_id, without_timestamp, id_only] {
            let result = verify_signature(&headers, SW_BODY, &secrets, SW_TIMESTAMP, TOLERANCE);
            assert!(is_malformed(&result), "{headers:?} gave {result:?}");
        }
    }

    #[test]
    fn stale_timestamp_is_rejected_in_both_directions() {
        let past = SW_TIMESTAMP + TOLERANCE as i64 + 1;
        let future = SW_TIMESTAMP - TOLERANCE as i64 - 1;
        assert_eq!(
            verify_sw(SW_SIGNATURE, past),
            Err(SignatureError::StaleTimestamp { skew_secs: 301 })
        );
        assert_eq!(
            verify_sw(SW_SIGNATURE, future),
            Err(SignatureError::StaleTimestamp { skew_secs: -301 })
        );
    }

    #[test]
    fn stale_timestamp_is_decided_before_the_mac() {
        let wrong = format!("v1,{}", STANDARD.encode([0u8; 32]));
        let past = SW_TIMESTAMP + TOLERANCE as i64 + 1;
        let future = SW_TIMESTAMP - TOLERANCE as i64 - 1;
        assert!(matches!(
            verify_sw(&wrong, past),
            Err(SignatureError::StaleTimestamp { .. })
        ));
        assert!(matches!(
            verify_sw(&wrong, future),
            Err(SignatureError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn timestamp_exactly_at_tolerance_is_accepted() {
        assert_eq!(
            verify_sw(SW_SIGNATURE, SW_TIMESTAMP + TOLERANCE as i64),
            SW_OK
        );
        assert_eq!(
            verify_sw(SW_SIGNATURE, SW_TIMESTAMP - TOLERANCE as i64),
            SW_OK
        );
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let secrets = [secret(SW_SECRET)];
        let max = i64::MAX.to_string();
        let headers = standard_headers(SW_ID, &max, SW_SIGNATURE);
        for now in [i64::MIN, -1, 0, i64::MAX] {
            for tolerance in [0, TOLERANCE, u64::MAX] {
                let result = verify_signature(&headers, SW_BODY, &secrets, now, tolerance);
                assert!(
                    matches!(
                        result,
                        Err(SignatureError::StaleTimestamp { .. } | SignatureError::Mismatch)
                    ),
                    "now={now} tolerance={tolerance}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn non_numeric_or_huge_timestamp_is_malformed() {
        let secrets = [secret(SW_SECRET)];
        for timestamp in [
            "",
            "abc",
            "1649367553.5",
            "-1649367553",
            "+1649367553",
            "1e9",
            "9223372036854775808",
            "99999999999999999999999999",
        ] {
            let headers = standard_headers(SW_ID, timestamp, SW_SIGNATURE);
            let result = verify_signature(&headers, SW_BODY, &secrets, SW_TIMESTAMP, TOLERANCE);
            assert!(is_malformed(&result), "{timestamp:?} gave {result:?}");
        }
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let headers = hex_headers(GITHUB_SIGNATURE);
        let result = verify_signature(
            &headers,
            GITHUB_BODY,
            &[secret("not it, a wrong secret")],
            0,
            TOLERANCE,
        );
        assert_eq!(result, Err(SignatureError::Mismatch));
        let result = verify_signature(
            &standard_headers(SW_ID, SW_TIMESTAMP_STR, SW_SIGNATURE),
            SW_BODY,
            &[secret("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
            SW_TIMESTAMP,
            TOLERANCE,
        );
        assert_eq!(result, Err(SignatureError::Mismatch));
    }

    #[test]
    fn rotated_secret_matches_with_its_index() {
        let secrets = [secret("the new one, rotated in"), secret(GITHUB_SECRET)];
        let result = verify_signature(
            &hex_headers(GITHUB_SIGNATURE),
            GITHUB_BODY,
            &secrets,
            0,
            TOLERANCE,
        );
        assert_eq!(
            result,
            Ok(Verified {
                scheme: SignatureScheme::HmacSha256Hex,
                secret_index: 1
            })
        );
        let secrets = [
            secret("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            secret(SW_SECRET),
        ];
        let result = verify_signature(
            &standard_headers(SW_ID, SW_TIMESTAMP_STR, SW_SIGNATURE),
            SW_BODY,
            &secrets,
            SW_TIMESTAMP,
            TOLERANCE,
        );
        assert_eq!(
            result,
            Ok(Verified {
                scheme: SignatureScheme::StandardWebhooks,
                secret_index: 1
            })
        );
    }

    #[test]
    fn no_secrets_is_reported() {
        let result = verify_signature(&hex_headers(GITHUB_SIGNATURE), GITHUB_BODY, &[], 0, 300);
        assert_eq!(result, Err(SignatureError::NoSecrets));
    }

    #[test]
    fn oversized_signature_headers_are_malformed() {
        let seventeen = vec![SW_SIGNATURE; 17].join(" ");
        assert!(is_malformed(&verify_sw(&seventeen, SW_TIMESTAMP)));
        let sixteen = vec![SW_SIGNATURE; 16].join(" ");
        assert_eq!(verify_sw(&sixteen, SW_TIMESTAMP), SW_OK);
        let long = format!("{SW_SIGNATURE}{}", " ".repeat(MAX_SIGNATURE_HEADER_BYTES));
        assert!(is_malformed(&verify_sw(&long, SW_TIMESTAMP)));
        let long_id = "m".repeat(MAX_WEBHOOK_ID_BYTES + 1);
        let headers = standard_headers(&long_id, SW_TIMESTAMP_STR, SW_SIGNATURE);
        let result = verify_signature(&headers, SW_BODY, &[secret(SW_SECRET)], SW_TIMESTAMP, 300);
        assert!(is_malformed(&result));
    }

    #[test]
    fn scheme_follows_the_headers_present() {
        assert_eq!(SignatureHeaders::default().scheme(), None);
        assert_eq!(
            hex_headers("x").scheme(),
            Some(SignatureScheme::HmacSha256Hex)
        );
        let timestamp_only = SignatureHeaders {
            webhook_timestamp: Some("1"),
            x_webhook_signature: Some("x"),
            ..SignatureHeaders::default()
        };
        assert_eq!(
            timestamp_only.scheme(),
            Some(SignatureScheme::StandardWebhooks)
        );
    }

    // --- secrets and schemes -------------------------------------------------

    #[test]
    fn whsec_secret_is_base64_decoded() {
        assert_eq!(
            secret("whsec_aGVsbG8gd29ybGQsIGhlbGxvIQ==").as_bytes(),
            b"hello world, hello!"
        );
        assert_eq!(
            secret("  whsec_aGVsbG8gd29ybGQsIGhlbGxvIQ  ").as_bytes(),
            b"hello world, hello!"
        );
        assert_eq!(
            secret(" plain secret, long ").as_bytes(),
            b"plain secret, long"
        );
    }

    #[test]
    fn unusable_secrets_are_rejected() {
        assert_eq!(WebhookSecret::parse("").unwrap_err(), SecretError::Empty);
        assert_eq!(WebhookSecret::parse("   ").unwrap_err(), SecretError::Empty);
        assert_eq!(
            WebhookSecret::parse("whsec_").unwrap_err(),
            SecretError::Empty
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!").unwrap_err(),
            SecretError::InvalidBase64
        );
        assert_eq!(
            WebhookSecret::parse("a").unwrap_err(),
            SecretError::TooShort { bytes: 1 }
        );
        assert_eq!(
            WebhookSecret::parse("whsec_AA==").unwrap_err(),
            SecretError::TooShort { bytes: 1 }
        );
        assert_eq!(
            WebhookSecret::parse("0123456789abcde").unwrap_err(),
            SecretError::TooShort { bytes: 15 }
        );
        assert!(WebhookSecret::parse("0123456789abcdef").is_ok());
        let message = WebhookSecret::parse("a").unwrap_err().to_string();
        assert!(message.contains("openssl rand -hex 32"), "{message}");
    }

    #[test]
    fn a_whsec_secret_shared_verbatim_verifies_the_hex_scheme_by_its_literal_bytes() {
        // A sender handed `whsec_…` as a plain string signs with its bytes.
        let verbatim = WebhookSecret::from_bytes(SW_SECRET.as_bytes().to_vec());
        let signature = sign_hex(&verbatim, GITHUB_BODY);
        let result = verify_signature(
            &hex_headers(&signature),
            GITHUB_BODY,
            &[secret(SW_SECRET)],
            0,
            TOLERANCE,
        );
        assert_eq!(result, HEX_OK);
        // The decoded key still works for the hex scheme too.
        let decoded = sign_hex(&secret(SW_SECRET), GITHUB_BODY);
        let result = verify_signature(
            &hex_headers(&decoded),
            GITHUB_BODY,
            &[secret(SW_SECRET)],
            0,
            TOLERANCE,
        );
        assert_eq!(result, HEX_OK);
    }

    #[test]
    fn the_literal_bytes_do_not_verify_standard_webhooks() {
        let verbatim = WebhookSecret::from_bytes(SW_SECRET.as_bytes().to_vec());
        let signature = sign_standard(&verbatim, SW_ID, SW_TIMESTAMP, SW_BODY);
        assert_eq!(
            verify_sw(&signature, SW_TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_secrets_file_holds_any_characters_one_per_line() {
        let secrets =
            parse_secret_file("first,with,commas and spaces\n\n  second-secret-value-here  \n")
                .unwrap();
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[0].as_bytes(), b"first,with,commas and spaces");
        assert_eq!(secrets[0].label(), "secrets file line 1");
        assert_eq!(secrets[1].as_bytes(), b"second-secret-value-here");
        assert_eq!(secrets[1].label(), "secrets file line 3");
        assert_eq!(parse_secret_file("\n \n").unwrap_err(), SecretError::Empty);
        let err = parse_secret_file("long-enough-secret-1\nshort").unwrap_err();
        assert_eq!(
            err.to_string().split(':').next(),
            Some("line 2 of the secrets file")
        );
    }

    #[test]
    fn a_masked_secret_shows_only_its_last_characters() {
        let shown = secret("test-secret-0123456789abcdef").masked();
        assert!(
            shown.ends_with("cdef") && !shown.contains("test-secret"),
            "{shown}"
        );
        assert_eq!(
            parse_secret_list("first-long-secret-1,second-long-secret")
                .unwrap()
                .iter()
                .map(WebhookSecret::label)
                .collect::<Vec<_>>(),
            ["LLM_WEBHOOK_SECRET #1", "LLM_WEBHOOK_SECRET #2"]
        );
    }

    #[test]
    fn secret_list_skips_empty_items_and_needs_one() {
        let secrets =
            parse_secret_list(" first-secret-long, ,whsec_aGVsbG8gd29ybGQsIGhlbGxvIQ==,").unwrap();
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[1].as_bytes(), b"hello world, hello!");
        assert_eq!(parse_secret_list(" , ,").unwrap_err(), SecretError::Empty);
        assert_eq!(
            parse_secret_list("ok-long-enough-secret,whsec_!!").unwrap_err(),
            SecretError::InvalidBase64
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        let shown = format!("{:?}", secret("hunter2-very-secret"));
        assert_eq!(shown, "WebhookSecret(..)");
        let shown = format!(
            "{:?}",
            parse_secret_list("hunter2-long-secret,hunter3-long-secret").unwrap()
        );
        assert!(!shown.contains("hunter"));
    }

    #[test]
    fn scheme_names_round_trip() {
        for scheme in [
            SignatureScheme::HmacSha256Hex,
            SignatureScheme::StandardWebhooks,
            SignatureScheme::GithubSha256,
            SignatureScheme::StripeV1,
            SignatureScheme::Token,
        ] {
            assert_eq!(SignatureScheme::parse(scheme.as_str()), Some(scheme));
            assert_eq!(
                serde_json::to_string(&scheme).unwrap(),
                format!("\"{}\"", scheme.as_str())
            );
        }
        assert_eq!(
            SignatureScheme::HmacSha256Hex.header_name(),
            "x-webhook-signature"
        );
        assert_eq!(
            SignatureScheme::StandardWebhooks.header_name(),
            "webhook-signature"
        );
        assert_eq!(
            SignatureScheme::GithubSha256.header_name(),
            "x-hub-signature-256"
        );
        assert_eq!(SignatureScheme::StripeV1.header_name(), "stripe-signature");
        assert_eq!(SignatureScheme::Token.header_name(), "authorization");
        assert_eq!(SignatureScheme::parse("HMAC"), None);
    }

    #[test]
    fn literal_bytes_are_the_configured_text() {
        assert_eq!(secret(SW_SECRET).literal_bytes(), SW_SECRET.as_bytes());
        assert_eq!(
            secret(" plain secret, long ").literal_bytes(),
            b"plain secret, long"
        );
        assert_eq!(
            WebhookSecret::from_bytes(b"raw".to_vec()).literal_bytes(),
            b"raw"
        );
    }

    // --- properties ----------------------------------------------------------

    fn flip_bit(bytes: &mut [u8], index: prop::sample::Index, bit: u8) {
        let i = index.index(bytes.len());
        bytes[i] ^= 1 << bit;
    }

    fn verify_hex_with(
        secret: &WebhookSecret,
        value: &str,
        body: &[u8],
    ) -> Result<Verified, SignatureError> {
        verify_signature(
            &hex_headers(value),
            body,
            std::slice::from_ref(secret),
            0,
            0,
        )
    }

    fn verify_standard_with(
        secret: &WebhookSecret,
        id: &str,
        timestamp: i64,
        value: &str,
        body: &[u8],
    ) -> Result<Verified, SignatureError> {
        let timestamp_text = timestamp.to_string();
        verify_signature(
            &standard_headers(id, &timestamp_text, value),
            body,
            std::slice::from_ref(secret),
            timestamp,
            0,
        )
    }

    fn arb_secret() -> impl Strategy<Value = WebhookSecret> {
        prop::collection::vec(any::<u8>(), 1..80).prop_map(WebhookSecret::from_bytes)
    }

    fn arb_body() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..300)
    }

    fn arb_id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.-]{1,40}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn hex_signature_round_trips(secret in arb_secret(), body in arb_body()) {
            prop_assert_eq!(verify_hex_with(&secret, &sign_hex(&secret, &body), &body), HEX_OK);
        }

        #[test]
        fn standard_signature_round_trips(
            secret in arb_secret(),
            id in arb_id(),
            timestamp in 0..=i64::MAX,
            body in arb_body(),
        ) {
            let signature = sign_standard(&secret, &id, timestamp, &body);
            prop_assert_eq!(verify_standard_with(&secret, &id, timestamp, &signature, &body), SW_OK);
        }

        #[test]
        fn flipped_body_bit_fails(
            secret in arb_secret(),
            id in arb_id(),
            timestamp in 0..=i64::MAX,
            mut body in prop::collection::vec(any::<u8>(), 1..300),
            index in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let hex = sign_hex(&secret, &body);
            let standard = sign_standard(&secret, &id, timestamp, &body);
            flip_bit(&mut body, index, bit);
            prop_assert_eq!(verify_hex_with(&secret, &hex, &body), Err(SignatureError::Mismatch));
            prop_assert_eq!(
                verify_standard_with(&secret, &id, timestamp, &standard, &body),
                Err(SignatureError::Mismatch)
            );
        }

        #[test]
        fn flipped_signature_bit_fails(
            secret in arb_secret(),
            id in arb_id(),
            timestamp in 0..=i64::MAX,
            body in arb_body(),
            index in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut mac = hex::decode(&sign_hex(&secret, &body)[SHA256_PREFIX.len()..]).unwrap();
            flip_bit(&mut mac, index, bit);
            let hex = hex::encode(&mac);
            prop_assert_eq!(verify_hex_with(&secret, &hex, &body), Err(SignatureError::Mismatch));

            let mut mac = STANDARD.decode(&sign_standard(&secret, &id, timestamp, &body)[3..]).unwrap();
            flip_bit(&mut mac, index, bit);
            let standard = format!("v1,{}", STANDARD.encode(&mac));
            prop_assert_eq!(
                verify_standard_with(&secret, &id, timestamp, &standard, &body),
                Err(SignatureError::Mismatch)
            );
        }

        #[test]
        fn truncated_signature_fails(
            secret in arb_secret(),
            id in arb_id(),
            timestamp in 0..=i64::MAX,
            body in arb_body(),
            cut in any::<prop::sample::Index>(),
        ) {
            let hex = sign_hex(&secret, &body);
            let truncated = &hex[..cut.index(hex.len())];
            prop_assert!(verify_hex_with(&secret, truncated, &body).is_err(), "{}", truncated);

            let standard = sign_standard(&secret, &id, timestamp, &body);
            let truncated = &standard[..cut.index(standard.len())];
            prop_assert!(
                verify_standard_with(&secret, &id, timestamp, truncated, &body).is_err(),
                "{}", truncated
            );
        }

        #[test]
        fn duplicated_hex_header_fails(secret in arb_secret(), body in arb_body()) {
            let signature = sign_hex(&secret, &body);
            for doubled in [
                format!("{signature}{signature}"),
                format!("{signature}, {signature}"),
                signature[SHA256_PREFIX.len()..].repeat(2),
            ] {
                prop_assert!(is_malformed(&verify_hex_with(&secret, &doubled, &body)), "{}", doubled);
            }
        }

        #[test]
        fn arbitrary_headers_never_panic(
            x_webhook_signature in prop::option::of(any::<String>()),
            webhook_id in prop::option::of(any::<String>()),
            webhook_timestamp in prop::option::of(prop_oneof![any::<String>(), "[0-9]{0,25}"]),
            webhook_signature in prop::option::of(prop_oneof![
                any::<String>(),
                "(v1,[A-Za-z0-9+/=]{0,50} ?){0,20}",
            ]),
            body in arb_body(),
            now in any::<i64>(),
            tolerance in any::<u64>(),
        ) {
            let headers = SignatureHeaders {
                x_webhook_signature: x_webhook_signature.as_deref(),
                webhook_id: webhook_id.as_deref(),
                webhook_timestamp: webhook_timestamp.as_deref(),
                webhook_signature: webhook_signature.as_deref(),
            };
            let secrets = [WebhookSecret::from_bytes(b"k".to_vec())];
            let _ = verify_signature(&headers, &body, &secrets, now, tolerance);
        }
    }
}
