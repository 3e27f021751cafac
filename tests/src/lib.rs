//! Test helpers: [`TestApp`] starts the real all-in-one server on a random port
//! with a fresh data dir, the way `main` does, and talks to it over HTTP.

pub mod bad_bodies;
pub mod browser;

use std::sync::Arc;

use clap::Parser;
use hq_core::Hq;
use interstella_hq::config::ServeArgs;
use interstella_hq::Application;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// Direct access to the services, to check what was (not) stored.
    pub hq: Arc<Hq>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts HQ with extra command-line flags (e.g. `--throttle-rate`).
    pub async fn spawn_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::spawn_in(dir, extra).await
    }

    pub async fn spawn_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let data_dir = dir.path().to_str().expect("utf-8 temp path").to_owned();
        let mut argv = vec![
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--admin-token",
            ADMIN_TOKEN,
        ];
        argv.extend_from_slice(extra);
        let app = Application::build(ServeArgs::parse_from(argv))
            .await
            .expect("HQ starts");
        let base = format!("http://{}", app.local_addr());
        let hq = app.hq.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.run_until(async move {
                let _ = stopped.await;
            })
            .await
            .expect("HQ serves");
        });
        Self {
            base,
            client: reqwest::Client::new(),
            hq,
            dir,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and hands back its data dir.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn signup(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/api/signup",
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// Signs up and in; returns the bearer token.
    pub async fn attendee(&self, username: &str) -> String {
        let res = self.signup(username, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::CREATED, "signup {username}");
        self.login(username, PASSWORD).await
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let res = self
            .post_json(
                "/api/login",
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "login {username}");
        let body: Value = res.json().await.expect("login json");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_auth(&self, path: &str, token: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Signs up and returns (session token, API key).
    pub async fn attendee_with_key(&self, username: &str) -> (String, String) {
        let token = self.attendee(username).await;
        let key: Value = self
            .get_auth("/api/key", &token)
            .await
            .json()
            .await
            .expect("key json");
        (token, key["apiKey"].as_str().expect("apiKey").to_owned())
    }

    /// Posts a fulfillment the way the attendees' fulfiller does: no Content-Type.
    pub async fn fulfill(&self, key: &str, body: &str) -> Response {
        self.client
            .post(self.url("/receiving/"))
            .header("x-api-key", key)
            .body(body.to_owned())
            .send()
            .await
            .expect("request")
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    pub async fn leaderboard(&self) -> Value {
        self.client
            .get(self.url("/api/leaderboard"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    pub async fn stored_fulfillments(&self) -> u64 {
        self.hq.ledger.count().await.expect("count")
    }
}

/// Reads a JSON body, failing the test on anything else.
pub async fn json_of(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.expect("body");
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, value)
}

/// An endpoint that behaves like the attendees' order receiver (contract
/// section 1): parses any body as JSON, GETs a `SubscribeURL` to confirm, and
/// keeps every `Message` it receives. Always answers 200.
pub struct Receiver {
    pub url: String,
    pub messages: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Receiver {
    pub async fn start(path: &str) -> Self {
        let messages = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = messages.clone();
        let client = reqwest::Client::new();
        let handler = move |body: String| {
            let (kept, client) = (kept.clone(), client.clone());
            async move {
                if let Ok(v) = serde_json::from_str::<Value>(&body) {
                    if let Some(url) = v.get("SubscribeURL").and_then(Value::as_str) {
                        let _ = client.get(url).send().await;
                    } else if let Some(m) = v.get("Message").and_then(Value::as_str) {
                        kept.lock().expect("lock").push(m.to_owned());
                    }
                }
                "ok"
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}{path}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().route(path, axum::routing::post(handler));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, messages }
    }

    pub fn received(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }
}

/// Polls `check` every 100 ms until it holds or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}
