#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    webhook_secrets::serve!(webhook_secrets::compat::composio::rotate_subscription_secret)
}
