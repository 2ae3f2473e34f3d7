fn main() -> Result<(), webhook_secrets::lambda::Error> {
    webhook_secrets::lambda::run_http(webhook_secrets::lambda::routes::openformat_webhook_secret)
}
