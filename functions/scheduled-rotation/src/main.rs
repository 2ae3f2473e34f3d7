use lambda_runtime::{service_fn, Error, LambdaEvent};
use webhook_secrets::lambda::{handle_sweep, start};
use webhook_secrets::vault::sweep::SweepSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (app, settings) = start(async {
        Ok((
            webhook_secrets::App::from_env().await?,
            SweepSettings::from_env()?,
        ))
    })
    .await?;
    let (app, settings) = (&app, &settings);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        handle_sweep(app, settings, event)
    }))
    .await
}
