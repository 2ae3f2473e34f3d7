//! Webhook signing secrets: generation, the vault on AWS Secrets Manager (or an embedded
//! SQLite twin), API keys, and the native HTTP routes that every Lambda function serves.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod endpoint;
pub mod faces;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod logging;
pub mod protocol;
pub mod routes;
pub mod schedule;
pub mod secret;
pub mod signature;
pub mod store;
pub mod sweep;
pub mod tokens;
pub mod vault;

pub use config::{App, Config, ConfigError};
#[doc(hidden)]
pub use {lambda_http as __lambda_http, tracing as __tracing};

/// Runs one native route as a Lambda function: builds the app once, then serves requests.
/// A configuration problem is logged once, clearly, and fails the cold start.
#[macro_export]
macro_rules! serve {
    ($route:path) => {{
        $crate::logging::init();
        let app = match $crate::App::from_env().await {
            Ok(app) => app,
            Err(err) => {
                $crate::__tracing::error!(error = %err, "cannot start");
                return Err(err.into());
            }
        };
        let app = &app;
        $crate::__lambda_http::run($crate::__lambda_http::service_fn(move |req| $route(app, req))).await
    }};
}
