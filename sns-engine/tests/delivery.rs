//! Delivery as the attendees' programs see it: real HTTP on loopback, no mocks.

mod common;

use std::time::Duration;

use common::{confirm_via_api, token_of, Behaviour, BlackHole, Hq, Subscriber};
use hq_core::domain::{Endpoint, EndpointPolicy, SubscriptionStatus, TopicName};
use hq_core::ports::{OrderBus, SubscriptionFilter};

async fn endpoint(url: &str) -> Endpoint {
    Endpoint::resolve(url, EndpointPolicy::default())
        .await
        .unwrap()
}

async fn wait_confirmed(hq: &Hq, arn: &str) {
    for _ in 0..500 {
        let v = hq.engine.subscription(arn).await.unwrap().unwrap();
        if v.status == SubscriptionStatus::Confirmed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{arn} was never confirmed");
}

/// Contract section 1's subscriber gets the confirmation, confirms by GET on
/// SubscribeURL, then receives the orders with the exact bodies of section 2,
/// the SNS headers, envelope fields and UnsubscribeURL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attendee_subscriber_confirms_then_receives_exact_orders() {
    let dir = tempfile::tempdir().unwrap();
    let hq = Hq::start(dir.path(), |_| {}).await;
    let monolith = Subscriber::start(Behaviour::Attendee).await;
    let iridium = Subscriber::start(Behaviour::Attendee).await;
    let owner = hq_core::domain::Username::parse("alice").unwrap();

    let sub = hq
        .engine
        .subscribe(
            TopicName::Orders,
            &endpoint(&monolith.url("/order/")).await,
            Some(&owner),
        )
        .await
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::PendingConfirmation);
    let sub_i = hq
        .engine
        .subscribe(
            TopicName::Iridium,
            &endpoint(&iridium.url("/iridium/")).await,
            None,
        )
        .await
        .unwrap();

    monolith
        .wait_for(Duration::from_secs(10), "the confirmation", |r| {
            !r.is_empty()
        })
        .await;
    let conf = &monolith.received()[0];
    assert_eq!(conf.kind(), "SubscriptionConfirmation");
    let j = conf.json.as_ref().unwrap();
    let topic_arn = "arn:aws:sns:us-west-2:000000000000:orderTopic";
    assert_eq!(j["TopicArn"], topic_arn);
    let token = j["Token"].as_str().unwrap();
    assert_eq!(
        j["SubscribeURL"],
        format!(
            "{}?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}",
            hq.sns
        )
    );
    assert!(j["Message"].as_str().unwrap().contains("SubscribeURL"));
    assert_eq!(
        j["SigningCertURL"],
        format!("{}/sns/SimpleNotificationService-hq.pem", hq.base)
    );
    assert_eq!(j["SignatureVersion"], "1");
    assert_eq!(
        conf.headers["x-amz-sns-message-type"],
        "SubscriptionConfirmation"
    );
    assert!(conf.headers.get("x-amz-sns-subscription-arn").is_none());
    wait_confirmed(&hq, &sub.subscription_arn).await;
    wait_confirmed(&hq, &sub_i.subscription_arn).await;
    assert_eq!(monolith.verdicts.lock().clone(), vec!["confirm:true"]);

    for _ in 0..3 {
        hq.engine
            .publish(TopicName::Orders, TopicName::Orders.order_message())
            .await
            .unwrap();
        hq.engine
            .publish(TopicName::Iridium, TopicName::Iridium.order_message())
            .await
            .unwrap();
    }
    // magnesite has no subscriber here: publishing to it reaches nobody.
    hq.engine
        .publish(TopicName::Magnesite, TopicName::Magnesite.order_message())
        .await
        .unwrap();
    monolith
        .wait_for(Duration::from_secs(10), "3 orders", |r| r.len() == 4)
        .await;
    iridium
        .wait_for(Duration::from_secs(10), "3 orders", |r| r.len() == 4)
        .await;

    for n in monolith.of_kind("Notification") {
        assert_eq!(n.message(), r#"{"bundle": 1}"#);
        assert_eq!(n.path, "/order/");
        assert_eq!(n.headers["content-type"], "text/plain; charset=UTF-8");
        assert_eq!(
            n.headers["user-agent"],
            "Amazon Simple Notification Service Agent"
        );
        assert_eq!(n.headers["x-amz-sns-message-type"], "Notification");
        assert_eq!(n.headers["x-amz-sns-topic-arn"], topic_arn);
        assert_eq!(
            n.headers["x-amz-sns-subscription-arn"],
            sub.subscription_arn.as_str()
        );
        let j = n.json.as_ref().unwrap();
        assert_eq!(
            n.headers["x-amz-sns-message-id"],
            j["MessageId"].as_str().unwrap()
        );
        assert_eq!(
            j["UnsubscribeURL"],
            format!(
                "{}?Action=Unsubscribe&SubscriptionArn={}",
                hq.sns, sub.subscription_arn
            )
        );
        let ts = j["Timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        assert!(j.get("Subject").is_none());
    }
    assert_eq!(
        monolith.verdicts.lock().clone(),
        vec!["confirm:true", "bundle", "bundle", "bundle"]
    );
    assert_eq!(
        iridium.verdicts.lock().clone(),
        vec!["confirm:true", "iridium", "iridium", "iridium"]
    );

    // Counters as the portal shows them.
    let mine = hq
        .engine
        .list_subscriptions(SubscriptionFilter::Owner(&owner))
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    let v = &mine[0];
    assert_eq!(v.delivered, 3);
    assert_eq!(v.failed_attempts, 0);
    assert!(v.last_delivered_at.is_some());
    assert!(v.latency_p50_ms.is_some() && v.latency_p99_ms.is_some());
    let m = hq.engine.metrics();
    assert_eq!(m.publishes, 7);
    assert_eq!(m.deliveries_ok, 6);
    assert_eq!(m.subscriptions_confirmed, 2);

    // The UnsubscribeURL works as a plain GET.
    let unsub = monolith.of_kind("Notification")[0].json.as_ref().unwrap()["UnsubscribeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let r = reqwest::get(&unsub).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<UnsubscribeResponse"));
    assert!(hq
        .engine
        .subscription(&sub.subscription_arn)
        .await
        .unwrap()
        .is_none());
    hq.engine
        .publish(TopicName::Orders, TopicName::Orders.order_message())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(monolith.received().len(), 4);
    hq.stop().await;
}

