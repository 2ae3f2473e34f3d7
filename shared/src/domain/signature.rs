//! Standard Webhooks signatures of `"{id}.{timestamp}.{payload}"`: `v1,<base64 HMAC-SHA256>`
//! with a `whsec` or `uuid` secret, `v1a,<base64 Ed25519 signature>` with an `ed25519` one.
//!
//! The HMAC key of a `whsec_` secret is the base64-decoded part after the prefix (as the
//! specification says); the key of a `uuid` secret is the UTF-8 bytes of its text form, the
//! way uuid-secret vendors document it. Delivery is signed with every valid secret, so a
//! receiver holding either the old or the new secret accepts it during a grace period.

use crate::domain::endpoint::SecretVersion;
use crate::domain::ids::VersionId;
use crate::domain::secret::{SecretFormat, WebhookSecret, WHSEC_PREFIX};
use aws_lc_rs::signature::{UnparsedPublicKey, ED25519};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// The specification's default timestamp tolerance, both into the past and the future.
pub const DEFAULT_TOLERANCE_SECONDS: u32 = 300;
pub const MAX_TOLERANCE_SECONDS: u32 = 86_400;
const MAX_ID_CHARS: usize = 255;

/// The three headers of a signed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
}

/// Why a delivery does not verify. Each has a stable code and a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    #[error("webhook-id is empty, longer than 255 characters, or contains '.' or whitespace")]
    MalformedId,
    #[error("webhook-timestamp is not a whole number of seconds since the epoch")]
    MalformedTimestamp,
    #[error("webhook-signature holds no well-formed \"v1,<base64>\" or \"v1a,<base64>\" entry")]
    MalformedSignature,
    #[error("webhook-timestamp is older than the tolerance allows")]
    StaleTimestamp,
    #[error("webhook-timestamp is further in the future than the tolerance allows")]
    FutureTimestamp,
    #[error("no signature matches any valid secret of this endpoint")]
    NoMatchingSignature,
}

impl VerifyFailure {
    pub fn code(self) -> &'static str {
        match self {
            Self::MalformedId => "malformed_id",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::MalformedSignature => "malformed_signature",
            Self::StaleTimestamp => "stale_timestamp",
            Self::FutureTimestamp => "future_timestamp",
            Self::NoMatchingSignature => "no_matching_signature",
        }
    }
}

pub fn validate_id(id: &str) -> Result<(), VerifyFailure> {
    let valid = !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && !id.contains('.')
        && !id.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(()).ok_or(VerifyFailure::MalformedId)
}

fn hmac_key(secret: &WebhookSecret) -> Zeroizing<Vec<u8>> {
    match secret.format() {
        SecretFormat::Whsec => Zeroizing::new(
            STANDARD
                .decode(&secret.expose()[WHSEC_PREFIX.len()..])
                .unwrap_or_default(),
        ),
        SecretFormat::Uuid => Zeroizing::new(secret.expose().as_bytes().to_vec()),
        SecretFormat::Ed25519 => Zeroizing::new(Vec::new()),
    }
}

/// The bytes every signature covers.
fn signed_content(id: &str, timestamp: i64, payload: &[u8]) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + payload.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(payload);
    content
}

/// One entry of a `webhook-signature` header for `secret`.
fn signature_entry(secret: &WebhookSecret, id: &str, timestamp: i64, payload: &[u8]) -> String {
    match secret.signing_key() {
        Some(pair) => {
            let signature = pair.sign(&signed_content(id, timestamp, payload));
            format!("v1a,{}", STANDARD.encode(signature.as_ref()))
        }
        None => {
            let tag = mac(secret, id, timestamp, payload).finalize().into_bytes();
            format!("v1,{}", STANDARD.encode(tag))
        }
    }
}

fn mac(secret: &WebhookSecret, id: &str, timestamp: i64, payload: &[u8]) -> HmacSha256 {
    let key = hmac_key(secret);
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// Signs `payload` with every secret in `secrets`, in order: a `v1` entry per HMAC secret, a
/// `v1a` entry per Ed25519 key.
pub fn sign(secrets: &[&SecretVersion], id: &str, timestamp: i64, payload: &[u8]) -> SignedHeaders {
    let signature = secrets
        .iter()
        .map(|s| signature_entry(&s.value, id, timestamp, payload))
        .collect::<Vec<_>>()
        .join(" ");
    SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature,
    }
}

