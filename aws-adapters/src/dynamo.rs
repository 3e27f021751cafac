//! Accounts, keys, sessions, the ledger and rates on DynamoDB (see
//! `DATA_MODEL.md` for the tables and item shapes).
//!
//! Guarantees, the same as the embedded store's:
//! * sign-up is a conditional put (`attribute_not_exists`), so two sign-ups of
//!   one username cannot both succeed;
//! * a key change is one `TransactWriteItems` conditioned on the user's current
//!   key id (compare-and-set), which also moves the key-value lookup item, so an
//!   old value stops resolving in the same write;
//! * a fulfillment, its owner's totals and the per-minute count are one
//!   `TransactWriteItems` (counters by `ADD`), idempotent under retries
//!   (`ClientRequestToken` = the fulfillment id), acknowledged only once
//!   DynamoDB has committed it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, Select, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use hq_core::clock::{minute_of, now_millis, Millis};
use hq_core::domain::{
    Amounts, ApiKey, Fulfillment, KeyId, KeyRecord, Rate, RatePatch, ReceivingFaults, SurgeRecord,
    TopicName, UserRecord, UserTotals, Username, WINDOW_MINUTES,
};
use hq_core::ports::{AccountStore, LabStore, Ledger, RateStore, Session, Versioned, Written};
use hq_core::StoreError;

use crate::config::TableNames;
use crate::retry::{retry, Backoff};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Per-minute items outlive the leaderboard's hour by this much, then DynamoDB's
/// TTL deletes them.
const MINUTE_ITEM_TTL_SECS: i64 = 2 * 3600;
/// How many per-user minute queries run at once when building totals.
const TOTALS_QUERY_CONCURRENCY: usize = 16;

/// The DynamoDB adapter. Cheap to clone (the client is an `Arc` inside).
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    /// One item by its partition key, read consistently (a write just made by
    /// another Lambda instance is seen).
    async fn get(&self, table: &str, key: &str, value: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key(key, s(value))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_err("GetItem", table, e))?;
        Ok(out.item)
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

// ---- attribute helpers ------------------------------------------------------

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError(format!("DynamoDB item lacks string attribute {name}")))
}

pub(crate) fn opt_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError(format!("DynamoDB item lacks numeric attribute {name}")))
}

