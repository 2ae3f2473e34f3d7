fn main() -> Result<(), webhook_secrets::lambda::Error> {
    webhook_secrets::lambda::run_sweep()
}
