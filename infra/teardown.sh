#!/usr/bin/env bash
# Removes an Interstella HQ stack and everything it made: switches off the
# tables' deletion protection, deletes the stack (tables, topics, API, Lambdas,
# log groups, the admin token secret), the API keys issued to attendees, and
# the code bucket deploy.sh made. Asks before deleting unless YES=1.
#
# Settings: STACK_NAME=interstella-hq  AWS_REGION  CODE_BUCKET (as deploy.sh)
#           KEEP_CODE_BUCKET=0  YES=0
set -euo pipefail

STACK_NAME="${STACK_NAME:-interstella-hq}"
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region || true)}}"
[ -n "$REGION" ] || { echo "teardown.sh: set AWS_REGION" >&2; exit 1; }
export AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION"
ACCOUNT="$(aws sts get-caller-identity --query Account --output text)"
CODE_BUCKET="${CODE_BUCKET:-${STACK_NAME}-code-${ACCOUNT}-${REGION}}"

if ! aws cloudformation describe-stacks --stack-name "$STACK_NAME" >/dev/null 2>&1; then
  echo "teardown.sh: no stack $STACK_NAME in $REGION (account $ACCOUNT)" >&2
else
  if [ "${YES:-0}" != "1" ]; then
    read -r -p "Delete stack $STACK_NAME in $REGION (account $ACCOUNT) and ALL its data (attendees, keys, fulfillments)? [y/N] " answer
    [ "$answer" = "y" ] || [ "$answer" = "Y" ] || { echo "nothing deleted"; exit 1; }
  fi
  resources() {
    aws cloudformation list-stack-resources --stack-name "$STACK_NAME" \
      --query "StackResourceSummaries[?ResourceType=='$1'].PhysicalResourceId" --output text
  }
  for table in $(resources AWS::DynamoDB::Table); do
    aws dynamodb update-table --table-name "$table" --no-deletion-protection-enabled >/dev/null || true
  done
  # The attendees' API keys live outside the stack (the portal made them).
  PLAN="$(aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='UsagePlanId'].OutputValue" --output text)"
  if [ -n "$PLAN" ] && [ "$PLAN" != "None" ]; then
    for key in $(aws apigateway get-usage-plan-keys --usage-plan-id "$PLAN" --query 'items[].id' --output text); do
      aws apigateway delete-api-key --api-key "$key" || true
    done
  fi
  ASSETS="$(aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='AssetsBucketName'].OutputValue" --output text)"
  if [ -n "$ASSETS" ] && [ "$ASSETS" != "None" ]; then
    aws s3 rm --recursive --only-show-errors "s3://$ASSETS"
  fi
  echo "--- deleting stack $STACK_NAME"
  aws cloudformation delete-stack --stack-name "$STACK_NAME"
  aws cloudformation wait stack-delete-complete --stack-name "$STACK_NAME"
fi
# The admin token secret goes with the stack (Secrets Manager keeps it for its
# recovery window, under a generated name, so a redeploy is never blocked).
if [ "${KEEP_CODE_BUCKET:-0}" != "1" ] && aws s3api head-bucket --bucket "$CODE_BUCKET" 2>/dev/null; then
  echo "--- emptying and deleting code bucket $CODE_BUCKET"
  aws s3 rm --recursive --only-show-errors "s3://$CODE_BUCKET"
  aws s3api delete-bucket --bucket "$CODE_BUCKET"
fi
echo "--- done: nothing of $STACK_NAME is left billing in $REGION"
