//! One behaviour suite for the storage port, run against the embedded store and against
//! Secrets Manager (the real SDK talking to a local moto server).

use integration_tests::{on_every_backend, start_of_test_time, store, Backend};
use std::collections::HashSet;
use std::sync::Arc;
use webhook_secrets::domain::clock::ManualClock;
use webhook_secrets::domain::ids::VersionId;
use webhook_secrets::store::{
    ListFilter, SecretName, SecretStore, StoreError, StoredValue, MAX_VALUE_BYTES, VERSIONS_PER_DAY,
};

async fn setup(backend: Backend) -> (Arc<dyn SecretStore>, String) {
    store(backend, Arc::new(ManualClock::new(start_of_test_time()))).await
}

fn name(prefix: &str, rest: &str) -> SecretName {
    SecretName::parse(&format!("{prefix}/{rest}")).unwrap()
}

fn value(text: &str) -> StoredValue {
    StoredValue::new(text.to_owned()).unwrap()
}

async fn create_then_read_current(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let secret = name(&prefix, "acme/ep1");
    let token = VersionId::generate();
    store
        .create(&secret, &token, &value("one"), &[])
        .await
        .unwrap();
    let current = store.read_current(&secret).await.unwrap();
    assert_eq!(current.version_id, token);
    assert_eq!(current.value.expose(), "one");
    let stages = store.stages(&secret).await.unwrap();
    assert_eq!(stages.current, Some(token));
    assert_eq!(stages.pending, None);
}

async fn create_is_idempotent_per_token(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let secret = name(&prefix, "acme/ep1");
    let token = VersionId::generate();
    store
        .create(&secret, &token, &value("one"), &[])
        .await
        .unwrap();
    // The same token and value: the same create, retried.
    store
        .create(&secret, &token, &value("one"), &[])
        .await
        .unwrap();
    // Another create of the same name is refused, whatever its value.
    let other = store
        .create(&secret, &VersionId::generate(), &value("one"), &[])
        .await;
    assert!(matches!(other, Err(StoreError::AlreadyExists)), "{other:?}");
    let changed = store.create(&secret, &token, &value("two"), &[]).await;
    assert!(
        matches!(changed, Err(StoreError::AlreadyExists)),
        "{changed:?}"
    );
    assert_eq!(
        store.read_current(&secret).await.unwrap().value.expose(),
        "one"
    );
    assert_eq!(store.stages(&secret).await.unwrap().version_count, 1);
}

