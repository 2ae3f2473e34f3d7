//! The floor of a function that reads one secret: the Secrets Manager client is built once at
//! start (standard AWS settings), then each event is one GetSecretValue of the secret named by
//! `BENCH_SECRET_ID`, answered as JSON. No authentication, no parsing of the secret.

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::Client;
use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let secret_id = std::env::var("BENCH_SECRET_ID").map_err(|_| "set BENCH_SECRET_ID")?;
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = Client::new(&config);
    let (client, secret_id) = (&client, secret_id.as_str());
    lambda_http::run(service_fn(move |_: Request| async move {
        let secret = client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await?;
        let body = format!(
            r#"{{"name":{:?},"version_id":{:?},"bytes":{}}}"#,
            secret.name().unwrap_or_default(),
            secret.version_id().unwrap_or_default(),
            secret.secret_string().map_or(0, str::len),
        );
        Ok::<_, Error>(
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from(body))?,
        )
    }))
    .await
}
