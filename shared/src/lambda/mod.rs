//! The Lambda glue, on top of every other layer: the `serve!` entry point of the HTTP
//! functions, the handlers of the two event functions (the scheduled sweep and Secrets
//! Manager's rotation steps), and the JSON log format. Each invocation runs inside a tracing
//! span that carries its request id (or sweep run id), which every log line inherits.

pub mod logging;

use crate::vault::protocol::{run_step, RotationEvent};
use crate::vault::sweep::{sweep, SweepSettings, SweepSummary};
use crate::App;
use std::time::{Duration, Instant};
use tracing::Instrument;

#[doc(hidden)]
pub use {lambda_http as __lambda_http, tracing as __tracing};

/// Runs one HTTP route as a Lambda function: builds the app once, then serves requests.
/// A configuration problem is logged once, clearly, and fails the cold start.
#[macro_export]
macro_rules! serve {
    ($route:path) => {{
        $crate::lambda::logging::init();
        let app = match $crate::App::from_env().await {
            Ok(app) => app,
            Err(err) => {
                $crate::lambda::__tracing::error!(error = %err, "cannot start");
                return Err(err.into());
            }
        };
        let app = &app;
        $crate::lambda::__lambda_http::run($crate::lambda::__lambda_http::service_fn(
            move |req| $route(app, req),
        ))
        .await
    }};
}

/// Builds what an event function needs once, logging a configuration problem clearly.
pub async fn start<T>(
    build: impl std::future::Future<Output = Result<T, crate::ConfigError>>,
) -> Result<T, lambda_runtime::Error> {
    logging::init();
    build.await.map_err(|err| {
        tracing::error!(error = %err, "cannot start");
        err.into()
    })
}

/// The `scheduled-rotation` function's handler: one sweep per EventBridge event, stopping
/// before the invocation's deadline. The summary is written as one JSON line and returned.
pub async fn handle_sweep(
    app: &App,
    settings: &SweepSettings,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<SweepSummary, lambda_runtime::Error> {
    let run_id = event.context.request_id.clone();
    let deadline = instant_of(event.context.deadline);
    async {
        tracing::info!(
            deadline_ms = event.context.deadline,
            remaining_ms = deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64,
            "sweep starting"
        );
        let summary = sweep(
            &app.endpoints,
            app.audit.as_ref(),
            &run_id,
            deadline,
            settings,
        )
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "sweep could not list endpoints");
            err
        })?;
        crate::audit::write_line(&summary, false);
        Ok(summary)
    }
    .instrument(tracing::info_span!("sweep", run_id = %run_id))
    .await
}

/// The `secretsmanager-rotation` function's handler. A failed step is a failed invocation,
/// which is how Secrets Manager learns the rotation failed.
pub async fn handle_rotation_step(
    app: &App,
    event: lambda_runtime::LambdaEvent<RotationEvent>,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let (event, context) = (event.payload, event.context);
    let span = tracing::info_span!("rotation_step", request_id = %context.request_id, step = ?event.step, secret_id = %event.secret_id, token = %event.client_request_token);
    async {
        match run_step(
            &app.endpoints,
            app.audit.as_ref(),
            &event,
            &context.request_id,
        )
        .await
        {
            Ok(outcome) => {
                tracing::info!(outcome = ?outcome, "rotation step done");
                Ok(serde_json::json!({"step": event.step, "outcome": outcome}))
            }
            Err(err) => {
                tracing::error!(error = %err, "rotation step failed");
                Err(err.into())
            }
        }
    }
    .instrument(span)
    .await
}

/// The `Instant` of a deadline given in milliseconds since the epoch, as the Lambda context
/// gives it. `cargo lambda watch` passes the function's timeout there instead (600,000 for
/// ten minutes); no real deadline falls before 2001, so such a small value is read as time
/// left.
fn instant_of(deadline_ms: u64) -> Instant {
    const EPOCH_MS_2001: u64 = 978_307_200_000;
    if deadline_ms < EPOCH_MS_2001 {
        return Instant::now() + Duration::from_millis(deadline_ms);
    }
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_epoch_times_or_a_local_timeout() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let left = instant_of(now_ms + 60_000).saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(55) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        let past = instant_of(now_ms - 1_000).saturating_duration_since(Instant::now());
        assert_eq!(past, Duration::ZERO);
        let local = instant_of(600_000).saturating_duration_since(Instant::now());
        assert!(local > Duration::from_secs(595), "{local:?}");
    }
}
