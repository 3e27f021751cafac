//! The template deployed into moto's CloudFormation (`create_stack` through
//! boto3) yields the tables, topics and usage plan that
//! `interstella-hq aws bootstrap` creates.
//!
//! One moto server on a free loopback port, two regions: the stack goes to
//! us-west-2, `aws_adapters::bootstrap::bootstrap` runs in eu-west-1, and what
//! each made is read back through the AWS SDK and compared. Resource types
//! moto's CloudFormation does not create ([`NOT_CREATED_IN_MOTO`]) are checked by
//! template inspection in `tests/template.rs`; here the test only asserts that
//! nothing else was skipped. No Python, boto3 or moto is a failure, not a skip.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_adapters::bootstrap::{bootstrap, BootstrapOptions};
use aws_adapters::config::{self, TableNames, ENV_VARS};
use aws_adapters::{sdk_config_for_endpoint, Clients};
use hq_core::domain::TopicName;
use hq_infra::{python, resources_of, template};
use serde_json::Value;

const STACK_REGION: &str = "us-west-2";
const BOOTSTRAP_REGION: &str = "eu-west-1";

/// Resource types of the template that moto 5's CloudFormation does not
/// create: it has no model for them (it logs "No Moto CloudFormation support"
/// and carries on). Resources with a `Condition` (all off with the default
/// parameters) are not created either. All are covered by `tests/template.rs`.
const NOT_CREATED_IN_MOTO: [&str; 8] = [
    // No moto model.
    "AWS::ApiGateway::Stage",
    "AWS::ApiGateway::UsagePlan",
    "AWS::ApiGateway::GatewayResponse",
    "AWS::ApiGateway::DomainName",
    "AWS::ApiGateway::BasePathMapping",
    "AWS::SNS::TopicPolicy",
    "AWS::SecretsManager::Secret",
    "AWS::Lambda::EventInvokeConfig",
];

struct Moto(Child, u16);