/// Checks a delivery against every valid secret. Returns the version of the secret whose
/// signature matched. Each comparison is constant-time.
pub fn verify(
    secrets: &[&SecretVersion],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    payload: &[u8],
    now: DateTime<Utc>,
    tolerance_seconds: u32,
) -> Result<VersionId, VerifyFailure> {
    validate_id(id)?;
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyFailure::MalformedTimestamp);
    }
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| VerifyFailure::MalformedTimestamp)?;
    let entries = |version: &'static str| {
        signature_header
            .split(' ')
            .filter_map(move |entry| entry.strip_prefix(version))
            .filter_map(|encoded| STANDARD.decode(encoded).ok())
            .collect::<Vec<Vec<u8>>>()
    };
    let (hmacs, ed25519s) = (entries("v1,"), entries("v1a,"));
    if hmacs.is_empty() && ed25519s.is_empty() {
        return Err(VerifyFailure::MalformedSignature);
    }
    let age = now.timestamp() - sent;
    if age > i64::from(tolerance_seconds) {
        return Err(VerifyFailure::StaleTimestamp);
    }
    if -age > i64::from(tolerance_seconds) {
        return Err(VerifyFailure::FutureTimestamp);
    }
    let content = signed_content(id, sent, payload);
    for secret in secrets {
        let matched = match secret.value.public_key() {
            Some(public) => {
                let key = UnparsedPublicKey::new(&ED25519, public.as_bytes());
                ed25519s
                    .iter()
                    .any(|candidate| key.verify(&content, candidate).is_ok())
            }
            None => {
                let expected = mac(&secret.value, id, sent, payload);
                hmacs
                    .iter()
                    .any(|candidate| expected.clone().verify_slice(candidate).is_ok())
            }
        };
        if matched {
            return Ok(secret.version_id.clone());
        }
    }
    Err(VerifyFailure::NoMatchingSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn version(secret: &str) -> SecretVersion {
        SecretVersion {
            version_id: VersionId::generate(),
            value: WebhookSecret::parse(secret).unwrap(),
            created_at: Utc::now(),
            replaces: None,
            expires_at: None,
        }
    }

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn matches_the_specification_test_vector() {
        let secret = version("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let payload = br#"{"test": 2432232314}"#;
        let signed = sign(
            &[&secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            payload,
        );
        assert_eq!(
            signed.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let now = Utc.timestamp_opt(1614265330 + 10, 0).unwrap();
        let matched = verify(
            &[&secret],
            &signed.id,
            "1614265330",
            &signed.signature,
            payload,
            now,
            300,
        );
        assert_eq!(matched, Ok(secret.version_id.clone()));
    }

    #[test]
    fn rejections_have_reasons() {
        let secret = version("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let other = version("whsec_c2Vjb25kIHNlY3JldCBvZiAyNCsgYnl0ZXMh");
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let ts = now.timestamp();
        let signed = sign(&[&secret], "msg_1", ts, b"body");
        let check = |id: &str, ts: &str, sig: &str, body: &[u8]| {
            verify(&[&other, &secret], id, ts, sig, body, now, 300)
        };
        assert!(check("msg_1", &ts.to_string(), &signed.signature, b"body").is_ok());
        assert_eq!(
            check("msg_1", &ts.to_string(), &signed.signature, b"tampered"),
            Err(VerifyFailure::NoMatchingSignature)
        );
        assert_eq!(
            check("msg.1", &ts.to_string(), &signed.signature, b"body"),
            Err(VerifyFailure::MalformedId)
        );
        assert_eq!(
            check("msg_1", "1.5", &signed.signature, b"body"),
            Err(VerifyFailure::MalformedTimestamp)
        );
        assert_eq!(
            check("msg_1", "-5", &signed.signature, b"body"),
            Err(VerifyFailure::MalformedTimestamp)
        );
        assert_eq!(
            check("msg_1", &ts.to_string(), "v2,abc", b"body"),
            Err(VerifyFailure::MalformedSignature)
        );
        assert_eq!(
            check("msg_1", &ts.to_string(), "", b"body"),
            Err(VerifyFailure::MalformedSignature)
        );
        let stale = sign(&[&secret], "msg_1", ts - 301, b"body");
        assert_eq!(
            check("msg_1", &(ts - 301).to_string(), &stale.signature, b"body"),
            Err(VerifyFailure::StaleTimestamp)
        );
        let future = sign(&[&secret], "msg_1", ts + 301, b"body");
        assert_eq!(
            check("msg_1", &(ts + 301).to_string(), &future.signature, b"body"),
            Err(VerifyFailure::FutureTimestamp)
        );
        assert_eq!(
            check(
                "msg_1",
                "99999999999999999999999",
                &signed.signature,
                b"body"
            ),
            Err(VerifyFailure::MalformedTimestamp)
        );
    }

    /// Svix's server signs its test message with its test key to exactly this `v1a` entry.
    #[test]
    fn matches_svix_ed25519_test_vector() {
        let key = version("whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==");
        let payload = br#"{"test": 2432232314}"#;
        let signed = sign(&[&key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, payload);
        assert_eq!(
            signed.signature,
            "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
        );
        let now = Utc.timestamp_opt(1614265330, 0).unwrap();
        let verdict = |header: &str, body: &[u8]| {
            verify(
                &[&key],
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                header,
                body,
                now,
                300,
            )
        };
        assert_eq!(
            verdict(&signed.signature, payload),
            Ok(key.version_id.clone())
        );
        assert_eq!(
            verdict(&signed.signature, b"tampered"),
            Err(VerifyFailure::NoMatchingSignature)
        );
        // The same bytes offered as an HMAC entry verify nothing.
        let as_v1 = signed.signature.replacen("v1a,", "v1,", 1);
        assert_eq!(
            verdict(&as_v1, payload),
            Err(VerifyFailure::NoMatchingSignature)
        );
    }

    #[test]
    fn hmac_and_ed25519_keys_sign_side_by_side() {
        let old = version("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let new = version("whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==");
        let signed = sign(&[&new, &old], "msg_1", 1_700_000_000, b"x");
        let entries: Vec<&str> = signed.signature.split(' ').collect();
        assert!(entries[0].starts_with("v1a,") && entries[1].starts_with("v1,"));
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        for only in [&old, &new] {
            let matched = verify(
                &[only],
                "msg_1",
                "1700000000",
                &signed.signature,
                b"x",
                now,
                300,
            );
            assert_eq!(matched, Ok(only.version_id.clone()));
        }
    }

    #[test]
    fn every_valid_secret_signs() {
        let old = version("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let new = version("7be555a9-be3b-4049-9361-664842821721");
        let signed = sign(&[&new, &old], "msg_1", 1_700_000_000, b"x");
        assert_eq!(signed.signature.split(' ').count(), 2);
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        for only in [&old, &new] {
            let matched = verify(
                &[only],
                "msg_1",
                "1700000000",
                &signed.signature,
                b"x",
                now,
                300,
            );
            assert_eq!(matched, Ok(only.version_id.clone()));
        }
    }
}
