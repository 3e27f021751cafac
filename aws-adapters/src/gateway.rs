//! [`KeyGateway`] on API Gateway: an issued key becomes an API Gateway API key
//! with HQ's value, attached to the usage plan, so API Gateway checks the key,
//! throttle and quota before the fulfillment Lambda runs. A rotated or revoked
//! key is deleted there (which also detaches it from the usage plan).
//!
//! API Gateway allows 5 `CreateApiKey` calls per second per account. Each call
//! here is retried with backoff and jitter ([`Backoff::GATEWAY`]) on
//! `TooManyRequestsException`, so a room signing up at once all get keys, a few
//! seconds later at worst. Every step is idempotent, so a retried portal request
//! finishes what an earlier one started.

use async_trait::async_trait;
use aws_sdk_apigateway::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_apigateway::types::{Op, PatchOperation};
use aws_sdk_apigateway::Client;
use hq_core::domain::{KeyRecord, Username};
use hq_core::ports::KeyGateway;
use hq_core::StoreError;

use crate::retry::{retry, Backoff};

pub struct ApiGatewayKeys {
    client: Client,
    usage_plan_id: Option<String>,
}

/// The API key's name at API Gateway: the owner and HQ's key id (never the value).
pub fn api_key_name(username: &Username, key: &KeyRecord) -> String {
    format!("hq-{}-{}", username, key.id)
}

fn throttled<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    e.code() == Some("TooManyRequestsException")
        || e.code() == Some("ThrottlingException")
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 429)
}

fn gw_err<E>(op: &str, e: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    StoreError(format!("API Gateway {op}: {}", DisplayErrorContext(&e)))
}

impl ApiGatewayKeys {
    /// `usage_plan_id: None` creates keys without attaching them (no plan yet).
    pub fn new(client: Client, usage_plan_id: Option<String>) -> Self {
        Self {
            client,
            usage_plan_id,
        }
    }

    /// The API Gateway id of the API key holding `key`'s value, if any.
    pub async fn find(
        &self,
        username: &Username,
        key: &KeyRecord,
    ) -> Result<Option<String>, StoreError> {
        let name = api_key_name(username, key);
        let mut position: Option<String> = None;
        for _ in 0..1000 {
            let page = retry(Backoff::GATEWAY, throttled, || {
                self.client
                    .get_api_keys()
                    .name_query(&name)
                    .include_values(true)
                    .set_position(position.clone())
                    .limit(500)
                    .send()
            })
            .await
            .map_err(|e| gw_err("GetApiKeys", e))?;
            if let Some(found) = page
                .items()
                .iter()
                .find(|k| k.value() == Some(key.value.expose()) || k.name() == Some(name.as_str()))
            {
                return Ok(found.id().map(str::to_owned));
            }
            match page.position() {
                Some(p) if !p.is_empty() && !page.items().is_empty() => {
                    position = Some(p.to_owned())
                }
                _ => break,
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl KeyGateway for ApiGatewayKeys {
    async fn enable(&self, username: &Username, key: &KeyRecord) -> Result<(), StoreError> {
        let name = api_key_name(username, key);
        let created = retry(Backoff::GATEWAY, throttled, || {
            self.client
                .create_api_key()
                .name(&name)
                .description(format!("Interstella HQ key of {username}"))
                .value(key.value.expose())
                .enabled(true)
                .customer_id(username.as_str())
                .send()
        })
        .await;
        let id = match created {
            Ok(k) => k.id().map(str::to_owned),
            // Made by an earlier attempt whose answer was lost: find it.
            Err(e) if e.code() == Some("ConflictException") => self.find(username, key).await?,
            Err(e) => return Err(gw_err("CreateApiKey", e)),
        };
        let id =
            id.ok_or_else(|| StoreError(format!("API Gateway CreateApiKey: no id for {name}")))?;
        let Some(plan) = &self.usage_plan_id else {
            return Ok(());
        };
        let attached = retry(Backoff::GATEWAY, throttled, || {
            self.client
                .create_usage_plan_key()
                .usage_plan_id(plan)
                .key_id(&id)
                .key_type("API_KEY")
                .send()
        })
        .await;
        match attached {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConflictException") => Ok(()),
            Err(e) => Err(gw_err("CreateUsagePlanKey", e)),
        }
    }

    async fn disable(&self, username: &Username, key: &KeyRecord) -> Result<(), StoreError> {
        let Some(id) = self.find(username, key).await? else {
            return Ok(()); // never made it to the gateway, or already gone
        };
        // Detach first: API Gateway drops the association with the key anyway,
        // but emulators keep listing a deleted key on the plan otherwise.
        if let Some(plan) = &self.usage_plan_id {
            let detached = retry(Backoff::GATEWAY, throttled, || {
                self.client
                    .delete_usage_plan_key()
                    .usage_plan_id(plan)
                    .key_id(&id)
                    .send()
            })
            .await;
            if let Err(e) = detached {
                if e.code() != Some("NotFoundException") {
                    return Err(gw_err("DeleteUsagePlanKey", e));
                }
            }
        }
        let deleted = retry(Backoff::GATEWAY, throttled, || {
            self.client.delete_api_key().api_key(&id).send()
        })
        .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NotFoundException") => Ok(()),
            Err(e) => {
                // Deleting failed: at least switch it off.
                let off = self
                    .client
                    .update_api_key()
                    .api_key(&id)
                    .patch_operations(
                        PatchOperation::builder()
                            .op(Op::Replace)
                            .path("/enabled")
                            .value("false")
                            .build(),
                    )
                    .send()
                    .await;
                match off {
                    Ok(_) => Ok(()),
                    Err(_) => Err(gw_err("DeleteApiKey", e)),
                }
            }
        }
    }
}
