//! Consistency by construction: the template names exactly what the code uses.
//! Every expectation is read from the code (`aws_adapters::config`,
//! `hq_core::domain::TopicName`, `hq_lambdas::LambdaSettings`), not restated.

use std::collections::{BTreeMap, BTreeSet};

use aws_adapters::bootstrap::BootstrapOptions;
use aws_adapters::config::{self, TableNames, ENV_VARS};
use clap::CommandFactory;
use hq_core::domain::TopicName;
use hq_infra::{ref_of, resource, resources_of, template};
use serde_json::{json, Value};

/// The three Lambdas: logical id of the function in the template, binary name.
const FUNCTIONS: [(&str, &str); 3] = [
    ("FulfillmentFunction", "fulfillment-api"),
    ("PortalFunction", "key-portal"),
    ("PublisherFunction", "order-publisher"),
];

/// Variables the template may set besides HQ's own: read by the Lambda
/// runtime libraries, not by HQ's settings.
const RUNTIME_VARS: [&str; 2] = ["AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "RUST_LOG"];

/// Every environment variable `hq_lambdas::LambdaSettings` reads.
fn settings_vars() -> BTreeSet<String> {
    hq_lambdas::LambdaSettings::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

fn env_of<'a>(t: &'a Value, function: &str) -> &'a serde_json::Map<String, Value> {
    resource(t, function)["Properties"]["Environment"]["Variables"]
        .as_object()
        .unwrap_or_else(|| panic!("{function} has no environment"))
}

/// Table logical ids by the name they give the table.
fn tables_by_name(t: &Value) -> BTreeMap<String, (&str, &Value)> {
    resources_of(t, "AWS::DynamoDB::Table")
        .into_iter()
        .map(|(id, r)| {
            let name = r["Properties"]["TableName"]
                .as_str()
                .expect("fixed TableName")
                .to_owned();
            (name, (id, r))
        })
        .collect()
}

#[test]
fn template_is_long_form_yaml() {
    let text = std::fs::read_to_string(hq_infra::template_path()).unwrap();
    for (i, line) in text.lines().enumerate() {
        let code = if line.trim_start().starts_with('#') {
            ""
        } else {
            line.split(" #").next().unwrap_or("")
        };
        assert!(
            !code.contains(": !") && !code.trim_start().starts_with("- !") && !code.contains("[!"),
            "line {}: short-form tag; write Ref / Fn::... instead: {line}",
            i + 1
        );
    }
    let t = template();
    assert_eq!(t["AWSTemplateFormatVersion"], "2010-09-09");
    assert!(
        t.get("Transform").is_none(),
        "plain CloudFormation: moto does not run the SAM transform"
    );
}

#[test]
fn table_names_are_the_adapters_defaults_and_each_env_var_names_its_table() {
    let t = template();
    let tables = tables_by_name(&t);
    let defaults = TableNames::default();
    let expected: BTreeSet<String> = defaults
        .vars()
        .iter()
        .map(|(_, n)| (*n).to_owned())
        .collect();
    assert_eq!(
        tables.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the template's tables"
    );
    for (function, _) in FUNCTIONS {
        let env = env_of(&t, function);
        for (var, name) in defaults.vars() {
            let (logical, _) = tables[name];
            assert_eq!(
                ref_of(&env[var]),
                Some(logical),
                "{function}: {var} must be {{Ref: {logical}}} (table {name})"
            );
        }
    }
}