async fn missing_secrets_are_not_found(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let missing = name(&prefix, "acme/none");
    assert!(matches!(
        store.read_current(&missing).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.read_version(&missing, &VersionId::generate()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.stages(&missing).await,
        Err(StoreError::NotFound)
    ));
    let swap = store
        .replace_current(
            &missing,
            &VersionId::generate(),
            &VersionId::generate(),
            &value("x"),
        )
        .await;
    assert!(matches!(swap, Err(StoreError::NotFound)), "{swap:?}");
}

async fn replace_swaps_only_from_the_version_read(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let secret = name(&prefix, "acme/ep1");
    let v1 = VersionId::generate();
    store
        .create(&secret, &v1, &value("one"), &[])
        .await
        .unwrap();
    let v2 = VersionId::generate();
    store
        .replace_current(&secret, &v1, &v2, &value("two"))
        .await
        .unwrap();
    let stages = store.stages(&secret).await.unwrap();
    assert_eq!(stages.current.as_ref(), Some(&v2));
    assert_eq!(stages.previous.as_ref(), Some(&v1));
    assert_eq!(stages.pending, None);

    // A writer that read v1 has lost: its value never becomes current and is not left pending.
    let stale = VersionId::generate();
    let lost = store
        .replace_current(&secret, &v1, &stale, &value("stale"))
        .await;
    assert!(matches!(lost, Err(StoreError::Conflict)), "{lost:?}");
    let current = store.read_current(&secret).await.unwrap();
    assert_eq!(
        (current.version_id, current.value.expose()),
        (v2.clone(), "two")
    );
    let stages = store.stages(&secret).await.unwrap();
    assert_eq!(stages.pending, None);
    assert_eq!(stages.current.as_ref(), Some(&v2));

    // Older versions stay readable by id.
    assert_eq!(
        store
            .read_version(&secret, &v1)
            .await
            .unwrap()
            .value
            .expose(),
        "one"
    );
}

async fn replace_is_idempotent_per_token(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let secret = name(&prefix, "acme/ep1");
    let v1 = VersionId::generate();
    store
        .create(&secret, &v1, &value("one"), &[])
        .await
        .unwrap();
    let v2 = VersionId::generate();
    store
        .replace_current(&secret, &v1, &v2, &value("two"))
        .await
        .unwrap();
    let versions = store.stages(&secret).await.unwrap().version_count;
    // The same swap retried (its response was lost): success, and no new version.
    store
        .replace_current(&secret, &v1, &v2, &value("two"))
        .await
        .unwrap();
    let stages = store.stages(&secret).await.unwrap();
    assert_eq!(stages.current.as_ref(), Some(&v2));
    assert_eq!(stages.version_count, versions);
    assert_eq!(stages.pending, None);
}

async fn concurrent_replaces_have_one_winner(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let secret = name(&prefix, "acme/ep1");
    let v1 = VersionId::generate();
    store
        .create(&secret, &v1, &value("one"), &[])
        .await
        .unwrap();
    let attempts = (0..8).map(|i| {
        let (store, secret, v1) = (store.clone(), secret.clone(), v1.clone());
        tokio::spawn(async move {
            let token = VersionId::generate();
            let outcome = store
                .replace_current(&secret, &v1, &token, &value(&format!("writer-{i}")))
                .await;
            (token, outcome)
        })
    });
    let mut winners = Vec::new();
    for attempt in futures::future::join_all(attempts).await {
        let (token, outcome) = attempt.unwrap();
        match outcome {
            Ok(()) => winners.push(token),
            Err(StoreError::Conflict) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one writer wins a swap from the same version"
    );
    let stages = store.stages(&secret).await.unwrap();
    assert_eq!(stages.current.as_ref(), Some(&winners[0]));
    assert_eq!(stages.pending, None, "no AWSPENDING is left dangling");
}

async fn delete_removes_every_version(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let secret = name(&prefix, "acme/ep1");
    let v1 = VersionId::generate();
    store
        .create(&secret, &v1, &value("one"), &[])
        .await
        .unwrap();
    store.delete(&secret).await.unwrap();
    assert!(matches!(
        store.read_current(&secret).await,
        Err(StoreError::NotFound)
    ));
    // Deleting again (a retried delete) succeeds and changes nothing.
    store.delete(&secret).await.unwrap();
    assert!(matches!(
        store.read_version(&secret, &v1).await,
        Err(StoreError::NotFound)
    ));
}

async fn list_pages_through_one_prefix_only(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let mut expected = HashSet::new();
    for i in 0..5 {
        let secret = name(&prefix, &format!("acme/ep{i}"));
        store
            .create(&secret, &VersionId::generate(), &value("v"), &[])
            .await
            .unwrap();
        expected.insert(secret.to_string());
    }
    for other in ["acme2/ep0", "other/ep0"] {
        store
            .create(
                &name(&prefix, other),
                &VersionId::generate(),
                &value("v"),
                &[],
            )
            .await
            .unwrap();
    }
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(
                ListFilter::prefix(&format!("{prefix}/acme/")),
                cursor.as_deref(),
                2,
            )
            .await
            .unwrap();
        pages += 1;
        assert!(page.secrets.len() <= 2);
        for name in page.names() {
            assert!(seen.insert(name.to_string()), "listed twice: {name}");
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, expected);
    assert!(pages >= 3);
    let bad = store
        .list(
            ListFilter::prefix(&format!("{prefix}/acme/")),
            Some("%%%"),
            2,
        )
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidCursor)), "{bad:?}");
}

/// Everything the scheduler decides from comes with the listing: tags, and the version ids
/// behind each label.
async fn listings_carry_tags_and_labels_and_filter_by_tag(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let tagged = name(&prefix, "acme/tagged");
    let plain = name(&prefix, "acme/plain");
    let first = VersionId::generate();
    let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    store
        .create(
            &tagged,
            &first,
            &value("v1"),
            &[tag("period", "30"), tag("grace", "60")],
        )
        .await
        .unwrap();
    store
        .create(&plain, &VersionId::generate(), &value("v"), &[])
        .await
        .unwrap();
    let second = VersionId::generate();
    store
        .replace_current(&tagged, &first, &second, &value("v2"))
        .await
        .unwrap();
    let filter = ListFilter {
        prefix: &format!("{prefix}/acme/"),
        tag_key: Some("period"),
    };
    let page = store.list(filter, None, 100).await.unwrap();
    assert_eq!(page.names().collect::<Vec<_>>(), vec![&tagged]);
    let listed = &page.secrets[0];
    assert_eq!(listed.tags.get("period").map(String::as_str), Some("30"));
    assert_eq!(listed.stages.current.as_ref(), Some(&second));
    assert_eq!(listed.stages.previous.as_ref(), Some(&first));
    assert_eq!(listed.stages.pending, None);
    assert!(listed.stages.last_changed.is_some());

    store
        .set_tags(&tagged, &[tag("period", "7")], &["grace".to_owned()])
        .await
        .unwrap();
    store
        .set_tags(&plain, &[tag("period", "1")], &[])
        .await
        .unwrap();
    let page = store.list(filter, None, 100).await.unwrap();
    assert_eq!(page.secrets.len(), 2);
    let tagged_now = page.secrets.iter().find(|s| s.name == tagged).unwrap();
    assert_eq!(
        tagged_now.tags.iter().collect::<Vec<_>>(),
        vec![(&"period".to_owned(), &"7".to_owned())]
    );
    assert!(matches!(
        store
            .set_tags(&name(&prefix, "acme/missing"), &[tag("a", "b")], &[])
            .await,
        Err(StoreError::NotFound)
    ));
}

