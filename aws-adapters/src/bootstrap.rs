//! Creates or updates, idempotently, every AWS resource HQ's Lambdas use, on
//! whatever endpoint the environment points at (an emulator such as moto, or a
//! real account for trying the Lambdas locally): the DynamoDB tables (with TTL),
//! the three orders topics, and the usage plan new API keys join (with a REST API
//! and stage for it to cover, when it has none yet). Answers the [`AwsConfig`]
//! the Lambdas need, whose [`AwsConfig::env_lines`] are printed for them.
//!
//! Running it twice changes nothing the second time but the usage plan's limits,
//! which follow the options given.

use std::time::Duration;

use aws_sdk_apigateway::types::{
    ApiStage, Op, PatchOperation, QuotaPeriodType, QuotaSettings, ThrottleSettings,
};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};
use hq_core::domain::TopicName;

use crate::config::{AwsConfig, TableNames};
use crate::Clients;

/// What to create.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    pub tables: TableNames,
    /// Name of the usage plan (found by name, so it is made once).
    pub usage_plan_name: String,
    /// Name of the REST API the usage plan covers, made only if the plan is new.
    pub rest_api_name: String,
    pub stage: String,
    /// Steady requests per second per key.
    pub rate: f64,
    pub burst: i32,
    pub quota_per_day: Option<i32>,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            tables: TableNames::from_env(),
            usage_plan_name: "interstella-hq".into(),
            rest_api_name: "interstella-hq".into(),
            stage: "prod".into(),
            rate: 100.0,
            burst: 200,
            quota_per_day: None,
        }
    }
}

/// A bootstrap step that failed, naming the step and the service's answer.
#[derive(Debug, thiserror::Error)]
#[error("bootstrap: {0}")]
pub struct BootstrapError(pub String);

fn fail<E: std::error::Error + 'static>(step: &str, e: E) -> BootstrapError {
    BootstrapError(format!("{step}: {}", DisplayErrorContext(&e)))
}

/// Table name, partition key, optional numeric sort key, optional TTL attribute.
struct TableSpec<'a> {
    name: &'a str,
    hash: &'a str,
    range_n: Option<&'a str>,
    ttl: Option<&'a str>,
}

fn specs(t: &TableNames) -> [TableSpec<'_>; 8] {
    let spec = |name, hash, range_n, ttl| TableSpec {
        name,
        hash,
        range_n,
        ttl,
    };
    [
        spec(&t.users, "username", None, None),
        spec(&t.keys, "keyValue", None, None),
        spec(&t.sessions, "digest", None, Some("ttl")),
        spec(&t.fulfillments, "id", None, None),
        spec(&t.totals, "username", None, None),
        spec(&t.minutes, "username", Some("minute"), Some("ttl")),
        spec(&t.rates, "topic", None, None),
        spec(&t.subscriptions, "id", None, None),
    ]
}

/// Creates whatever is missing; answers the configuration the Lambdas need.
pub async fn bootstrap(
    clients: &Clients,
    opts: &BootstrapOptions,
) -> Result<AwsConfig, BootstrapError> {
    for spec in specs(&opts.tables) {
        ensure_table(&clients.dynamodb, &spec).await?;
    }
    let mut topics = std::collections::BTreeMap::new();
    for topic in TopicName::ALL {
        // CreateTopic is idempotent: it answers the existing topic's ARN.
        let out = clients
            .sns
            .create_topic()
            .name(topic.as_str())
            .send()
            .await
            .map_err(|e| fail(&format!("creating topic {}", topic.as_str()), e))?;
        let arn = out.topic_arn().ok_or_else(|| {
            BootstrapError(format!("CreateTopic {} answered no ARN", topic.as_str()))
        })?;
        topics.insert(topic, arn.to_owned());
    }
    let usage_plan_id = ensure_usage_plan(&clients.apigateway, opts).await?;
    Ok(AwsConfig {
        tables: opts.tables.clone(),
        topics,
        usage_plan_id: Some(usage_plan_id),
    })
}

