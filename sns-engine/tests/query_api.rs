//! SNS's query API with clients no one here wrote (boto3, aws-sdk-sns), and
//! SNS's error documents for bad input.

mod common;

use std::time::Duration;

use common::{Behaviour, Hq, Subscriber};

/// Lab 1: boto3's `subscribe` and `publish` through `AWS_ENDPOINT_URL_SNS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_subscribe_and_publish_through_aws_endpoint_url_sns() {
    let dir = tempfile::tempdir().unwrap();
    let hq = Hq::start(dir.path(), |_| {}).await;
    let monolith = Subscriber::start(Behaviour::Attendee).await;
    let endpoint = monolith.url("/order/");
    let out = common::run_python(
        "boto3_subscribe_publish.py",
        &[&endpoint, r#"{"bundle": 1}"#],
        &[
            ("AWS_ENDPOINT_URL_SNS", &hq.sns),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ],
    )
    .await;
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    monolith
        .wait_for(Duration::from_secs(10), "the order", |r| r.len() == 2)
        .await;
    let n = &monolith.received()[1];
    assert_eq!(n.kind(), "Notification");
    assert_eq!(n.message(), r#"{"bundle": 1}"#);
    assert_eq!(n.json.as_ref().unwrap()["MessageId"], summary["messageId"]);
    assert_eq!(
        n.headers["x-amz-sns-subscription-arn"],
        summary["subscriptionArn"].as_str().unwrap()
    );
    assert_eq!(
        monolith.verdicts.lock().clone(),
        vec!["confirm:true", "bundle"]
    );
    hq.stop().await;
}

/// aws-sdk-sns (Rust): CreateTopic, ListTopics, Subscribe, ListSubscriptionsByTopic,
/// Publish, PublishBatch, attributes, Unsubscribe, and a NotFound error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sdk_sns_round_trip() {
    use aws_sdk_sns::config::{Credentials, Region};
    use aws_sdk_sns::types::PublishBatchRequestEntry;
    let dir = tempfile::tempdir().unwrap();
    let hq = Hq::start(dir.path(), |_| {}).await;
    let sink = Subscriber::start(Behaviour::Attendee).await;
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .endpoint_url(&hq.sns)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await;
    let sns = aws_sdk_sns::Client::new(&conf);

    let created = sns.create_topic().name("labTopic").send().await.unwrap();
    let lab_arn = created.topic_arn().unwrap().to_string();
    assert_eq!(lab_arn, "arn:aws:sns:us-west-2:000000000000:labTopic");
    let again = sns.create_topic().name("labTopic").send().await.unwrap();
    assert_eq!(
        again.topic_arn(),
        Some(lab_arn.as_str()),
        "CreateTopic is idempotent"
    );
    let topics: Vec<String> = sns
        .list_topics()
        .send()
        .await
        .unwrap()
        .topics()
        .iter()
        .filter_map(|t| t.topic_arn().map(str::to_string))
        .collect();
    for name in ["orderTopic", "iridium", "magnesite", "labTopic"] {
        assert!(
            topics.iter().any(|t| t.ends_with(&format!(":{name}"))),
            "{name} in {topics:?}"
        );
    }

    let sub = sns
        .subscribe()
        .topic_arn(&lab_arn)
        .protocol("http")
        .endpoint(sink.url("/lab/"))
        .return_subscription_arn(true)
        .send()
        .await
        .unwrap();
    let sub_arn = sub.subscription_arn().unwrap().to_string();
    assert!(sub_arn.starts_with(&format!("{lab_arn}:")), "{sub_arn}");
    sink.wait_for(Duration::from_secs(10), "the confirmation", |r| {
        !r.is_empty()
    })
    .await;
    let mut confirmed = false;
    for _ in 0..200 {
        let listed = sns
            .list_subscriptions_by_topic()
            .topic_arn(&lab_arn)
            .send()
            .await
            .unwrap();
        let s = &listed.subscriptions()[0];
        assert_eq!(s.endpoint(), Some(sink.url("/lab/").as_str()));
        assert_eq!(s.protocol(), Some("http"));
        if s.subscription_arn() == Some(sub_arn.as_str()) {
            confirmed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(confirmed, "the subscription shows as confirmed");

    let attrs = sns
        .get_topic_attributes()
        .topic_arn(&lab_arn)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes().unwrap();
    assert_eq!(attrs["SubscriptionsConfirmed"], "1");
    assert_eq!(attrs["SignatureVersion"], "1");
    sns.set_subscription_attributes()
        .subscription_arn(&sub_arn)
        .attribute_name("RawMessageDelivery")
        .attribute_value("true")
        .send()
        .await
        .unwrap();
    let sattrs = sns
        .get_subscription_attributes()
        .subscription_arn(&sub_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(sattrs.attributes().unwrap()["RawMessageDelivery"], "true");
    sns.set_subscription_attributes()
        .subscription_arn(&sub_arn)
        .attribute_name("RawMessageDelivery")
        .attribute_value("false")
        .send()
        .await
        .unwrap();

    let published = sns
        .publish()
        .topic_arn(&lab_arn)
        .message("hello <lab> & friends")
        .send()
        .await
        .unwrap();
    let batch = sns
        .publish_batch()
        .topic_arn(&lab_arn)
        .publish_batch_request_entries(
            PublishBatchRequestEntry::builder()
                .id("a")
                .message("one")
                .build()
                .unwrap(),
        )
        .publish_batch_request_entries(
            PublishBatchRequestEntry::builder()
                .id("b")
                .message("two")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(batch.successful().len(), 2);
    assert!(batch.failed().is_empty());
    sink.wait_for(Duration::from_secs(10), "3 notifications", |r| r.len() == 4)
        .await;
    let got = sink.of_kind("Notification");
    let first = got
        .iter()
        .find(|n| n.message() == "hello <lab> & friends")
        .unwrap();
    assert_eq!(
        first.json.as_ref().unwrap()["MessageId"],
        published.message_id().unwrap()
    );
    let mut msgs: Vec<&str> = got.iter().map(|n| n.message()).collect();
    msgs.sort();
    assert_eq!(msgs, vec!["hello <lab> & friends", "one", "two"]);

    sns.unsubscribe()
        .subscription_arn(&sub_arn)
        .send()
        .await
        .unwrap();
    let listed = sns
        .list_subscriptions_by_topic()
        .topic_arn(&lab_arn)
        .send()
        .await
        .unwrap();
    assert!(listed.subscriptions().is_empty());

    let err = sns
        .publish()
        .topic_arn("arn:aws:sns:us-west-2:000000000000:nope")
        .message("x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_not_found_exception(), "{err:?}");
    let err = sns
        .unsubscribe()
        .subscription_arn(&sub_arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_not_found_exception(), "{err:?}");
    hq.stop().await;
}

async fn call(hq: &Hq, params: &[(&str, &str)]) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(&hq.sns)
        .form(params)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "text/xml");
    (status, r.text().await.unwrap())
}

fn assert_error(what: &str, got: (u16, String), status: u16, code: &str, message_part: &str) {
    let (s, body) = got;
    assert_eq!(s, status, "{what}: {body}");
    assert!(body.contains(r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>"#), "{what}: {body}");
    assert!(
        body.contains(&format!("<Code>{code}</Code>")),
        "{what}: {body}"
    );
    assert!(body.contains(message_part), "{what}: {body}");
    assert!(body.contains("<RequestId>"), "{what}: {body}");
}

/// Bad input gets SNS's error documents with SNS's codes and statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_sns_error_documents() {
    let dir = tempfile::tempdir().unwrap();
    let hq = Hq::start(dir.path(), |_| {}).await;
    let orders = "arn:aws:sns:us-west-2:000000000000:orderTopic";
    let sink = Subscriber::start(Behaviour::NeverConfirm).await;

    assert_error(
        "no action",
        call(&hq, &[("Foo", "1")]).await,
        400,
        "MissingAction",
        "Action",
    );
    assert_error(
        "unknown action",
        call(&hq, &[("Action", "DeleteEverything")]).await,
        400,
        "InvalidAction",
        "DeleteEverything",
    );
    assert_error(
        "publish without topic",
        call(&hq, &[("Action", "Publish"), ("Message", "x")]).await,
        400,
        "InvalidParameter",
        "TopicArn",
    );
    assert_error(
        "publish without message",
        call(&hq, &[("Action", "Publish"), ("TopicArn", orders)]).await,
        400,
        "InvalidParameter",
        "Empty message",
    );
    assert_error(
        "bad topic ARN",
        call(
            &hq,
            &[
                ("Action", "Publish"),
                ("TopicArn", "orderTopic"),
                ("Message", "x"),
            ],
        )
        .await,
        400,
        "InvalidParameter",
        "TopicArn",
    );
    assert_error(
        "unknown topic",
        call(
            &hq,
            &[
                ("Action", "Publish"),
                ("TopicArn", "arn:aws:sns:us-west-2:000000000000:gold"),
                ("Message", "x"),
            ],
        )
        .await,
        404,
        "NotFound",
        "Topic does not exist",
    );
    assert_error(
        "subscribe without protocol",
        call(&hq, &[("Action", "Subscribe"), ("TopicArn", orders)]).await,
        400,
        "InvalidParameter",
        "Protocol",
    );
    assert_error(
        "email protocol",
        call(
            &hq,
            &[
                ("Action", "Subscribe"),
                ("TopicArn", orders),
                ("Protocol", "email"),
                ("Endpoint", "a@b.c"),
            ],
        )
        .await,
        400,
        "InvalidParameter",
        "http and https",
    );
    assert_error(
        "metadata endpoint",
        call(
            &hq,
            &[
                ("Action", "Subscribe"),
                ("TopicArn", orders),
                ("Protocol", "http"),
                ("Endpoint", "http://169.254.169.254/latest/"),
            ],
        )
        .await,
        400,
        "InvalidParameter",
        "link-local",
    );
    assert_error(
        "protocol mismatch",
        call(
            &hq,
            &[
                ("Action", "Subscribe"),
                ("TopicArn", orders),
                ("Protocol", "https"),
                ("Endpoint", &sink.url("/x")),
            ],
        )
        .await,
        400,
        "InvalidParameter",
        "match",
    );
    assert_error(
        "bad subscription ARN",
        call(
            &hq,
            &[("Action", "Unsubscribe"), ("SubscriptionArn", "nope")],
        )
        .await,
        400,
        "InvalidParameter",
        "SubscriptionArn",
    );
    assert_error(
        "unknown subscription",
        call(
            &hq,
            &[
                ("Action", "GetSubscriptionAttributes"),
                (
                    "SubscriptionArn",
                    &format!("{orders}:00000000-0000-0000-0000-000000000000"),
                ),
            ],
        )
        .await,
        404,
        "NotFound",
        "Subscription does not exist",
    );
    assert_error(
        "bad token",
        call(
            &hq,
            &[
                ("Action", "ConfirmSubscription"),
                ("TopicArn", orders),
                ("Token", "forged"),
            ],
        )
        .await,
        400,
        "InvalidParameter",
        "Invalid token",
    );
    assert_error(
        "bad signature version",
        call(
            &hq,
            &[
                ("Action", "SetTopicAttributes"),
                ("TopicArn", orders),
                ("AttributeName", "SignatureVersion"),
                ("AttributeValue", "3"),
            ],
        )
        .await,
        400,
        "InvalidParameter",
        "SignatureVersion",
    );
    assert_error(
        "bad delivery policy",
        call(
            &hq,
            &[
                ("Action", "SetTopicAttributes"),
                ("TopicArn", orders),
                ("AttributeName", "DeliveryPolicy"),
                (
                    "AttributeValue",
                    r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":500}}}"#,
                ),
            ],
        )
        .await,
        400,
        "InvalidParameter",
        "numRetries",
    );
    assert_error(
        "bad topic name is escaped",
        call(&hq, &[("Action", "CreateTopic"), ("Name", "<script>")]).await,
        400,
        "InvalidParameter",
        "Topic Name",
    );
    assert_error(
        "empty batch",
        call(&hq, &[("Action", "PublishBatch"), ("TopicArn", orders)]).await,
        400,
        "EmptyBatchRequest",
        "entries",
    );
    assert_error(
        "duplicate batch ids",
        call(
            &hq,
            &[
                ("Action", "PublishBatch"),
                ("TopicArn", orders),
                ("PublishBatchRequestEntries.member.1.Id", "a"),
                ("PublishBatchRequestEntries.member.1.Message", "x"),
                ("PublishBatchRequestEntries.member.2.Id", "a"),
                ("PublishBatchRequestEntries.member.2.Message", "y"),
            ],
        )
        .await,
        400,
        "BatchEntryIdsNotDistinct",
        "same Id",
    );
    let big = "x".repeat(262_145);
    assert_error(
        "message too long",
        call(
            &hq,
            &[
                ("Action", "Publish"),
                ("TopicArn", orders),
                ("Message", &big),
            ],
        )
        .await,
        400,
        "InvalidParameter",
        "too long",
    );

    // A subject with a line break is refused, and the answer is well-formed XML.
    let (s, body) = call(
        &hq,
        &[
            ("Action", "Publish"),
            ("TopicArn", orders),
            ("Message", "x"),
            ("Subject", "a\nb"),
        ],
    )
    .await;
    assert_eq!(s, 400, "{body}");
    // A body over the limit gets an SNS error too, not a bare 413.
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = reqwest::Client::new()
        .post(&hq.sns)
        .form(&[("Action", "Publish"), ("Message", &huge)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>RequestEntityTooLarge</Code>"));

    // Subscribe answers "pending confirmation" unless ReturnSubscriptionArn=true.
    let (s, body) = call(
        &hq,
        &[
            ("Action", "Subscribe"),
            ("TopicArn", orders),
            ("Protocol", "http"),
            ("Endpoint", &sink.url("/order/")),
        ],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains("<SubscriptionArn>pending confirmation</SubscriptionArn>"),
        "{body}"
    );
    let (_, body) = call(
        &hq,
        &[
            ("Action", "Subscribe"),
            ("TopicArn", orders),
            ("Protocol", "http"),
            ("Endpoint", &sink.url("/order/")),
            ("ReturnSubscriptionArn", "true"),
        ],
    )
    .await;
    assert!(
        body.contains(&format!("<SubscriptionArn>{orders}:")),
        "{body}"
    );
    assert!(
        body.contains(r#"<SubscribeResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">"#),
        "{body}"
    );
    let (_, body) = call(&hq, &[("Action", "ListSubscriptions")]).await;
    assert!(
        body.contains("<SubscriptionArn>PendingConfirmation</SubscriptionArn>"),
        "{body}"
    );

    // The signing certificate is served.
    let cert = reqwest::get(format!("{}/sns/SimpleNotificationService-hq.pem", hq.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    hq.stop().await;
}
