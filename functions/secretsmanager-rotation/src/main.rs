use lambda_runtime::{service_fn, Error, LambdaEvent};
use webhook_secrets::lambda::{handle_rotation_step, start};
use webhook_secrets::vault::protocol::RotationEvent;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = start(webhook_secrets::App::from_env()).await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RotationEvent>| {
        handle_rotation_step(app, event)
    }))
    .await
}
