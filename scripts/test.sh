#!/usr/bin/env bash
# Runs every test of HQ. Installs what the tests need first (idempotent):
# * Debian's chromium and chromium-driver, for the page tests (needs root or sudo);
# * a Python virtual environment (.venv) with the independent clients and servers
#   the tests use: boto3 and cryptography (SNS engine), moto's server (the
#   AWS-compatible server the AWS adapters and the template are tested against),
#   cfn-lint (the template), cargo-lambda and ziglang (the Lambdas under
#   `cargo lambda watch`, and their arm64 build, which zig links);
# * rustup's target aarch64-unknown-linux-gnu, for that arm64 build.
# Tests that need one of these fail, not skip, when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  echo "--- installing chromium and chromium-driver (Debian packages)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# The Lambdas are checked to build for arm64, as the template deploys them.
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "--- adding the Rust target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c 'import boto3, cryptography, moto, cfnlint, ziglang' 2>/dev/null \
   || [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/cargo-lambda ]; then
  echo "--- installing the test tools into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check \
    boto3 cryptography "moto[server]" cfn-lint cargo-lambda ziglang
fi
export HQ_PYTHON="$PWD/.venv/bin/python"
export HQ_CARGO_LAMBDA="$PWD/.venv/bin/cargo-lambda"

cargo test --workspace --no-fail-fast "$@"
