//! Webhook signing secrets: generation from the OS CSPRNG, validation of caller-supplied values,
//! and a type that never prints its value.

use base64::engine::general_purpose::STANDARD;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretFormat {
    Whsec,
    Uuid,
}

impl SecretFormat {
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        match raw {
            "whsec" => Ok(Self::Whsec),
            "uuid" => Ok(Self::Uuid),
            _ => Err(SecretError::UnknownFormat),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret_format must be \"whsec\" or \"uuid\"")]
    UnknownFormat,
    #[error("secret_bytes must be between {MIN_SECRET_BYTES} and {MAX_SECRET_BYTES}")]
    ByteCountOutOfRange,
    #[error("a whsec secret is \"whsec_\" followed by standard base64 of {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")]
    MalformedWhsec,
    #[error("a uuid secret must be a version 4 UUID in hyphenated form")]
    MalformedUuid,
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

    /// A short, stable, non-reversible label: the format's prefix and 4 hex digits of SHA-256.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.value.as_bytes());
        let tail = format!("{:02x}{:02x}", digest[30], digest[31]);
        match self.format {
            SecretFormat::Whsec => format!("{WHSEC_PREFIX}…{tail}"),
            SecretFormat::Uuid => format!("uuid…{tail}"),
        }
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