#[test]
fn key_schemas_and_ttl_are_the_data_models() {
    // The bootstrap's table specs are private to aws-adapters; the moto test
    // compares what both actually create. Here: the template's own shape, which
    // must say the same as DATA_MODEL.md / bootstrap.rs (hash S, optional range N).
    let t = template();
    let d = TableNames::default();
    let expected: BTreeMap<&str, (Value, Option<&str>)> = BTreeMap::from([
        (d.users.as_str(), (json!([["username", "HASH", "S"]]), None)),
        (d.keys.as_str(), (json!([["keyValue", "HASH", "S"]]), None)),
        (
            d.sessions.as_str(),
            (json!([["digest", "HASH", "S"]]), Some("ttl")),
        ),
        (
            d.fulfillments.as_str(),
            (json!([["id", "HASH", "S"]]), None),
        ),
        (
            d.totals.as_str(),
            (json!([["username", "HASH", "S"]]), None),
        ),
        (
            d.minutes.as_str(),
            (
                json!([["username", "HASH", "S"], ["minute", "RANGE", "N"]]),
                Some("ttl"),
            ),
        ),
        (d.rates.as_str(), (json!([["topic", "HASH", "S"]]), None)),
        (
            d.subscriptions.as_str(),
            (json!([["id", "HASH", "S"]]), None),
        ),
    ]);
    for (name, (_, r)) in tables_by_name(&t) {
        let p = &r["Properties"];
        let types: BTreeMap<&str, &str> = p["AttributeDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().unwrap(),
                    a["AttributeType"].as_str().unwrap(),
                )
            })
            .collect();
        let keys: Vec<Value> = p["KeySchema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                let a = k["AttributeName"].as_str().unwrap();
                json!([a, k["KeyType"], types[a]])
            })
            .collect();
        let (want_keys, want_ttl) = &expected[name.as_str()];
        assert_eq!(&Value::Array(keys), want_keys, "key schema of {name}");
        assert_eq!(
            types.len(),
            want_keys.as_array().unwrap().len(),
            "{name}: only key attributes are defined"
        );
        let ttl = p.get("TimeToLiveSpecification");
        match want_ttl {
            Some(attr) => assert_eq!(
                ttl,
                Some(&json!({"AttributeName": attr, "Enabled": true})),
                "TTL of {name}"
            ),
            None => assert!(ttl.is_none(), "{name} has no TTL in the data model"),
        }
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{name} is on demand");
        assert_eq!(
            p["PointInTimeRecoverySpecification"],
            json!({"PointInTimeRecoveryEnabled": true}),
            "PITR on {name}"
        );
        assert_eq!(
            p["DeletionProtectionEnabled"],
            json!({"Fn::If": ["ProtectTables", true, false]}),
            "{name}: deletion protection follows the parameter"
        );
    }
}

