//! Sign-up, sign-in, sessions and the attendee's API key.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Serialize;

use crate::clock::{now_millis, rfc3339, Millis};
use crate::domain::{KeyRecord, KeyStatus, Password, SessionToken, UserRecord, Username};
use crate::error::{CoreError, StoreError};
use crate::ports::{AccountStore, KeyGateway, Session, Written};
use crate::services::{KeyCache, LoginLimiter};

#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    pub ttl: Duration,
    pub lockout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(12 * 3600),
            lockout: Duration::from_secs(60),
        }
    }
}

pub struct LoginOutcome {
    pub token: SessionToken,
    pub expires_at: Millis,
}

/// The attendee's view of their key (`GET /api/key`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub api_key: String,
    pub key_id: String,
    pub created_at: String,
    pub expires_at: String,
    pub days_left: i64,
    pub status: KeyStatus,
}

impl KeyView {
    pub fn of(k: &KeyRecord, now: Millis) -> Self {
        Self {
            api_key: k.value.expose().to_owned(),
            key_id: k.id.to_string(),
            created_at: rfc3339(k.created_at),
            expires_at: rfc3339(k.expires_at),
            days_left: k.days_left(now),
            status: k.status(now),
        }
    }
}

/// The facilitator's view of an attendee: never the key itself.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserView {
    pub username: Username,
    pub created_at: String,
    pub key_id: Option<String>,
    pub key_status: Option<KeyStatus>,
    pub key_expires_at: Option<String>,
    pub days_left: Option<i64>,
}

pub struct AccountService {
    store: Arc<dyn AccountStore>,
    gateway: Arc<dyn KeyGateway>,
    keys: Arc<KeyCache>,
    limiter: LoginLimiter,
    config: SessionConfig,
    /// Verified against when the username does not exist, so that an unknown
    /// username costs the same time as a wrong password.
    dummy_hash: String,
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(StoreError::new)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(StoreError::new)
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Argon2 takes tens of milliseconds of CPU: keep it off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(StoreError::new)
}

