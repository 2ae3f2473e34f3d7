//! Webhook signing secrets: generation from the OS CSPRNG, validation of caller-supplied values,
//! and a type that never prints its value. Three formats: `whsec` (an HMAC key), `uuid` (an HMAC
//! key some vendors show as a UUID) and `ed25519` (a Standard Webhooks asymmetric key pair,
//! whose public half is not a secret).

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

/// The `whsec_` prefix and byte range come from the Standard Webhooks specification.
pub const WHSEC_PREFIX: &str = "whsec_";
pub const MIN_SECRET_BYTES: usize = 24;
pub const MAX_SECRET_BYTES: usize = 64;
pub const DEFAULT_SECRET_BYTES: usize = 32;
/// Standard Webhooks' asymmetric key prefixes, as Svix's server writes them: the secret key is
/// the 32-byte Ed25519 seed followed by its 32-byte public key, the public key is those 32 bytes.
pub const WHSK_PREFIX: &str = "whsk_";
pub const WHPK_PREFIX: &str = "whpk_";
const ED25519_SEED_BYTES: usize = 32;
const ED25519_PUBLIC_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretFormat {
    Whsec,
    Uuid,
    Ed25519,
}

impl SecretFormat {
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        match raw {
            "whsec" => Ok(Self::Whsec),
            "uuid" => Ok(Self::Uuid),
            "ed25519" => Ok(Self::Ed25519),
            _ => Err(SecretError::UnknownFormat),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret_format must be \"whsec\", \"uuid\" or \"ed25519\"")]
    UnknownFormat,
    #[error("secret_bytes must be between {MIN_SECRET_BYTES} and {MAX_SECRET_BYTES}")]
    ByteCountOutOfRange,
    #[error("a whsec secret is \"whsec_\" followed by standard base64 of {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")]
    MalformedWhsec,
    #[error("a uuid secret must be a version 4 UUID in hyphenated form")]
    MalformedUuid,
    #[error("an ed25519 secret is \"whsk_\" followed by standard base64 of a 32-byte Ed25519 seed and its 32-byte public key")]
    MalformedWhsk,
    #[error("the operating system's random number generator failed")]
    Rng,
}

/// How to generate a secret: the format and, for `whsec`, how many random bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretSpec {
    format: SecretFormat,
    bytes: usize,
}

impl Default for SecretSpec {
    fn default() -> Self {
        Self {
            format: SecretFormat::Whsec,
            bytes: DEFAULT_SECRET_BYTES,
        }
    }
}

impl SecretSpec {
    pub fn new(format: SecretFormat, bytes: Option<usize>) -> Result<Self, SecretError> {
        let bytes = bytes.unwrap_or(DEFAULT_SECRET_BYTES);
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes) {
            return Err(SecretError::ByteCountOutOfRange);
        }
        Ok(Self { format, bytes })
    }

    pub fn format(&self) -> SecretFormat {
        self.format
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A webhook signing secret. `Debug` and `Display` show only a fingerprint; the value is read
/// through [`WebhookSecret::expose`], which callers use only to store it or return it once.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    value: Zeroizing<String>,
    format: SecretFormat,
}