/// Secrets Manager's rotation protocol in store terms: stage pending, promote with a
/// compare-and-swap, and every step safe to repeat.
async fn pending_versions_promote_once_and_never_dangle(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let secret = name(&prefix, "acme/pending");
    let first = VersionId::generate();
    store
        .create(&secret, &first, &value("v1"), &[])
        .await
        .unwrap();
    let token = VersionId::generate();
    store
        .put_pending(&secret, &token, &value("v2"))
        .await
        .unwrap();
    store
        .put_pending(&secret, &token, &value("v2"))
        .await
        .unwrap();
    assert!(matches!(
        store.put_pending(&secret, &token, &value("other")).await,
        Err(StoreError::VersionExists)
    ));
    let stages = store.stages(&secret).await.unwrap();
    assert_eq!(stages.current.as_ref(), Some(&first));
    assert_eq!(stages.pending.as_ref(), Some(&token));
    assert_eq!(
        store.read_current(&secret).await.unwrap().value,
        value("v1")
    );

    // Promoting from a version that is not current loses, and changes nothing.
    let stale = VersionId::generate();
    assert!(matches!(
        store.promote(&secret, &token, &stale).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.promote(&secret, &VersionId::generate(), &first).await,
        Err(StoreError::NotFound)
    ));
    store.promote(&secret, &token, &first).await.unwrap();
    store.promote(&secret, &token, &first).await.unwrap();
    let stages = store.stages(&secret).await.unwrap();
    assert_eq!(stages.current.as_ref(), Some(&token));
    assert_eq!(stages.previous.as_ref(), Some(&first));
    assert_eq!(stages.pending, None);
    assert_eq!(
        store.read_current(&secret).await.unwrap().value,
        value("v2")
    );

    // A pending version abandoned mid-rotation is cleared; clearing twice is harmless.
    let abandoned = VersionId::generate();
    store
        .put_pending(&secret, &abandoned, &value("v3"))
        .await
        .unwrap();
    store.remove_pending(&secret, &abandoned).await.unwrap();
    store.remove_pending(&secret, &abandoned).await.unwrap();
    let stages = store.stages(&secret).await.unwrap();
    assert_eq!(stages.pending, None);
    assert_eq!(stages.current.as_ref(), Some(&token));
}

/// Secrets Manager keeps every version less than a day old, so a secret takes at most
/// `VERSIONS_PER_DAY` new versions a day; the next write is refused and nothing changes.
/// (On Secrets Manager the suite runs behind the strict proxy that enforces this on moto.)
async fn versions_past_the_daily_quota_are_refused(backend: Backend) {
    let (store, prefix) = setup(backend).await;
    let secret = name(&prefix, "acme/busy");
    let mut current = VersionId::generate();
    store
        .create(&secret, &current, &value("v0"), &[])
        .await
        .unwrap();
    for i in 1..VERSIONS_PER_DAY {
        let next = VersionId::generate();
        store
            .replace_current(&secret, &current, &next, &value(&format!("v{i}")))
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
        current = next;
    }
    let refused = store
        .replace_current(&secret, &current, &VersionId::generate(), &value("over"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::VersionQuota)),
        "{refused:?}"
    );
    let pending = store
        .put_pending(&secret, &VersionId::generate(), &value("over"))
        .await;
    assert!(
        matches!(pending, Err(StoreError::VersionQuota)),
        "{pending:?}"
    );
    let stored = store.read_current(&secret).await.unwrap();
    assert_eq!(stored.version_id, current);
    assert_eq!(stored.value.expose(), format!("v{}", VERSIONS_PER_DAY - 1));
    // Another secret is not affected.
    let other = name(&prefix, "acme/quiet");
    store
        .create(&other, &VersionId::generate(), &value("q"), &[])
        .await
        .unwrap();
}

