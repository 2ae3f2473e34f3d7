//! Structured JSON logs on stdout, which Lambda ships to CloudWatch as they are.

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber; the level comes from `RUST_LOG` (default `info`).
/// Calling it twice is harmless.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .try_init();
}
