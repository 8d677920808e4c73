//! A reader account whose holder was found dead (its process gone on this
//! machine): the lease is freed at once, and the accounts can still be
//! listed — the expiry is read back as a timestamp.

use std::time::Duration;

use crate::common::TestDb;

#[tokio::test]
async fn a_dead_holders_account_is_listed_and_taken_at_once() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.ensure_reader_account("s0", None).await.unwrap();
    db.client()
        .await
        .execute("UPDATE reader_accounts SET status = 'active'", &[])
        .await
        .unwrap();
    let ttl = Duration::from_secs(30);
    assert!(store.take_lease("s0", "a", ttl).await.unwrap().is_some());
    assert!(store.take_lease("s0", "b", ttl).await.unwrap().is_none());

    store.instances_mark_dead(&["a".to_owned()]).await.unwrap();
    let listed = store.reader_accounts().await;
    assert!(listed.is_ok(), "the listing failed: {listed:?}");
    assert_eq!(listed.unwrap().len(), 1);
    assert!(
        store.take_lease("s0", "b", ttl).await.unwrap().is_some(),
        "a dead holder's account is taken without waiting a TTL"
    );
}