on_every_backend!(
    versions_past_the_daily_quota_are_refused,
    listings_carry_tags_and_labels_and_filter_by_tag,
    pending_versions_promote_once_and_never_dangle,
    create_then_read_current,
    create_is_idempotent_per_token,
    missing_secrets_are_not_found,
    replace_swaps_only_from_the_version_read,
    replace_is_idempotent_per_token,
    concurrent_replaces_have_one_winner,
    delete_removes_every_version,
    list_pages_through_one_prefix_only,
);

#[test]
fn the_vault_enforces_aws_limits_itself() {
    assert!(StoredValue::new("x".repeat(MAX_VALUE_BYTES)).is_ok());
    assert!(matches!(
        StoredValue::new("x".repeat(MAX_VALUE_BYTES + 1)),
        Err(StoreError::TooLarge(n)) if n == MAX_VALUE_BYTES + 1
    ));
    assert!(SecretName::parse(&"a".repeat(512)).is_ok());
    for bad in ["", "has space", "ümlaut", "a#b", &"a".repeat(513)] {
        assert!(SecretName::parse(bad).is_err(), "{bad:?}");
    }
    assert!(SecretName::parse("prefix/acme/order-events").is_ok());
}

#[test]
fn stored_values_never_print() {
    let stored = StoredValue::new("whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0".into()).unwrap();
    assert!(!format!("{stored:?}").contains("whsec_"));
}

/// Under `cargo lambda watch` every function is its own process with its own connection to
/// the database file. Eight connections race one swap: exactly one wins, none corrupts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_swaps_are_atomic_across_connections() {
    use webhook_secrets::store::embedded::EmbeddedStore;
    let path = integration_tests::temp_db(&uuid::Uuid::new_v4().simple().to_string());
    let clock = Arc::new(ManualClock::new(start_of_test_time()));
    let open =
        || -> Arc<dyn SecretStore> { Arc::new(EmbeddedStore::open(&path, clock.clone()).unwrap()) };
    let secret = name("p", "acme/ep");
    let v1 = VersionId::generate();
    open()
        .create(&secret, &v1, &value("one"), &[])
        .await
        .unwrap();
    let racers = (0..8).map(|i| {
        let (store, secret, v1) = (open(), secret.clone(), v1.clone());
        tokio::spawn(async move {
            store
                .replace_current(
                    &secret,
                    &v1,
                    &VersionId::generate(),
                    &value(&format!("racer-{i}")),
                )
                .await
        })
    });
    let outcomes: Vec<_> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let wins = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(wins, 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Ok(()) | Err(StoreError::Conflict))));
    let stages = open().stages(&secret).await.unwrap();
    assert_eq!(stages.version_count, 2);
    assert_eq!(stages.previous, Some(v1));
}

/// The KMS key and replica region of the deployment go on every secret the store creates, and
/// a delete takes the replica away first (Secrets Manager refuses to delete a primary that
/// still has replicas).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_creates_secrets_under_the_placement() {
    use webhook_secrets::store::secrets_manager::{
        ClientSettings, ReplicaRegion, SecretPlacement, SecretsManagerStore,
    };
    integration_tests::require_emulator();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let client = integration_tests::sdk_client(&endpoint, ClientSettings::default()).await;
    let store = SecretsManagerStore::new(client.clone()).with_placement(SecretPlacement {
        kms_key_id: Some("alias/webhook-secrets-test".into()),
        replica: Some(ReplicaRegion {
            region: "eu-west-1".into(),
            kms_key_id: None,
        }),
    });
    let (_, prefix) = setup(Backend::SecretsManager).await;
    let secret = name(&prefix, "acme/placed");
    store
        .create(&secret, &VersionId::generate(), &value("v"), &[])
        .await
        .unwrap();
    let described = client
        .describe_secret()
        .secret_id(secret.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(described.kms_key_id(), Some("alias/webhook-secrets-test"));
    let regions: Vec<_> = described
        .replication_status()
        .iter()
        .filter_map(|r| r.region())
        .collect();
    assert_eq!(regions, ["eu-west-1"]);
    store.delete(&secret).await.unwrap();
    assert!(matches!(
        store.read_current(&secret).await,
        Err(StoreError::NotFound)
    ));
}
