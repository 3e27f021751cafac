//! Test helpers: an engine served on a random loopback port, subscribers that
//! behave as the attendees' programs do (contract section 1), a black hole, and
//! the Python runner for the independent clients.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use embedded_store::EmbeddedStore;
use parking_lot::Mutex;
use sns_engine::{EngineConfig, SnsEngine};
use tokio::net::TcpListener;

/// A key made once per test binary and copied into each engine's data dir:
/// making a 2048-bit RSA key in a debug build takes seconds.
fn shared_key_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hq-sns-test-key-{}", std::process::id()));
        sns_engine::signing::Signer::load_or_create(&dir).expect("making the test signing key");
        dir
    })
}

pub fn seed_key(data_dir: &Path) {
    std::fs::create_dir_all(data_dir).unwrap();
    for f in [
        sns_engine::signing::KEY_FILE,
        sns_engine::signing::CERT_FILE,
    ] {
        let to = data_dir.join(f);
        if !to.exists() {
            std::fs::copy(shared_key_dir().join(f), to).unwrap();
        }
    }
}

pub struct Hq {
    pub engine: Arc<SnsEngine>,
    pub store: EmbeddedStore,
    pub base: String,
    pub sns: String,
    server: tokio::task::JoinHandle<()>,
}

impl Hq {
    /// Starts an engine on `dir` (store and key there) served on a random port.
    pub async fn start(dir: &Path, tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        seed_key(dir);
        let store = open_store(dir).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = EngineConfig::new(base.clone(), dir);
        tweak(&mut config);
        let engine = SnsEngine::start(config, Arc::new(store.clone()))
            .await
            .unwrap();
        let app = engine.router();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            engine,
            store,
            sns: format!("{base}/sns"),
            base,
            server,
        }
    }

    pub async fn stop(self) {
        self.engine.shutdown().await;
        self.server.abort();
        let _ = self.server.await;
    }
}

/// Opens the store, waiting for a previous instance's writer thread to let go.
pub async fn open_store(dir: &Path) -> EmbeddedStore {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match EmbeddedStore::open(dir) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("{e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// One POST as a subscriber saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub raw: String,
    pub json: Option<serde_json::Value>,
}

impl Received {
    pub fn kind(&self) -> &str {
        self.json
            .as_ref()
            .and_then(|j| j["Type"].as_str())
            .unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.json
            .as_ref()
            .and_then(|j| j["Message"].as_str())
            .unwrap_or("")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Contract section 1: confirm by GET on SubscribeURL, answer 200 always.
    Attendee,
    /// Answers 200 but never confirms.
    NeverConfirm,
    /// Answers 500 to everything (records the attempts).
    Fail,
}

#[derive(Clone)]
struct SubState {
    behaviour: Behaviour,
    got: Arc<Mutex<Vec<Received>>>,
    /// What the attendee's code would have concluded about each order.
    verdicts: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

/// A subscriber on a random loopback port, accepting any path.
pub struct Subscriber {
    pub base: String,
    got: Arc<Mutex<Vec<Received>>>,
    pub verdicts: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = SubState {
            behaviour,
            got: Arc::default(),
            verdicts: Arc::default(),
            client: reqwest::Client::new(),
        };
        let (got, verdicts) = (state.got.clone(), state.verdicts.clone());
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            got,
            verdicts,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().clone()
    }

    pub fn of_kind(&self, kind: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.kind() == kind)
            .collect()
    }

    /// Waits until `pred` holds for what was received, or panics after `within`.
    pub async fn wait_for(&self, within: Duration, what: &str, pred: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if pred(&self.got.lock()) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; received {} POSTs",
                    self.got.lock().len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(s): State<SubState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (axum::http::StatusCode, String) {
    let raw = String::from_utf8_lossy(&body).to_string();
    // Parse the body as JSON whatever its Content-Type, as the Flask apps do.
    let json: Option<serde_json::Value> = serde_json::from_str(&raw).ok();
    s.got.lock().push(Received {
        at: Instant::now(),
        path: uri.path().to_string(),
        headers,
        raw,
        json: json.clone(),
    });
    if s.behaviour == Behaviour::Fail {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom".into());
    }
    let Some(json) = json else {
        return (axum::http::StatusCode::OK, "not json".into());
    };
    if let Some(url) = json.get("SubscribeURL").and_then(|u| u.as_str()) {
        if s.behaviour == Behaviour::Attendee {
            let ok = s
                .client
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false);
            s.verdicts.lock().push(format!("confirm:{ok}"));
        }
        return (axum::http::StatusCode::OK, "subscribed".into());
    }
    let message = json.get("Message").and_then(|m| m.as_str()).unwrap_or("");
    let verdict = if message.contains("bundle") {
        "bundle".to_string()
    } else if message.contains("iridium") || message.contains("magnesite") {
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(message) {
            Ok(m) if m.len() == 1 => m.keys().next().cloned().unwrap_or_default(),
            _ => "rejected".into(),
        }
    } else {
        "rejected".into()
    };
    s.verdicts.lock().push(verdict);
    (axum::http::StatusCode::OK, "ok".into())
}

/// Accepts TCP connections and never answers: a black-holed subscriber.
pub struct BlackHole {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                if held.len() < 10_000 {
                    held.push(sock);
                }
            }
        });
        Self { base, task }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs a script of `tests/python/` with `HQ_PYTHON` (default `python3`).
/// Fails, never skips, when the interpreter or a module is missing.
pub async fn run_python(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let python = std::env::var("HQ_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&path).args(args).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("cannot run {python} (set HQ_PYTHON): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{python} {script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// The subscription's token, read from the store (for endpoints that cannot confirm).
pub async fn token_of(store: &EmbeddedStore, arn: &str) -> String {
    use hq_core::ports::SubscriptionStore;
    store
        .subscriptions()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.arn == arn)
        .unwrap()
        .token
}

pub async fn confirm_via_api(hq: &Hq, topic_arn: &str, token: &str) {
    let r = reqwest::get(format!(
        "{}?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}",
        hq.sns
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}