impl AccountService {
    pub fn new(
        store: Arc<dyn AccountStore>,
        gateway: Arc<dyn KeyGateway>,
        keys: Arc<KeyCache>,
        config: SessionConfig,
    ) -> Self {
        let dummy_hash = hash_password("not-a-real-password").unwrap_or_default();
        Self {
            store,
            gateway,
            keys,
            limiter: LoginLimiter::new(config.lockout),
            config,
            dummy_hash,
        }
    }

    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    pub async fn signup(&self, username: &str, password: &str) -> Result<Username, CoreError> {
        let username = Username::parse(username).map_err(CoreError::Invalid)?;
        let password = Password::parse(password).map_err(CoreError::Invalid)?;
        if self.store.get_user(&username).await?.is_some() {
            return Err(CoreError::UsernameTaken);
        }
        let hash = blocking(move || hash_password(password.expose())).await??;
        let user = UserRecord {
            username: username.clone(),
            password_hash: hash,
            created_at: now_millis(),
            key: None,
        };
        match self.store.create_user(&user).await? {
            Written::Done => {
                tracing::info!(user = %username, "attendee signed up");
                Ok(username)
            }
            Written::Conflict => Err(CoreError::UsernameTaken),
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<LoginOutcome, CoreError> {
        // Malformed usernames cannot exist: same answer as a wrong password.
        let limiter_key: String = username.chars().take(64).collect();
        if let Some(retry_after_secs) = self.limiter.locked(&limiter_key) {
            return Err(CoreError::LoginLocked { retry_after_secs });
        }
        let user = match Username::parse(username) {
            Ok(u) => self.store.get_user(&u).await?,
            Err(_) => None,
        };
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let password = password.to_owned();
        let matches = blocking(move || verify_password(&password, &hash)).await?;
        let Some(user) = user.filter(|_| matches) else {
            self.limiter.failed(&limiter_key);
            return Err(CoreError::BadCredentials);
        };
        self.limiter.succeeded(&limiter_key);
        let token = SessionToken::generate();
        let expires_at = now_millis() + self.config.ttl.as_millis() as Millis;
        let session = Session {
            username: user.username.clone(),
            expires_at,
        };
        self.store
            .put_session(&SessionToken::digest(&token.0), &session)
            .await?;
        tracing::info!(user = %user.username, "attendee signed in");
        Ok(LoginOutcome { token, expires_at })
    }

    /// The username a bearer token or session cookie belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<Username, CoreError> {
        if token.is_empty() || token.len() > 256 {
            return Err(CoreError::Unauthenticated);
        }
        let digest = SessionToken::digest(token);
        match self.store.get_session(&digest).await? {
            Some(s) if s.expires_at > now_millis() => Ok(s.username),
            Some(_) => {
                self.store.delete_session(&digest).await?;
                Err(CoreError::Unauthenticated)
            }
            None => Err(CoreError::Unauthenticated),
        }
    }

    pub async fn logout(&self, token: &str) -> Result<(), CoreError> {
        self.store
            .delete_session(&SessionToken::digest(token))
            .await?;
        Ok(())
    }

    async fn user(&self, username: &Username) -> Result<UserRecord, CoreError> {
        self.store
            .get_user(username)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {username}")))
    }

    /// The attendee's key, issued on the first call. Concurrent first calls agree
    /// on one key: the write is conditional on there being none yet.
    pub async fn key(&self, username: &Username) -> Result<KeyRecord, CoreError> {
        loop {
            let user = self.user(username).await?;
            if let Some(k) = user.key {
                return Ok(k);
            }
            let new = KeyRecord::issue(now_millis());
            if self.store_enabled_key(username, None, &new).await? {
                tracing::info!(user = %username, key_id = %new.id, "API key issued");
                return Ok(new);
            }
        }
    }

    /// Enables `new` at the gateway, then stores it if the current key is still
    /// `expected`. In this order a stored key is always usable at the gateway; a
    /// lost race disables the key it enabled. `Ok(false)`: lost the race, retry.
    async fn store_enabled_key(
        &self,
        username: &Username,
        expected: Option<&crate::domain::KeyId>,
        new: &KeyRecord,
    ) -> Result<bool, CoreError> {
        self.gateway.enable(username, new).await?;
        match self.store.set_key(username, expected, new).await {
            Ok(Written::Done) => Ok(true),
            Ok(Written::Conflict) => {
                self.gateway.disable(username, new).await?;
                Ok(false)
            }
            Err(e) => {
                let _ = self.gateway.disable(username, new).await;
                Err(e.into())
            }
        }
    }

    /// A new key; the old value stops working at once.
    pub async fn rotate_key(&self, username: &Username) -> Result<KeyRecord, CoreError> {
        loop {
            let user = self.user(username).await?;
            let new = KeyRecord::issue(now_millis());
            if self
                .store_enabled_key(username, user.key.as_ref().map(|k| &k.id), &new)
                .await?
            {
                if let Some(old) = &user.key {
                    self.keys.invalidate(old.value.expose());
                    self.gateway.disable(username, old).await?;
                }
                tracing::info!(user = %username, key_id = %new.id, "API key rotated");
                return Ok(new);
            }
        }
    }

    /// The facilitator disables an attendee's key; rotating gives them a new one.
    pub async fn revoke_key(&self, username: &Username) -> Result<Option<KeyRecord>, CoreError> {
        loop {
            let user = self.user(username).await?;
            let Some(key) = user.key else { return Ok(None) };
            let revoked = KeyRecord {
                revoked: true,
                ..key.clone()
            };
            if self
                .store
                .set_key(username, Some(&key.id), &revoked)
                .await?
                == Written::Done
            {
                self.keys.invalidate(key.value.expose());
                self.gateway.disable(username, &key).await?;
                tracing::info!(user = %username, key_id = %key.id, "API key revoked");
                return Ok(Some(revoked));
            }
        }
    }

    pub async fn admin_users(&self) -> Result<Vec<AdminUserView>, CoreError> {
        let now = now_millis();
        let mut users: Vec<_> = self
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|u| AdminUserView {
                created_at: rfc3339(u.created_at),
                key_id: u.key.as_ref().map(|k| k.id.to_string()),
                key_status: u.key.as_ref().map(|k| k.status(now)),
                key_expires_at: u.key.as_ref().map(|k| rfc3339(k.expires_at)),
                days_left: u.key.as_ref().map(|k| k.days_left(now)),
                username: u.username,
            })
            .collect();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(users)
    }
}