#[test]
fn topics_are_the_domains_and_each_arn_var_names_its_topic() {
    let t = template();
    let topics: BTreeMap<String, &str> = resources_of(&t, "AWS::SNS::Topic")
        .into_iter()
        .map(|(id, r)| {
            (
                r["Properties"]["TopicName"].as_str().unwrap().to_owned(),
                id,
            )
        })
        .collect();
    let want: BTreeSet<String> = TopicName::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(topics.keys().cloned().collect::<BTreeSet<_>>(), want);
    let vars = [
        (TopicName::Orders, config::ORDERS_TOPIC_ARN),
        (TopicName::Iridium, config::IRIDIUM_TOPIC_ARN),
        (TopicName::Magnesite, config::MAGNESITE_TOPIC_ARN),
    ];
    for (function, _) in FUNCTIONS {
        let env = env_of(&t, function);
        for (topic, var) in vars {
            assert_eq!(
                ref_of(&env[var]),
                Some(topics[topic.as_str()]),
                "{function}: {var}"
            );
        }
    }
    // Attendee accounts may subscribe to all three.
    let policies = resources_of(&t, "AWS::SNS::TopicPolicy");
    assert_eq!(policies.len(), 1);
    let covered: BTreeSet<&str> = policies[0].1["Properties"]["Topics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(ref_of)
        .collect();
    assert_eq!(covered, topics.values().copied().collect());
    let statement = &policies[0].1["Properties"]["PolicyDocument"]["Statement"][0];
    assert!(statement["Action"]
        .as_array()
        .unwrap()
        .contains(&json!("sns:Subscribe")));
    assert_eq!(
        statement["Principal"]["AWS"],
        json!({"Fn::If": ["HasAttendeeAccounts", {"Ref": "AttendeeAccountIds"}, {"Ref": "AWS::AccountId"}]})
    );
}

#[test]
fn every_variable_a_lambda_reads_is_set_and_none_is_unknown() {
    let t = template();
    let settings = settings_vars();
    assert!(
        settings.contains("HQ_ADMIN_TOKEN"),
        "LambdaSettings read via clap env: {settings:?}"
    );
    let known: BTreeSet<String> = ENV_VARS
        .iter()
        .map(|v| v.to_string())
        .chain(settings.iter().cloned())
        .chain(RUNTIME_VARS.iter().map(|v| v.to_string()))
        .collect();
    // What each Lambda needs set (beyond the defaults that fit AWS as they are).
    let needs: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        (
            "FulfillmentFunction",
            vec![
                "HQ_KEY_CACHE_TTL_SECS",
                "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH",
            ],
        ),
        (
            "PortalFunction",
            vec![
                "HQ_ADMIN_TOKEN",
                "HQ_PUBLIC_URL",
                "HQ_FULFILLMENT_URL",
                "HQ_THROTTLE_RATE",
                "HQ_THROTTLE_BURST",
                "HQ_QUOTA_PER_DAY",
                "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH",
            ],
        ),
        ("PublisherFunction", vec!["HQ_PUBLISH_INTERVAL_SECS"]),
    ]);
    for (function, _) in FUNCTIONS {
        let env = env_of(&t, function);
        for var in ENV_VARS {
            assert!(env.contains_key(var), "{function} lacks {var} (aws_adapters::ENV_VARS; AwsConfig::from_env reads them all)");
        }
        for var in &needs[function] {
            assert!(env.contains_key(*var), "{function} lacks {var}");
        }
        for var in env.keys() {
            assert!(
                known.contains(var),
                "{function} sets {var}, which no Lambda reads (typo?)"
            );
        }
    }
    assert_eq!(
        ref_of(&env_of(&t, "PortalFunction")[config::USAGE_PLAN_ID]),
        Some("UsagePlan"),
        "the portal issues keys into the template's usage plan"
    );
    let portal = env_of(&t, "PortalFunction");
    assert_eq!(ref_of(&portal["HQ_THROTTLE_RATE"]), Some("ThrottleRate"));
    assert_eq!(ref_of(&portal["HQ_THROTTLE_BURST"]), Some("ThrottleBurst"));
    // The admin token comes from the generated secret, never a literal.
    let token = portal["HQ_ADMIN_TOKEN"]["Fn::Sub"]
        .as_str()
        .expect("HQ_ADMIN_TOKEN via Fn::Sub");
    assert!(
        token.starts_with("{{resolve:secretsmanager:${AdminTokenSecret}"),
        "{token}"
    );
    assert_eq!(
        resource(&t, "AdminTokenSecret")["Type"],
        "AWS::SecretsManager::Secret"
    );
    assert!(resource(&t, "AdminTokenSecret")["Properties"]["GenerateSecretString"].is_object());
    for (k, o) in t["Outputs"].as_object().unwrap() {
        let text = o["Value"].to_string();
        assert!(
            !text.contains("resolve:secretsmanager") && !text.contains("SecretString"),
            "output {k} leaks the token"
        );
    }
}

#[test]
fn lambdas_are_arm64_al2023_traced_with_own_roles_and_log_retention() {
    let t = template();
    let mut roles = BTreeSet::new();
    for (function, binary) in FUNCTIONS {
        let p = &resource(&t, function)["Properties"];
        assert_eq!(p["Runtime"], "provided.al2023", "{function}");
        assert_eq!(p["Architectures"], json!(["arm64"]), "{function}");
        assert_eq!(p["Handler"], "bootstrap", "{function}");
        assert_eq!(p["TracingConfig"], json!({"Mode": "Active"}), "{function}");
        assert_eq!(
            p["FunctionName"],
            json!({"Fn::Sub": format!("${{AWS::StackName}}-{binary}")})
        );
        let role = p["Role"]["Fn::GetAtt"][0]
            .as_str()
            .expect("Role: GetAtt <role>.Arn");
        assert!(
            roles.insert(role.to_owned()),
            "{function} shares its role {role}"
        );
        // Its log group, with retention, made before it.
        let group = resource(&t, function)["DependsOn"]
            .as_str()
            .expect("DependsOn its log group");
        let g = &resource(&t, group)["Properties"];
        assert_eq!(
            g["LogGroupName"],
            json!({"Fn::Sub": format!("/aws/lambda/${{AWS::StackName}}-{binary}")})
        );
        assert_eq!(ref_of(&g["RetentionInDays"]), Some("LogRetentionDays"));
    }
}

