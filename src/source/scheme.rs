//! How a source's requests prove who sent them.
//!
//! A source accepts one or more schemes; a request is judged by the first of
//! them whose header it carries. `hex` and `standard` are the original
//! schemes ([`crate::signature`]); `github`, `stripe` and `token` follow
//! those providers' rules. Every comparison is constant time, every header
//! is bounded before it is parsed, and everything that needs no body is
//! checked by [`check_source_form`] so a hopeless request is answered before
//! its body is read.

use std::fmt;
use std::str::FromStr;

use hmac::Mac as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::headers::RequestHeaders;
use crate::signature::{
    MAC_LEN, MAX_SIGNATURE_ENTRIES, MAX_SIGNATURE_HEADER_BYTES, MAX_TIMESTAMP_DIGITS, SecretError,
    SignatureError, SignatureHeaders, SignatureScheme, Verified, WebhookSecret, check_freshness,
    check_signature_form, mac_for, verify_signature,
};

/// The header a `token` source reads when it names none.
pub const DEFAULT_TOKEN_HEADER: &str = "Authorization";

const GITHUB_HEADER: &str = "x-hub-signature-256";
const STRIPE_HEADER: &str = "stripe-signature";
const SHA256_PREFIX: &str = "sha256=";

/// A signature scheme a source may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceScheme {
    /// `X-Webhook-Signature: [sha256=]<hex>`.
    Hex,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Standard,
    /// `X-Hub-Signature-256: sha256=<hex>`.
    Github,
    /// `Stripe-Signature: t=<unix>,v1=<hex>`.
    Stripe,
    /// A shared token in a header.
    Token,
}

impl SourceScheme {
    pub const ALL: [Self; 5] = [
        Self::Hex,
        Self::Standard,
        Self::Github,
        Self::Stripe,
        Self::Token,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hex => "hex",
            Self::Standard => "standard",
            Self::Github => "github",
            Self::Stripe => "stripe",
            Self::Token => "token",
        }
    }

    /// `hex`, `standard`, `github`, `stripe` or `token` (ASCII case ignored).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|scheme| scheme.as_str().eq_ignore_ascii_case(s))
    }

    /// Parses a comma-separated list (`hex,standard`), as stored and as
    /// typed in the CLI. Blank items are skipped and repeats dropped; at
    /// least one scheme is required.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, SourceSchemeError> {
        let mut schemes = Vec::new();
        for item in raw
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let scheme = Self::parse(item).ok_or_else(|| SourceSchemeError::Unknown {
                name: item.chars().take(40).collect(),
            })?;
            if !schemes.contains(&scheme) {
                schemes.push(scheme);
            }
        }
        if schemes.is_empty() {
            return Err(SourceSchemeError::Empty);
        }
        Ok(schemes)
    }

    /// The list as [`SourceScheme::parse_list`] reads it: `hex,standard`.
    pub fn format_list(schemes: &[Self]) -> String {
        schemes
            .iter()
            .map(|scheme| scheme.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The scheme a verified request is recorded with.
    pub fn signature_scheme(self) -> SignatureScheme {
        match self {
            Self::Hex => SignatureScheme::HmacSha256Hex,
            Self::Standard => SignatureScheme::StandardWebhooks,
            Self::Github => SignatureScheme::GithubSha256,
            Self::Stripe => SignatureScheme::StripeV1,
            Self::Token => SignatureScheme::Token,
        }
    }

    /// Whether the request carries this scheme's header. Any one of the
    /// three Standard Webhooks headers counts, as in [`SignatureHeaders::scheme`],
    /// so a request missing the other two is reported as malformed rather
    /// than unsigned.
    fn is_present(self, token_header: &str, headers: &RequestHeaders<'_>) -> bool {
        match self {
            Self::Hex => headers.contains("x-webhook-signature"),
            Self::Standard => ["webhook-id", "webhook-timestamp", "webhook-signature"]
                .iter()
                .any(|name| headers.contains(name)),
            Self::Github => headers.contains(GITHUB_HEADER),
            Self::Stripe => headers.contains(STRIPE_HEADER),
            Self::Token => headers.contains(token_header),
        }
    }
}

impl fmt::Display for SourceScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceScheme {
    type Err = SourceSchemeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| SourceSchemeError::Unknown {
            name: s.trim().chars().take(40).collect(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceSchemeError {
    #[error("`{name}` is not a signature scheme; use hex, standard, github, stripe or token")]
    Unknown { name: String },
    #[error(
        "no signature scheme given; list one or more of hex, standard, github, stripe and token, separated by commas"
    )]
    Empty,
}

/// The header a `token` source reads: its own, or [`DEFAULT_TOKEN_HEADER`].
/// A source's secret as its schemes read it: decoded from `whsec_…` base64
/// when the source verifies Standard Webhooks, else its literal text (a
/// Stripe `whsec_…` secret is used as written).
pub fn parse_source_secret(
    schemes: &[SourceScheme],
    raw: &str,
) -> Result<WebhookSecret, SecretError> {
    if schemes.contains(&SourceScheme::Standard) {
        WebhookSecret::parse(raw)
    } else {
        WebhookSecret::literal(raw)
    }
}

pub fn token_header_or_default(token_header: Option<&str>) -> &str {
    token_header
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(DEFAULT_TOKEN_HEADER)
}

/// What the request presents, parsed and bounded, before any MAC is computed.
enum Presented<'a> {
    /// Hex or Standard Webhooks: the original verifier takes it from here.
    Original(SignatureHeaders<'a>),
    Github([u8; MAC_LEN]),
    Stripe {
        timestamp: i64,
        signatures: Vec<[u8; MAC_LEN]>,
    },
    Token(&'a str),
}

/// Checks everything about a request's signature that needs no body: the
/// applicable scheme's header is present and well formed, and (Standard
/// Webhooks, Stripe) its timestamp is fresh. A request that fails here cannot
/// be valid whatever its body, so it is answered 401 unread.
///
/// The applicable scheme is the first of `schemes` whose header the request
/// carries; with none of them, [`SignatureError::Missing`].
pub fn check_source_form(
    schemes: &[SourceScheme],
    token_header: Option<&str>,
    headers: &RequestHeaders<'_>,
    now_unix_secs: i64,
    tolerance_secs: u64,
) -> Result<SignatureScheme, SignatureError> {
    let (scheme, _) = presented(
        schemes,
        token_header,
        headers,
        now_unix_secs,
        tolerance_secs,
    )?;
    Ok(scheme.signature_scheme())
}

/// Verifies a request to a source against each of its secrets; reports
/// which secret matched, so operators see when a rotated-out one stops
/// being used.
///
/// Rules per scheme: `hex` and `standard` as [`verify_signature`];
/// `github`: HMAC-SHA256 of the raw body keyed with the secret's text;
/// `stripe`: HMAC-SHA256 of `{t}.{body}` keyed with the secret's text
/// (Stripe's `whsec_…` secrets are used as written, not decoded), any `v1`
/// entry may match; `token`: the header's token equals the secret's text.
pub fn verify_source_signature(
    schemes: &[SourceScheme],
    token_header: Option<&str>,
    headers: &RequestHeaders<'_>,
    body: &[u8],
    secrets: &[WebhookSecret],
    now_unix_secs: i64,
    tolerance_secs: u64,
) -> Result<Verified, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecrets);
    }
    let (scheme, presented) = presented(
        schemes,
        token_header,
        headers,
        now_unix_secs,
        tolerance_secs,
    )?;
    let matched = match presented {
        Presented::Original(signature) => {
            return verify_signature(&signature, body, secrets, now_unix_secs, tolerance_secs);
        }
        Presented::Github(expected) => secrets.iter().position(|secret| {
            let mut mac = mac_for(secret.literal_bytes());
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        }),
        Presented::Stripe {
            timestamp,
            signatures,
        } => secrets.iter().position(|secret| {
            let mac = stripe_mac(secret, timestamp, body);
            signatures
                .iter()
                .any(|signature| mac.clone().verify_slice(signature).is_ok())
        }),
        // Compared as SHA-256 digests: equal lengths, so not even the
        // length of a secret leaks through the comparison's time.
        Presented::Token(token) => {
            let presented = Sha256::digest(token.as_bytes());
            secrets.iter().position(|secret| {
                bool::from(presented.ct_eq(&Sha256::digest(secret.literal_bytes())))
            })
        }
    };
    matched
        .map(|secret_index| Verified {
            scheme: scheme.signature_scheme(),
            secret_index,
        })
        .ok_or(SignatureError::Mismatch)
}

