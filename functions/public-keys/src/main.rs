#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    webhook_secrets::serve!(webhook_secrets::api::public_keys)
}
