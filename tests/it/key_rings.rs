//! API keys in key rings (`auth::keys`), on both stores: many keys per secret, a chain that
//! grows past full rings, concurrent mints that all land, revocation, and records kept one per
//! secret from before key rings, still read and then moved into rings.

use integration_tests::{invoke, on_both_stores, Backend, Call, TestApp};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use webhook_secrets::auth::keys::{RING_BASES, RING_BYTES};
use webhook_secrets::auth::Role;
use webhook_secrets::domain::ids::{TenantId, VersionId};
use webhook_secrets::store::SecretName;

/// Every secret under the API-key folder.
async fn key_secrets(app: &TestApp) -> Vec<SecretName> {
    app.secrets_under("_api-keys/").await
}

/// Whether `key` authenticates: a listing of its tenant's endpoints answers 200.
async fn works(app: &TestApp, key: &str) -> bool {
    let answer = invoke!(list_endpoints, app, Call::get("/x").bearer(key));
    answer.status == 200
}

/// 120 keys minted by two operators at once all land, in far fewer secrets than keys, and
/// every one authenticates, lists, and revokes.
async fn keys_share_rings_and_concurrent_mints_all_land(backend: Backend) {
    let app = Arc::new(TestApp::new(backend).await);
    let mint = |app: Arc<TestApp>, from: usize| async move {
        let mut keys = Vec::new();
        for i in from..from + 60 {
            keys.push(app.mint(&format!("t{:02}", i % 40), Role::Owner).await);
        }
        keys
    };
    let (a, b) = tokio::join!(
        tokio::spawn(mint(app.clone(), 0)),
        tokio::spawn(mint(app.clone(), 60))
    );
    let minted: Vec<String> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    // The three keys `TestApp` mints for acme, and these.
    let listed = app.app.auth.keys().list(None).await.unwrap();
    assert_eq!(listed.len(), 123);
    let secrets = key_secrets(&app).await;
    assert!(
        secrets.len() <= RING_BASES as usize,
        "{} secrets for 123 keys",
        secrets.len()
    );
    for key in &minted {
        assert!(works(&app, key).await, "{key}");
    }
    let tenant = TenantId::parse("t07").unwrap();
    let of_tenant = app.app.auth.keys().list(Some(&tenant)).await.unwrap();
    assert_eq!(of_tenant.len(), 3);
    let revoked = app
        .app
        .auth
        .keys()
        .revoke(&of_tenant[0].key_id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    let again = app.app.auth.keys().get(&of_tenant[0].key_id).await.unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    assert!(app
        .app
        .auth
        .keys()
        .get(&of_tenant[1].key_id)
        .await
        .unwrap()
        .revoked_at
        .is_none());
}

/// With every first ring full, a new key goes to the next ring of its chain, and is found,
/// listed and revoked there.
async fn a_full_ring_sends_keys_down_the_chain(backend: Backend) {
    let app = TestApp::new(backend).await;
    // Fill every first ring past its size with records of no key anyone holds.
    for number in 0..RING_BASES {
        let name = SecretName::parse(&format!("{}/_api-keys/_ring/{number}", app.prefix)).unwrap();
        let mut keys = serde_json::Map::new();
        for i in 0.. {
            let id = format!("ak_{number:04x}{i:016x}");
            keys.insert(
                id.clone(),
                json!({"key_id": id, "tenant": "filler", "role": "member",
                       "secret_sha256": "0".repeat(64), "created_at": "2026-01-01T00:00:00Z",
                       "revoked_at": null}),
            );
            if serde_json::to_vec(&keys).unwrap().len() > RING_BYTES {
                break;
            }
        }
        let value = json!({ "keys": keys }).to_string();
        let value = webhook_secrets::store::StoredValue::new(value).unwrap();
        match app.store.read_current(&name).await {
            Ok(current) => app
                .store
                .replace_current(&name, &current.version_id, &VersionId::generate(), &value)
                .await
                .unwrap(),
            Err(_) => app
                .store
                .create(&name, &VersionId::generate(), &value, &[])
                .await
                .unwrap(),
        }
    }
    let key = app.mint("chained", Role::Owner).await;
    let beyond: BTreeSet<String> = key_secrets(&app)
        .await
        .into_iter()
        .map(|name| name.as_str().rsplit('/').next().unwrap().to_owned())
        .filter(|n| n.parse::<u64>().is_ok_and(|n| n >= RING_BASES))
        .collect();
    assert_eq!(beyond.len(), 1, "one ring past the first: {beyond:?}");
    assert!(works(&app, &key).await);
    let tenant = TenantId::parse("chained").unwrap();
    let listed = app.app.auth.keys().list(Some(&tenant)).await.unwrap();
    assert_eq!(listed.len(), 1);
    app.app.auth.keys().revoke(&listed[0].key_id).await.unwrap();
    app.clock.advance(chrono::Duration::seconds(61));
    assert!(!works(&app, &key).await, "revoked down the chain");
}

/// A record kept in a secret of its own (how keys were stored before key rings) still
/// authenticates; moving it into its ring deletes that secret, and it still authenticates.
async fn keys_stored_alone_are_read_and_moved_into_rings(backend: Backend) {
    let app = TestApp::new(backend).await;
    let key = webhook_secrets::auth::ApiKey::generate().unwrap();
    let whole = key.expose().to_string();
    let secret = whole.split_once('.').unwrap().1;
    let sha = webhook_secrets::domain::hex(&<sha2::Sha256 as sha2::Digest>::digest(secret));
    let alone = SecretName::parse(&format!("{}/_api-keys/{}", app.prefix, key.key_id())).unwrap();
    let record = json!({"key_id": key.key_id().as_str(), "tenant": "legacy", "role": "owner",
                        "secret_sha256": sha, "created_at": "2026-01-01T00:00:00Z",
                        "revoked_at": null});
    app.store
        .create(
            &alone,
            &VersionId::generate(),
            &webhook_secrets::store::StoredValue::new(record.to_string()).unwrap(),
            &[],
        )
        .await
        .unwrap();
    assert!(works(&app, &whole).await);
    let keys = app.app.auth.keys();
    assert_eq!(keys.move_into_rings(true).await.unwrap(), 1, "dry run");
    assert!(
        app.store.read_current(&alone).await.is_ok(),
        "a dry run moves nothing"
    );
    assert_eq!(keys.move_into_rings(false).await.unwrap(), 1);
    assert!(app.store.read_current(&alone).await.is_err());
    assert_eq!(keys.move_into_rings(false).await.unwrap(), 0, "a re-run");
    app.clock.advance(chrono::Duration::seconds(61));
    assert!(works(&app, &whole).await);
    assert_eq!(keys.list(None).await.unwrap().len(), 4);
}

on_both_stores!(
    per_endpoint: keys_share_rings_and_concurrent_mints_all_land,
    a_full_ring_sends_keys_down_the_chain,
    keys_stored_alone_are_read_and_moved_into_rings,
);
