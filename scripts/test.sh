#!/usr/bin/env bash
# Runs every test of HQ. Installs what the tests need first (idempotent):
# * Debian's chromium and chromium-driver, for the page tests (needs root or sudo);
# * a Python virtual environment with the independent clients (boto3,
#   cryptography) that the SNS tests drive HQ with.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  echo "--- installing chromium and chromium-driver (Debian packages)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import boto3, cryptography' 2>/dev/null; then
  echo "--- setting up .venv (boto3, cryptography)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check boto3 cryptography cfn-lint
fi
export HQ_PYTHON="$PWD/.venv/bin/python"

# --- AWS mode (issue 5): moto and cargo-lambda for aws-adapters' contract tests
# and hq-lambdas' end-to-end test (they fail, not skip, without them).
if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/cargo-lambda ]; then
  echo "--- installing moto[server] and cargo-lambda into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]" cargo-lambda
fi
export HQ_MOTO_SERVER="$PWD/.venv/bin/moto_server"
export HQ_CARGO_LAMBDA="$PWD/.venv/bin/cargo-lambda"
# --- end AWS mode

cargo test --workspace --no-fail-fast "$@"
