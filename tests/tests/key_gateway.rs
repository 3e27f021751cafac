//! The key gateway (API Gateway in the deployed mode) and the store stay in
//! step: a key is stored only once the gateway took it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use embedded_store::EmbeddedStore;
use hq_core::domain::{KeyRecord, Username};
use hq_core::ports::KeyGateway;
use hq_core::{Hq, HqConfig, Ports, StoreError};

#[derive(Default)]
struct FlakyGateway {
    fail: AtomicBool,
    enabled: AtomicUsize,
    disabled: AtomicUsize,
}

#[async_trait]
impl KeyGateway for FlakyGateway {
    async fn enable(&self, _: &Username, _: &KeyRecord) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError("gateway unavailable".into()));
        }
        self.enabled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn disable(&self, _: &Username, _: &KeyRecord) -> Result<(), StoreError> {
        self.disabled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_key_the_gateway_refused_is_not_stored_and_the_next_call_issues_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let gateway = Arc::new(FlakyGateway::default());
    let ports = Ports {
        accounts: store.clone(),
        ledger: store.clone(),
        rates: store.clone(),
        gateway: gateway.clone(),
        lab: None,
    };
    let hq = Hq::new(ports, HqConfig::default());
    let ann = hq.accounts.signup("ann", "password-123").await.unwrap();

    gateway.fail.store(true, Ordering::SeqCst);
    assert!(hq.accounts.key(&ann).await.is_err());
    assert!(
        store.get_user_key(&ann).await.is_none(),
        "nothing stored while the gateway refuses"
    );

    gateway.fail.store(false, Ordering::SeqCst);
    let key = hq.accounts.key(&ann).await.unwrap();
    assert_eq!(gateway.enabled.load(Ordering::SeqCst), 1);
    let rotated = hq.accounts.rotate_key(&ann).await.unwrap();
    assert_ne!(rotated.value, key.value);
    assert_eq!(
        (
            gateway.enabled.load(Ordering::SeqCst),
            gateway.disabled.load(Ordering::SeqCst)
        ),
        (2, 1)
    );
    hq.accounts.revoke_key(&ann).await.unwrap();
    assert_eq!(gateway.disabled.load(Ordering::SeqCst), 2);
}

trait UserKey {
    async fn get_user_key(&self, u: &Username) -> Option<KeyRecord>;
}

impl UserKey for EmbeddedStore {
    async fn get_user_key(&self, u: &Username) -> Option<KeyRecord> {
        use hq_core::ports::AccountStore;
        self.get_user(u).await.unwrap().and_then(|u| u.key)
    }
}
