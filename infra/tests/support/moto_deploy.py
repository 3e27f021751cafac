"""Deploys infra/template.yaml into a moto server's CloudFormation and reports,
as one JSON document on stdout, what moto made of it.

Usage: moto_deploy.py <endpoint> <region> <template> <stack-name> [Key=Value ...]

Run by `cargo test -p hq-infra --test moto_deploy`, against a moto server the
test started. Uploads placeholder Lambda zips first (moto's Lambda wants the
code object to exist), then create_stack, then reads back the stack (status,
resources, outputs) and each Lambda's environment and configuration.
"""
import io
import json
import sys
import time
import warnings
import zipfile

import boto3


def main() -> None:
    endpoint, region, template_path, stack = sys.argv[1:5]
    extra = dict(a.split("=", 1) for a in sys.argv[5:])
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )

    def client(name):
        return session.client(name, endpoint_url=endpoint)

    s3 = client("s3")
    bucket = "hq-infra-code"
    create = {"Bucket": bucket}
    if region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**create)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n# placeholder: moto never runs it\n")
    for name in ("fulfillment-api", "key-portal", "order-publisher"):
        s3.put_object(Bucket=bucket, Key=f"lambdas/{name}.zip", Body=buf.getvalue())

    params = {"CodeBucket": bucket, **extra}
    cfn = client("cloudformation")
    with open(template_path, encoding="utf-8") as f:
        body = f.read()
    started = time.monotonic()
    with warnings.catch_warnings(record=True):
        cfn.create_stack(
            StackName=stack,
            TemplateBody=body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
    status = None
    for _ in range(600):  # moto finishes synchronously; bounded anyway
        status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    seconds = time.monotonic() - started
    desc = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    resources = []
    token = None
    for _ in range(100):
        kw = {"StackName": stack}
        if token:
            kw["NextToken"] = token
        page = cfn.list_stack_resources(**kw)
        resources += page["StackResourceSummaries"]
        token = page.get("NextToken")
        if not token:
            break
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    failures = [
        {"logical": e.get("LogicalResourceId"), "status": e.get("ResourceStatus"), "reason": e.get("ResourceStatusReason")}
        for e in events
        if "FAILED" in e.get("ResourceStatus", "")
    ]

    lam = client("lambda")
    functions = {}
    for r in resources:
        if r["ResourceType"] == "AWS::Lambda::Function":
            cfg = lam.get_function_configuration(FunctionName=r["PhysicalResourceId"])
            functions[r["LogicalResourceId"]] = {
                "name": cfg["FunctionName"],
                "runtime": cfg.get("Runtime"),
                "handler": cfg.get("Handler"),
                "architectures": cfg.get("Architectures"),
                "tracing": cfg.get("TracingConfig", {}).get("Mode"),
                "env": cfg.get("Environment", {}).get("Variables", {}),
            }

    events_client = client("events")
    rules = [
        {"name": r["Name"], "schedule": r.get("ScheduleExpression"), "state": r.get("State"),
         "targets": [t["Arn"] for t in events_client.list_targets_by_rule(Rule=r["Name"])["Targets"]]}
        for r in events_client.list_rules()["Rules"]
    ]

    gw = client("apigateway")
    apis = []
    for api in gw.get_rest_apis()["items"]:
        res = gw.get_resources(restApiId=api["id"], limit=500)["items"]
        methods = []
        for r in res:
            for m in (r.get("resourceMethods") or {}):
                full = gw.get_method(restApiId=api["id"], resourceId=r["id"], httpMethod=m)
                methods.append({
                    "path": r["path"],
                    "method": m,
                    "apiKeyRequired": full.get("apiKeyRequired", False),
                    "integrationType": (full.get("methodIntegration") or {}).get("type"),
                    "integrationUri": (full.get("methodIntegration") or {}).get("uri"),
                })
        apis.append({"id": api["id"], "name": api["name"], "methods": methods})

    print(json.dumps({
        "status": desc["StackStatus"],
        "statusReason": desc.get("StackStatusReason"),
        "seconds": seconds,
        "failures": failures,
        "resources": [
            {"logical": r["LogicalResourceId"], "type": r["ResourceType"],
             "physical": r.get("PhysicalResourceId"), "status": r["ResourceStatus"]}
            for r in resources
        ],
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])},
        "functions": functions,
        "rules": rules,
        "restApis": apis,
    }, indent=1))


if __name__ == "__main__":
    main()