fn opt_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn get_bool(item: &Item, name: &str) -> bool {
    item.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

fn username(item: &Item, name: &str) -> Result<Username, StoreError> {
    Username::parse(get_s(item, name)?).map_err(|e| StoreError(format!("stored username: {e}")))
}

/// A readable error naming the call and the table, with the service's own code
/// and message (`ResourceNotFoundException: Requested resource not found`).
pub(crate) fn aws_err<E>(op: &str, table: &str, e: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    StoreError(format!(
        "DynamoDB {op} on table {table}: {}",
        DisplayErrorContext(&e)
    ))
}

fn rate_from(item: &Item) -> Result<Rate, StoreError> {
    Ok(Rate {
        rate_per_minute: get_n(item, "ratePerMinute")?,
        paused: get_bool(item, "paused"),
        malformed_share: get_n(item, "malformedShare")?,
    })
}

/// A conditional `PutItem`'s outcome: a failed condition is a [`Written::Conflict`].
fn conditional_put<T>(
    out: Result<T, SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError>>,
    table: &str,
) -> Result<Written, StoreError> {
    match out {
        Ok(_) => Ok(Written::Done),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Ok(Written::Conflict)
        }
        Err(e) => Err(aws_err("PutItem", table, e)),
    }
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("building a DynamoDB request: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a transaction was cancelled, per item (`ConditionalCheckFailed`,
/// `TransactionConflict`, `None`, ...).
fn cancellation_codes(e: &SdkError<TransactWriteItemsError>) -> Option<Vec<String>> {
    match e.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(t) => Some(
            t.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect(),
        ),
        _ => None,
    }
}

/// Conflicts with a concurrent transaction on the same item are worth retrying.
fn is_transaction_conflict(e: &SdkError<TransactWriteItemsError>) -> bool {
    e.code() == Some("TransactionConflictException")
        || cancellation_codes(e).is_some_and(|codes| {
            codes
                .iter()
                .any(|c| c == "TransactionConflict" || c == "ThrottlingError")
                && !codes.iter().any(|c| c == "ConditionalCheckFailed")
        })
}

// ---- item shapes --------------------------------------------------------------

fn user_item(user: &UserRecord) -> Item {
    let mut item = Item::from([
        ("username".into(), s(user.username.as_str())),
        ("passwordHash".into(), s(&user.password_hash)),
        ("createdAt".into(), n(user.created_at)),
    ]);
    if let Some(k) = &user.key {
        item.extend(key_attrs(k));
    }
    item
}

/// The user's current key, as attributes of the user item.
fn key_attrs(k: &KeyRecord) -> [(String, AttributeValue); 5] {
    [
        ("keyId".into(), s(&k.id.0)),
        ("keyValue".into(), s(k.value.expose())),
        ("keyCreatedAt".into(), n(k.created_at)),
        ("keyExpiresAt".into(), n(k.expires_at)),
        ("keyRevoked".into(), AttributeValue::Bool(k.revoked)),
    ]
}

fn user_from(item: &Item) -> Result<UserRecord, StoreError> {
    let key = match opt_s(item, "keyId") {
        Some(id) => Some(KeyRecord {
            id: KeyId(id),
            value: ApiKey::from_stored(get_s(item, "keyValue")?.to_owned()),
            created_at: get_n(item, "keyCreatedAt")?,
            expires_at: get_n(item, "keyExpiresAt")?,
            revoked: get_bool(item, "keyRevoked"),
        }),
        None => None,
    };
    Ok(UserRecord {
        username: username(item, "username")?,
        password_hash: get_s(item, "passwordHash")?.to_owned(),
        created_at: get_n(item, "createdAt")?,
        key,
    })
}

/// The lookup item of the keys table: everything `find_key` answers, in one read.
fn key_item(owner: &Username, k: &KeyRecord) -> Item {
    Item::from([
        ("keyValue".into(), s(k.value.expose())),
        ("username".into(), s(owner.as_str())),
        ("keyId".into(), s(&k.id.0)),
        ("createdAt".into(), n(k.created_at)),
        ("expiresAt".into(), n(k.expires_at)),
        ("revoked".into(), AttributeValue::Bool(k.revoked)),
    ])
}

fn fulfillment_item(f: &Fulfillment) -> Item {
    let mut item = Item::from([
        ("id".into(), s(f.id.to_string())),
        ("username".into(), s(f.username.as_str())),
        ("keyId".into(), s(&f.key_id.0)),
        ("at".into(), n(f.at)),
        ("iridium".into(), n(f.amounts.iridium)),
        ("magnesite".into(), n(f.amounts.magnesite)),
        ("requestId".into(), s(&f.request_id)),
    ]);
    if let Some(t) = &f.trace_id {
        item.insert("traceId".into(), s(t));
    }
    item
}

fn fulfillment_from(item: &Item) -> Result<Fulfillment, StoreError> {
    Ok(Fulfillment {
        id: get_s(item, "id")?
            .parse()
            .map_err(|e| StoreError(format!("stored fulfillment id: {e}")))?,
        username: username(item, "username")?,
        key_id: KeyId(get_s(item, "keyId")?.to_owned()),
        at: get_n(item, "at")?,
        amounts: Amounts {
            iridium: get_n(item, "iridium")?,
            magnesite: get_n(item, "magnesite")?,
        },
        request_id: get_s(item, "requestId")?.to_owned(),
        trace_id: opt_s(item, "traceId"),
    })
}

// ---- AccountStore -------------------------------------------------------------

#[async_trait]
impl AccountStore for DynamoStore {
    async fn create_user(&self, user: &UserRecord) -> Result<Written, StoreError> {
        let table = &self.tables.users;
        let out = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(user_item(user)))
            .condition_expression("attribute_not_exists(#u)")
            .expression_attribute_names("#u", "username")
            .send()
            .await;
        conditional_put(out, table)
    }

    async fn get_user(&self, username: &Username) -> Result<Option<UserRecord>, StoreError> {
        let item = self
            .get(&self.tables.users, "username", username.as_str())
            .await?;
        item.as_ref().map(user_from).transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let mut out: Vec<UserRecord> = scan_all(&self.client, &self.tables.users)
            .await?
            .iter()
            .map(user_from)
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(out)
    }

    async fn set_key(
        &self,
        username: &Username,
        expected: Option<&KeyId>,
        new: &KeyRecord,
    ) -> Result<Written, StoreError> {
        // Read the current key to know which lookup item to remove; the write
        // below is conditioned on the key id read, so a change in between makes
        // it fail rather than leave a stale lookup behind.
        let Some(user) = self.get_user(username).await? else {
            return Ok(Written::Conflict);
        };
        if user.key.as_ref().map(|k| &k.id) != expected {
            return Ok(Written::Conflict);
        }
        let users = &self.tables.users;
        let keys = &self.tables.keys;
        let mut update = Update::builder()
            .table_name(users)
            .key("username", s(username.as_str()))
            .update_expression(
                "SET keyId = :id, keyValue = :v, keyCreatedAt = :c, keyExpiresAt = :x, keyRevoked = :r",
            )
            .expression_attribute_values(":id", s(&new.id.0))
            .expression_attribute_values(":v", s(new.value.expose()))
            .expression_attribute_values(":c", n(new.created_at))
            .expression_attribute_values(":x", n(new.expires_at))
            .expression_attribute_values(":r", AttributeValue::Bool(new.revoked));
        update = match expected {
            Some(id) => update
                .condition_expression("attribute_exists(#u) AND keyId = :expected")
                .expression_attribute_values(":expected", s(&id.0)),
            None => {
                update.condition_expression("attribute_exists(#u) AND attribute_not_exists(keyId)")
            }
        };
        update = update.expression_attribute_names("#u", "username");
        let mut items = vec![
            TransactWriteItem::builder()
                .update(update.build().map_err(build_err)?)
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(keys)
                        .set_item(Some(key_item(username, new)))
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
        ];
        if let Some(old) = user.key.as_ref().filter(|k| k.value != new.value) {
            items.push(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(keys)
                            .key("keyValue", s(old.value.expose()))
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            );
        }
        let out = retry(Backoff::TRANSACTION, is_transaction_conflict, || {
            self.client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
        })
        .await;
        match out {
            Ok(_) => Ok(Written::Done),
            Err(e)
                if cancellation_codes(&e)
                    .is_some_and(|c| c.first().is_some_and(|c| c == "ConditionalCheckFailed")) =>
            {
                Ok(Written::Conflict)
            }
            Err(e) => Err(aws_err(
                "TransactWriteItems",
                &format!("{users} + {keys}"),
                e,
            )),
        }
    }

    async fn find_key(&self, value: &str) -> Result<Option<(Username, KeyRecord)>, StoreError> {
        let Some(item) = self.get(&self.tables.keys, "keyValue", value).await? else {
            return Ok(None);
        };
        let item = &item;
        let record = KeyRecord {
            id: KeyId(get_s(item, "keyId")?.to_owned()),
            value: ApiKey::from_stored(value.to_owned()),
            created_at: get_n(item, "createdAt")?,
            expires_at: get_n(item, "expiresAt")?,
            revoked: get_bool(item, "revoked"),
        };
        Ok(Some((username(item, "username")?, record)))
    }

    async fn clear_accounts(&self) -> Result<(), StoreError> {
        delete_all(&self.client, &self.tables.sessions, &["digest"]).await?;
        delete_all(&self.client, &self.tables.keys, &["keyValue"]).await?;
        delete_all(&self.client, &self.tables.users, &["username"]).await
    }

    async fn put_session(&self, digest: &[u8; 32], session: &Session) -> Result<(), StoreError> {
        let table = &self.tables.sessions;
        self.client
            .put_item()
            .table_name(table)
            .item("digest", s(hex(digest)))
            .item("username", s(session.username.as_str()))
            .item("expiresAt", n(session.expires_at))
            // TTL attribute (seconds): DynamoDB removes expired sessions itself.
            .item("ttl", n(session.expires_at.div_euclid(1000) + 1))
            .send()
            .await
            .map_err(|e| aws_err("PutItem", table, e))?;
        Ok(())
    }

    async fn get_session(&self, digest: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        let table = &self.tables.sessions;
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key("digest", s(hex(digest)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_err("GetItem", table, e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        Ok(Some(Session {
            username: username(item, "username")?,
            expires_at: get_n(item, "expiresAt")?,
        }))
    }

    async fn delete_session(&self, digest: &[u8; 32]) -> Result<(), StoreError> {
        let table = &self.tables.sessions;
        self.client
            .delete_item()
            .table_name(table)
            .key("digest", s(hex(digest)))
            .send()
            .await
            .map_err(|e| aws_err("DeleteItem", table, e))?;
        Ok(())
    }
}

/// Every item of a table (paginated Scan, strongly consistent). For the small
/// tables (users, rates, totals) and admin paths only.
pub(crate) async fn scan_all(client: &Client, table: &str) -> Result<Vec<Item>, StoreError> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    // Bounded: a page is at most 1 MB; 100 000 pages is far past any workshop.
    for _ in 0..100_000 {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| aws_err("Scan", table, e))?;
        out.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(out),
        }
    }
    Err(StoreError(format!(
        "DynamoDB Scan on table {table}: too many pages"
    )))
}