fn presented<'a>(
    schemes: &[SourceScheme],
    token_header: Option<&str>,
    headers: &RequestHeaders<'a>,
    now_unix_secs: i64,
    tolerance_secs: u64,
) -> Result<(SourceScheme, Presented<'a>), SignatureError> {
    let token_header = token_header_or_default(token_header);
    let scheme = schemes
        .iter()
        .copied()
        .find(|scheme| scheme.is_present(token_header, headers))
        .ok_or(SignatureError::Missing)?;
    let presented = match scheme {
        SourceScheme::Hex => {
            let signature = SignatureHeaders {
                x_webhook_signature: headers.get("x-webhook-signature"),
                ..SignatureHeaders::default()
            };
            check_signature_form(&signature, now_unix_secs, tolerance_secs)?;
            Presented::Original(signature)
        }
        SourceScheme::Standard => {
            let signature = SignatureHeaders {
                webhook_id: headers.get("webhook-id"),
                webhook_timestamp: headers.get("webhook-timestamp"),
                webhook_signature: headers.get("webhook-signature"),
                ..SignatureHeaders::default()
            };
            check_signature_form(&signature, now_unix_secs, tolerance_secs)?;
            Presented::Original(signature)
        }
        SourceScheme::Github => Presented::Github(parse_github(
            headers.get(GITHUB_HEADER).unwrap_or_default(),
        )?),
        SourceScheme::Stripe => {
            let (timestamp, signatures) =
                parse_stripe(headers.get(STRIPE_HEADER).unwrap_or_default())?;
            // Replay protection before any HMAC, as for Standard Webhooks.
            check_freshness(timestamp, now_unix_secs, tolerance_secs)?;
            Presented::Stripe {
                timestamp,
                signatures,
            }
        }
        SourceScheme::Token => Presented::Token(parse_token(
            token_header,
            headers.get(token_header).unwrap_or_default(),
        )?),
    };
    Ok((scheme, presented))
}