impl WebhookSecret {
    pub fn generate(spec: SecretSpec) -> Result<Self, SecretError> {
        match spec.format {
            SecretFormat::Whsec => {
                let mut raw = Zeroizing::new(vec![0u8; spec.bytes]);
                getrandom::fill(&mut raw).map_err(|_| SecretError::Rng)?;
                let mut value = Zeroizing::new(String::with_capacity(6 + spec.bytes * 4 / 3 + 4));
                value.push_str(WHSEC_PREFIX);
                STANDARD.encode_string(&*raw, &mut value);
                Ok(Self {
                    value,
                    format: SecretFormat::Whsec,
                })
            }
            SecretFormat::Uuid => {
                let mut raw = [0u8; 16];
                getrandom::fill(&mut raw).map_err(|_| SecretError::Rng)?;
                let uuid = uuid::Builder::from_random_bytes(raw).into_uuid();
                raw.fill(0);
                Ok(Self {
                    value: Zeroizing::new(uuid.hyphenated().to_string()),
                    format: SecretFormat::Uuid,
                })
            }
            SecretFormat::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; ED25519_SEED_BYTES]);
                getrandom::fill(&mut *seed).map_err(|_| SecretError::Rng)?;
                let pair = Ed25519KeyPair::from_seed_unchecked(&*seed)
                    .map_err(|_| SecretError::MalformedWhsk)?;
                let mut raw = Zeroizing::new(Vec::with_capacity(64));
                raw.extend_from_slice(&*seed);
                raw.extend_from_slice(pair.public_key().as_ref());
                let mut value = Zeroizing::new(String::with_capacity(5 + 88));
                value.push_str(WHSK_PREFIX);
                STANDARD.encode_string(&*raw, &mut value);
                Ok(Self {
                    value,
                    format: SecretFormat::Ed25519,
                })
            }
        }
    }

    /// Validates a secret supplied by a caller (or read back from the vault) against the rules
    /// of its format. The format is told by the value itself.
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        if let Some(encoded) = raw.strip_prefix(WHSEC_PREFIX) {
            let decoded = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| SecretError::MalformedWhsec)?,
            );
            if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&decoded.len()) {
                return Err(SecretError::MalformedWhsec);
            }
            return Ok(Self {
                value: Zeroizing::new(raw.to_owned()),
                format: SecretFormat::Whsec,
            });
        }
        if let Some(encoded) = raw.strip_prefix(WHSK_PREFIX) {
            let decoded = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| SecretError::MalformedWhsk)?,
            );
            if decoded.len() != ED25519_SEED_BYTES + ED25519_PUBLIC_BYTES {
                return Err(SecretError::MalformedWhsk);
            }
            // The public half must be the seed's own, as Svix's server checks: a key pair whose
            // halves disagree would sign what its published key does not verify.
            let (seed, public) = decoded.split_at(ED25519_SEED_BYTES);
            Ed25519KeyPair::from_seed_and_public_key(seed, public)
                .map_err(|_| SecretError::MalformedWhsk)?;
            return Ok(Self {
                value: Zeroizing::new(raw.to_owned()),
                format: SecretFormat::Ed25519,
            });
        }
        let uuid = uuid::Uuid::try_parse(raw).map_err(|_| SecretError::MalformedUuid)?;
        // Only the canonical hyphenated lowercase form of a random (v4) UUID is accepted, so
        // the value stored is exactly the value shown and nothing guessable gets in.
        if uuid.get_version_num() != 4 || uuid.hyphenated().to_string() != raw {
            return Err(SecretError::MalformedUuid);
        }
        Ok(Self {
            value: Zeroizing::new(raw.to_owned()),
            format: SecretFormat::Uuid,
        })
    }

    pub fn format(&self) -> SecretFormat {
        self.format
    }

    /// The secret value. Call only to write it to the vault or into a response body.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The Ed25519 key pair of an `ed25519` secret, to sign with.
    pub fn signing_key(&self) -> Option<Ed25519KeyPair> {
        let decoded = self.whsk_bytes()?;
        let (seed, public) = decoded.split_at(ED25519_SEED_BYTES);
        Ed25519KeyPair::from_seed_and_public_key(seed, public).ok()
    }

    /// The public key of an `ed25519` secret; `None` for the HMAC formats, which have none.
    pub fn public_key(&self) -> Option<PublicKey> {
        let decoded = self.whsk_bytes()?;
        let public: [u8; ED25519_PUBLIC_BYTES] = decoded[ED25519_SEED_BYTES..].try_into().ok()?;
        Some(PublicKey(public))
    }

    fn whsk_bytes(&self) -> Option<Zeroizing<Vec<u8>>> {
        let encoded = self.value.strip_prefix(WHSK_PREFIX)?;
        let decoded = Zeroizing::new(STANDARD.decode(encoded).ok()?);
        (decoded.len() == ED25519_SEED_BYTES + ED25519_PUBLIC_BYTES).then_some(decoded)
    }

    /// A short, stable, non-reversible label: the format's prefix and 4 hex digits of SHA-256.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.value.as_bytes());
        let tail = format!("{:02x}{:02x}", digest[30], digest[31]);
        match self.format {
            SecretFormat::Whsec => format!("{WHSEC_PREFIX}…{tail}"),
            SecretFormat::Uuid => format!("uuid…{tail}"),
            SecretFormat::Ed25519 => format!("{WHSK_PREFIX}…{tail}"),
        }
    }
}

/// An Ed25519 public key. Not a secret: shown in full wherever its endpoint is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; ED25519_PUBLIC_BYTES]);

impl PublicKey {
    pub fn as_bytes(&self) -> &[u8; ED25519_PUBLIC_BYTES] {
        &self.0
    }

    /// The Standard Webhooks form: `whpk_` and standard base64.
    pub fn whpk(&self) -> String {
        format!("{WHPK_PREFIX}{}", STANDARD.encode(self.0))
    }

