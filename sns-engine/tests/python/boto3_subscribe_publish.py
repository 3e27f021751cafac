"""boto3 against HQ's SNS query API, the way Lab 1's monolith subscribes itself.

Usage: boto3_subscribe_publish.py ENDPOINT MESSAGE

The SNS endpoint comes from AWS_ENDPOINT_URL_SNS (as attendees set it), the
region and static credentials from the usual AWS_* variables. Subscribes
ENDPOINT to orderTopic, waits until the subscriber has confirmed it, publishes
MESSAGE and prints a JSON summary. A missing module or any failure exits non-zero.
"""

import json
import sys
import time

import boto3
from botocore.exceptions import ClientError


def main():
    endpoint, message = sys.argv[1], sys.argv[2]
    sns = boto3.client("sns")
    arns = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    topic = next(a for a in arns if a.endswith(":orderTopic"))
    resp = sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint)
    assert resp["SubscriptionArn"] == "pending confirmation", resp
    deadline = time.time() + 20
    sub_arn = None
    while time.time() < deadline:
        subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        mine = [s for s in subs if s["Endpoint"] == endpoint]
        assert len(mine) == 1, subs
        if mine[0]["SubscriptionArn"] != "PendingConfirmation":
            sub_arn = mine[0]["SubscriptionArn"]
            break
        time.sleep(0.05)
    assert sub_arn, "the subscriber never confirmed"
    attrs = sns.get_subscription_attributes(SubscriptionArn=sub_arn)["Attributes"]
    assert attrs["Endpoint"] == endpoint and attrs["PendingConfirmation"] == "false", attrs
    message_id = sns.publish(TopicArn=topic, Message=message)["MessageId"]
    try:
        sns.publish(TopicArn=topic.replace("orderTopic", "noSuchTopic"), Message="x")
        raise SystemExit("publishing to a missing topic succeeded")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NotFound", e.response
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e.response
    print(json.dumps({"subscriptionArn": sub_arn, "messageId": message_id, "topicArn": topic}))


if __name__ == "__main__":
    main()