/// `sha256=<64 hex digits>`; GitHub always sends the prefix.
fn parse_github(value: &str) -> Result<[u8; MAC_LEN], SignatureError> {
    const FORM: SignatureError = SignatureError::Malformed(
        "X-Hub-Signature-256 must be `sha256=` followed by 64 hex digits",
    );
    let value = value.trim();
    let hex_digits = match value.get(..SHA256_PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(SHA256_PREFIX) => &value[SHA256_PREFIX.len()..],
        _ => return Err(FORM),
    };
    decode_mac(hex_digits).ok_or(FORM)
}

/// `t=<unix>,v1=<hex>[,v1=<hex>…]`, other keys (`v0`) ignored. Exactly one
/// `t`; at least one `v1`, each exactly 64 hex digits so a truncated one is
/// never compared as a prefix.
fn parse_stripe(value: &str) -> Result<(i64, Vec<[u8; MAC_LEN]>), SignatureError> {
    if value.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(SignatureError::Malformed("Stripe-Signature is too long"));
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for (position, entry) in value.split(',').enumerate() {
        if position >= MAX_SIGNATURE_ENTRIES {
            return Err(SignatureError::Malformed(
                "Stripe-Signature has more than 16 entries",
            ));
        }
        let (key, item) = entry
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed(
                "Stripe-Signature entries must look like `key=value`, e.g. `t=1700000000,v1=<hex>`",
            ))?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed(
                        "Stripe-Signature has more than one t= timestamp",
                    ));
                }
                timestamp = Some(parse_unix_seconds(item).ok_or(SignatureError::Malformed(
                    "Stripe-Signature t= must be a Unix time in whole seconds",
                ))?);
            }
            "v1" => signatures.push(decode_mac(item).ok_or(SignatureError::Malformed(
                "Stripe-Signature v1= must be 64 hex digits",
            ))?),
            // `v0` (test mode's legacy scheme) and future keys are not ours to check.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed(
        "Stripe-Signature has no t= timestamp",
    ))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed(
            "Stripe-Signature has no v1= signature",
        ));
    }
    Ok((timestamp, signatures))
}

/// The token of a `token` request: `Bearer <token>` in `Authorization`,
/// the whole (trimmed) value in any other header.
fn parse_token<'a>(header: &str, value: &'a str) -> Result<&'a str, SignatureError> {
    let value = value.trim();
    if value.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(SignatureError::Malformed("the token header is too long"));
    }
    let token = if header.eq_ignore_ascii_case("authorization") {
        let (kind, token) = value
            .split_once([' ', '\t'])
            .ok_or(SignatureError::Malformed(
                "Authorization must be `Bearer <token>`",
            ))?;
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(SignatureError::Malformed(
                "Authorization must be `Bearer <token>`",
            ));
        }
        token.trim()
    } else {
        value
    };
    if token.is_empty() {
        return Err(SignatureError::Malformed("the token header holds no token"));
    }
    Ok(token)
}

/// Digits only (no sign, no spaces), at most 19 of them.
fn parse_unix_seconds(raw: &str) -> Option<i64> {
    if raw.is_empty()
        || raw.len() > MAX_TIMESTAMP_DIGITS
        || !raw.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    raw.parse().ok()
}

/// Exactly 64 hex digits (either case) into a MAC; the length is checked
/// first, which also bounds the work on a hostile value.
fn decode_mac(hex_digits: &str) -> Option<[u8; MAC_LEN]> {
    if hex_digits.len() != MAC_LEN * 2 {
        return None;
    }
    let mut mac = [0u8; MAC_LEN];
    hex::decode_to_slice(hex_digits, &mut mac).ok()?;
    Some(mac)
}

