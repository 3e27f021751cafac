//! The facilitator's lab controls (`/admin/api/chaos`) through HTTP.

use hq_tests::{json_of, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn error_share_fails_fulfillments_without_storing_and_switches_off_again() {
    let app = TestApp::spawn().await;
    let (_, key) = app.attendee_with_key("ann").await;

    let (status, chaos) = json_of(app.admin(Method::GET, "/admin/api/chaos", None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        chaos["receiving"],
        json!({"latencyMs": 0, "latencyRandom": false, "errorShare": 0.0, "errorStatus": 503})
    );
    assert_eq!(chaos["malformedShare"]["orderTopic"], 0.0);

    let body = json!({"receiving": {"errorShare": 1.0, "errorStatus": 500}});
    let (status, chaos) =
        json_of(app.admin(Method::PUT, "/admin/api/chaos", Some(body)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chaos["receiving"]["errorShare"], 1.0);
    for _ in 0..5 {
        let (status, err) = json_of(app.fulfill(&key, r#"{"iridium": 1}"#).await).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err["error"], "injected_fault");
    }
    // Keys are still checked first: a bad key is 403, not a lab fault.
    assert_eq!(
        app.fulfill("nope", r#"{"iridium": 1}"#).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.stored_fulfillments().await, 0);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"hq_fulfillments_total{outcome="injected_error"} 5"#),
        "{metrics}"
    );

    let body = json!({"receiving": {"errorShare": 0.0}});
    assert_eq!(
        app.admin(Method::PUT, "/admin/api/chaos", Some(body))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.fulfill(&key, r#"{"iridium": 1}"#).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.stored_fulfillments().await, 1);
}

#[tokio::test]
async fn latency_is_added_and_malformed_share_lands_on_the_topic_rates() {
    let app = TestApp::spawn().await;
    let (_, key) = app.attendee_with_key("ann").await;
    let body = json!({"receiving": {"latencyMs": 300}, "malformedShare": {"iridium": 0.25}});
    let (status, chaos) =
        json_of(app.admin(Method::PUT, "/admin/api/chaos", Some(body)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chaos["malformedShare"]["iridium"], 0.25);
    let started = std::time::Instant::now();
    assert_eq!(
        app.fulfill(&key, r#"{"iridium": 1}"#).await.status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let (_, topics) = json_of(app.client.get(app.url("/api/topics")).send().await.unwrap()).await;
    assert_eq!(topics[1]["malformedShare"], 0.25);
}

#[tokio::test]
async fn bad_lab_settings_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let before = json_of(app.admin(Method::GET, "/admin/api/chaos", None).await)
        .await
        .1;
    for bad in [
        json!({"receiving": {"errorShare": 2.0}}),
        json!({"receiving": {"errorStatus": 404}}),
        json!({"receiving": {"latencyMs": 999999}}),
        json!({"receiving": {"bogus": 1}}),
        json!({"malformedShare": {"gold": 0.5}}),
        json!({"malformedShare": {"iridium": -0.5}, "receiving": {"errorShare": 0.5}}),
        json!("nope"),
    ] {
        let res = app
            .admin(Method::PUT, "/admin/api/chaos", Some(bad.clone()))
            .await;
        assert!(res.status().is_client_error(), "{bad}: {}", res.status());
    }
    let res = app
        .client
        .put(app.url("/admin/api/chaos"))
        .json(&json!({"receiving": {"errorShare": 1.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let after = json_of(app.admin(Method::GET, "/admin/api/chaos", None).await)
        .await
        .1;
    assert_eq!(before, after);
}
