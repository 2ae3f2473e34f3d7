//! Structured JSON logs on stdout, which Lambda ships to CloudWatch as they are. Each line
//! carries the fields of the span it was written in (`span`: the request id and route of an
//! HTTP invocation, the run id of a sweep), so no log call passes them by hand.

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber; the level comes from `RUST_LOG` (default `info`).
/// Calling it twice is harmless.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}