/// Deletes every item of a table, 25 at a time (BatchWriteItem's limit),
/// resubmitting what DynamoDB hands back unprocessed. For the event reset only.
pub(crate) async fn delete_all(
    client: &Client,
    table: &str,
    key: &[&str],
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
    let items = scan_all(client, table).await?;
    for chunk in items.chunks(25) {
        let mut requests = chunk
            .iter()
            .map(|item| {
                let k: Item = key
                    .iter()
                    .filter_map(|name| item.get(*name).map(|v| ((*name).to_owned(), v.clone())))
                    .collect();
                DeleteRequest::builder()
                    .set_key(Some(k))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
                    .map_err(build_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        for attempt in 0..10u32 {
            if requests.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Backoff::TRANSACTION.delay(attempt)).await;
            }
            let out = client
                .batch_write_item()
                .request_items(table, std::mem::take(&mut requests))
                .send()
                .await
                .map_err(|e| aws_err("BatchWriteItem", table, e))?;
            requests = out
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
        }
        if !requests.is_empty() {
            return Err(StoreError(format!(
                "DynamoDB BatchWriteItem on table {table}: {} deletions left unprocessed",
                requests.len()
            )));
        }
    }
    Ok(())
}

// ---- Ledger ---------------------------------------------------------------------

#[async_trait]
impl Ledger for DynamoStore {
    async fn record(&self, f: Fulfillment) -> Result<uuid::Uuid, StoreError> {
        let minute = minute_of(f.at);
        let expires = (minute + 1) * 60 + MINUTE_ITEM_TTL_SECS;
        let items = vec![
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.tables.fulfillments)
                        .set_item(Some(fulfillment_item(&f)))
                        .condition_expression("attribute_not_exists(#id)")
                        .expression_attribute_names("#id", "id")
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.tables.totals)
                        .key("username", s(f.username.as_str()))
                        .update_expression(
                            "ADD #total :one, iridium :i, magnesite :m SET lastFulfilledAt = :at",
                        )
                        .expression_attribute_names("#total", "total")
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":i", n(f.amounts.iridium))
                        .expression_attribute_values(":m", n(f.amounts.magnesite))
                        .expression_attribute_values(":at", n(f.at))
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.tables.minutes)
                        .key("username", s(f.username.as_str()))
                        .key("minute", n(minute))
                        .update_expression("ADD #count :one SET #ttl = :ttl")
                        .expression_attribute_names("#count", "count")
                        .expression_attribute_names("#ttl", "ttl")
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":ttl", n(expires))
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
        ];
        let token = f.id.simple().to_string();
        retry(Backoff::TRANSACTION, is_transaction_conflict, || {
            self.client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(&token)
                .send()
        })
        .await
        .map_err(|e| {
            aws_err(
                "TransactWriteItems",
                &format!(
                    "{} + {} + {}",
                    self.tables.fulfillments, self.tables.totals, self.tables.minutes
                ),
                e,
            )
        })?;
        Ok(f.id)
    }

    async fn clear(&self) -> Result<(), StoreError> {
        delete_all(&self.client, &self.tables.fulfillments, &["id"]).await?;
        delete_all(&self.client, &self.tables.minutes, &["username", "minute"]).await?;
        delete_all(&self.client, &self.tables.totals, &["username"]).await
    }

    async fn get(&self, id: uuid::Uuid) -> Result<Option<Fulfillment>, StoreError> {
        let table = &self.tables.fulfillments;
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key("id", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_err("GetItem", table, e))?;
        out.item().map(fulfillment_from).transpose()
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let table = &self.tables.fulfillments;
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        for _ in 0..100_000 {
            let page = self
                .client
                .scan()
                .table_name(table)
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_err("Scan", table, e))?;
            total += page.count().max(0) as u64;
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(total),
            }
        }
        Err(StoreError(format!(
            "DynamoDB Scan on table {table}: too many pages"
        )))
    }

    /// Records are keyed by id alone (writes spread over every partition), so
    /// listing in id order scans and sorts: an export/check path, not a hot one.
    async fn list(
        &self,
        after: Option<uuid::Uuid>,
        limit: usize,
    ) -> Result<Vec<Fulfillment>, StoreError> {
        let mut all: Vec<Fulfillment> = scan_all(&self.client, &self.tables.fulfillments)
            .await?
            .iter()
            .map(fulfillment_from)
            .collect::<Result<_, _>>()?;
        all.retain(|f| after.is_none_or(|a| f.id > a));
        all.sort_by_key(|f| f.id);
        all.truncate(limit);
        Ok(all)
    }

    async fn totals(&self) -> Result<Vec<UserTotals>, StoreError> {
        let first_minute = minute_of(now_millis()) - WINDOW_MINUTES as i64 + 1;
        let mut out: Vec<UserTotals> = scan_all(&self.client, &self.tables.totals)
            .await?
            .iter()
            .map(|item| {
                Ok(UserTotals {
                    username: username(item, "username")?,
                    total: opt_n(item, "total").unwrap_or(0),
                    iridium: opt_n(item, "iridium").unwrap_or(0),
                    magnesite: opt_n(item, "magnesite").unwrap_or(0),
                    last_fulfilled_at: opt_n::<Millis>(item, "lastFulfilledAt"),
                    minutes: Vec::new(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        out.sort_by(|a, b| a.username.cmp(&b.username));
        // One query per attendee for the last hour's minutes, a few at a time.
        for chunk in out.chunks_mut(TOTALS_QUERY_CONCURRENCY) {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, t) in chunk.iter().enumerate() {
                let (client, table, user) = (
                    self.client.clone(),
                    self.tables.minutes.clone(),
                    t.username.clone(),
                );
                tasks.spawn(
                    async move { (i, minutes_of(&client, &table, &user, first_minute).await) },
                );
            }
            while let Some(done) = tasks.join_next().await {
                let (i, minutes) = done.map_err(StoreError::new)?;
                if let Some(t) = chunk.get_mut(i) {
                    t.minutes = minutes?;
                }
            }
        }
        Ok(out)
    }
}

/// One attendee's per-minute counts from `first_minute` on, oldest first.
async fn minutes_of(
    client: &Client,
    table: &str,
    user: &Username,
    first_minute: i64,
) -> Result<Vec<(i64, u32)>, StoreError> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    for _ in 0..1000 {
        let page = client
            .query()
            .table_name(table)
            .key_condition_expression("#u = :u AND #m >= :m")
            .expression_attribute_names("#u", "username")
            .expression_attribute_names("#m", "minute")
            .expression_attribute_values(":u", s(user.as_str()))
            .expression_attribute_values(":m", n(first_minute))
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| aws_err("Query", table, e))?;
        for item in page.items() {
            out.push((get_n(item, "minute")?, opt_n(item, "count").unwrap_or(0)));
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    Ok(out)
}

// ---- RateStore --------------------------------------------------------------------

#[async_trait]
impl RateStore for DynamoStore {
    async fn rates(&self) -> Result<Vec<(TopicName, Rate)>, StoreError> {
        let mut out = Vec::new();
        for item in scan_all(&self.client, &self.tables.rates).await? {
            if let Some(topic) = TopicName::parse(get_s(&item, "topic")?) {
                out.push((topic, rate_from(&item)?));
            }
        }
        out.sort_by_key(|(t, _)| *t);
        Ok(out)
    }

    async fn put_rate(&self, topic: TopicName, rate: &Rate) -> Result<(), StoreError> {
        let table = &self.tables.rates;
        self.client
            .put_item()
            .table_name(table)
            .item("topic", s(topic.as_str()))
            .item("ratePerMinute", n(rate.rate_per_minute))
            .item("paused", AttributeValue::Bool(rate.paused))
            .item("malformedShare", n(rate.malformed_share))
            .send()
            .await
            .map_err(|e| aws_err("PutItem", table, e))?;
        Ok(())
    }

    /// One `UpdateItem` that sets the given fields and keeps the others (or
    /// their defaults, for a topic never set): atomic, so two portal instances
    /// changing different fields at once both hold.
    async fn patch_rate(&self, topic: TopicName, patch: RatePatch) -> Result<Rate, StoreError> {
        let table = &self.tables.rates;
        let default = Rate::default();
        let fields = [
            (
                "ratePerMinute",
                patch.rate_per_minute.map(n),
                n(default.rate_per_minute),
            ),
            (
                "paused",
                patch.paused.map(AttributeValue::Bool),
                AttributeValue::Bool(default.paused),
            ),
            (
                "malformedShare",
                patch.malformed_share.map(n),
                n(default.malformed_share),
            ),
        ];
        let mut update = self
            .client
            .update_item()
            .table_name(table)
            .key("topic", s(topic.as_str()))
            .return_values(ReturnValue::AllNew);
        let mut sets = Vec::new();
        for (i, (name, given, default)) in fields.into_iter().enumerate() {
            update = update.expression_attribute_names(format!("#f{i}"), name);
            match given {
                Some(v) => {
                    sets.push(format!("#f{i} = :v{i}"));
                    update = update.expression_attribute_values(format!(":v{i}"), v);
                }
                None => {
                    sets.push(format!("#f{i} = if_not_exists(#f{i}, :d{i})"));
                    update = update.expression_attribute_values(format!(":d{i}"), default);
                }
            }
        }
        let out = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map_err(|e| aws_err("UpdateItem", table, e))?;
        let item = out.attributes().ok_or_else(|| {
            StoreError(format!(
                "UpdateItem on table {table}: no attributes returned"
            ))
        })?;
        rate_from(item)
    }
}

/// The lab faults' item in the rates table: the facilitator's settings live
/// together, and the key is no topic name, so [`RateStore::rates`] skips it.
const LAB_RECEIVING: &str = "lab:receiving";
/// Prefix of the surges' items in the rates table (then the surge's id).
const SURGE: &str = "surge:";

#[async_trait]
impl LabStore for DynamoStore {
    async fn receiving_faults(&self) -> Result<Option<Versioned<ReceivingFaults>>, StoreError> {
        let Some(item) = self.get(&self.tables.rates, "topic", LAB_RECEIVING).await? else {
            return Ok(None);
        };
        let item = &item;
        let value = ReceivingFaults {
            latency_ms: get_n(item, "latencyMs")?,
            latency_random: get_bool(item, "latencyRandom"),
            error_share: get_n(item, "errorShare")?,
            error_status: get_n(item, "errorStatus")?,
        };
        // Items stored before versions existed count as version 0.
        let version = match item.get("version") {
            Some(_) => get_n(item, "version")?,
            None => 0,
        };
        Ok(Some(Versioned { value, version }))
    }

    async fn put_receiving_faults(
        &self,
        f: &ReceivingFaults,
        expected: Option<u64>,
    ) -> Result<Written, StoreError> {
        let table = &self.tables.rates;
        let put = self
            .client
            .put_item()
            .table_name(table)
            .item("topic", s(LAB_RECEIVING))
            .item("latencyMs", n(f.latency_ms))
            .item("latencyRandom", AttributeValue::Bool(f.latency_random))
            .item("errorShare", n(f.error_share))
            .item("errorStatus", n(f.error_status))
            .item("version", n(Versioned::<ReceivingFaults>::next(expected)));
        let put = match expected {
            None => put
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", "topic"),
            // Stored before versions existed.
            Some(0) => put
                .condition_expression("attribute_exists(#k) AND attribute_not_exists(#v)")
                .expression_attribute_names("#k", "topic")
                .expression_attribute_names("#v", "version"),
            Some(v) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(v)),
        };
        conditional_put(put.send().await, table)
    }

    async fn surges(&self) -> Result<Vec<SurgeRecord>, StoreError> {
        let mut out = Vec::new();
        for item in scan_all(&self.client, &self.tables.rates).await? {
            let Some(id) = get_s(&item, "topic")?.strip_prefix(SURGE) else {
                continue;
            };
            let topic = get_s(&item, "surgeTopic")?;
            out.push(SurgeRecord {
                id: id.to_owned(),
                topic: TopicName::parse(topic)
                    .ok_or_else(|| StoreError(format!("surge {id}: unknown topic {topic}")))?,
                starts_at: get_n(&item, "startsAt")?,
                count: get_n(&item, "count")?,
                seconds: get_n(&item, "seconds")?,
            });
        }
        out.sort_by(|a, b| (a.starts_at, &a.id).cmp(&(b.starts_at, &b.id)));
        Ok(out)
    }

    async fn put_surge(&self, surge: &SurgeRecord) -> Result<(), StoreError> {
        let table = &self.tables.rates;
        self.client
            .put_item()
            .table_name(table)
            .item("topic", s(format!("{SURGE}{}", surge.id)))
            .item("surgeTopic", s(surge.topic.as_str()))
            .item("startsAt", n(surge.starts_at))
            .item("count", n(surge.count))
            .item("seconds", n(surge.seconds))
            .send()
            .await
            .map_err(|e| aws_err("PutItem", table, e))?;
        Ok(())
    }

    async fn delete_surge(&self, surge: &SurgeRecord) -> Result<(), StoreError> {
        let table = &self.tables.rates;
        self.client
            .delete_item()
            .table_name(table)
            .key("topic", s(format!("{SURGE}{}", surge.id)))
            .send()
            .await
            .map_err(|e| aws_err("DeleteItem", table, e))?;
        Ok(())
    }
}
