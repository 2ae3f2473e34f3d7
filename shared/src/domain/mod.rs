//! The bottom layer: pure types and rules, with no I/O. Ids, secrets, endpoint records,
//! signatures, idempotency fingerprints, the rotation rule, who may write, and the error codes
//! the outside world sees. Every other layer builds on these; these import nothing above.

pub mod access;
pub mod clock;
pub mod endpoint;
pub mod error_code;
pub mod idempotency;
pub mod ids;
pub mod rotation;
pub mod secret;
pub mod signature;

/// Lower-case hex of `bytes`: the one encoder for digests and random ids.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Locks `mutex`, going on with the data if a panicking thread poisoned it: every mutex here
/// guards a cache or a counter that is valid whatever step a panic interrupted.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
