//! Hostile signature headers and bodies must never panic `verify_signature`,
//! and a body signed with a configured secret must always verify.
#![no_main]

use inbox_core::signature::{
    SignatureHeaders, SignatureScheme, WebhookSecret, sign_hex, verify_signature,
};
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

/// A `&str` built from arbitrary bytes (invalid UTF-8 replaced), or absent.
fn header(u: &mut Unstructured<'_>) -> Option<String> {
    let present = bool::arbitrary(u).unwrap_or(false);
    let bytes = <&[u8]>::arbitrary(u).unwrap_or_default();
    present.then(|| String::from_utf8_lossy(bytes).into_owned())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let x_webhook_signature = header(&mut u);
    let webhook_id = header(&mut u);
    let webhook_timestamp = header(&mut u);
    let webhook_signature = header(&mut u);
    let now = i64::arbitrary(&mut u).unwrap_or_default();
    let tolerance = u64::arbitrary(&mut u).unwrap_or_default();
    let body = u.take_rest();

    let secrets = [
        WebhookSecret::from_bytes(b"fuzz secret".to_vec()),
        WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("valid secret"),
    ];
    let headers = SignatureHeaders {
        x_webhook_signature: x_webhook_signature.as_deref(),
        webhook_id: webhook_id.as_deref(),
        webhook_timestamp: webhook_timestamp.as_deref(),
        webhook_signature: webhook_signature.as_deref(),
    };
    let _ = verify_signature(&headers, body, &secrets, now, tolerance);

    let signed = sign_hex(&secrets[1], body);
    let headers = SignatureHeaders {
        x_webhook_signature: Some(&signed),
        ..SignatureHeaders::default()
    };
    let verified = verify_signature(&headers, body, &secrets, now, tolerance)
        .expect("a body signed with a configured secret verifies");
    assert_eq!(verified.scheme, SignatureScheme::HmacSha256Hex);
    assert_eq!(verified.secret_index, 1);
});