async fn ensure_table(
    db: &aws_sdk_dynamodb::Client,
    spec: &TableSpec<'_>,
) -> Result<(), BootstrapError> {
    let step = |what: &str| format!("{what} table {}", spec.name);
    let exists = match db.describe_table().table_name(spec.name).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => return Err(fail(&step("describing"), e)),
    };
    if !exists {
        let attr = |name: &str, t| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(t)
                .build()
        };
        let key = |name: &str, t| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
        };
        let mut create = db
            .create_table()
            .table_name(spec.name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                attr(spec.hash, ScalarAttributeType::S).map_err(|e| fail(&step("defining"), e))?,
            )
            .key_schema(key(spec.hash, KeyType::Hash).map_err(|e| fail(&step("defining"), e))?);
        if let Some(range) = spec.range_n {
            create = create
                .attribute_definitions(
                    attr(range, ScalarAttributeType::N).map_err(|e| fail(&step("defining"), e))?,
                )
                .key_schema(key(range, KeyType::Range).map_err(|e| fail(&step("defining"), e))?);
        }
        match create.send().await {
            Ok(_) => {}
            // Another bootstrap got there first.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(fail(&step("creating"), e)),
        }
    }
    // Wait until it takes writes (real DynamoDB: seconds; emulators: at once).
    let mut active = false;
    for _ in 0..120 {
        let out = db
            .describe_table()
            .table_name(spec.name)
            .send()
            .await
            .map_err(|e| fail(&step("describing"), e))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if !active {
        return Err(BootstrapError(format!(
            "table {} did not become ACTIVE within 2 minutes",
            spec.name
        )));
    }
    if let Some(ttl) = spec.ttl {
        let current = db
            .describe_time_to_live()
            .table_name(spec.name)
            .send()
            .await
            .map_err(|e| fail(&step("describing TTL of"), e))?;
        let enabled = current
            .time_to_live_description()
            .and_then(|d| d.attribute_name())
            .is_some_and(|a| a == ttl);
        if !enabled {
            let spec_ttl = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(ttl)
                .build()
                .map_err(|e| fail(&step("defining TTL of"), e))?;
            match db
                .update_time_to_live()
                .table_name(spec.name)
                .time_to_live_specification(spec_ttl)
                .send()
                .await
            {
                Ok(_) => {}
                // "TimeToLive is already enabled" (a concurrent bootstrap).
                Err(e) if e.code() == Some("ValidationException") => {}
                Err(e) => return Err(fail(&step("enabling TTL on"), e)),
            }
        }
    }
    Ok(())
}

async fn ensure_usage_plan(
    gw: &aws_sdk_apigateway::Client,
    opts: &BootstrapOptions,
) -> Result<String, BootstrapError> {
    let throttle = ThrottleSettings::builder()
        .rate_limit(opts.rate)
        .burst_limit(opts.burst)
        .build();
    let quota = opts.quota_per_day.map(|limit| {
        QuotaSettings::builder()
            .limit(limit)
            .period(QuotaPeriodType::Day)
            .build()
    });
    let plans = gw
        .get_usage_plans()
        .limit(500)
        .send()
        .await
        .map_err(|e| fail("listing usage plans", e))?;
    if let Some(plan) = plans
        .items()
        .iter()
        .find(|p| p.name() == Some(opts.usage_plan_name.as_str()))
    {
        let id = plan.id().unwrap_or_default().to_owned();
        let mut ops = vec![
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/throttle/rateLimit")
                .value(opts.rate.to_string())
                .build(),
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/throttle/burstLimit")
                .value(opts.burst.to_string())
                .build(),
        ];
        if let Some(limit) = opts.quota_per_day {
            ops.push(
                PatchOperation::builder()
                    .op(Op::Replace)
                    .path("/quota/limit")
                    .value(limit.to_string())
                    .build(),
            );
            ops.push(
                PatchOperation::builder()
                    .op(Op::Replace)
                    .path("/quota/period")
                    .value("DAY")
                    .build(),
            );
        }
        let same = plan
            .throttle()
            .is_some_and(|t| t.rate_limit() == opts.rate && t.burst_limit() == opts.burst)
            && plan.quota().map(|q| q.limit()) == opts.quota_per_day;
        if !same {
            gw.update_usage_plan()
                .usage_plan_id(&id)
                .set_patch_operations(Some(ops))
                .send()
                .await
                .map_err(|e| fail("updating the usage plan's limits", e))?;
        }
        return Ok(id);
    }
    let api_id = ensure_rest_api(gw, opts).await?;
    let stage = ApiStage::builder()
        .api_id(&api_id)
        .stage(&opts.stage)
        .build();
    let created = gw
        .create_usage_plan()
        .name(&opts.usage_plan_name)
        .description("Interstella HQ: every attendee's API key")
        .throttle(throttle)
        .set_quota(quota)
        .api_stages(stage)
        .send()
        .await
        .map_err(|e| fail("creating the usage plan", e))?;
    created
        .id()
        .map(str::to_owned)
        .ok_or_else(|| BootstrapError("CreateUsagePlan answered no id".into()))
}