/// Until confirmed, nothing but the confirmation reaches a subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_subscription_gets_only_the_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let hq = Hq::start(dir.path(), |_| {}).await;
    let lazy = Subscriber::start(Behaviour::NeverConfirm).await;
    let sub = hq
        .engine
        .subscribe(
            TopicName::Magnesite,
            &endpoint(&lazy.url("/magnesite/")).await,
            None,
        )
        .await
        .unwrap();
    lazy.wait_for(Duration::from_secs(10), "the confirmation", |r| {
        !r.is_empty()
    })
    .await;
    for _ in 0..5 {
        hq.engine
            .publish(TopicName::Magnesite, TopicName::Magnesite.order_message())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = lazy.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind(), "SubscriptionConfirmation");
    // Subscribing again re-sends the confirmation and answers the same subscription.
    let again = hq
        .engine
        .subscribe(
            TopicName::Magnesite,
            &endpoint(&lazy.url("/magnesite/")).await,
            None,
        )
        .await
        .unwrap();
    assert_eq!(again.subscription_arn, sub.subscription_arn);
    lazy.wait_for(Duration::from_secs(10), "a second confirmation", |r| {
        r.len() == 2
    })
    .await;
    assert_eq!(lazy.received()[1].kind(), "SubscriptionConfirmation");
    hq.stop().await;
}

