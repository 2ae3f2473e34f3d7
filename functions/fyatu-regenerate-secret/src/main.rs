#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    webhook_secrets::serve!(webhook_secrets::compat::fyatu::regenerate_secret)
}