/// HMAC over `{t}.{body}`, fed piecewise so the body is not copied.
fn stripe_mac(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> crate::signature::HmacSha256 {
    let mut mac = mac_for(secret.literal_bytes());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Signs a body as GitHub does: `sha256=<lowercase hex>`, keyed with the
/// secret's text.
pub fn sign_github(secret: &WebhookSecret, body: &[u8]) -> String {
    let mut mac = mac_for(secret.literal_bytes());
    mac.update(body);
    format!(
        "{SHA256_PREFIX}{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Signs a body as Stripe does: `t=<unix>,v1=<lowercase hex>`, keyed with
/// the secret's text.
pub fn sign_stripe(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    let mac = stripe_mac(secret, timestamp, body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{sign_hex, sign_standard};
    use proptest::prelude::*;

    // GitHub's documentation example ("Validating webhook deliveries").
    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    const GITHUB_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    // The Standard Webhooks specification's test vector.
    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW_TIMESTAMP: i64 = 1_614_265_330;
    const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    // Stripe's .NET SDK test vector (EventUtilityTest, event_test_signature.json):
    // secret `webhook_secret`, the fixture's bytes with their final newline.
    const STRIPE_SECRET: &[u8] = b"webhook_secret";
    const STRIPE_TIMESTAMP: i64 = 1_533_204_620;
    const STRIPE_HEADER_VALUE: &str = "t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
    const STRIPE_BODY: &str = r#"{
  "id": "evt_123",
  "object": "event",
  "account": "acct_123",
  "api_version": "2017-05-25",
  "created": 1533204620,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "created": 123456789,
      "email": "test@stripe.com",
      "livemode": false,
      "metadata": {}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_123",
    "idempotency_key": "idempotency-key-123"
  },
  "type": "customer.created"
}
"#;

    const TOLERANCE: u64 = 300;
    const TOKEN: &str = "cbi_0123456789abcdef0123456789abcdef";

    fn secret(raw: &str) -> WebhookSecret {
        WebhookSecret::parse(raw).unwrap()
    }

    fn headers<'a>(pairs: &[(&'a str, &'a str)]) -> RequestHeaders<'a> {
        RequestHeaders::new(pairs.to_vec())
    }

    fn verify(
        schemes: &[SourceScheme],
        pairs: &[(&str, &str)],
        body: &[u8],
        secrets: &[WebhookSecret],
        now: i64,
    ) -> Result<Verified, SignatureError> {
        verify_source_signature(
            schemes,
            None,
            &headers(pairs),
            body,
            secrets,
            now,
            TOLERANCE,
        )
    }

    fn ok(scheme: SignatureScheme, secret_index: usize) -> Result<Verified, SignatureError> {
        Ok(Verified {
            scheme,
            secret_index,
        })
    }

    fn is_malformed<T>(result: &Result<T, SignatureError>) -> bool {
        matches!(result, Err(SignatureError::Malformed(_)))
    }

    fn github(value: &str) -> Result<Verified, SignatureError> {
        verify(
            &[SourceScheme::Github],
            &[("X-Hub-Signature-256", value)],
            GITHUB_BODY,
            &[secret(GITHUB_SECRET)],
            0,
        )
    }

    fn stripe(value: &str, body: &[u8], now: i64) -> Result<Verified, SignatureError> {
        verify(
            &[SourceScheme::Stripe],
            &[("Stripe-Signature", value)],
            body,
            &[WebhookSecret::from_bytes(STRIPE_SECRET.to_vec())],
            now,
        )
    }

    fn token(
        pairs: &[(&str, &str)],
        token_header: Option<&str>,
    ) -> Result<Verified, SignatureError> {
        verify_source_signature(
            &[SourceScheme::Token],
            token_header,
            &headers(pairs),
            b"{}",
            &[secret(TOKEN)],
            0,
            TOLERANCE,
        )
    }

    // --- names ---------------------------------------------------------------

    #[test]
    fn scheme_names_and_lists_round_trip() {
        for scheme in SourceScheme::ALL {
            assert_eq!(SourceScheme::parse(scheme.as_str()), Some(scheme));
            assert_eq!(scheme.as_str().parse::<SourceScheme>(), Ok(scheme));
            assert_eq!(
                serde_json::to_string(&scheme).unwrap(),
                format!("\"{scheme}\"")
            );
        }
        assert_eq!(SourceScheme::parse(" Hex "), Some(SourceScheme::Hex));
        assert_eq!(SourceScheme::parse("hmac"), None);
        assert_eq!(
            SourceScheme::parse_list("hex,standard"),
            Ok(vec![SourceScheme::Hex, SourceScheme::Standard])
        );
        assert_eq!(
            SourceScheme::parse_list(" github , ,github,token,"),
            Ok(vec![SourceScheme::Github, SourceScheme::Token])
        );
        assert_eq!(
            SourceScheme::format_list(&[SourceScheme::Hex, SourceScheme::Standard]),
            "hex,standard"
        );
        assert_eq!(
            SourceScheme::parse_list(" , "),
            Err(SourceSchemeError::Empty)
        );
        let err = SourceScheme::parse_list("hex,svix").unwrap_err();
        assert_eq!(
            err,
            SourceSchemeError::Unknown {
                name: "svix".into()
            }
        );
        assert!(err.to_string().contains("use hex, standard"), "{err}");
        assert_eq!(
            SourceScheme::Stripe.signature_scheme(),
            SignatureScheme::StripeV1
        );
    }

    // --- published vectors ---------------------------------------------------

    #[test]
    fn github_documentation_vector_signs_and_verifies() {
        assert_eq!(
            sign_github(&secret(GITHUB_SECRET), GITHUB_BODY),
            GITHUB_SIGNATURE
        );
        assert_eq!(
            github(GITHUB_SIGNATURE),
            ok(SignatureScheme::GithubSha256, 0)
        );
        let upper = format!("SHA256={}", GITHUB_SIGNATURE[7..].to_ascii_uppercase());
        assert_eq!(github(&upper), ok(SignatureScheme::GithubSha256, 0));
    }

    #[test]
    fn standard_webhooks_vector_verifies_for_a_standard_source() {
        let result = verify(
            &[SourceScheme::Standard],
            &[
                ("webhook-id", SW_ID),
                ("webhook-timestamp", "1614265330"),
                ("webhook-signature", SW_SIGNATURE),
            ],
            SW_BODY,
            &[secret(SW_SECRET)],
            SW_TIMESTAMP,
        );
        assert_eq!(result, ok(SignatureScheme::StandardWebhooks, 0));
        assert_eq!(
            sign_standard(&secret(SW_SECRET), SW_ID, SW_TIMESTAMP, SW_BODY),
            SW_SIGNATURE
        );
    }

    #[test]
    fn stripe_sdk_vector_verifies_and_ignores_v0() {
        assert_eq!(
            stripe(
                STRIPE_HEADER_VALUE,
                STRIPE_BODY.as_bytes(),
                STRIPE_TIMESTAMP + 100
            ),
            ok(SignatureScheme::StripeV1, 0)
        );
        let signed = sign_stripe(
            &WebhookSecret::from_bytes(STRIPE_SECRET.to_vec()),
            STRIPE_TIMESTAMP,
            STRIPE_BODY.as_bytes(),
        );
        assert!(STRIPE_HEADER_VALUE.starts_with(&signed), "{signed}");
        // The same body without its final newline is another body.
        assert_eq!(
            stripe(
                STRIPE_HEADER_VALUE,
                STRIPE_BODY.trim_end().as_bytes(),
                STRIPE_TIMESTAMP
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn hex_source_verifies_the_github_vector_in_the_hex_header() {
        let result = verify(
            &[SourceScheme::Hex],
            &[("X-Webhook-Signature", GITHUB_SIGNATURE)],
            GITHUB_BODY,
            &[secret(GITHUB_SECRET)],
            0,
        );
        assert_eq!(result, ok(SignatureScheme::HmacSha256Hex, 0));
    }

    // --- secrets as written --------------------------------------------------

    #[test]
    fn stripe_whsec_secrets_are_used_as_written_not_decoded() {
        let stripe_secret = secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        // What Stripe sends: HMAC keyed with the secret's text.
        let mut mac = mac_for(SW_SECRET.as_bytes());
        mac.update(b"1700000000.");
        mac.update(body);
        let header = format!(
            "t=1700000000,v1={}",
            hex::encode(mac.finalize().into_bytes())
        );
        assert_eq!(sign_stripe(&stripe_secret, 1_700_000_000, body), header);
        let result = verify(
            &[SourceScheme::Stripe],
            &[("Stripe-Signature", &header)],
            body,
            std::slice::from_ref(&stripe_secret),
            1_700_000_000,
        );
        assert_eq!(result, ok(SignatureScheme::StripeV1, 0));
        // Keyed with the decoded bytes it is not Stripe's signature.
        let decoded = WebhookSecret::from_bytes(stripe_secret.as_bytes().to_vec());
        let forged = sign_stripe(&decoded, 1_700_000_000, body);
        let result = verify(
            &[SourceScheme::Stripe],
            &[("Stripe-Signature", &forged)],
            body,
            &[stripe_secret],
            1_700_000_000,
        );
        assert_eq!(result, Err(SignatureError::Mismatch));
    }

    #[test]
    fn github_whsec_secret_signs_with_its_text() {
        let shared = secret(SW_SECRET);
        let verbatim = WebhookSecret::from_bytes(SW_SECRET.as_bytes().to_vec());
        let signature = sign_github(&verbatim, GITHUB_BODY);
        assert_eq!(sign_github(&shared, GITHUB_BODY), signature);
        let result = verify(
            &[SourceScheme::Github],
            &[("x-hub-signature-256", &signature)],
            GITHUB_BODY,
            &[shared],
            0,
        );
        assert_eq!(result, ok(SignatureScheme::GithubSha256, 0));
    }

    // --- failures ------------------------------------------------------------

    #[test]
    fn wrong_secret_is_a_mismatch_for_every_scheme() {
        let wrong = [secret("not the right secret at all")];
        assert_eq!(
            verify(
                &[SourceScheme::Github],
                &[("X-Hub-Signature-256", GITHUB_SIGNATURE)],
                GITHUB_BODY,
                &wrong,
                0
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &[SourceScheme::Stripe],
                &[("Stripe-Signature", STRIPE_HEADER_VALUE)],
                STRIPE_BODY.as_bytes(),
                &wrong,
                STRIPE_TIMESTAMP
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &[SourceScheme::Token],
                &[("Authorization", &format!("Bearer {TOKEN}"))],
                b"",
                &wrong,
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn no_secrets_is_reported_before_anything_else() {
        for scheme in SourceScheme::ALL {
            assert_eq!(
                verify(&[scheme], &[], b"", &[], 0),
                Err(SignatureError::NoSecrets),
                "{scheme}"
            );
        }
    }

    #[test]
    fn a_request_without_the_schemes_headers_is_missing() {
        // A GitHub source does not look at the hex scheme's header.
        let hex_only = [("X-Webhook-Signature", GITHUB_SIGNATURE)];
        for schemes in [
            &[SourceScheme::Github][..],
            &[SourceScheme::Stripe, SourceScheme::Token],
            &[SourceScheme::Standard],
            &[],
        ] {
            assert_eq!(
                verify(schemes, &hex_only, GITHUB_BODY, &[secret(GITHUB_SECRET)], 0),
                Err(SignatureError::Missing),
                "{schemes:?}"
            );
            assert_eq!(
                check_source_form(schemes, None, &headers(&hex_only), 0, TOLERANCE),
                Err(SignatureError::Missing)
            );
        }
    }

    #[test]
    fn stale_and_future_stripe_timestamps_are_rejected_before_any_mac() {
        let body = STRIPE_BODY.as_bytes();
        assert!(stripe(STRIPE_HEADER_VALUE, body, STRIPE_TIMESTAMP + 300).is_ok());
        assert_eq!(
            stripe(STRIPE_HEADER_VALUE, body, STRIPE_TIMESTAMP + 301),
            Err(SignatureError::StaleTimestamp { skew_secs: 301 })
        );
        assert_eq!(
            stripe(STRIPE_HEADER_VALUE, body, STRIPE_TIMESTAMP - 301),
            Err(SignatureError::StaleTimestamp { skew_secs: -301 })
        );
        // Even with the wrong secret the staleness is what is reported.
        assert!(matches!(
            verify(
                &[SourceScheme::Stripe],
                &[("Stripe-Signature", STRIPE_HEADER_VALUE)],
                body,
                &[secret("another secret entirely")],
                0
            ),
            Err(SignatureError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn stale_standard_timestamp_is_rejected() {
        let pairs = [
            ("webhook-id", SW_ID),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", SW_SIGNATURE),
        ];
        assert!(matches!(
            check_source_form(
                &[SourceScheme::Standard],
                None,
                &headers(&pairs),
                SW_TIMESTAMP + 301,
                TOLERANCE
            ),
            Err(SignatureError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn malformed_stripe_headers_are_named() {
        let v1 = &STRIPE_HEADER_VALUE[13..80];
        assert!(v1.starts_with("v1=") && v1.len() == 67, "{v1}");
        for bad in [
            "",
            "garbage",
            "t=1533204620",
            v1,
            &format!("t=1533204620,t=1533204620,{v1}"),
            &format!("t=+1533204620,{v1}"),
            &format!("t=-1,{v1}"),
            &format!("t=,{v1}"),
            &format!("t=99999999999999999999,{v1}"),
            &format!("t=1533204620,{}", &v1[..66]),
            &format!("t=1533204620,{v1}0"),
            &format!("t=1533204620,v1=,{v1}"),
            &format!("t=1533204620,{v1},"),
            &format!("t=1533204620,v1={}", "zz".repeat(32)),
            &format!("t=1533204620{}", format!(",{v1}").repeat(16)),
            &format!(
                "t=1533204620,{v1}{}",
                " ".repeat(MAX_SIGNATURE_HEADER_BYTES)
            ),
        ] {
            let result = stripe(bad, STRIPE_BODY.as_bytes(), STRIPE_TIMESTAMP);
            assert!(is_malformed(&result), "{bad:?}: {result:?}");
        }
        // Fifteen v1 entries and a t are sixteen: still fine.
        let fifteen = format!("t=1533204620{}", format!(",{v1}").repeat(15));
        assert!(stripe(&fifteen, STRIPE_BODY.as_bytes(), STRIPE_TIMESTAMP).is_ok());
        // Spaces around entries are tolerated.
        let spaced = format!("t=1533204620, {v1} , v0=whatever");
        assert!(stripe(&spaced, STRIPE_BODY.as_bytes(), STRIPE_TIMESTAMP).is_ok());
    }

    #[test]
    fn any_v1_entry_may_match() {
        let other = format!("v1={}", "0".repeat(64));
        let v1 = &STRIPE_HEADER_VALUE[13..80];
        for header in [
            format!("t=1533204620,{other},{v1}"),
            format!("{v1},{other},t=1533204620"),
        ] {
            assert_eq!(
                stripe(&header, STRIPE_BODY.as_bytes(), STRIPE_TIMESTAMP),
                ok(SignatureScheme::StripeV1, 0),
                "{header}"
            );
        }
        let only_other = format!("t=1533204620,{other}");
        assert_eq!(
            stripe(&only_other, STRIPE_BODY.as_bytes(), STRIPE_TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_github_headers_are_named() {
        for bad in [
            "",
            "sha256=",
            &GITHUB_SIGNATURE[7..],
            &GITHUB_SIGNATURE[..70],
            &format!("{GITHUB_SIGNATURE}00"),
            &format!("sha1={}", &GITHUB_SIGNATURE[7..]),
            &format!("sha256={}", "g".repeat(64)),
            &format!("{GITHUB_SIGNATURE},{GITHUB_SIGNATURE}"),
        ] {
            assert!(is_malformed(&github(bad)), "{bad:?}");
        }
    }

    #[test]
    fn token_in_authorization_needs_bearer_in_any_case() {
        for value in [
            format!("Bearer {TOKEN}"),
            format!("bearer {TOKEN}"),
            format!("BEARER   {TOKEN}  "),
            format!("Bearer\t{TOKEN}"),
        ] {
            assert_eq!(
                token(&[("authorization", &value)], None),
                ok(SignatureScheme::Token, 0),
                "{value:?}"
            );
        }
        for value in [
            TOKEN.to_owned(),
            format!("Basic {TOKEN}"),
            "Bearer".to_owned(),
            "Bearer    ".to_owned(),
            String::new(),
        ] {
            assert!(
                is_malformed(&token(&[("Authorization", &value)], None)),
                "{value:?}"
            );
        }
        assert_eq!(
            token(&[("Authorization", &format!("Bearer {TOKEN}x"))], None),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            token(
                &[("Authorization", &format!("Bearer {}", &TOKEN[1..]))],
                None
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(token(&[], None), Err(SignatureError::Missing));
        assert_eq!(
            token(&[("X-Gitlab-Token", TOKEN)], None),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn token_in_a_named_header_is_the_whole_value() {
        let gitlab = Some("X-Gitlab-Token");
        assert_eq!(
            token(&[("x-gitlab-token", &format!(" {TOKEN} "))], gitlab),
            ok(SignatureScheme::Token, 0)
        );
        assert_eq!(
            token(&[("x-gitlab-token", &format!("Bearer {TOKEN}"))], gitlab),
            Err(SignatureError::Mismatch)
        );
        assert!(is_malformed(&token(&[("X-Gitlab-Token", "  ")], gitlab)));
        assert_eq!(
            token(&[("Authorization", &format!("Bearer {TOKEN}"))], gitlab),
            Err(SignatureError::Missing)
        );
        // A blank configured header name means the default.
        assert_eq!(
            token(&[("Authorization", &format!("Bearer {TOKEN}"))], Some(" ")),
            ok(SignatureScheme::Token, 0)
        );
        let long = "t".repeat(MAX_SIGNATURE_HEADER_BYTES + 1);
        assert!(is_malformed(&token(&[("x-gitlab-token", &long)], gitlab)));
    }

    #[test]
    fn rotation_reports_which_secret_matched() {
        let secrets = [secret("the new secret, rotated in"), secret(GITHUB_SECRET)];
        assert_eq!(
            verify(
                &[SourceScheme::Github],
                &[("X-Hub-Signature-256", GITHUB_SIGNATURE)],
                GITHUB_BODY,
                &secrets,
                0
            ),
            ok(SignatureScheme::GithubSha256, 1)
        );
        let secrets = [
            secret("the new secret, rotated in"),
            WebhookSecret::from_bytes(STRIPE_SECRET.to_vec()),
        ];
        assert_eq!(
            verify(
                &[SourceScheme::Stripe],
                &[("Stripe-Signature", STRIPE_HEADER_VALUE)],
                STRIPE_BODY.as_bytes(),
                &secrets,
                STRIPE_TIMESTAMP
            ),
            ok(SignatureScheme::StripeV1, 1)
        );
        let secrets = [secret(TOKEN), secret("the new token, rotated in")];
        for (presented, index) in [(TOKEN, 0), ("the new token, rotated in", 1)] {
            assert_eq!(
                verify(
                    &[SourceScheme::Token],
                    &[("Authorization", &format!("Bearer {presented}"))],
                    b"",
                    &secrets,
                    0
                ),
                ok(SignatureScheme::Token, index)
            );
        }
    }

    #[test]
    fn the_first_listed_scheme_whose_header_is_present_applies() {
        let token_value = format!("Bearer {TOKEN}");
        let both = [
            ("X-Hub-Signature-256", GITHUB_SIGNATURE),
            ("Authorization", token_value.as_str()),
        ];
        let form = |schemes: &[SourceScheme]| {
            check_source_form(schemes, None, &headers(&both), 0, TOLERANCE)
        };
        assert_eq!(
            form(&[SourceScheme::Github, SourceScheme::Token]),
            Ok(SignatureScheme::GithubSha256)
        );
        assert_eq!(
            form(&[SourceScheme::Token, SourceScheme::Github]),
            Ok(SignatureScheme::Token)
        );
        assert_eq!(
            form(&[SourceScheme::Stripe, SourceScheme::Github]),
            Ok(SignatureScheme::GithubSha256)
        );
        // A present but broken header of the first scheme is not skipped.
        let broken = [
            ("X-Hub-Signature-256", "sha256=abc"),
            ("Authorization", token_value.as_str()),
        ];
        assert!(is_malformed(&check_source_form(
            &[SourceScheme::Github, SourceScheme::Token],
            None,
            &headers(&broken),
            0,
            TOLERANCE
        )));
    }

    #[test]
    fn form_is_judged_without_the_body() {
        let ok_form = |schemes: &[SourceScheme], pairs: &[(&str, &str)], now| {
            check_source_form(schemes, None, &headers(pairs), now, TOLERANCE)
        };
        assert_eq!(
            ok_form(
                &[SourceScheme::Hex],
                &[("x-webhook-signature", GITHUB_SIGNATURE)],
                0
            ),
            Ok(SignatureScheme::HmacSha256Hex)
        );
        assert!(is_malformed(&ok_form(
            &[SourceScheme::Hex],
            &[("x-webhook-signature", "sha256=abc")],
            0
        )));
        assert_eq!(
            ok_form(
                &[SourceScheme::Standard],
                &[
                    ("webhook-id", SW_ID),
                    ("webhook-timestamp", "1614265330"),
                    ("webhook-signature", SW_SIGNATURE)
                ],
                SW_TIMESTAMP
            ),
            Ok(SignatureScheme::StandardWebhooks)
        );
        // One Standard Webhooks header alone is a broken request, not an unsigned one.
        assert!(is_malformed(&ok_form(
            &[SourceScheme::Standard],
            &[("webhook-id", SW_ID)],
            SW_TIMESTAMP
        )));
        assert_eq!(
            ok_form(
                &[SourceScheme::Stripe],
                &[("stripe-signature", STRIPE_HEADER_VALUE)],
                STRIPE_TIMESTAMP
            ),
            Ok(SignatureScheme::StripeV1)
        );
        assert_eq!(
            ok_form(
                &[SourceScheme::Github],
                &[("X-HUB-SIGNATURE-256", GITHUB_SIGNATURE)],
                0
            ),
            Ok(SignatureScheme::GithubSha256)
        );
        assert_eq!(
            ok_form(&[SourceScheme::Token], &[("Authorization", "Bearer x")], 0),
            Ok(SignatureScheme::Token)
        );
    }

    #[test]
    fn a_hex_and_standard_source_takes_the_first_present_in_its_order() {
        let body = br#"{"job_id":"j1"}"#;
        let key = secret(SW_SECRET);
        let hex = sign_hex(&key, body);
        let standard = sign_standard(&key, "msg_1", 1_700_000_000, body);
        let pairs = [
            ("x-webhook-signature", hex.as_str()),
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1700000000"),
            ("webhook-signature", standard.as_str()),
        ];
        let run = |schemes: &[SourceScheme]| {
            verify(
                schemes,
                &pairs,
                body,
                std::slice::from_ref(&key),
                1_700_000_000,
            )
        };
        assert_eq!(
            run(&[SourceScheme::Hex, SourceScheme::Standard]),
            ok(SignatureScheme::HmacSha256Hex, 0)
        );
        assert_eq!(
            run(&[SourceScheme::Standard, SourceScheme::Hex]),
            ok(SignatureScheme::StandardWebhooks, 0)
        );
    }

    // --- properties ----------------------------------------------------------

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn github_and_stripe_round_trip_and_reject_a_flipped_body(
            key in prop::collection::vec(any::<u8>(), 1..80),
            mut body in prop::collection::vec(any::<u8>(), 1..300),
            timestamp in 0..=i64::MAX,
            index in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let secret = WebhookSecret::from_bytes(key);
            let secrets = std::slice::from_ref(&secret);
            let github_value = sign_github(&secret, &body);
            let stripe_value = sign_stripe(&secret, timestamp, &body);
            let github_pairs = [("x-hub-signature-256", github_value.as_str())];
            let stripe_pairs = [("stripe-signature", stripe_value.as_str())];
            prop_assert_eq!(
                verify(&[SourceScheme::Github], &github_pairs, &body, secrets, 0),
                ok(SignatureScheme::GithubSha256, 0)
            );
            prop_assert_eq!(
                verify(&[SourceScheme::Stripe], &stripe_pairs, &body, secrets, timestamp),
                ok(SignatureScheme::StripeV1, 0)
            );
            let i = index.index(body.len());
            body[i] ^= 1 << bit;
            prop_assert_eq!(
                verify(&[SourceScheme::Github], &github_pairs, &body, secrets, 0),
                Err(SignatureError::Mismatch)
            );
            prop_assert_eq!(
                verify(&[SourceScheme::Stripe], &stripe_pairs, &body, secrets, timestamp),
                Err(SignatureError::Mismatch)
            );
        }

        #[test]
        fn truncated_signatures_fail(
            body in prop::collection::vec(any::<u8>(), 0..100),
            cut in any::<prop::sample::Index>(),
        ) {
            let secret = secret(GITHUB_SECRET);
            let github_value = sign_github(&secret, &body);
            let truncated = &github_value[..cut.index(github_value.len())];
            prop_assert!(
                verify(&[SourceScheme::Github], &[("x-hub-signature-256", truncated)], &body, std::slice::from_ref(&secret), 0).is_err()
            );
            let stripe_value = sign_stripe(&secret, 7, &body);
            let truncated = &stripe_value[..cut.index(stripe_value.len())];
            prop_assert!(
                verify(&[SourceScheme::Stripe], &[("stripe-signature", truncated)], &body, std::slice::from_ref(&secret), 7).is_err()
            );
        }

        #[test]
        fn arbitrary_headers_never_panic(
            github_value in any::<String>(),
            stripe_value in prop_oneof![any::<String>(), "(t=[0-9]{0,21}|v1=[0-9a-f]{0,70}|v0=x|[a-z]{0,3}|=)(,(t=[0-9]{0,21}|v1=[0-9a-f]{0,70}|v0=x|=)){0,20}"],
            token_value in any::<String>(),
            now in any::<i64>(),
            tolerance in any::<u64>(),
        ) {
            let pairs = [
                ("x-hub-signature-256", github_value.as_str()),
                ("stripe-signature", stripe_value.as_str()),
                ("authorization", token_value.as_str()),
            ];
            let secrets = [WebhookSecret::from_bytes(b"k".to_vec())];
            for scheme in SourceScheme::ALL {
                let _ = verify_source_signature(&[scheme], None, &headers(&pairs), b"{}", &secrets, now, tolerance);
            }
        }
    }
}
