//! The AWS mode end to end: moto (DynamoDB, SNS, API Gateway) and the three
//! Lambda binaries under `cargo lambda watch`, driven through HTTP exactly as
//! attendees and the facilitator would; plus the same bad-input table through
//! the Lambdas and the all-in-one server, and AWS failures as clean 5xx.
//!
//! One test binary, and one moto + one `cargo lambda watch` for the whole
//! journey, because starting them is the expensive part.

#[path = "../../aws-adapters/tests/support/moto.rs"]
mod moto;
#[path = "../../aws-adapters/tests/support/receiver.rs"]
mod receiver;
#[path = "support/tools.rs"]
mod tools;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tools::{cargo_lambda, root};

use aws_adapters::bootstrap::{bootstrap, BootstrapOptions};
use aws_adapters::{AwsConfig, Clients, TableNames};
use clap::Parser;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";
const PASSWORD: &str = "correct horse battery";

#[path = "../../tests/src/bad_bodies.rs"]
mod bad_bodies;
use bad_bodies::BAD_BODIES;

/// `cargo lambda watch` in its own process group, so dropping it stops the
/// watcher and the function processes it started.
struct Watch {
    child: Child,
    base: String,
    port: u16,
}

impl Watch {
    fn start(env_file: &std::path::Path) -> Watch {
        use std::os::unix::process::CommandExt;
        let port = moto::free_port();
        let log = std::fs::File::create(
            std::env::temp_dir().join(format!("hq-cargo-lambda-watch-{port}.log")),
        )
        .expect("watch log");
        let child = Command::new(cargo_lambda())
            .args([
                "lambda",
                "watch",
                "--package",
                "hq-lambdas",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string(), "--env-file"])
            .arg(env_file)
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("starting cargo lambda watch");
        Watch {
            child,
            base: format!("http://127.0.0.1:{port}/lambda-url"),
            port,
        }
    }