    /// The JWK `x` member (RFC 8037): unpadded base64url.
    pub fn jwk_x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret({})", self.fingerprint())
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

impl Serialize for WebhookSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Zeroizing::new(String::deserialize(deserializer)?);
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ten_thousand_whsec_secrets_are_distinct_and_well_formed() {
        for bytes in [24, 32, 64] {
            let spec = SecretSpec::new(SecretFormat::Whsec, Some(bytes)).unwrap();
            let mut seen = HashSet::new();
            for _ in 0..10_000 {
                let secret = WebhookSecret::generate(spec).unwrap();
                let value = secret.expose();
                let encoded = value.strip_prefix("whsec_").expect("whsec_ prefix");
                assert_eq!(STANDARD.decode(encoded).unwrap().len(), bytes);
                assert!(WebhookSecret::parse(value).is_ok());
                assert!(seen.insert(value.to_owned()), "duplicate secret generated");
            }
        }
    }

    #[test]
    fn uuid_secrets_are_v4_and_distinct() {
        let spec = SecretSpec::new(SecretFormat::Uuid, None).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..1_000 {
            let secret = WebhookSecret::generate(spec).unwrap();
            let uuid = uuid::Uuid::parse_str(secret.expose()).unwrap();
            assert_eq!(uuid.get_version_num(), 4);
            assert!(seen.insert(secret.expose().to_owned()));
        }
    }

    #[test]
    fn byte_count_outside_24_to_64_is_rejected() {
        assert_eq!(
            SecretSpec::new(SecretFormat::Whsec, Some(23)),
            Err(SecretError::ByteCountOutOfRange)
        );
        assert_eq!(
            SecretSpec::new(SecretFormat::Whsec, Some(65)),
            Err(SecretError::ByteCountOutOfRange)
        );
    }

    #[test]
    fn invalid_caller_secrets_are_rejected() {
        let too_short = format!("whsec_{}", STANDARD.encode([7u8; 23]));
        let too_long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        let url_safe = format!("whsec_{}", "-_".repeat(22));
        for bad in [
            "",
            "whsec_",
            "whsec_not base64!",
            too_short.as_str(),
            too_long.as_str(),
            url_safe.as_str(),
            "plain-text-secret",
            "7BE555A9-BE3B-4049-9361-664842821721",
            "7be555a9be3b40499361664842821721",
            "7be555a9-be3b-1049-9361-664842821721",
        ] {
            assert!(WebhookSecret::parse(bad).is_err(), "accepted {bad:?}");
        }
        let ok = format!("whsec_{}", STANDARD.encode([7u8; 24]));
        assert_eq!(
            WebhookSecret::parse(&ok).unwrap().format(),
            SecretFormat::Whsec
        );
        assert_eq!(
            WebhookSecret::parse("7be555a9-be3b-4049-9361-664842821721")
                .unwrap()
                .format(),
            SecretFormat::Uuid
        );
    }

    /// Svix's server test vector: this secret key and the public key it publishes for it.
    const SVIX_WHSK: &str = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
    const SVIX_WHPK: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";

    #[test]
    fn ed25519_keys_read_and_write_svix_format() {
        let secret = WebhookSecret::parse(SVIX_WHSK).unwrap();
        assert_eq!(secret.format(), SecretFormat::Ed25519);
        assert_eq!(secret.public_key().unwrap().whpk(), SVIX_WHPK);
        assert!(secret.signing_key().is_some());
        let generated =
            WebhookSecret::generate(SecretSpec::new(SecretFormat::Ed25519, None).unwrap()).unwrap();
        let reparsed = WebhookSecret::parse(generated.expose()).unwrap();
        assert_eq!(reparsed.public_key(), generated.public_key());
        assert_eq!(generated.expose().len(), WHSK_PREFIX.len() + 88);
        assert!(generated.fingerprint().starts_with("whsk_…"));
    }

    #[test]
    fn malformed_ed25519_keys_are_rejected() {
        // Svix's own "bad SK" case (truncated), a pair whose halves disagree, a bare seed, and a
        // public key offered as a secret.
        let mut mismatched = STANDARD.decode(&SVIX_WHSK[5..]).unwrap();
        mismatched[40] ^= 1;
        let mismatched = format!("whsk_{}", STANDARD.encode(mismatched));
        let seed_only = format!("whsk_{}", STANDARD.encode([9u8; 32]));
        for bad in [
            "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kv",
            mismatched.as_str(),
            seed_only.as_str(),
            SVIX_WHPK,
            "whsk_",
        ] {
            assert!(WebhookSecret::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn debug_and_display_show_only_a_fingerprint() {
        let secret = WebhookSecret::generate(SecretSpec::default()).unwrap();
        let shown = format!("{secret:?} {secret}");
        let body = secret.expose().strip_prefix("whsec_").unwrap();
        assert!(!shown.contains(body));
        assert!(shown.contains("whsec_…"));
        // "whsec_" + "…" + 4 hex digits
        assert_eq!(secret.fingerprint().chars().count(), 11);
    }
}