impl Moto {
    fn start() -> Moto {
        let python = python();
        assert!(
            python.exists(),
            "{} not found: run scripts/test.sh (it creates .venv with moto and boto3), or set HQ_PYTHON",
            python.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto server");
        let mut moto = Moto(child, port);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.0.try_wait() {
                panic!(
                    "moto server exited ({status}): `{} -m pip install \"moto[server]\"`",
                    python.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto did not answer on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.1)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `support/moto_deploy.py`: create_stack, then what moto made, as JSON.
fn deploy(endpoint: &str) -> Value {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_deploy.py");
    let started = Instant::now();
    let out = Command::new(python())
        .arg(script)
        .args([endpoint, STACK_REGION])
        .arg(hq_infra::template_path())
        .arg("hq")
        .output()
        .expect("running moto_deploy.py");
    assert!(
        out.status.success(),
        "moto_deploy.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "create_stack into moto + read-back: {:?}",
        started.elapsed()
    );
    serde_json::from_slice(&out.stdout).expect("moto_deploy.py prints JSON")
}

/// Key schema, attribute types and billing mode of a table, comparable.
async fn table_shape(
    db: &aws_sdk_dynamodb::Client,
    name: &str,
) -> (Vec<(String, String)>, BTreeSet<(String, String)>, String) {
    let t = db
        .describe_table()
        .table_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe {name}: {e:?}"));
    let t = t.table().expect("table");
    let keys = t
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    let attrs = t
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    let billing = t
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .map(|b| b.as_str().to_owned())
        .unwrap_or_default();
    assert!(
        t.global_secondary_indexes().is_empty() && t.local_secondary_indexes().is_empty(),
        "{name}: no indexes in the data model"
    );
    (keys, attrs, billing)
}

async fn topic_names(sns: &aws_sdk_sns::Client) -> BTreeSet<String> {
    let out = sns.list_topics().send().await.expect("ListTopics");
    out.topics()
        .iter()
        .filter_map(|t| t.topic_arn())
        .map(|a| a.rsplit(':').next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_in_moto_creates_what_the_bootstrap_creates() {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let t = template();

    // 1. The stack.
    let stack = tokio::task::spawn_blocking({
        let endpoint = endpoint.clone();
        move || deploy(&endpoint)
    })
    .await
    .unwrap();
    assert_eq!(
        stack["status"], "CREATE_COMPLETE",
        "stack: {:#}",
        stack["failures"]
    );
    assert_eq!(stack["failures"], serde_json::json!([]));
    eprintln!(
        "moto's create_stack itself: {:.2} s",
        stack["seconds"].as_f64().unwrap()
    );
    let created: BTreeSet<&str> = stack["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "CREATE_COMPLETE")
        .filter_map(|r| r["logical"].as_str())
        .filter(|l| !l.is_empty())
        .collect();
    let mut skipped = BTreeMap::new();
    for (id, r) in t["Resources"].as_object().unwrap() {
        if !created.contains(id.as_str()) {
            let ty = r["Type"].as_str().unwrap();
            if r.get("Condition").is_some() {
                skipped.insert(id.clone(), format!("{ty}, conditional"));
                continue;
            }
            assert!(
                NOT_CREATED_IN_MOTO.contains(&ty),
                "moto did not create {id} ({ty}), which it should support: {:#}",
                stack["resources"]
            );
            skipped.insert(id.clone(), ty.to_owned());
        }
    }
    eprintln!("left to template inspection (moto cannot create): {skipped:?}");

    // 2. The bootstrap, same server, another region.
    let boot_sdk = sdk_config_for_endpoint(&endpoint, BOOTSTRAP_REGION).await;
    let boot_clients = Clients::new(&boot_sdk);
    let opts = BootstrapOptions {
        tables: TableNames::default(),
        ..BootstrapOptions::default()
    };
    let started = Instant::now();
    let boot = bootstrap(&boot_clients, &opts)
        .await
        .expect("bootstrap against moto");
    eprintln!("bootstrap against moto: {:?}", started.elapsed());
    let stack_clients = Clients::new(&sdk_config_for_endpoint(&endpoint, STACK_REGION).await);

    // 3. Tables: same names, keys, attribute types, billing mode.
    for (var, name) in TableNames::default().vars() {
        let from_stack = table_shape(&stack_clients.dynamodb, name).await;
        let from_boot = table_shape(&boot_clients.dynamodb, name).await;
        assert_eq!(
            from_stack, from_boot,
            "table {name} ({var}): template vs bootstrap"
        );
        assert_eq!(from_stack.2, "PAY_PER_REQUEST");
        // moto's CloudFormation ignores TimeToLiveSpecification: compare the
        // bootstrap's TTL with the template's instead.
        let ttl = boot_clients
            .dynamodb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .expect("TTL");
        let boot_ttl = ttl
            .time_to_live_description()
            .filter(|d| {
                d.time_to_live_status()
                    .is_some_and(|s| s.as_str() == "ENABLED")
            })
            .and_then(|d| d.attribute_name())
            .map(str::to_owned);
        let (_, r) = resources_of(&t, "AWS::DynamoDB::Table")
            .into_iter()
            .find(|(_, r)| r["Properties"]["TableName"] == name)
            .expect("table in template");
        let tpl_ttl = r["Properties"]["TimeToLiveSpecification"]["AttributeName"]
            .as_str()
            .map(str::to_owned);
        assert_eq!(tpl_ttl, boot_ttl, "TTL attribute of {name}");
    }

    // 4. Topics: the same three names; the outputs' ARNs are the topics.
    let want: BTreeSet<String> = TopicName::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(topic_names(&stack_clients.sns).await, want);
    assert_eq!(topic_names(&boot_clients.sns).await, want);
    for (topic, output) in [
        (TopicName::Orders, "OrdersTopicArn"),
        (TopicName::Iridium, "IridiumTopicArn"),
        (TopicName::Magnesite, "MagnesiteTopicArn"),
    ] {
        let arn = stack["outputs"][output].as_str().expect(output);
        config::check_topic_arn(topic, arn).unwrap_or_else(|e| panic!("{output}: {e}"));
        assert!(arn.contains(STACK_REGION));
    }

    // 5. Each Lambda's environment holds the values the bootstrap prints,
    // with the stack's region in the ARNs (the usage plan id is absent: moto
    // cannot create the plan).
    let boot_env: BTreeMap<String, String> = boot
        .env_lines()
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.replace(BOOTSTRAP_REGION, STACK_REGION))
        })
        .collect();
    let functions = stack["functions"].as_object().unwrap();
    assert_eq!(functions.len(), 3);
    for (id, f) in functions {
        assert_eq!(f["runtime"], "provided.al2023", "{id}");
        assert_eq!(f["handler"], "bootstrap", "{id}");
        for var in ENV_VARS {
            if var == config::USAGE_PLAN_ID {
                continue;
            }
            assert_eq!(
                f["env"][var].as_str(),
                Some(boot_env[var].as_str()),
                "{id}: {var}"
            );
        }
    }

    // 6. The usage plan (template inspection against the bootstrap's plan, as
    // moto made it): same name, stage, limits with the default parameters.
    let plans = boot_clients
        .apigateway
        .get_usage_plans()
        .send()
        .await
        .expect("usage plans");
    let plan = plans
        .items()
        .iter()
        .find(|p| p.id() == boot.usage_plan_id.as_deref())
        .expect("bootstrap's plan");
    let tpl_plan = &hq_infra::resource(&t, "UsagePlan")["Properties"];
    assert_eq!(tpl_plan["UsagePlanName"].as_str(), plan.name());
    let throttle = plan.throttle().expect("throttle");
    assert_eq!(
        t["Parameters"]["ThrottleRate"]["Default"].as_f64(),
        Some(throttle.rate_limit())
    );
    assert_eq!(
        t["Parameters"]["ThrottleBurst"]["Default"].as_i64(),
        Some(throttle.burst_limit() as i64)
    );
    assert!(plan.quota().is_none() && t["Parameters"]["QuotaPerDay"]["Default"] == 0);
    assert_eq!(
        plan.api_stages().first().and_then(|s| s.stage()),
        t["Parameters"]["StageName"]["Default"].as_str()
    );

    // 7. The REST API moto made: the key on /receiving only, proxies to the right Lambdas.
    let apis = stack["restApis"].as_array().unwrap();
    assert_eq!(apis.len(), 1);
    assert_eq!(apis[0]["name"], opts.rest_api_name.as_str());
    for m in apis[0]["methods"].as_array().unwrap() {
        let path = m["path"].as_str().unwrap();
        let uri = m["integrationUri"].as_str().unwrap();
        let function = if path == "/receiving" {
            "hq-fulfillment-api"
        } else {
            "hq-key-portal"
        };
        assert_eq!(
            m["apiKeyRequired"],
            path == "/receiving",
            "{} {path}",
            m["method"]
        );
        assert!(
            uri.ends_with(&format!(":function:{function}/invocations")),
            "{path}: {uri}"
        );
        assert_eq!(m["integrationType"], "AWS_PROXY");
    }

    // 8. The publisher's schedule.
    let rules = stack["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["schedule"], "rate(1 minute)");
    assert!(rules[0]["targets"][0]
        .as_str()
        .unwrap()
        .ends_with(":function:hq-order-publisher"));
}
