#!/usr/bin/env bash
# Stands Interstella HQ up in one AWS account, in one command:
#   1. builds the three Lambdas for arm64 (cargo lambda build --release --arm64),
#   2. uploads their zips to a code bucket (created if missing),
#   3. deploys infra/template.yaml (aws cloudformation deploy),
#   4. redeploys the API stage, waits for the portal, seeds the default rates,
#   5. prints the "share with attendees" block from the stack outputs.
# Idempotent: run it again to update code or parameters.
#
# Needs: the AWS CLI v2 with credentials for the target account and region,
# cargo, cargo-lambda (`pip install cargo-lambda`, bundles zig), curl.
# Settings (environment variables, all optional):
#   STACK_NAME=interstella-hq   AWS_REGION=<from your AWS config>   STAGE=prod
#   THROTTLE_RATE=100  THROTTLE_BURST=200  QUOTA_PER_DAY=0 (0 = none)
#   ATTENDEE_ACCOUNT_IDS=""   (comma-separated; empty = this account only)
#   TABLE_DELETION_PROTECTION=false   LOG_RETENTION_DAYS=14
#   CREATE_ASSETS_BUCKET=false   ORDERS_PER_MINUTE=2 (seeded for every topic)
#   DOMAIN_NAME="" CERTIFICATE_ARN="" HOSTED_ZONE_ID=""  (custom domain: recommended,
#     the portal pages need the stage at a domain's root; see infra/README.md)
#   CODE_BUCKET=<stack>-code-<account>-<region>   SKIP_BUILD=0   SHOW_ADMIN_TOKEN=0
#   CARGO_TARGET_DIR=target (honoured, as cargo does)   LAMBDA_DEBUGINFO=0
set -euo pipefail
cd "$(dirname "$0")/.."

STACK_NAME="${STACK_NAME:-interstella-hq}"
STAGE="${STAGE:-prod}"
THROTTLE_RATE="${THROTTLE_RATE:-100}"
THROTTLE_BURST="${THROTTLE_BURST:-200}"
QUOTA_PER_DAY="${QUOTA_PER_DAY:-0}"
ATTENDEE_ACCOUNT_IDS="${ATTENDEE_ACCOUNT_IDS:-}"
TABLE_DELETION_PROTECTION="${TABLE_DELETION_PROTECTION:-false}"
LOG_RETENTION_DAYS="${LOG_RETENTION_DAYS:-14}"
CREATE_ASSETS_BUCKET="${CREATE_ASSETS_BUCKET:-false}"
ORDERS_PER_MINUTE="${ORDERS_PER_MINUTE:-2}"
SKIP_BUILD="${SKIP_BUILD:-0}"
DOMAIN_NAME="${DOMAIN_NAME:-}"
CERTIFICATE_ARN="${CERTIFICATE_ARN:-}"
HOSTED_ZONE_ID="${HOSTED_ZONE_ID:-}"
BINARIES=(fulfillment-api key-portal order-publisher)
LAMBDA_DIR="${CARGO_TARGET_DIR:-target}/lambda"   # where cargo lambda puts the zips

say() { printf '\n--- %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null || { echo "deploy.sh: $1 not found ($2)" >&2; exit 1; }; }

need aws "install the AWS CLI v2"
need curl "install curl"
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region || true)}}"
[ -n "$REGION" ] || { echo "deploy.sh: set AWS_REGION" >&2; exit 1; }
export AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION"
ACCOUNT="$(aws sts get-caller-identity --query Account --output text)"
CODE_BUCKET="${CODE_BUCKET:-${STACK_NAME}-code-${ACCOUNT}-${REGION}}"
say "deploying stack $STACK_NAME to account $ACCOUNT, region $REGION, stage $STAGE"

# 1. Build.
if [ "$SKIP_BUILD" != "1" ]; then
  [ -x .venv/bin/cargo-lambda ] && export PATH="$PWD/.venv/bin:$PATH"
  need cargo "install Rust: https://rustup.rs"
  need cargo-lambda "pip install cargo-lambda ziglang"
  # cargo-lambda links arm64 with zig: `zig`, or `python3 -m ziglang`.
  command -v zig >/dev/null || python3 -c 'import ziglang' 2>/dev/null \
    || { echo "deploy.sh: zig not found: pip install ziglang (beside cargo-lambda)" >&2; exit 1; }
  rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
    || { echo "deploy.sh: rustup target add aarch64-unknown-linux-gnu" >&2; exit 1; }
  say "building the Lambdas for arm64 (the first build takes a while)"
  # The workspace's release profile keeps line tables (useful locally); in a
  # Lambda they only weigh (key-portal with them: 71 MB, 19.5 MB zipped).
  # LAMBDA_DEBUGINFO=1 keeps them.
  if [ "${LAMBDA_DEBUGINFO:-0}" != "1" ]; then
    export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo
  fi
  cargo lambda build --release --arm64 --output-format zip -p hq-lambdas
fi
for bin in "${BINARIES[@]}"; do
  [ -f "$LAMBDA_DIR/$bin/bootstrap.zip" ] || { echo "deploy.sh: $LAMBDA_DIR/$bin/bootstrap.zip missing (build first)" >&2; exit 1; }
done

