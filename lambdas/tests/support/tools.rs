//! Where the tests find cargo-lambda and the workspace.

use std::path::PathBuf;

/// `$HQ_CARGO_LAMBDA`, else `.venv/bin/cargo-lambda` (scripts/test.sh installs
/// it), else `cargo-lambda` on the PATH. Missing is a failure, not a skip.
pub fn cargo_lambda() -> PathBuf {
    if let Some(p) = std::env::var_os("HQ_CARGO_LAMBDA") {
        return PathBuf::from(p);
    }
    let venv = root().join(".venv/bin/cargo-lambda");
    if venv.exists() {
        return venv;
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join("cargo-lambda").exists() {
            return dir.join("cargo-lambda");
        }
    }
    panic!("cargo-lambda not found: run scripts/test.sh (it installs it into .venv), or `pip install cargo-lambda`, or set HQ_CARGO_LAMBDA");
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