/// A REST API with `ANY /receiving` requiring an API key, deployed to the
/// stage, so a usage plan has something to cover. The deployed template
/// replaces this with the real API (Lambda integrations).
async fn ensure_rest_api(
    gw: &aws_sdk_apigateway::Client,
    opts: &BootstrapOptions,
) -> Result<String, BootstrapError> {
    let apis = gw
        .get_rest_apis()
        .limit(500)
        .send()
        .await
        .map_err(|e| fail("listing REST APIs", e))?;
    let api_id = match apis
        .items()
        .iter()
        .find(|a| a.name() == Some(opts.rest_api_name.as_str()))
    {
        Some(a) => a.id().unwrap_or_default().to_owned(),
        None => gw
            .create_rest_api()
            .name(&opts.rest_api_name)
            .description("Interstella HQ fulfillment API")
            .send()
            .await
            .map_err(|e| fail("creating the REST API", e))?
            .id()
            .unwrap_or_default()
            .to_owned(),
    };
    let resources = gw
        .get_resources()
        .rest_api_id(&api_id)
        .limit(500)
        .send()
        .await
        .map_err(|e| fail("listing the REST API's resources", e))?;
    let root = resources
        .items()
        .iter()
        .find(|r| r.path() == Some("/"))
        .and_then(|r| r.id())
        .ok_or_else(|| BootstrapError("the REST API has no root resource".into()))?
        .to_owned();
    let receiving = match resources
        .items()
        .iter()
        .find(|r| r.path() == Some("/receiving"))
    {
        Some(r) => r.id().unwrap_or_default().to_owned(),
        None => gw
            .create_resource()
            .rest_api_id(&api_id)
            .parent_id(&root)
            .path_part("receiving")
            .send()
            .await
            .map_err(|e| fail("creating /receiving", e))?
            .id()
            .unwrap_or_default()
            .to_owned(),
    };
    let has_method = gw
        .get_method()
        .rest_api_id(&api_id)
        .resource_id(&receiving)
        .http_method("ANY")
        .send()
        .await
        .is_ok();
    if !has_method {
        gw.put_method()
            .rest_api_id(&api_id)
            .resource_id(&receiving)
            .http_method("ANY")
            .authorization_type("NONE")
            .api_key_required(true)
            .send()
            .await
            .map_err(|e| fail("creating ANY /receiving", e))?;
        gw.put_integration()
            .rest_api_id(&api_id)
            .resource_id(&receiving)
            .http_method("ANY")
            .r#type(aws_sdk_apigateway::types::IntegrationType::Mock)
            .send()
            .await
            .map_err(|e| fail("integrating ANY /receiving", e))?;
    }
    let has_stage = gw
        .get_stage()
        .rest_api_id(&api_id)
        .stage_name(&opts.stage)
        .send()
        .await
        .is_ok();
    if !has_stage {
        gw.create_deployment()
            .rest_api_id(&api_id)
            .stage_name(&opts.stage)
            .send()
            .await
            .map_err(|e| fail("deploying the REST API", e))?;
    }
    Ok(api_id)
}
