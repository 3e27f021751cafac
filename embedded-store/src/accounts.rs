use async_trait::async_trait;
use hq_core::domain::{KeyId, KeyRecord, UserRecord, Username};
use hq_core::ports::{AccountStore, Session, Written};
use hq_core::StoreError;
use redb::ReadableTable;

use crate::schema::{KEY_INDEX, SESSIONS, USERS};
use crate::{err, from_json, to_json, EmbeddedStore};

#[async_trait]
impl AccountStore for EmbeddedStore {
    async fn create_user(&self, user: &UserRecord) -> Result<Written, StoreError> {
        let name = user.username.as_str().to_owned();
        let value = to_json(user)?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut users = txn.open_table(USERS).map_err(err)?;
                if users.get(name.as_str()).map_err(err)?.is_some() {
                    return Ok(Written::Conflict);
                }
                users.insert(name.as_str(), value.as_slice()).map_err(err)?;
            }
            txn.commit().map_err(err)?;
            Ok(Written::Done)
        })
        .await
    }

    async fn get_user(&self, username: &Username) -> Result<Option<UserRecord>, StoreError> {
        let name = username.as_str().to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let users = txn.open_table(USERS).map_err(err)?;
            let v = users.get(name.as_str()).map_err(err)?;
            v.map(|v| from_json(v.value())).transpose()
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(err)?;
            let users = txn.open_table(USERS).map_err(err)?;
            let mut out = Vec::new();
            for row in users.iter().map_err(err)? {
                out.push(from_json(row.map_err(err)?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn set_key(
        &self,
        username: &Username,
        expected: Option<&KeyId>,
        new: &KeyRecord,
    ) -> Result<Written, StoreError> {
        let name = username.as_str().to_owned();
        let expected = expected.cloned();
        let new = new.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut users = txn.open_table(USERS).map_err(err)?;
                let mut index = txn.open_table(KEY_INDEX).map_err(err)?;
                let mut user: UserRecord = match users.get(name.as_str()).map_err(err)? {
                    Some(v) => from_json(v.value())?,
                    None => return Ok(Written::Conflict),
                };
                if user.key.as_ref().map(|k| &k.id) != expected.as_ref() {
                    return Ok(Written::Conflict);
                }
                if let Some(old) = &user.key {
                    index.remove(old.value.expose()).map_err(err)?;
                }
                index
                    .insert(new.value.expose(), name.as_str())
                    .map_err(err)?;
                user.key = Some(new);
                users
                    .insert(name.as_str(), to_json(&user)?.as_slice())
                    .map_err(err)?;
            }
            txn.commit().map_err(err)?;
            Ok(Written::Done)
        })
        .await
    }

    async fn find_key(&self, value: &str) -> Result<Option<(Username, KeyRecord)>, StoreError> {
        let value = value.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let index = txn.open_table(KEY_INDEX).map_err(err)?;
            let Some(owner) = index.get(value.as_str()).map_err(err)? else {
                return Ok(None);
            };
            let users = txn.open_table(USERS).map_err(err)?;
            let Some(user) = users.get(owner.value()).map_err(err)? else {
                return Ok(None);
            };
            let user: UserRecord = from_json(user.value())?;
            Ok(user
                .key
                .filter(|k| k.value.expose() == value)
                .map(|k| (user.username, k)))
        })
        .await
    }

    async fn clear_accounts(&self) -> Result<(), StoreError> {
        self.blocking(|db| {
            let txn = db.begin_write().map_err(err)?;
            crate::schema::recreate(&txn, USERS)?;
            crate::schema::recreate(&txn, KEY_INDEX)?;
            crate::schema::recreate(&txn, SESSIONS)?;
            txn.commit().map_err(err)
        })
        .await
    }

    async fn put_session(&self, digest: &[u8; 32], session: &Session) -> Result<(), StoreError> {
        let (digest, value) = (*digest, to_json(session)?);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err)?;
            txn.open_table(SESSIONS)
                .map_err(err)?
                .insert(digest.as_slice(), value.as_slice())
                .map_err(err)?;
            txn.commit().map_err(err)
        })
        .await
    }

    async fn get_session(&self, digest: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        let digest = *digest;
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(SESSIONS).map_err(err)?;
            let v = t.get(digest.as_slice()).map_err(err)?;
            v.map(|v| from_json(v.value())).transpose()
        })
        .await
    }

    async fn delete_session(&self, digest: &[u8; 32]) -> Result<(), StoreError> {
        let digest = *digest;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err)?;
            txn.open_table(SESSIONS)
                .map_err(err)?
                .remove(digest.as_slice())
                .map_err(err)?;
            txn.commit().map_err(err)
        })
        .await
    }
}
