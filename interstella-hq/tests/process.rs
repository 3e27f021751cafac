//! The binary as a facilitator runs it: killed mid-load (SIGKILL) it loses no
//! acknowledged fulfillment; stopped with SIGTERM it finishes what it started.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use embedded_store::EmbeddedStore;
use hq_core::ports::Ledger;
use serde_json::{json, Value};

struct Server {
    child: Child,
    base: String,
}

/// Starts the real binary on a free port and waits for its banner.
fn start(data_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_interstella-hq"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--admin-token",
            "crash-test-token",
        ])
        .args(["--throttle-rate", "1000000", "--throttle-burst", "1000000"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start interstella-hq");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("banner before exit")
            .expect("read stdout");
        if let Some(addr) = line.trim().strip_prefix("Listening on:") {
            break addr.trim().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        base: format!("http://{addr}"),
    }
}

async fn attendees(client: &reqwest::Client, base: &str, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..n {
        let creds = json!({"username": format!("user{i}"), "password": "password-123"});
        let res = client
            .post(format!("{base}/api/signup"))
            .json(&creds)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let login: Value = client
            .post(format!("{base}/api/login"))
            .json(&creds)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["token"].as_str().unwrap();
        let key: Value = client
            .get(format!("{base}/api/key"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        keys.push(key["apiKey"].as_str().unwrap().to_owned());
    }
    keys
}

type Acked = Vec<(uuid::Uuid, u32, u32)>;

/// Posts fulfillments from `workers` concurrent loops until `stop` is set or
/// the server goes away; returns every acknowledged (id, iridium, magnesite).
async fn load(base: String, keys: Vec<String>, workers: usize, stop: Arc<AtomicBool>) -> Acked {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, base, keys, stop) = (client.clone(), base.clone(), keys.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = w;
            // Bounded: at most 20 000 requests per worker.
            while !stop.load(Ordering::Relaxed) && i < 20_000 * workers {
                let (ir, mg) = ((i % 3) as u32, 1 + (i % 2) as u32);
                let res = client
                    .post(format!("{base}/receiving/"))
                    .header("x-api-key", &keys[i % keys.len()])
                    .body(format!(r#"{{"iridium": {ir}, "magnesite": {mg}}}"#))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => break,
                        };
                        acked.push((
                            v["fulfillmentId"].as_str().unwrap().parse().unwrap(),
                            ir,
                            mg,
                        ));
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => break,
                }
                i += workers;
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Every acknowledged record is stored, and the totals equal the records.
async fn assert_consistent(data_dir: &Path, acked: &Acked) {
    let store = EmbeddedStore::open(data_dir).expect("reopen after the crash");
    for (id, ir, mg) in acked {
        let f = store
            .get(*id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {id} lost"));
        assert_eq!((f.amounts.iridium, f.amounts.magnesite), (*ir, *mg));
    }
    let mut from_records: HashMap<String, (u64, u64, u64)> = HashMap::new();
    let mut after = None;
    loop {
        let page = store.list(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for f in &page {
            let e = from_records.entry(f.username.to_string()).or_default();
            e.0 += 1;
            e.1 += f.amounts.iridium as u64;
            e.2 += f.amounts.magnesite as u64;
        }
    }
    let records: u64 = from_records.values().map(|e| e.0).sum();
    assert_eq!(records, store.count().await.unwrap());
    assert!(records >= acked.len() as u64);
    for t in store.totals().await.unwrap() {
        let e = from_records.remove(t.username.as_str()).unwrap_or_default();
        assert_eq!(
            (t.total, t.iridium, t.magnesite),
            e,
            "totals of {} disagree with records",
            t.username
        );
    }
    assert!(
        from_records.is_empty(),
        "records without totals: {from_records:?}"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_fulfillment() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let client = reqwest::Client::new();
    let keys = attendees(&client, &server.base, 10).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load(server.base.clone(), keys, 32, stop.clone()));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
    server.child.wait().unwrap();
    let acked = load.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(
        acked.len() > 100,
        "the load did not get going: {} acknowledged",
        acked.len()
    );

    assert_consistent(dir.path(), &acked).await;

    // And HQ starts again on the same data dir and serves the same totals.
    let mut again = start(dir.path());
    let board: Value = client
        .get(format!("{}/api/leaderboard", again.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total: u64 = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["total"].as_u64().unwrap())
        .sum();
    assert!(total >= acked.len() as u64);
    again.child.kill().unwrap();
    again.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let client = reqwest::Client::new();
    let keys = attendees(&client, &server.base, 4).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load(server.base.clone(), keys, 16, stop.clone()));

    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "graceful exit, got {status}");
    let acked = load.await.unwrap();
    assert!(acked.len() > 50);
    assert_consistent(dir.path(), &acked).await;
}

#[test]
fn json_logs_carry_the_request_id_and_never_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_interstella-hq"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--admin-token",
            "log-test-token",
            "--log-format",
            "json",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start interstella-hq");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(a) = line.trim().strip_prefix("Listening on:") {
            break a.trim().to_owned();
        }
    };
    let base = format!("http://{addr}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = rt.block_on(async {
        let client = reqwest::Client::new();
        let key = attendees(&client, &base, 1).await.remove(0);
        let res = client
            .post(format!("{base}/receiving/"))
            .header("x-api-key", &key)
            .body(r#"{"iridium":1}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        key
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains(&key), "a key was logged");
    let is_request_id = |v: &Value| v.as_str().is_some_and(|id| id.len() == 36);
    let (mut served, mut fulfillments, mut in_handlers) = (0, 0, 0);
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["message"] == "served" {
            // One line per request, naming it itself (the fulfillment API has no span).
            assert!(is_request_id(&v["request_id"]), "{line}");
            assert!(v["route"].is_string() && v["status"].is_u64(), "{line}");
            served += 1;
            fulfillments += usize::from(v["route"] == "/receiving/");
        }
        if ["attendee signed up", "attendee signed in", "API key issued"]
            .contains(&v["message"].as_str().unwrap_or_default())
        {
            // What a handler logs carries its request's id through the span.
            assert!(is_request_id(&v["span"]["request_id"]), "{line}");
            in_handlers += 1;
        }
    }
    assert!(served >= 4, "one line per request");
    assert_eq!(fulfillments, 1, "the fulfillment's line (debug level)");
    assert_eq!(in_handlers, 3, "signup, login and key issue are logged");
}