# 2. Upload, under content-addressed keys so CloudFormation sees new code.
if ! aws s3api head-bucket --bucket "$CODE_BUCKET" 2>/dev/null; then
  say "creating code bucket $CODE_BUCKET"
  if [ "$REGION" = "us-east-1" ]; then
    aws s3api create-bucket --bucket "$CODE_BUCKET" >/dev/null
  else
    aws s3api create-bucket --bucket "$CODE_BUCKET" --create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
  fi
  aws s3api put-public-access-block --bucket "$CODE_BUCKET" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
fi
sha256() { if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi | cut -c1-16; }
upload() {
  local key
  key="lambdas/$1-$(sha256 "$LAMBDA_DIR/$1/bootstrap.zip").zip"
  aws s3 cp --only-show-errors "$LAMBDA_DIR/$1/bootstrap.zip" "s3://$CODE_BUCKET/$key"
  echo "$key"
}
FULFILLMENT_KEY="$(upload fulfillment-api)"
PORTAL_KEY="$(upload key-portal)"
PUBLISHER_KEY="$(upload order-publisher)"

# 3. Deploy.
say "deploying infra/template.yaml"
aws cloudformation deploy \
  --template-file infra/template.yaml \
  --stack-name "$STACK_NAME" \
  --capabilities CAPABILITY_IAM \
  --no-fail-on-empty-changeset \
  --parameter-overrides \
    "StageName=$STAGE" \
    "ThrottleRate=$THROTTLE_RATE" \
    "ThrottleBurst=$THROTTLE_BURST" \
    "QuotaPerDay=$QUOTA_PER_DAY" \
    "AttendeeAccountIds=$ATTENDEE_ACCOUNT_IDS" \
    "TableDeletionProtection=$TABLE_DELETION_PROTECTION" \
    "LogRetentionDays=$LOG_RETENTION_DAYS" \
    "CreateAssetsBucket=$CREATE_ASSETS_BUCKET" \
    "DomainName=$DOMAIN_NAME" \
    "CertificateArn=$CERTIFICATE_ARN" \
    "HostedZoneId=$HOSTED_ZONE_ID" \
    "CodeBucket=$CODE_BUCKET" \
    "FulfillmentCodeKey=$FULFILLMENT_KEY" \
    "PortalCodeKey=$PORTAL_KEY" \
    "PublisherCodeKey=$PUBLISHER_KEY"

output() {
  aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
PORTAL_URL="$(output PortalUrl)"
FULFILLMENT_URL="$(output FulfillmentUrl)"
ORDERS_ARN="$(output OrdersTopicArn)"
IRIDIUM_ARN="$(output IridiumTopicArn)"
MAGNESITE_ARN="$(output MagnesiteTopicArn)"
USAGE_PLAN_ID="$(output UsagePlanId)"
REST_API_ID="$(output RestApiId)"
SECRET_ARN="$(output AdminTokenSecretArn)"
ASSETS_BUCKET="$(output AssetsBucketName)"
EXECUTE_API_URL="$(output ExecuteApiUrl)"

# 4. CloudFormation does not redeploy a REST API whose routes changed: do it.
aws apigateway create-deployment --rest-api-id "$REST_API_ID" --stage-name "$STAGE" \
  --description "deploy.sh $(date -u +%Y-%m-%dT%H:%M:%SZ)" >/dev/null

say "waiting for the portal to answer"
ready=0
for _ in $(seq 1 30); do
  # The execute-api URL answers as soon as the stage is deployed (a new custom
  # domain may take minutes to resolve); the admin API is the same Lambda.
  if curl -fsS --max-time 10 "${EXECUTE_API_URL}healthz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 5
done
[ "$ready" = 1 ] || { echo "deploy.sh: ${EXECUTE_API_URL}healthz did not answer 200 within 150 s; see the key-portal Lambda's logs" >&2; exit 1; }

ADMIN_TOKEN="$(aws secretsmanager get-secret-value --secret-id "$SECRET_ARN" --query SecretString --output text)"
say "seeding rates: $ORDERS_PER_MINUTE orders per minute on each topic, not paused"
for topic in orderTopic iridium magnesite; do
  curl -fsS --max-time 20 -X PUT "${EXECUTE_API_URL}admin/api/rates/$topic" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"ratePerMinute\": $ORDERS_PER_MINUTE, \"paused\": false}" >/dev/null
done

# 5. What to share.
cat <<SHARE

==================== share with attendees ====================
Key portal (sign up, get your API key):  $PORTAL_URL
Leaderboard:                             ${PORTAL_URL}leaderboard
Fulfillment endpoint (header x-api-key): $FULFILLMENT_URL
Region:                                  $REGION
Orders topic (monolith, Lab 1):          $ORDERS_ARN
Iridium topic:                           $IRIDIUM_ARN
Magnesite topic:                         $MAGNESITE_ARN
==============================================================

Facilitator only (do not share):
  console:        ${PORTAL_URL}admin
  admin token:    aws secretsmanager get-secret-value --secret-id '$SECRET_ARN' --query SecretString --output text
  usage plan id:  $USAGE_PLAN_ID   (REST API $REST_API_ID, stage $STAGE)
SHARE
if [ -n "$ASSETS_BUCKET" ] && [ "$ASSETS_BUCKET" != "None" ]; then
  echo "  assets bucket:  s3://$ASSETS_BUCKET  (aws s3 presign s3://$ASSETS_BUCKET/<file> --expires-in 604800)"
fi
if [ "${SHOW_ADMIN_TOKEN:-0}" = "1" ]; then
  echo "  admin token value: $ADMIN_TOKEN"
fi