/// Actions of a role's policy, with the logical ids of the resources they name.
fn grants(t: &Value, role: &str) -> Vec<(BTreeSet<String>, String)> {
    let mut out = Vec::new();
    for policy in resource(t, role)["Properties"]["Policies"]
        .as_array()
        .unwrap()
    {
        for st in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
            assert_eq!(st["Effect"], "Allow");
            let actions: BTreeSet<String> = match &st["Action"] {
                Value::String(a) => BTreeSet::from([a.clone()]),
                Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
                other => panic!("Action {other}"),
            };
            out.push((actions, st["Resource"].to_string()));
        }
    }
    out
}

#[test]
fn roles_are_least_privilege() {
    let t = template();
    for (role, _) in resources_of(&t, "AWS::IAM::Role") {
        for (actions, res) in grants(&t, role) {
            for a in &actions {
                assert!(
                    !a.ends_with(":*") && a != "*",
                    "{role}: wildcard action {a}"
                );
            }
            if res == "\"*\"" {
                assert!(
                    actions.iter().all(|a| a.starts_with("xray:")),
                    "{role}: only X-Ray may have Resource *, not {actions:?}"
                );
            }
        }
    }
    let has = |role: &str, action: &str, on: &str| {
        grants(&t, role)
            .iter()
            .any(|(a, r)| a.contains(action) && r.contains(on))
    };
    // Fulfillment: key lookup, the ledger write and the lab faults' one item,
    // nothing else.
    assert!(has("FulfillmentRole", "dynamodb:GetItem", "KeysTable"));
    let lab_read = resource(&t, "FulfillmentRole")["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["Resource"].to_string().contains("RatesTable"))
        .collect::<Vec<_>>();
    assert_eq!(lab_read.len(), 1, "{lab_read:?}");
    assert_eq!(lab_read[0]["Action"], json!(["dynamodb:GetItem"]));
    assert_eq!(
        lab_read[0]["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
        json!(["lab:receiving"])
    );
    assert!(has(
        "FulfillmentRole",
        "dynamodb:PutItem",
        "FulfillmentsTable"
    ));
    assert!(has("FulfillmentRole", "dynamodb:UpdateItem", "TotalsTable"));
    assert!(has(
        "FulfillmentRole",
        "dynamodb:UpdateItem",
        "MinutesTable"
    ));
    for other in ["UsersTable", "SessionsTable", "SubscriptionsTable"] {
        assert!(
            !grants(&t, "FulfillmentRole")
                .iter()
                .any(|(_, r)| r.contains(other)),
            "fulfillment: {other}"
        );
    }
    for (a, _) in grants(&t, "FulfillmentRole") {
        assert!(
            !a.iter()
                .any(|a| a.starts_with("sns:") || a.starts_with("apigateway:")),
            "fulfillment: {a:?}"
        );
    }
    // Publisher: reads rates, publishes orders.
    assert!(has("PublisherRole", "dynamodb:Scan", "RatesTable"));
    assert!(has("PublisherRole", "sns:Publish", "OrdersTopic"));
    for (a, r) in grants(&t, "PublisherRole") {
        assert!(
            !a.iter().any(|a| a.starts_with("apigateway:")),
            "publisher: {a:?}"
        );
        assert!(
            !a.iter().any(|a| a.starts_with("dynamodb:")) || r.contains("RatesTable"),
            "publisher: {a:?} on {r}"
        );
        let writes = |a: &String| {
            a.starts_with("dynamodb:")
                && (a.contains("Put")
                    || a.contains("Update")
                    || a.contains("Delete")
                    || a.contains("Write"))
        };
        assert!(!a.iter().any(writes), "publisher writes nothing: {a:?}");
    }
    // Portal: API keys and the plan's keys only; subscribe, no publish.
    assert!(has("PortalRole", "apigateway:POST", "/apikeys"));
    assert!(has(
        "PortalRole",
        "apigateway:POST",
        "/usageplans/${UsagePlan}/keys"
    ));
    assert!(has("PortalRole", "apigateway:DELETE", "/apikeys/*"));
    assert!(has("PortalRole", "sns:Subscribe", "OrdersTopic"));
    assert!(has("PortalRole", "sns:Unsubscribe", "${OrdersTopic}:*"));
    for (a, _) in grants(&t, "PortalRole") {
        assert!(!a.contains("sns:Publish"), "portal does not publish");
    }
    // The assets bucket (when the stack has one): the portal reads and lists
    // it, and no other policy touches S3.
    let policies = resources_of(&t, "AWS::IAM::Policy");
    assert_eq!(policies.len(), 1, "{policies:?}");
    let (id, assets) = policies[0];
    assert_eq!(id, "PortalAssetsPolicy");
    assert_eq!(assets["Condition"], "WantAssetsBucket");
    assert_eq!(
        assets["Properties"]["Roles"],
        json!([{"Ref": "PortalRole"}])
    );
    let statements = assets["Properties"]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let grant = |st: &Value| (st["Action"].clone(), st["Resource"].clone());
    assert_eq!(
        statements.iter().map(grant).collect::<Vec<_>>(),
        [
            (
                json!(["s3:GetObject"]),
                json!({"Fn::Sub": "${AssetsBucket.Arn}/*"})
            ),
            (
                json!(["s3:ListBucket"]),
                json!({"Fn::GetAtt": ["AssetsBucket", "Arn"]})
            ),
        ]
    );
    assert_eq!(
        env_of(&t, "PortalFunction")["HQ_ASSETS_BUCKET"],
        json!({"Fn::If": ["WantAssetsBucket", {"Ref": "AssetsBucket"}, ""]})
    );
    for (role, _) in resources_of(&t, "AWS::IAM::Role") {
        for (a, _) in grants(&t, role) {
            assert!(!a.iter().any(|a| a.starts_with("s3:")), "{role}: {a:?}");
        }
    }
}

#[test]
fn api_routes_keys_and_gateway_responses_follow_the_contract() {
    let t = template();
    // Resource paths, from the parent chain.
    let mut paths: BTreeMap<String, String> = BTreeMap::new();
    let resources = resources_of(&t, "AWS::ApiGateway::Resource");
    for _ in 0..resources.len() {
        for (id, r) in &resources {
            let p = &r["Properties"];
            let parent = match ref_of(&p["ParentId"]) {
                Some(parent) => paths.get(parent).cloned(),
                None => Some(String::new()), // GetAtt RestApi.RootResourceId
            };
            if let Some(parent) = parent {
                paths.insert(
                    (*id).to_owned(),
                    format!("{parent}/{}", p["PathPart"].as_str().unwrap()),
                );
            }
        }
    }
    let mut routes: BTreeMap<(String, String), (bool, String)> = BTreeMap::new();
    for (_, m) in resources_of(&t, "AWS::ApiGateway::Method") {
        let p = &m["Properties"];
        let path = match ref_of(&p["ResourceId"]) {
            Some(id) => paths[id].clone(),
            None => "/".to_owned(),
        };
        let uri = p["Integration"]["Uri"]["Fn::Sub"].as_str().unwrap();
        assert_eq!(p["Integration"]["Type"], "AWS_PROXY");
        let target = if uri.ends_with("-fulfillment-api/invocations") {
            "fulfillment-api"
        } else if uri.ends_with("-key-portal/invocations") {
            "key-portal"
        } else {
            panic!("{path}: integration {uri}")
        };
        routes.insert(
            (p["HttpMethod"].as_str().unwrap().to_owned(), path),
            (p["ApiKeyRequired"] == json!(true), target.to_owned()),
        );
    }
    let r = |m: &str, p: &str| routes.get(&(m.to_owned(), p.to_owned())).cloned();
    let fulfill = Some((true, "fulfillment-api".to_owned()));
    let portal = Some((false, "key-portal".to_owned()));
    // API Gateway routes /receiving/ (trailing slash) to the /receiving resource.
    assert_eq!(r("POST", "/receiving"), fulfill);
    assert_eq!(r("PUT", "/receiving"), fulfill);
    for path in [
        "/",
        "/leaderboard",
        "/admin",
        "/healthz",
        "/static/{proxy+}",
        "/assets",
        "/assets/{proxy+}",
    ] {
        assert_eq!(r("GET", path), portal, "GET {path}");
    }
    assert_eq!(r("ANY", "/api/{proxy+}"), portal);
    assert_eq!(r("ANY", "/admin/api/{proxy+}"), portal);
    assert_eq!(
        routes.values().filter(|(key, _)| *key).count(),
        2,
        "only /receiving needs a key"
    );

    let mut bodies = BTreeMap::new();
    for (_, g) in resources_of(&t, "AWS::ApiGateway::GatewayResponse") {
        let p = &g["Properties"];
        bodies.insert(
            p["ResponseType"].as_str().unwrap().to_owned(),
            (
                p["StatusCode"].as_str().unwrap().to_owned(),
                p["ResponseTemplates"]["application/json"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
        );
    }
    let forbidden = ("403".to_owned(), r#"{"message":"Forbidden"}"#.to_owned());
    assert_eq!(bodies["INVALID_API_KEY"], forbidden);
    assert_eq!(bodies["ACCESS_DENIED"], forbidden);
    assert_eq!(bodies["MISSING_AUTHENTICATION_TOKEN"], forbidden);
    assert_eq!(
        bodies["THROTTLED"],
        (
            "429".to_owned(),
            r#"{"message":"Too Many Requests"}"#.to_owned()
        )
    );
    assert_eq!(
        bodies["QUOTA_EXCEEDED"],
        (
            "429".to_owned(),
            r#"{"message":"Limit Exceeded"}"#.to_owned()
        )
    );

    // The deployment includes every method and gateway response.
    let deps: BTreeSet<&str> = resource(&t, "ApiDeployment")["DependsOn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for ty in [
        "AWS::ApiGateway::Method",
        "AWS::ApiGateway::GatewayResponse",
    ] {
        for (id, _) in resources_of(&t, ty) {
            assert!(deps.contains(id), "ApiDeployment must depend on {id}");
        }
    }
    assert_eq!(t["Parameters"]["StageName"]["Default"], "prod");
}

#[test]
fn usage_plan_is_the_bootstraps_with_limits_from_parameters() {
    let t = template();
    let boot = BootstrapOptions::default();
    let p = &resource(&t, "UsagePlan")["Properties"];
    assert_eq!(p["UsagePlanName"], boot.usage_plan_name.as_str());
    assert_eq!(
        resource(&t, "RestApi")["Properties"]["Name"],
        boot.rest_api_name.as_str()
    );
    assert_eq!(t["Parameters"]["StageName"]["Default"], boot.stage.as_str());
    assert_eq!(ref_of(&p["ApiStages"][0]["Stage"]), Some("ApiStage"));
    assert_eq!(ref_of(&p["Throttle"]["RateLimit"]), Some("ThrottleRate"));
    assert_eq!(ref_of(&p["Throttle"]["BurstLimit"]), Some("ThrottleBurst"));
    // Same defaults as the bootstrap (and the all-in-one flags).
    assert_eq!(
        t["Parameters"]["ThrottleRate"]["Default"].as_f64(),
        Some(boot.rate)
    );
    assert_eq!(
        t["Parameters"]["ThrottleBurst"]["Default"].as_i64(),
        Some(boot.burst as i64)
    );
    assert_eq!(boot.quota_per_day, None);
    assert_eq!(
        t["Parameters"]["QuotaPerDay"]["Default"], 0,
        "0 = no quota, as the bootstrap's default"
    );
    assert_eq!(p["Quota"]["Fn::If"][0], "HasQuota");
    assert_eq!(p["Quota"]["Fn::If"][1]["Period"], "DAY");
}

#[test]
fn publisher_runs_at_the_interval_it_covers() {
    let t = template();
    let rules = resources_of(&t, "AWS::Events::Rule");
    assert_eq!(rules.len(), 1);
    let p = &rules[0].1["Properties"];
    let interval: u64 = env_of(&t, "PublisherFunction")["HQ_PUBLISH_INTERVAL_SECS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = match interval {
        60 => "rate(1 minute)".to_owned(),
        s if s % 60 == 0 => format!("rate({} minutes)", s / 60),
        s => panic!("EventBridge rules run at whole minutes, not every {s} s"),
    };
    assert_eq!(p["ScheduleExpression"], expected.as_str());
    assert_eq!(p["State"], "ENABLED");
    assert_eq!(
        p["Targets"][0]["Arn"],
        json!({"Fn::GetAtt": ["PublisherFunction", "Arn"]})
    );
    // A whole interval fits in one invocation.
    let timeout = resource(&t, "PublisherFunction")["Properties"]["Timeout"]
        .as_u64()
        .unwrap();
    assert!(
        timeout > interval,
        "publisher timeout {timeout} s must exceed its interval {interval} s"
    );
    // The schedule's default in the code agrees.
    let default = hq_lambdas::LambdaSettings::command()
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|e| e == "HQ_PUBLISH_INTERVAL_SECS"))
        .and_then(|a| {
            a.get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned())
        });
    assert_eq!(default.as_deref(), Some(interval.to_string().as_str()));
}

#[test]
fn outputs_name_what_attendees_and_the_facilitator_need() {
    let t = template();
    let outputs = t["Outputs"].as_object().unwrap();
    for key in [
        "PortalUrl",
        "FulfillmentUrl",
        "OrdersTopicArn",
        "IridiumTopicArn",
        "MagnesiteTopicArn",
        "UsagePlanId",
        "AdminTokenSecretArn",
    ] {
        assert!(outputs.contains_key(key), "output {key}");
    }
    // With a custom domain the stage sits at its root; without, under /<stage>.
    for (output, env, suffix) in [
        ("FulfillmentUrl", Some("HQ_FULFILLMENT_URL"), "/receiving/"),
        ("PortalUrl", None, "/"),
        ("PortalUrl", Some("HQ_PUBLIC_URL"), ""),
    ] {
        let v = match env {
            Some(var) => &env_of(&t, "PortalFunction")[var],
            None => &outputs[output]["Value"],
        };
        let branches = &v["Fn::If"];
        assert_eq!(branches[0], "HasCustomDomain", "{output}/{env:?}");
        assert_eq!(
            branches[1]["Fn::Sub"],
            format!("https://${{DomainName}}{suffix}").as_str()
        );
        assert_eq!(
            branches[2]["Fn::Sub"],
            format!("https://${{RestApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/${{StageName}}{suffix}").as_str()
        );
    }
    // The domain maps the stage at its root (no base path).
    let mapping = &resource(&t, "ApiBasePathMapping")["Properties"];
    assert!(mapping.get("BasePath").is_none());
    assert_eq!(ref_of(&mapping["Stage"]), Some("ApiStage"));
    assert_eq!(ref_of(&outputs["UsagePlanId"]["Value"]), Some("UsagePlan"));
    assert_eq!(
        ref_of(&outputs["AdminTokenSecretArn"]["Value"]),
        Some("AdminTokenSecret")
    );
}
