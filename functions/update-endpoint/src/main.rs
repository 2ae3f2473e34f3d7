fn main() -> Result<(), webhook_secrets::lambda::Error> {
    webhook_secrets::lambda::run_http(webhook_secrets::lambda::routes::update_endpoint)
}
