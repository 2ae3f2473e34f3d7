//! The Lambda glue, on top of every other layer: the entry points of the HTTP functions
//! (`run_http` with one of `routes`) and of the two event functions (`run_sweep` for the
//! scheduled sweep, `run_rotation` for Secrets Manager's rotation steps), and the JSON log
//! format. Each invocation runs inside a tracing span that carries its request id (or sweep
//! run id), which every log line inherits.

pub mod logging;

use crate::vault::protocol::{run_step, RotationEvent};
use crate::vault::sweep::{sweep, SweepSettings, SweepSummary};
use crate::App;
use lambda_http::{Body, Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tracing::Instrument;

pub use lambda_http::Error;

/// What an HTTP route returns, boxed: see [`run_http`].
pub type RouteFuture<'a> = Pin<Box<dyn Future<Output = Result<Response<Body>, Error>> + Send + 'a>>;

/// An HTTP route as a function binary runs it.
pub type HttpRoute = for<'a> fn(&'a App, Request) -> RouteFuture<'a>;

/// Runs one HTTP route as a Lambda function: builds the app once, then serves requests.
/// A configuration problem is logged once, clearly, and fails the cold start.
///
/// This is a plain, non-generic function, and each route reaches it through a boxed future,
/// so that the whole serving stack (the runtime, hyper, the SDK's futures, every route's state
/// machine) is compiled once, in this crate. A function's `main` that instantiated it (as an
/// `async` main or a macro does) compiled that stack again in every function crate: 20-40 s
/// each at the deploy profile, 18 times after any change in this crate.
pub fn run_http(route: HttpRoute) -> Result<(), Error> {
    runtime()?.block_on(async move {
        let app = start(App::from_env()).await?;
        let app = &app;
        lambda_http::run(lambda_http::service_fn(move |req| route(app, req))).await
    })
}

/// The `scheduled-rotation` function: one sweep per EventBridge event.
pub fn run_sweep() -> Result<(), Error> {
    runtime()?.block_on(async {
        let (app, settings) =
            start(async { Ok((App::from_env().await?, SweepSettings::from_env()?)) }).await?;
        let (app, settings) = (&app, &settings);
        lambda_runtime::run(lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
                handle_sweep(app, settings, event)
            },
        ))
        .await
    })
}

/// The `secretsmanager-rotation` function: one step of Secrets Manager's rotation protocol per
/// invocation.
pub fn run_rotation() -> Result<(), Error> {
    runtime()?.block_on(async {
        let app = start(App::from_env()).await?;
        let app = &app;
        lambda_runtime::run(lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<RotationEvent>| {
                handle_rotation_step(app, event)
            },
        ))
        .await
    })
}

/// The runtime `#[tokio::main]` builds.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Every HTTP route, boxed for [`run_http`]; each function's `main` names one.
pub mod routes {
    use super::RouteFuture;
    use crate::{api, compat, App};
    use lambda_http::Request;

    macro_rules! boxed {
        ($($name:ident => $route:path),* $(,)?) => {$(
            pub fn $name(app: &App, req: Request) -> RouteFuture<'_> {
                Box::pin($route(app, req))
            }
        )*};
    }

    boxed! {
        list_endpoints => api::list_endpoints,
        create_endpoint => api::create_endpoint,
        get_endpoint => api::get_endpoint,
        update_endpoint => api::update_endpoint,
        delete_endpoint => api::delete_endpoint,
        rotate_secret => api::rotate_secret,
        reveal_secret => api::reveal_secret,
        sign_message => api::sign_message,
        verify_message => api::verify_message,
        public_keys => api::public_keys,
        openformat_webhook_secret => compat::openformat::generate_webhook_secret,
        inklink_rotate_secret => compat::inklink::rotate_endpoint_secret,
        composio_rotate_secret => compat::composio::rotate_subscription_secret,
        fyatu_auth_token => compat::fyatu::issue_token,
        fyatu_regenerate_secret => compat::fyatu::regenerate_secret,
        featurebase_refresh_secret => compat::featurebase::refresh_webhook_secret,
    }
}

/// Builds what a function needs once, logging a configuration problem clearly.
async fn start<T>(build: impl Future<Output = Result<T, crate::ConfigError>>) -> Result<T, Error> {
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
