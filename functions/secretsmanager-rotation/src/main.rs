use lambda_runtime::{service_fn, Error, LambdaEvent};
use webhook_secrets::protocol::{handle_event, RotationEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    webhook_secrets::logging::init();
    let app = match webhook_secrets::App::from_env().await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            return Err(err.into());
        }
    };
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RotationEvent>| {
        handle_event(app, event)
    }))
    .await
}
