//! Signing outgoing webhooks per the Standard Webhooks specification.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a Standard Webhooks signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Decodes a `whsec_…` secret into its key bytes.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    BASE64
        .decode(encoded.trim())
        .map_err(|_| format!("the signing secret must be `{SECRET_PREFIX}` followed by base64"))
        .and_then(|key| {
            if key.len() < 16 {
                Err("the signing secret must hold at least 16 bytes of key".to_owned())
            } else {
                Ok(key)
            }
        })
}

/// Whether `secret` is a usable signing secret (for option validation).
pub fn check_secret(secret: &str) -> Result<(), String> {
    decode_secret(secret).map(drop)
}

/// Whether `text` is an RFC 3339 time (`2026-12-31T00:00:00Z`), for an expiry option.
pub fn check_expiry(text: &str) -> Result<(), String> {
    humantime::parse_rfc3339_weak(text.trim())
        .map(drop)
        .map_err(|_| format!("`{text}` is not a time like 2026-12-31T00:00:00Z"))
}

/// The secrets to sign with at `now`, during a rotation: every current one, and the
/// previous one until it expires (no expiry: until it is removed).
pub fn active_secrets<'a>(
    current: impl IntoIterator<Item = &'a str>,
    previous: Option<&'a str>,
    previous_expires: Option<&str>,
    now: std::time::SystemTime,
) -> Vec<&'a str> {
    let expired = previous_expires
        .and_then(|text| humantime::parse_rfc3339_weak(text.trim()).ok())
        .is_some_and(|expires| expires <= now);
    let previous = previous.filter(|_| !expired);
    current.into_iter().chain(previous).collect()
}

/// The three headers that sign `body` as message `id` sent at `timestamp` (Unix seconds),
/// with one `v1,` signature per key, space-separated: during a rotation receivers that
/// hold either the old or the new secret accept the request.
pub fn standard_webhooks(
    keys: &[Vec<u8>],
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let signatures: Vec<String> = keys
        .iter()
        .map(|key| {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
        })
        .collect();
    [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signatures.join(" ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference implementations.
    #[test]
    fn matches_the_spec_example() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let [_, _, (_, signature)] = standard_webhooks(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_active_key_signs_and_the_previous_one_expires() {
        let old = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let new = decode_secret("whsec_c2VjcmV0LWtleS1udW1iZXItdHdvIQ==").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let [_, _, (_, both)] = standard_webhooks(
            &[new, old],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        );
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");

        let at = |text: &str| humantime::parse_rfc3339(text).unwrap();
        let expires = Some("2026-12-31T00:00:00Z");
        let before = active_secrets(["new"], Some("old"), expires, at("2026-12-30T23:59:59Z"));
        assert_eq!(before, ["new", "old"]);
        let after = active_secrets(["new"], Some("old"), expires, at("2026-12-31T00:00:00Z"));
        assert_eq!(after, ["new"]);
        let open_ended = active_secrets(["new"], Some("old"), None, at("2030-01-01T00:00:00Z"));
        assert_eq!(open_ended, ["new", "old"]);
        assert!(check_expiry("2026-12-31T00:00:00Z").is_ok());
        assert!(check_expiry("next tuesday").is_err());
    }

    #[test]
    fn rejects_bad_secrets() {
        assert!(decode_secret("whsec_not base64!").is_err());
        assert!(decode_secret("whsec_YWJj").is_err());
    }
}
