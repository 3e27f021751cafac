//! The three Lambdas build for the architecture the template deploys them on
//! (`provided.al2023`, `arm64`, handler `bootstrap`): `cargo lambda build
//! --arm64` cross-compiles with cargo-lambda's bundled zig as the linker, and
//! each `bootstrap` it leaves is a 64-bit ARM executable.
//!
//! The debug profile keeps CI near 9 minutes for this step; the release build
//! that `infra/deploy.sh` runs adds only optimisation and LTO (about 18 minutes
//! on 2 cores, measured in infra/README.md). Needs the Rust target
//! `aarch64-unknown-linux-gnu` and zig (scripts/test.sh adds the target with
//! rustup and PyPI's `ziglang` beside cargo-lambda).

#[path = "support/tools.rs"]
mod tools;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use tools::{cargo_lambda, root};

const FUNCTIONS: [&str; 3] = ["fulfillment-api", "key-portal", "order-publisher"];
/// ELF `e_machine` of AArch64.
const EM_AARCH64: u16 = 183;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

#[test]
fn the_lambdas_build_for_arm64() {
    let started = Instant::now();
    let cargo_lambda = cargo_lambda();
    // cargo-lambda links with zig, found as `zig` or as `python3 -m ziglang`:
    // the Python beside cargo-lambda (scripts/test.sh installs `ziglang` there).
    let mut path = vec![cargo_lambda.parent().unwrap_or(&root()).to_path_buf()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let out = Command::new(&cargo_lambda)
        .args(["lambda", "build", "--arm64", "-p", "hq-lambdas"])
        .env("PATH", std::env::join_paths(path).expect("PATH"))
        .current_dir(root())
        .output()
        .expect("running cargo lambda build");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo lambda build --arm64 failed (are the Rust target and zig installed? \
         `rustup target add aarch64-unknown-linux-gnu`, `pip install ziglang`):\n{stderr}"
    );
    eprintln!("cargo lambda build --arm64 took {:?}", started.elapsed());
    for function in FUNCTIONS {
        let bootstrap = target_dir().join("lambda").join(function).join("bootstrap");
        let bytes =
            std::fs::read(&bootstrap).unwrap_or_else(|e| panic!("{}: {e}", bootstrap.display()));
        assert!(bytes.len() > 20, "{} is too short", bootstrap.display());
        assert_eq!(
            &bytes[..4],
            b"\x7fELF",
            "{} is not ELF",
            bootstrap.display()
        );
        assert_eq!(bytes[4], 2, "{} is not 64-bit", bootstrap.display());
        assert_eq!(bytes[5], 1, "{} is not little-endian", bootstrap.display());
        let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
        assert_eq!(
            machine,
            EM_AARCH64,
            "{} is not AArch64",
            bootstrap.display()
        );
    }
}
