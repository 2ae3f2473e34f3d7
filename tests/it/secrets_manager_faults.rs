//! Secrets Manager failures the emulator never produces (throttling, outages, denied access,
//! hangs), injected by a small local HTTP server that answers every request the same way.
//! The client is the store's own SDK configuration, retries and timeouts included.

use integration_tests::{answer, assert_error, start_of_test_time, Call};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use webhook_secrets::domain::clock::ManualClock;
use webhook_secrets::domain::ids::VersionId;
use webhook_secrets::store::secrets_manager::{ClientSettings, SecretsManagerStore};
use webhook_secrets::store::{SecretName, SecretStore, StoreError};
use webhook_secrets::App;

#[derive(Clone, Copy)]
enum Fault {
    /// Answer with this status and AWS error type.
    Error(u16, &'static str),
    /// Accept the connection and never answer.
    Hang,
}

/// Starts the injector; returns its URL and a count of the requests it received.
async fn fault_server(fault: Fault) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut read = 0;
                // Read the head and the body the Content-Length announces.
                loop {
                    let Ok(n) = socket.read(&mut buf[read..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buf[..read]).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())
                                    .flatten()
                            })
                            .unwrap_or(0);
                        if read >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                match fault {
                    Fault::Hang => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Fault::Error(status, kind) => {
                        let body = format!(r#"{{"__type":"{kind}","message":"injected {kind}"}}"#);
                        let response = format!(
                            "HTTP/1.1 {status} Injected\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-errortype: {kind}\r\nx-amzn-requestid: injected\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                }
            });
        }
    });
    (url, requests)
}

fn settings() -> ClientSettings {
    ClientSettings {
        max_attempts: 3,
        attempt_timeout: Duration::from_millis(300),
        operation_timeout: Duration::from_secs(3),
    }
}

async fn store_against(fault: Fault) -> (Arc<dyn SecretStore>, Arc<AtomicUsize>) {
    let (url, requests) = fault_server(fault).await;
    let client = integration_tests::sdk_client(&url, settings()).await;
    (Arc::new(SecretsManagerStore::new(client)), requests)
}

fn name() -> SecretName {
    SecretName::parse("faults/acme/ep").unwrap()
}

/// A rotate request through the whole app, with a well-formed key, against the faulty store.
async fn rotate_through_app(store: Arc<dyn SecretStore>) -> integration_tests::Answer {
    let clock = Arc::new(ManualClock::new(start_of_test_time()));
    let app = App::new(
        store,
        "faults",
        webhook_secrets::vault::VaultLayout::PerEndpoint,
        clock,
        chrono::Duration::seconds(60),
    );
    let key = "ak_0123456789abcdef0123.c2VjcmV0LXBhcnQtb2YtdGhlLWtleQ";
    answer(
        webhook_secrets::api::rotate_secret(&app, Call::post("/x").bearer(key).id("ep").build())
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn throttling_is_retried_then_reported_as_throttled() {
    let (store, requests) = store_against(Fault::Error(400, "ThrottlingException")).await;
    let read = store.read_current(&name()).await;
    assert!(matches!(read, Err(StoreError::Throttled)), "{read:?}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        3,
        "standard retry makes 3 attempts"
    );

    let (store, _) = store_against(Fault::Error(400, "ThrottlingException")).await;
    let answer = rotate_through_app(store).await;
    assert_error(&answer, 429, "throttled");
    assert_eq!(answer.headers.get("retry-after").unwrap(), "1");
}

#[tokio::test]
async fn outages_are_retried_then_reported_unavailable() {
    let (store, requests) = store_against(Fault::Error(500, "InternalServiceError")).await;
    let swap = store
        .replace_current(
            &name(),
            &VersionId::generate(),
            &VersionId::generate(),
            &webhook_secrets::store::StoredValue::new("{}".into()).unwrap(),
        )
        .await;
    assert!(matches!(swap, Err(StoreError::Unavailable(_))), "{swap:?}");
    assert!(requests.load(Ordering::SeqCst) >= 3);

    let (store, _) = store_against(Fault::Error(503, "ServiceUnavailable")).await;
    let answer = rotate_through_app(store).await;
    assert_error(&answer, 503, "unavailable");
    assert!(
        !answer.body.to_string().contains("injected"),
        "internal cause leaked: {}",
        answer.body
    );
}

#[tokio::test]
async fn denied_access_is_an_internal_error_without_details() {
    let (store, requests) = store_against(Fault::Error(400, "AccessDeniedException")).await;
    let read = store.read_current(&name()).await;
    assert!(matches!(read, Err(StoreError::AccessDenied(_))), "{read:?}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "access denied is not retried"
    );

    let (store, _) = store_against(Fault::Error(400, "AccessDeniedException")).await;
    let answer = rotate_through_app(store).await;
    assert_error(&answer, 500, "internal");
    assert!(
        !answer.body.to_string().contains("AccessDenied"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn a_hung_service_times_out_within_the_operation_timeout() {
    let (store, requests) = store_against(Fault::Hang).await;
    let started = Instant::now();
    let read = store.read_current(&name()).await;
    let took = started.elapsed();
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        requests.load(Ordering::SeqCst) >= 2,
        "timed-out attempts are retried"
    );
}

#[tokio::test]
async fn missing_secrets_map_to_not_found() {
    let (store, _) = store_against(Fault::Error(400, "ResourceNotFoundException")).await;
    assert!(matches!(
        store.read_current(&name()).await,
        Err(StoreError::NotFound)
    ));
    let (store, _) = store_against(Fault::Error(400, "ResourceExistsException")).await;
    let create = store
        .create(
            &name(),
            &VersionId::generate(),
            &webhook_secrets::store::StoredValue::new("{}".into()).unwrap(),
            &[],
        )
        .await;
    assert!(
        matches!(create, Err(StoreError::AlreadyExists)),
        "{create:?}"
    );
}