/// A failing endpoint gets exactly numRetries + 1 attempts, spaced as the
/// policy says; the confirmation itself is re-sent under the same policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoint_gets_exactly_num_retries_plus_one_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let hq = Hq::start(dir.path(), |_| {}).await;
    let topic_arn = hq.engine.topic_arn(TopicName::Iridium);
    // 3 retries: one immediate, then backoff from 1 s to 2 s.
    let policy = r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":3,"numNoDelayRetries":1,"minDelayTarget":1,"maxDelayTarget":2,"backoffFunction":"linear"}}}"#;
    let r = reqwest::Client::new()
        .post(&hq.sns)
        .form(&[
            ("Action", "SetTopicAttributes"),
            ("TopicArn", topic_arn.as_str()),
            ("AttributeName", "DeliveryPolicy"),
            ("AttributeValue", policy),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let failing = Subscriber::start(Behaviour::Fail).await;
    let sub = hq
        .engine
        .subscribe(
            TopicName::Iridium,
            &endpoint(&failing.url("/iridium/")).await,
            None,
        )
        .await
        .unwrap();
    failing
        .wait_for(Duration::from_secs(10), "4 confirmation attempts", |r| {
            r.len() >= 4
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let confirmations = failing.of_kind("SubscriptionConfirmation");
    assert_eq!(
        confirmations.len(),
        4,
        "the confirmation is sent once and retried 3 times"
    );
    let token = token_of(&hq.store, &sub.subscription_arn).await;
    confirm_via_api(&hq, &topic_arn, &token).await;

    hq.engine
        .publish(TopicName::Iridium, TopicName::Iridium.order_message())
        .await
        .unwrap();
    failing
        .wait_for(Duration::from_secs(10), "4 notification attempts", |r| {
            r.len() >= 8
        })
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // long enough for a 5th to show
    let attempts = failing.of_kind("Notification");
    assert_eq!(attempts.len(), 4, "numRetries + 1 attempts");
    let ids: Vec<_> = attempts
        .iter()
        .map(|a| a.headers["x-amz-sns-message-id"].clone())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "retries carry the same message id"
    );
    let gaps: Vec<f64> = attempts
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    let expected = [0.0, 1.0, 2.0];
    for (gap, want) in gaps.iter().zip(expected) {
        assert!(
            *gap >= want - 0.05 && *gap <= want + 0.5,
            "gaps {gaps:?}, expected {expected:?}"
        );
    }
    let v = hq
        .engine
        .subscription(&sub.subscription_arn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.failed_attempts, 8);
    assert_eq!(v.abandoned, 2);
    assert_eq!(v.delivered, 0);
    assert_eq!(v.retries_pending, 0);
    assert_eq!(
        v.last_error.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );
    hq.stop().await;
}

/// A subscriber that accepts connections and never answers does not delay the
/// others; its backlog is bounded and its drops are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_subscriber_does_not_delay_others() {
    let dir = tempfile::tempdir().unwrap();
    let hq = Hq::start(dir.path(), |c| {
        c.queue_capacity = 10;
        c.max_in_flight_per_subscription = 2;
        c.shutdown_grace = Duration::from_secs(1);
    })
    .await;
    let topic_arn = hq.engine.topic_arn(TopicName::Orders);
    let hole = BlackHole::start().await;
    let dead = hq
        .engine
        .subscribe(
            TopicName::Orders,
            &endpoint(&format!("{}/order/", hole.base)).await,
            None,
        )
        .await
        .unwrap();
    confirm_via_api(
        &hq,
        &topic_arn,
        &token_of(&hq.store, &dead.subscription_arn).await,
    )
    .await;
    let mut healthy = Vec::new();
    for _ in 0..3 {
        let s = Subscriber::start(Behaviour::Attendee).await;
        let v = hq
            .engine
            .subscribe(TopicName::Orders, &endpoint(&s.url("/order/")).await, None)
            .await
            .unwrap();
        wait_confirmed(&hq, &v.subscription_arn).await;
        healthy.push(s);
    }
    let started = std::time::Instant::now();
    for _ in 0..30 {
        hq.engine
            .publish(TopicName::Orders, TopicName::Orders.order_message())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in &healthy {
        s.wait_for(
            Duration::from_secs(3),
            "30 orders despite the black hole",
            |r| r.len() == 31,
        )
        .await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    let v = hq
        .engine
        .subscription(&dead.subscription_arn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.delivered, 0);
    assert_eq!(v.queued, 10, "queue capped");
    // Of its 2 slots, one still holds the unanswered confirmation, one the
    // first order; 10 more are queued; the rest were dropped and counted.
    assert_eq!(v.dropped, 30 - 10 - 1);
    assert_eq!(hq.engine.metrics().deliveries_dropped, 19);
    for s in &healthy {
        assert!(s.verdicts.lock().iter().skip(1).all(|v| v == "bundle"));
    }
    let t = std::time::Instant::now();
    hq.stop().await;
    assert!(t.elapsed() < Duration::from_secs(3), "shutdown is bounded");
}

/// Pending and confirmed subscriptions, their tokens and topic settings
/// survive a restart on the same data dir (and the signing certificate too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let attendee = Subscriber::start(Behaviour::Attendee).await;
    let lazy = Subscriber::start(Behaviour::NeverConfirm).await;
    let (confirmed_arn, pending_arn, cert) = {
        let hq = Hq::start(dir.path(), |_| {}).await;
        let a = hq
            .engine
            .subscribe(
                TopicName::Orders,
                &endpoint(&attendee.url("/order/")).await,
                None,
            )
            .await
            .unwrap();
        let b = hq
            .engine
            .subscribe(
                TopicName::Orders,
                &endpoint(&lazy.url("/order/")).await,
                None,
            )
            .await
            .unwrap();
        wait_confirmed(&hq, &a.subscription_arn).await;
        lazy.wait_for(Duration::from_secs(10), "the confirmation", |r| {
            r.len() == 1
        })
        .await;
        let cert = hq.engine.certificate_pem().to_string();
        hq.stop().await;
        (a.subscription_arn, b.subscription_arn, cert)
    };
    let hq = Hq::start(dir.path(), |_| {}).await;
    assert_eq!(hq.engine.certificate_pem(), cert);
    let all = hq
        .engine
        .list_subscriptions(SubscriptionFilter::Topic(TopicName::Orders))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let find = |arn: &str| {
        all.iter()
            .find(|v| v.subscription_arn == arn)
            .unwrap()
            .status
    };
    assert_eq!(find(&confirmed_arn), SubscriptionStatus::Confirmed);
    assert_eq!(find(&pending_arn), SubscriptionStatus::PendingConfirmation);
    hq.engine
        .publish(TopicName::Orders, TopicName::Orders.order_message())
        .await
        .unwrap();
    attendee
        .wait_for(Duration::from_secs(10), "an order after the restart", |r| {
            r.len() == 2
        })
        .await;
    assert_eq!(attendee.received()[1].message(), r#"{"bundle": 1}"#);
    // The token sent before the restart still confirms.
    let token = lazy.received()[0].json.as_ref().unwrap()["Token"]
        .as_str()
        .unwrap()
        .to_string();
    confirm_via_api(&hq, &hq.engine.topic_arn(TopicName::Orders), &token).await;
    hq.engine
        .publish(TopicName::Orders, TopicName::Orders.order_message())
        .await
        .unwrap();
    lazy.wait_for(Duration::from_secs(10), "an order once confirmed", |r| {
        r.len() == 2
    })
    .await;
    hq.stop().await;
}

/// Confirmation and notifications (signature versions 1 and 2) verify with
/// Python's `cryptography` against the certificate fetched from SigningCertURL;
/// a tampered message does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_with_python_cryptography() {
    let dir = tempfile::tempdir().unwrap();
    let hq = Hq::start(dir.path(), |_| {}).await;
    let s = Subscriber::start(Behaviour::Attendee).await;
    let v = hq
        .engine
        .subscribe(
            TopicName::Iridium,
            &endpoint(&s.url("/iridium/")).await,
            None,
        )
        .await
        .unwrap();
    wait_confirmed(&hq, &v.subscription_arn).await;
    hq.engine
        .publish(TopicName::Iridium, TopicName::Iridium.order_message())
        .await
        .unwrap();
    s.wait_for(Duration::from_secs(10), "a v1 notification", |r| {
        r.len() == 2
    })
    .await;
    let topic_arn = hq.engine.topic_arn(TopicName::Iridium);
    let r = reqwest::Client::new()
        .post(&hq.sns)
        .form(&[
            ("Action", "SetTopicAttributes"),
            ("TopicArn", topic_arn.as_str()),
            ("AttributeName", "SignatureVersion"),
            ("AttributeValue", "2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::Client::new()
        .post(&hq.sns)
        .form(&[
            ("Action", "Publish"),
            ("TopicArn", topic_arn.as_str()),
            ("Message", "ünïcode & <xml> \"quotes\"\nline"),
            ("Subject", "Order"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.wait_for(Duration::from_secs(10), "a v2 notification", |r| {
        r.len() == 3
    })
    .await;
    let got = s.received();
    assert_eq!(got[2].json.as_ref().unwrap()["SignatureVersion"], "2");
    assert_eq!(got[2].json.as_ref().unwrap()["Subject"], "Order");
    let bodies: Vec<String> = got.iter().map(|r| r.raw.clone()).collect();
    let file = dir.path().join("messages.json");
    std::fs::write(&file, serde_json::to_string(&bodies).unwrap()).unwrap();
    let out = common::run_python("verify_signatures.py", &[file.to_str().unwrap()], &[]).await;
    assert!(out.contains("verified 3 messages"), "{out}");
    hq.stop().await;
}
