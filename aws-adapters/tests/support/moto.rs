//! A moto server for the tests: started on a free loopback port, killed on drop.
//!
//! It runs `moto_server.py` (next to this file): moto's own server with one lock
//! around DynamoDB requests, so racing conditional writes behave as DynamoDB's
//! do (moto's threaded server lets two racers pass one condition). The Python
//! is `$HQ_PYTHON`, else the workspace's `.venv/bin/python` (what
//! `scripts/test.sh` installs), else `python3` on the PATH. moto missing is a
//! test failure, not a skip.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub port: u16,
    pub endpoint: String,
}

/// The server, embedded so that every crate including this file finds it.
const SERVER: &str = include_str!("moto_server.py");

/// The Python that has moto.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("HQ_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Moto {
    /// Starts moto and waits (up to 30 s) until it answers.
    pub async fn start() -> Moto {
        let port = free_port();
        let python = python();
        let child = Command::new(&python)
            .args(["-c", SERVER, "127.0.0.1", &port.to_string()])
            .env("MOTO_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} (set HQ_PYTHON): {e}", python.display()));
        let mut moto = Moto {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto exited ({status}): run scripts/test.sh (it installs moto into .venv), \
                     or `{} -m pip install \"moto[server]\"`, or set HQ_PYTHON",
                    python.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {port} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
