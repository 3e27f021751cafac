#!/usr/bin/env bash
# Runs every test of HQ. Installs what the tests need first (idempotent):
# a Python virtual environment with the independent clients (boto3, cryptography)
# that the SNS tests drive HQ with.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import boto3, cryptography' 2>/dev/null; then
  echo "--- setting up .venv (boto3, cryptography)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check boto3 cryptography
fi
export HQ_PYTHON="$PWD/.venv/bin/python"

cargo test --workspace --no-fail-fast "$@"
