use lambda_runtime::{service_fn, Error, LambdaEvent};
use webhook_secrets::sweep::{handle_event, SweepSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    webhook_secrets::logging::init();
    let started = async {
        Ok::<_, webhook_secrets::ConfigError>((
            webhook_secrets::App::from_env().await?,
            SweepSettings::from_env()?,
        ))
    };
    let (app, settings) = match started.await {
        Ok(started) => started,
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            return Err(err.into());
        }
    };
    let (app, settings) = (&app, &settings);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        handle_event(app, settings, event)
    }))
    .await
}
