#!/usr/bin/env bash
# Runs HQ's AWS mode on this machine: moto (DynamoDB, SNS, API Gateway) as the
# AWS-compatible endpoint, `interstella-hq aws bootstrap` to create the tables,
# topics and usage plan, then the three Lambdas under `cargo lambda watch`.
#
#   scripts/aws-local.sh            # portal on http://127.0.0.1:9000/
#
# Environment (all optional):
#   HQ_LAMBDA_PORT   port of cargo lambda watch          (default 9000)
#   HQ_MOTO_PORT     port of moto                        (default 5055)
#   HQ_ADMIN_TOKEN   facilitator token for /admin/api/   (default: generated, printed)
#   HQ_LOCAL_DIR     where the env file and moto's log go (default target/aws-local)
#
# Ctrl-C (or SIGTERM) stops cargo lambda watch and moto.
set -euo pipefail
cd "$(dirname "$0")/.."

LAMBDA_PORT="${HQ_LAMBDA_PORT:-9000}"
MOTO_PORT="${HQ_MOTO_PORT:-5055}"
DIR="${HQ_LOCAL_DIR:-target/aws-local}"
mkdir -p "$DIR"

# --- tools: moto and cargo-lambda in the project's .venv (idempotent) ---
if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/cargo-lambda ]; then
  echo "--- installing moto[server] and cargo-lambda into .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]" cargo-lambda
fi

# --- moto: the account id matches the all-in-one mode's default ARNs ---
export AWS_ENDPOINT_URL="http://127.0.0.1:${MOTO_PORT}"
export AWS_REGION="${AWS_REGION:-us-west-2}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
MOTO_ACCOUNT_ID=000000000000 .venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$DIR/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/${MOTO_PORT}") 2>/dev/null; then break; fi
  kill -0 "$MOTO_PID" 2>/dev/null || { echo "moto did not start; see $DIR/moto.log" >&2; exit 1; }
  sleep 0.2
done

# --- bootstrap: tables, topics, usage plan; the Lambdas' variables ---
echo "--- bootstrapping (cargo run -p interstella-hq --features aws -- aws bootstrap)"
cargo run --quiet -p interstella-hq --features aws -- aws bootstrap >"$DIR/lambda.env"
ADMIN_TOKEN="${HQ_ADMIN_TOKEN:-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')}"
{
  echo "AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL}"
  echo "AWS_REGION=${AWS_REGION}"
  echo "AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID}"
  echo "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}"
  echo "HQ_ADMIN_TOKEN=${ADMIN_TOKEN}"
  echo "HQ_PUBLIC_URL=http://127.0.0.1:${LAMBDA_PORT}"
  # No API Gateway in front locally: HQ's own key cache must notice rotations fast.
  echo "HQ_KEY_CACHE_TTL_SECS=1"
} >>"$DIR/lambda.env"

cat <<EOF

  Interstella HQ, AWS mode (Lambdas under cargo lambda watch, moto on :${MOTO_PORT})

  Key portal:           http://127.0.0.1:${LAMBDA_PORT}/
  Fulfillment endpoint: http://127.0.0.1:${LAMBDA_PORT}/receiving/
  Leaderboard:          http://127.0.0.1:${LAMBDA_PORT}/leaderboard
  Admin API:            http://127.0.0.1:${LAMBDA_PORT}/admin/api/   (token: ${ADMIN_TOKEN})
  Order publisher:      cargo lambda invoke order-publisher --invoke-port ${LAMBDA_PORT} --data-example eventbridge-schedule
  Lambda environment:   ${DIR}/lambda.env

EOF
.venv/bin/cargo-lambda lambda watch --package hq-lambdas --invoke-address 127.0.0.1 \
  --invoke-port "$LAMBDA_PORT" --env-file "$DIR/lambda.env" &
WATCH_PID=$!
trap 'kill "$WATCH_PID" "$MOTO_PID" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
wait "$WATCH_PID"