    /// A path as attendees use it: the watch router (lambdas/Cargo.toml) sends
    /// `/receiving` to fulfillment-api and everything else to key-portal.
    fn at(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A path of one function, by name (cargo lambda's function URLs).
    fn function_url(&self, function: &str, path: &str) -> String {
        format!("{}/{function}{path}", self.base)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Waits until a function answers `path` with 200 (its first request may
/// compile it): answers the time that took.
async fn until_ready(client: &reqwest::Client, url: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(r) = client
            .get(url)
            .timeout(Duration::from_secs(60))
            .send()
            .await
        {
            if r.status() == StatusCode::OK {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < limit,
            "{url} did not answer within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn json_of(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
    )
}

// ---- the journey ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lambdas_under_cargo_lambda_watch_run_a_workshop_on_moto() {
    let moto = moto::Moto::start().await;
    let sdk = aws_adapters::sdk_config_for_endpoint(&moto.endpoint, "us-west-2").await;
    let clients = Clients::new(&sdk);
    let opts = BootstrapOptions {
        tables: TableNames::prefixed("e2e"),
        ..BootstrapOptions::default()
    };
    let config = bootstrap(&clients, &opts).await.expect("bootstrap");

    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("lambda.env");
    let mut env = config.env_lines();
    env.extend([
        format!("AWS_ENDPOINT_URL={}", moto.endpoint),
        "AWS_REGION=us-west-2".into(),
        "AWS_ACCESS_KEY_ID=testing".into(),
        "AWS_SECRET_ACCESS_KEY=testing".into(),
        format!("HQ_ADMIN_TOKEN={ADMIN_TOKEN}"),
        "HQ_KEY_CACHE_TTL_SECS=1".into(),
        "HQ_PUBLISH_INTERVAL_SECS=3".into(),
        "RUST_LOG=warn".into(),
    ]);
    std::fs::write(&env_file, env.join("\n") + "\n").unwrap();

    let watch = Watch::start(&env_file);
    let http = reqwest::Client::new();
    let portal_ready = until_ready(
        &http,
        &watch.function_url("key-portal", "/healthz"),
        Duration::from_secs(900),
    )
    .await;
    eprintln!("key-portal first answer after {portal_ready:?} (includes any build)");

    // Sign up, sign in, get a key.
    let signup = json!({"username": "ann", "password": PASSWORD});
    let res = http
        .post(watch.at("/api/signup"))
        .json(&signup)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let (status, taken) = json_of(
        http.post(watch.at("/api/signup"))
            .json(&signup)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, taken["error"].as_str()),
        (StatusCode::CONFLICT, Some("username_taken"))
    );
    let (status, login) = json_of(
        http.post(watch.at("/api/login"))
            .json(&signup)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = login["token"].as_str().unwrap().to_owned();
    let (status, key) = json_of(
        http.get(watch.at("/api/key"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, key["daysLeft"].as_i64()),
        (StatusCode::OK, Some(30))
    );
    let key = key["apiKey"].as_str().unwrap().to_owned();

    // The key is an API key on the usage plan, with HQ's value.
    let plan = config.usage_plan_id.clone().unwrap();
    let plan_values = || async {
        let keys = clients
            .apigateway
            .get_usage_plan_keys()
            .usage_plan_id(&plan)
            .send()
            .await
            .unwrap();
        keys.items()
            .iter()
            .filter_map(|k| k.value().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(plan_values().await, vec![key.clone()]);

    // Subscribe a receiver to every topic; SNS (moto) has the subscriptions.
    let receivers = [
        ("orders", receiver::Receiver::start("/order/").await),
        ("iridium", receiver::Receiver::start("/iridium/").await),
        ("magnesite", receiver::Receiver::start("/magnesite/").await),
    ];
    for (topic, r) in &receivers {
        let res = http
            .post(watch.at("/api/subscriptions"))
            .bearer_auth(&token)
            .json(&json!({"topic": topic, "endpoint": r.url}))
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "subscribe {topic}: {}",
            res.status()
        );
    }
    let orders_arn = &config.topics[&hq_core::domain::TopicName::Orders];
    let subs = clients
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(orders_arn)
        .send()
        .await
        .unwrap();
    assert!(subs
        .subscriptions()
        .iter()
        .any(|s| s.endpoint() == Some(receivers[0].1.url.as_str())));
    let (_, mine) = json_of(
        http.get(watch.at("/api/subscriptions"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(mine.as_array().map(Vec::len), Some(3), "{mine}");
    assert!(mine
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "Confirmed" || s["status"] == "PendingConfirmation"));

    // Fulfill, as the attendees' fulfiller does (no Content-Type).
    let started = Instant::now();
    let fulfill = |key: String, body: &'static str| {
        http.post(watch.at("/receiving/"))
            .header("x-api-key", key)
            .body(body)
            .send()
    };
    for body in [
        r#"{"iridium": 1, "magnesite": 1}"#,
        r#"{"iridium": 1, "magnesite": 0}"#,
        r#"{"iridium": 0, "magnesite": 1}"#,
    ] {
        let (status, ok) = json_of(fulfill(key.clone(), body).await.unwrap()).await;
        assert_eq!(
            (status, ok["result"].as_str()),
            (StatusCode::OK, Some("success")),
            "{ok}"
        );
    }
    eprintln!(
        "fulfillment-api: 3 fulfillments in {:?} (first includes any build)",
        started.elapsed()
    );

    // In DynamoDB: three records, and totals that agree.
    let records = clients
        .dynamodb
        .scan()
        .table_name(&config.tables.fulfillments)
        .send()
        .await
        .unwrap();
    assert_eq!(records.count(), 3);
    assert!(records
        .items()
        .iter()
        .all(|i| i["username"].as_s().unwrap() == "ann" && !i.contains_key("apiKey")));
    let totals = clients
        .dynamodb
        .get_item()
        .table_name(&config.tables.totals)
        .key(
            "username",
            aws_sdk_dynamodb::types::AttributeValue::S("ann".into()),
        )
        .send()
        .await
        .unwrap();
    let totals = totals.item().expect("totals item");
    assert_eq!(
        [&totals["total"], &totals["iridium"], &totals["magnesite"]]
            .map(|v| v.as_n().unwrap().as_str()),
        ["3", "2", "2"]
    );
    let (_, board) = json_of(http.get(watch.at("/api/leaderboard")).send().await.unwrap()).await;
    let entry = &board["entries"][0];
    assert_eq!(
        (
            entry["username"].as_str(),
            entry["total"].as_u64(),
            entry["iridium"].as_u64(),
            entry["magnesite"].as_u64()
        ),
        (Some("ann"), Some(3), Some(2), Some(2))
    );
    assert_eq!(
        entry["perMinute"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .sum::<u64>(),
        3
    );
    assert!(!board.to_string().contains(&key));

    // Rotate: the new key works, the old one stops, and API Gateway follows.
    let (status, rotated) = json_of(
        http.post(watch.at("/api/key/rotate"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let new_key = rotated["apiKey"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(plan_values().await, vec![new_key.clone()]);
    tokio::time::sleep(Duration::from_millis(1100)).await; // the fulfillment Lambda's key cache TTL
    let (status, body) = json_of(fulfill(key.clone(), r#"{"iridium": 1}"#).await.unwrap()).await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!({"message": "Forbidden"}))
    );
    assert_eq!(
        fulfill(new_key.clone(), r#"{"iridium": 1}"#)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Bad input gets the all-in-one mode's answers, byte for byte.
    let all_in_one = AllInOne::start().await;
    let aio_key = all_in_one.key().await;
    for (body, code) in BAD_BODIES {
        let lambda = json_of(fulfill(new_key.clone(), body).await.unwrap()).await;
        let local = json_of(all_in_one.fulfill(&aio_key, body).await).await;
        assert_eq!(lambda.0, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(lambda.1["error"], *code, "{body}: {}", lambda.1);
        assert_eq!(
            lambda, local,
            "{body}: the Lambda and the all-in-one mode disagree"
        );
    }
    for (name, key) in [("no key", None), ("unknown key", Some("x".repeat(40)))] {
        let mut req = http.post(watch.at("/receiving/")).body(r#"{"iridium": 1}"#);
        if let Some(k) = &key {
            req = req.header("x-api-key", k);
        }
        let lambda = json_of(req.send().await.unwrap()).await;
        let local = json_of(
            all_in_one
                .fulfill_opt(key.as_deref(), r#"{"iridium": 1}"#)
                .await,
        )
        .await;
        assert_eq!(lambda, local, "{name}");
        assert_eq!(lambda.0, StatusCode::FORBIDDEN, "{name}");
    }
    let big = "x".repeat(65 * 1024);
    let lambda = http
        .post(watch.at("/receiving/"))
        .header("x-api-key", &new_key)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(lambda.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let records = clients
        .dynamodb
        .scan()
        .table_name(&config.tables.fulfillments)
        .send()
        .await
        .unwrap();
    assert_eq!(records.count(), 4, "bad input recorded nothing");

    // The facilitator's lab faults, set through the portal Lambda, reach the
    // fulfillment Lambda (another process) within its refresh: every request
    // then answers the injected 500 and stores nothing. Turned off, requests
    // are stored again.
    let chaos = |share: f64| {
        http.put(watch.at("/admin/api/chaos"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"receiving": {"errorShare": share, "errorStatus": 500}}))
            .send()
    };
    let count_records = || async {
        clients
            .dynamodb
            .scan()
            .table_name(&config.tables.fulfillments)
            .send()
            .await
            .unwrap()
            .count()
    };
    let (status, view) = json_of(chaos(1.0).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["receiving"]["errorShare"], 1.0, "{view}");
    let mut stored = 4;
    let set_at = Instant::now();
    loop {
        let (status, body) =
            json_of(fulfill(new_key.clone(), r#"{"iridium": 1}"#).await.unwrap()).await;
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            assert_eq!(body["error"], "injected_fault", "{body}");
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        stored += 1;
        assert!(
            set_at.elapsed() < Duration::from_secs(10),
            "the lab fault never reached the fulfillment Lambda"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "lab fault applied by the fulfillment Lambda after {:?}",
        set_at.elapsed()
    );
    for _ in 0..3 {
        let res = fulfill(new_key.clone(), r#"{"iridium": 1}"#).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(
        count_records().await,
        stored,
        "injected errors store nothing"
    );
    assert_eq!(chaos(0.0).await.unwrap().status(), StatusCode::OK);
    let cleared_at = Instant::now();
    loop {
        let res = fulfill(new_key.clone(), r#"{"iridium": 1}"#).await.unwrap();
        if res.status() == StatusCode::OK {
            stored += 1;
            break;
        }
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            cleared_at.elapsed() < Duration::from_secs(10),
            "the lab fault was never lifted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count_records().await, stored);

    // The facilitator sets rates; the publisher Lambda, invoked with a
    // scheduled event, publishes what is due over its 3 s interval.
    for topic in ["orderTopic", "iridium", "magnesite"] {
        let res = http
            .put(watch.at(&format!("/admin/api/rates/{topic}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"ratePerMinute": 60.0}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "rate of {topic}");
    }
    let event = dir.path().join("scheduled.json");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    std::fs::write(
        &event,
        json!({"version": "0", "id": "e2e", "detail-type": "Scheduled Event", "source": "aws.events",
               "account": "123456789012", "time": now, "region": "us-west-2", "resources": [], "detail": {}})
        .to_string(),
    )
    .unwrap();
    // A surge from the console, stored for the publisher Lambda: 5 more
    // iridium orders within the next second, inside the interval.
    let surge = http
        .post(watch.at("/admin/api/surge"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"topic": "iridium", "count": 5, "seconds": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(surge.status(), StatusCode::ACCEPTED);
    // Out of limits: a 400 naming the problem, and nothing stored (the
    // summary below counts the one surge above only).
    for bad in [
        json!({"topic": "iridium", "count": 0, "seconds": 1}),
        json!({"topic": "iridium", "count": 5, "seconds": 3601}),
    ] {
        let (status, body) = json_of(
            http.post(watch.at("/admin/api/surge"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&bad)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid")),
            "{bad}: {body}"
        );
    }
    let invoked = tokio::task::spawn_blocking({
        let (port, event) = (watch.port, event.clone());
        move || {
            Command::new(cargo_lambda())
                .args([
                    "lambda",
                    "invoke",
                    "order-publisher",
                    "--invoke-address",
                    "127.0.0.1",
                ])
                .args(["--invoke-port", &port.to_string(), "--data-file"])
                .arg(event)
                .current_dir(root())
                .output()
                .expect("cargo lambda invoke")
        }
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&invoked.stdout);
    assert!(
        invoked.status.success(),
        "invoke failed: {out} {}",
        String::from_utf8_lossy(&invoked.stderr)
    );
    let summary: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("invoke output: {out}"));
    for t in summary["topics"].as_array().expect("topics") {
        let published = t["published"].as_u64().unwrap();
        let surged = if t["topic"] == "iridium" { 5 } else { 0 };
        assert!((2 + surged..=4 + surged).contains(&published), "{summary}");
        assert_eq!(t["failed"], 0, "{summary}");
    }
    for ((_, r), message) in receivers.iter().zip([
        r#"{"bundle": 1}"#,
        r#"{"iridium": 1}"#,
        r#"{"magnesite": 1}"#,
    ]) {
        let got: Vec<Value> = r
            .bodies()
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect();
        let orders = got
            .iter()
            .filter(|n| n["Type"] == "Notification" && n["Message"] == message)
            .count();
        let surged = if message.contains("iridium") { 5 } else { 0 };
        assert!(orders >= 2 + surged, "{message}: {got:?}");
    }
    drop(watch);
}

// ---- the all-in-one mode, for comparison ------------------------------------------------

struct AllInOne {
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl AllInOne {
    async fn start() -> AllInOne {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let args = interstella_hq::config::ServeArgs::parse_from([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--admin-token",
            ADMIN_TOKEN,
        ]);
        let app = interstella_hq::Application::build(args)
            .await
            .expect("all-in-one starts");
        let base = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until(std::future::pending()));
        AllInOne {
            base,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn key(&self) -> String {
        let creds = json!({"username": "ann", "password": PASSWORD});
        self.client
            .post(format!("{}/api/signup", self.base))
            .json(&creds)
            .send()
            .await
            .unwrap();
        let login: Value = self
            .client
            .post(format!("{}/api/login", self.base))
            .json(&creds)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key: Value = self
            .client
            .get(format!("{}/api/key", self.base))
            .bearer_auth(login["token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        key["apiKey"].as_str().unwrap().to_owned()
    }

    async fn fulfill(&self, key: &str, body: &str) -> reqwest::Response {
        self.fulfill_opt(Some(key), body).await
    }

    async fn fulfill_opt(&self, key: Option<&str>, body: &str) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/receiving/", self.base))
            .body(body.to_owned());
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.send().await.unwrap()
    }
}

// ---- AWS failures ------------------------------------------------------------------------

/// Calls a router the way `lambda_http` does (one request, one response).
async fn call(
    router: axum::Router,
    req: axum::http::Request<axum::body::Body>,
) -> (StatusCode, Option<String>, Value) {
    use tower::ServiceExt;
    let res = router.oneshot(req).await.expect("infallible");
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    let id = res
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        id,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn settings() -> hq_lambdas::LambdaSettings {
    hq_lambdas::LambdaSettings::parse_from(["hq-lambda", "--admin-token", ADMIN_TOKEN])
}

fn config_with(tables: TableNames) -> AwsConfig {
    AwsConfig {
        tables,
        topics: hq_core::domain::TopicName::ALL
            .iter()
            .map(|t| (*t, t.arn("us-west-2", "123456789012")))
            .collect(),
        usage_plan_id: None,
    }
}

fn post(path: &str, body: &str, key: Option<&str>) -> axum::http::Request<axum::body::Body> {
    let mut b = axum::http::Request::post(path);
    if let Some(k) = key {
        b = b.header("x-api-key", k);
    }
    b.body(axum::body::Body::from(body.to_owned())).unwrap()
}

async fn assert_clean_5xx(wiring: &hq_lambdas::Wiring) {
    for (router, req) in [
        (
            wiring.fulfillment_router(),
            post("/receiving/", r#"{"iridium": 1}"#, Some(&"k".repeat(40))),
        ),
        (
            wiring.portal_router().unwrap(),
            post(
                "/api/signup",
                r#"{"username":"ann","password":"correct horse"}"#,
                None,
            ),
        ),
        (
            wiring.portal_router().unwrap(),
            axum::http::Request::get("/api/leaderboard")
                .body(axum::body::Body::empty())
                .unwrap(),
        ),
    ] {
        let (status, id, body) = call(router, req).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["error"], "internal", "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(id.is_some_and(|id| id.len() >= 32), "a request id to quote");
    }
}

#[tokio::test]
async fn missing_tables_answer_a_clean_500_with_a_request_id() {
    let moto = moto::Moto::start().await;
    let sdk = aws_adapters::sdk_config_for_endpoint(&moto.endpoint, "us-west-2").await;
    let wiring = hq_lambdas::Wiring::new(
        settings(),
        &Clients::new(&sdk),
        config_with(TableNames::prefixed("absent")),
        false,
    );
    assert_clean_5xx(&wiring).await;
}

#[tokio::test]
async fn dynamodb_throttling_answers_a_clean_500_with_a_request_id() {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
    let app = axum::Router::new().fallback(move || async move {
        (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.0")],
            body,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    // Few, quick retries: the point is the answer after the SDK gives up.
    let sdk = aws_adapters::sdk_config_for_endpoint(&url, "us-west-2")
        .await
        .into_builder()
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .build();
    let wiring = hq_lambdas::Wiring::new(
        settings(),
        &Clients::new(&sdk),
        config_with(TableNames::prefixed("t")),
        false,
    );
    assert_clean_5xx(&wiring).await;
}

#[test]
fn a_scheduled_event_covers_the_interval_from_its_time() {
    let event = json!({"time": "2026-11-25T10:00:00Z"});
    let (from, to) = hq_lambdas::publisher::interval_of(&event, Duration::from_secs(60));
    assert_eq!(from.as_secs(), 1_795_600_800);
    assert_eq!(to - from, Duration::from_secs(60));
    let (from, _) = hq_lambdas::publisher::interval_of(&json!({}), Duration::from_secs(60));
    assert!(
        from.as_secs() > 1_700_000_000,
        "a manual invoke covers from now"
    );
}

/// The Lambdas' wiring on a fresh moto (tables prefixed `prefix`), with every
/// topic's base rate paused so that only surges publish. Keep the `Moto`: it
/// stops when dropped.
async fn lambdas_with_paused_rates(prefix: &str) -> (moto::Moto, hq_lambdas::Wiring) {
    use hq_core::domain::{RatePatch, TopicName};
    let moto = moto::Moto::start().await;
    let sdk = aws_adapters::sdk_config_for_endpoint(&moto.endpoint, "us-west-2").await;
    let clients = Clients::new(&sdk);
    let opts = BootstrapOptions {
        tables: TableNames::prefixed(prefix),
        ..BootstrapOptions::default()
    };
    let config = bootstrap(&clients, &opts).await.expect("bootstrap");
    let wiring = hq_lambdas::Wiring::new(settings(), &clients, config, false);
    let rates = &wiring.hq.rates;
    for topic in TopicName::ALL {
        let paused = rates.rate(topic).await.unwrap().patched(RatePatch {
            paused: Some(true),
            ..Default::default()
        });
        rates.set_rate(topic, paused).await.unwrap();
    }
    (moto, wiring)
}

/// A surge the facilitator starts while an invocation's interval runs is
/// published by that invocation (the next one covers only later instants).
#[tokio::test]
async fn a_surge_started_mid_interval_is_published_by_the_running_invocation() {
    use hq_core::domain::TopicName;
    let (_moto, wiring) = lambdas_with_paused_rates("mid").await;
    let hq = wiring.hq.clone();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let (from, to) = (now, now + Duration::from_secs(2));
    let started = Instant::now();
    let invocation = tokio::spawn({
        let (hq, bus) = (hq.clone(), wiring.adapters.bus.clone());
        async move {
            hq_lambdas::publisher::publish_interval(&hq.rates, &hq.lab, bus.as_ref(), from, to)
                .await
                .unwrap()
        }
    });
    // After the invocation's first look at the surges.
    tokio::time::sleep(Duration::from_millis(700)).await;
    hq.lab
        .add_surge(TopicName::Iridium, 4, 0, hq_core::clock::now_millis())
        .await
        .unwrap();
    let summary = invocation.await.unwrap();
    let published = |t: &str| summary.iter().find(|s| s.topic == t).unwrap().published;
    assert_eq!(
        (
            published("orderTopic"),
            published("iridium"),
            published("magnesite")
        ),
        (0, 4, 0),
        "{summary:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "ran until the interval was over"
    );
}

/// The SNS adapter, counting the calls the publisher makes through it.
struct CountingBus {
    inner: std::sync::Arc<dyn hq_core::ports::OrderBus>,
    publishes: std::sync::atomic::AtomicUsize,
    batches: parking_lot::Mutex<Vec<usize>>,
    /// When the last call answered.
    last: parking_lot::Mutex<Option<Instant>>,
}

#[async_trait::async_trait]
impl hq_core::ports::OrderBus for CountingBus {
    fn topic_arn(&self, topic: hq_core::domain::TopicName) -> String {
        self.inner.topic_arn(topic)
    }
    async fn subscribe(
        &self,
        topic: hq_core::domain::TopicName,
        endpoint: &hq_core::domain::Endpoint,
        owner: Option<&hq_core::domain::Username>,
    ) -> Result<hq_core::domain::SubscriptionView, hq_core::ports::BusError> {
        self.inner.subscribe(topic, endpoint, owner).await
    }
    async fn unsubscribe(&self, arn: &str) -> Result<(), hq_core::ports::BusError> {
        self.inner.unsubscribe(arn).await
    }
    async fn subscription(
        &self,
        arn_or_id: &str,
    ) -> Result<Option<hq_core::domain::SubscriptionView>, hq_core::ports::BusError> {
        self.inner.subscription(arn_or_id).await
    }
    async fn list_subscriptions(
        &self,
        filter: hq_core::ports::SubscriptionFilter<'_>,
    ) -> Result<Vec<hq_core::domain::SubscriptionView>, hq_core::ports::BusError> {
        self.inner.list_subscriptions(filter).await
    }
    async fn publish(
        &self,
        topic: hq_core::domain::TopicName,
        message: &str,
    ) -> Result<String, hq_core::ports::BusError> {
        self.publishes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self.inner.publish(topic, message).await;
        *self.last.lock() = Some(Instant::now());
        out
    }
    async fn publish_batch(
        &self,
        topic: hq_core::domain::TopicName,
        messages: &[String],
    ) -> Result<Vec<String>, hq_core::ports::BusError> {
        self.batches.lock().push(messages.len());
        let out = self.inner.publish_batch(topic, messages).await;
        *self.last.lock() = Some(Instant::now());
        out
    }
}

/// A surge of thousands of orders due at once goes out in batches of 10 over a
/// few calls in flight, not one SNS round trip per order (which at a few
/// milliseconds each would leave it minutes behind its schedule).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_surge_is_published_in_batches_of_ten() {
    use hq_core::domain::{RatePatch, TopicName};
    let (_moto, wiring) = lambdas_with_paused_rates("big").await;
    let hq = wiring.hq.clone();
    // Malformed orders are part of the surge too: a tenth of them.
    let share = hq
        .rates
        .rate(TopicName::Magnesite)
        .await
        .unwrap()
        .patched(RatePatch {
            malformed_share: Some(0.1),
            ..Default::default()
        });
    hq.rates
        .set_rate(TopicName::Magnesite, share)
        .await
        .unwrap();
    const IRIDIUM: u32 = 2_000;
    const MAGNESITE: u32 = 505;
    let now_ms = hq_core::clock::now_millis();
    hq.lab
        .add_surge(TopicName::Iridium, IRIDIUM, 0, now_ms)
        .await
        .unwrap();
    hq.lab
        .add_surge(TopicName::Magnesite, MAGNESITE, 0, now_ms)
        .await
        .unwrap();

    let bus = CountingBus {
        inner: wiring.adapters.bus.clone(),
        publishes: Default::default(),
        batches: Default::default(),
        last: Default::default(),
    };
    let from = Duration::from_millis(now_ms as u64 - 1);
    let to = from + Duration::from_secs(1);
    let started = Instant::now();
    let summary = hq_lambdas::publisher::publish_interval(&hq.rates, &hq.lab, &bus, from, to)
        .await
        .unwrap();
    let took = started.elapsed();
    let sent = bus.last.lock().map(|t| t - started);
    let batches = bus.batches.lock().clone();
    let publishes = bus.publishes.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{} orders due at once: {} PublishBatch calls, {publishes} Publish calls; the last answered after {sent:?}; the invocation (a 1 s interval) took {took:?}",
        IRIDIUM + MAGNESITE,
        batches.len()
    );
    let of = |t: &str| summary.iter().find(|s| s.topic == t).unwrap().clone();
    assert_eq!(
        (of("iridium").published, of("magnesite").published),
        (IRIDIUM as u64, MAGNESITE as u64),
        "{summary:?}"
    );
    assert_eq!(of("orderTopic").published, 0, "{summary:?}");
    assert!(summary.iter().all(|s| s.failed == 0), "{summary:?}");
    assert_eq!(
        of("magnesite").malformed,
        50,
        "a tenth, as scheduled: {summary:?}"
    );
    assert_eq!(publishes, 0);
    assert!(
        batches.iter().all(|&n| (1..=10).contains(&n)),
        "{batches:?}"
    );
    assert_eq!(
        batches.iter().sum::<usize>(),
        (IRIDIUM + MAGNESITE) as usize
    );
    // 200 full iridium batches, 50 full magnesite ones and its last 5 (plus
    // at most one partial batch per topic where the calls in flight split).
    assert!(batches.len() <= 251 + 2 * 32, "{} calls", batches.len());
}

/// The portal Lambda serves the workshop's files from the stack's assets
/// bucket (`HQ_ASSETS_BUCKET`) as the all-in-one server serves its folder:
/// files with their type, folders as listings, hidden names and escapes
/// refused, a file too large for a Lambda answer refused clearly.
#[tokio::test]
async fn the_portal_lambda_serves_the_assets_bucket() {
    let moto = moto::Moto::start().await;
    let sdk = aws_adapters::sdk_config_for_endpoint(&moto.endpoint, "us-west-2").await;
    let clients = Clients::new(&sdk);
    let bucket = "hq-assets";
    clients
        .s3
        .create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let monolith = "print('Interstella logistics')\n";
    let big = vec![b'x'; (aws_adapters::MAX_ASSET_BYTES + 1) as usize];
    for (key, body) in [
        ("code/monolith/monolith.py", monolith.as_bytes()),
        ("code/monolith/Dockerfile", b"FROM python:3\n".as_slice()),
        ("README.txt", b"workshop files\n".as_slice()),
        (".env", b"SECRET=1\n".as_slice()),
        ("code/.secret", b"s\n".as_slice()),
        ("empty/", b"".as_slice()),
        ("big.bin", big.as_slice()),
        ("logo.png", b"\x89PNG\r\n\x1a\n\xff\x00".as_slice()),
    ] {
        clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let config = config_with(TableNames::prefixed("assets"));
    let settings = hq_lambdas::LambdaSettings::parse_from([
        "hq-lambda",
        "--admin-token",
        ADMIN_TOKEN,
        "--assets-bucket",
        bucket,
    ]);
    let wiring = hq_lambdas::Wiring::new(settings, &clients, config, false);
    let router = wiring.portal_router().unwrap();
    through_api_gateway_text_stays_text(router.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| client.get(format!("{base}{path}")).send();

    let res = get("/assets/code/monolith/monolith.py").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.text().await.unwrap(), monolith);

    // A UTF-8 file of a type lambda_http would base64-encode is marked to
    // pass as text; binary bytes are left as they are.
    let docker = get("/assets/code/monolith/Dockerfile").await.unwrap();
    assert_eq!(docker.headers()["content-type"], "application/octet-stream");
    assert_eq!(docker.headers()["x-lambda-http-content-encoding"], "text");
    assert_eq!(docker.text().await.unwrap(), "FROM python:3\n");
    let png = get("/assets/logo.png").await.unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(!png.headers().contains_key("x-lambda-http-content-encoding"));
    assert_eq!(png.bytes().await.unwrap().len(), 10);

    let top = get("/assets/").await.unwrap();
    assert_eq!(top.status(), StatusCode::OK);
    let top = top.text().await.unwrap();
    for shown in ["README.txt", "code/", "empty/", "big.bin"] {
        assert!(top.contains(&format!("href=\"{shown}\"")), "{shown}: {top}");
    }
    assert!(!top.contains(".env"), "{top}");
    let folder = get("/assets/code/monolith/")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(folder.contains("href=\"Dockerfile\"") && folder.contains("href=\"monolith.py\""));
    let code = get("/assets/code/").await.unwrap().text().await.unwrap();
    assert!(
        code.contains("href=\"monolith/\"") && !code.contains("secret"),
        "{code}"
    );
    assert_eq!(
        get("/assets/empty/").await.unwrap().status(),
        StatusCode::OK
    );

    let moved = get("/assets/code/monolith").await.unwrap();
    assert_eq!(moved.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(moved.headers()["location"], "/assets/code/monolith/");

    for missing in [
        "/assets/nope.txt",
        "/assets/nope/",
        "/assets/.env",
        "/assets/code/.secret",
        "/assets/code/..%2fREADME.txt",
        "/assets/code%5cmonolith%5cmonolith.py",
    ] {
        let res = get(missing).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{missing}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{missing}");
    }

    // Dot segments as a hostile client sends them (an HTTP library would
    // resolve them before sending).
    for raw in [
        "/assets/code/../README.txt",
        "/assets/code/%2e%2e/README.txt",
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .unwrap();
        let req = format!("GET {raw} HTTP/1.1\r\nHost: hq\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 404"), "{raw}: {answer}");
    }

    let big = get("/assets/big.bin").await.unwrap();
    assert_eq!(big.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(big.headers().contains_key("x-amzn-requestid"));

    let info: Value = get("/api/info").await.unwrap().json().await.unwrap();
    assert!(
        info["assetsUrl"]
            .as_str()
            .is_some_and(|u| u.ends_with("/assets/")),
        "{info}"
    );
}

/// What API Gateway gets from the portal Lambda for a Dockerfile (no text
/// type): the file's text, not base64 (the REST API has no binary media types,
/// so base64 would reach the attendee's `curl` as it is).
async fn through_api_gateway_text_stays_text(router: axum::Router) {
    use lambda_http::tower::{Service, ServiceExt};
    let event: lambda_http::request::LambdaRequest = serde_json::from_value(json!({
        "resource": "/assets/{proxy+}",
        "path": "/assets/code/monolith/Dockerfile",
        "httpMethod": "GET",
        "headers": {"Host": "abc123.execute-api.us-west-2.amazonaws.com"},
        "pathParameters": {"proxy": "code/monolith/Dockerfile"},
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "r1",
            // No stage: the deployed Lambda ignores it in the path
            // (AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH, see infra/README.md).
            "requestId": "0f1e2d3c",
            "identity": {"sourceIp": "192.0.2.1"},
            "resourcePath": "/assets/{proxy+}",
            "httpMethod": "GET",
            "apiId": "abc123"
        },
        "isBase64Encoded": false
    }))
    .unwrap();
    let mut adapter = lambda_http::Adapter::from(router);
    let answer = adapter
        .ready()
        .await
        .unwrap()
        .call(lambda_http::LambdaEvent::new(event, Default::default()))
        .await
        .unwrap();
    let answer = serde_json::to_value(&answer).unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(answer["isBase64Encoded"], false, "{answer}");
    assert_eq!(answer["body"], "FROM python:3\n", "{answer}");
}
