//! The one vocabulary of errors the outside world sees. Every failure, whichever layer it
//! comes from, is classified into one [`ErrorCode`]; the native API answers its status and
//! name, the seed contracts and the sweep map it with exhaustive `match`es, so a new code is a
//! compile error wherever it is not handled.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    /// An access-token exchange with a wrong key id or secret (seed 003).
    InvalidCredentials,
    /// An access token past its expiry (seed 003).
    TokenExpired,
    Forbidden,
    /// An access token without the scope the route needs (seed 003).
    InsufficientScope,
    NotFound,
    AlreadyExists,
    Conflict,
    TooManyValidSecrets,
    TooLarge,
    IdempotencyKeyReused,
    Throttled,
    VersionQuotaExceeded,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The native API's name for it (`openapi.yaml`, the audit records' `outcome`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TokenExpired => "token_expired",
            Self::Forbidden => "forbidden",
            Self::InsufficientScope => "insufficient_scope",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Conflict => "conflict",
            Self::TooManyValidSecrets => "too_many_valid_secrets",
            Self::TooLarge => "too_large",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::Throttled => "throttled",
            Self::VersionQuotaExceeded => "version_quota_exceeded",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The native API's HTTP status for it: the one table every route uses.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Unauthorized | Self::InvalidCredentials | Self::TokenExpired => 401,
            Self::Forbidden | Self::InsufficientScope => 403,
            Self::NotFound => 404,
            Self::AlreadyExists | Self::Conflict | Self::TooManyValidSecrets => 409,
            Self::TooLarge => 413,
            Self::IdempotencyKeyReused => 422,
            Self::Throttled | Self::VersionQuotaExceeded => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
