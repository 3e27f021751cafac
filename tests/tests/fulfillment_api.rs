//! Contract section 5 through HTTP: what the attendees' fulfiller meets.

use hq_core::clock::{now_millis, DAY_MS};
use hq_core::domain::{KeyRecord, Username};
use hq_tests::bad_bodies::BAD_BODIES;
use hq_tests::{json_of, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_fulfillers_exact_request_is_accepted_and_stored_durably_with_its_provenance() {
    let app = TestApp::spawn().await;
    let (_, key) = app.attendee_with_key("ann").await;

    let res = app
        .client
        .post(app.url("/receiving/"))
        .header("x-api-key", &key)
        .header(
            "X-Amzn-Trace-Id",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
        )
        .body(r#"{"iridium": 1, "magnesite": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let request_id = res.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = res.text().await.unwrap();
    assert!(
        text.starts_with(r#"{"result":"success","fulfillmentId":""#),
        "{text}"
    );
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let id: uuid::Uuid = body["fulfillmentId"].as_str().unwrap().parse().unwrap();

    let stored = app.hq.ledger.get(id).await.unwrap().expect("record stored");
    assert_eq!(stored.username.as_str(), "ann");
    assert_eq!((stored.amounts.iridium, stored.amounts.magnesite), (1, 1));
    assert_eq!(stored.request_id, request_id);
    assert_eq!(
        stored.trace_id.as_deref(),
        Some("Root=1-5759e988-bd862e3fe1be46a994272793")
    );
    assert!(stored.key_id.0.starts_with("key-"));
    assert!((now_millis() - stored.at).abs() < 60_000);
    // The record never holds the key itself.
    assert!(!serde_json::to_string(&stored).unwrap().contains(&key));
}

#[tokio::test]
async fn post_and_put_with_and_without_slash_and_any_content_type() {
    let app = TestApp::spawn().await;
    let (_, key) = app.attendee_with_key("ann").await;
    let mut n = 0;
    for path in ["/receiving/", "/receiving"] {
        for method in [Method::POST, Method::PUT] {
            for ct in [
                None,
                Some("text/plain"),
                Some("application/json"),
                Some("application/x-www-form-urlencoded"),
            ] {
                let mut req = app
                    .client
                    .request(method.clone(), app.url(path))
                    .header("x-api-key", &key);
                if let Some(ct) = ct {
                    req = req.header("content-type", ct);
                }
                let res = req
                    .body(r#"{"iridium": 1, "magnesite": 0}"#)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::OK, "{method} {path} {ct:?}");
                n += 1;
            }
        }
    }
    assert_eq!(app.stored_fulfillments().await, n);
    let board = app.leaderboard().await;
    assert_eq!(board["entries"][0]["total"], n);
    assert_eq!(board["entries"][0]["iridium"], n);
    assert_eq!(board["entries"][0]["magnesite"], 0);
}

#[tokio::test]
async fn every_malformed_body_gets_a_400_naming_the_problem_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (_, key) = app.attendee_with_key("ann").await;
    for &(body, code) in BAD_BODIES {
        let (status, err) = json_of(app.fulfill(&key, body).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(err["error"], code, "{body}: {err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    assert_eq!(app.stored_fulfillments().await, 0);
    assert_eq!(app.leaderboard().await["entries"][0]["total"], 0);
}

#[tokio::test]
async fn keys_that_are_missing_unknown_rotated_revoked_or_expired_get_api_gateways_403() {
    let app = TestApp::spawn().await;
    let (token, key) = app.attendee_with_key("ann").await;
    let forbidden = |res: reqwest::Response| async move {
        let status = res.status();
        assert_eq!(res.headers()["x-amzn-errortype"], "ForbiddenException");
        (status, res.text().await.unwrap())
    };
    let body = r#"{"iridium": 1}"#;

    let res = app
        .client
        .post(app.url("/receiving/"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        forbidden(res).await,
        (StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#.into())
    );
    for bad in ["", "x", &"k".repeat(40), &"k".repeat(5000), &key[..39]] {
        assert_eq!(
            forbidden(app.fulfill(bad, body).await).await.0,
            StatusCode::FORBIDDEN,
            "{bad}"
        );
    }

    // Rotation: the old key stops at once, the new one works.
    assert_eq!(app.fulfill(&key, body).await.status(), StatusCode::OK);
    let (status, rotated) = json_of(app.post_auth("/api/key/rotate", &token).await).await;
    assert_eq!(status, StatusCode::OK);
    let new_key = rotated["apiKey"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(
        forbidden(app.fulfill(&key, body).await).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.fulfill(&new_key, body).await.status(), StatusCode::OK);

    // Revocation by the facilitator.
    let res = app
        .admin(Method::POST, "/admin/api/users/ann/revoke-key", None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        forbidden(app.fulfill(&new_key, body).await).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, shown) = json_of(app.get_auth("/api/key", &token).await).await;
    assert_eq!(shown["status"], "revoked");

    // Expiry: a key past its 30 days.
    let (_, bob_key) = app.attendee_with_key("bob").await;
    assert_eq!(app.fulfill(&bob_key, body).await.status(), StatusCode::OK);
    let bob = Username::parse("bob").unwrap();
    let current = app.hq.accounts.key(&bob).await.unwrap();
    let expired = KeyRecord::issue(now_millis() - 31 * DAY_MS);
    app.hq
        .accounts
        .store()
        .set_key(&bob, Some(&current.id), &expired)
        .await
        .unwrap();
    app.hq.keys.invalidate(&bob_key);
    assert_eq!(
        forbidden(app.fulfill(expired.value.expose(), body).await)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    assert_eq!(app.stored_fulfillments().await, 3);
}

#[tokio::test]
async fn bodies_over_64_kib_get_413_and_are_not_stored() {
    let app = TestApp::spawn().await;
    let (_, key) = app.attendee_with_key("ann").await;
    let json = r#"{"iridium": 1}"#;
    let exactly = format!("{json}{}", " ".repeat(64 * 1024 - json.len()));
    assert_eq!(app.fulfill(&key, &exactly).await.status(), StatusCode::OK);
    let over = format!("{json}{}", " ".repeat(64 * 1024 - json.len() + 1));
    let (status, err) = json_of(app.fulfill(&key, &over).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err["error"], "payload_too_large");
    let huge = "x".repeat(5 * 1024 * 1024);
    assert_eq!(
        app.fulfill(&key, &huge).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(app.stored_fulfillments().await, 1);
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let app = TestApp::spawn().await;
    let (_, key) = app.attendee_with_key("ann").await;
    for method in [Method::GET, Method::DELETE, Method::PATCH, Method::OPTIONS] {
        for path in ["/receiving/", "/receiving"] {
            let res = app
                .client
                .request(method.clone(), app.url(path))
                .header("x-api-key", &key)
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(res.headers()["allow"], "POST, PUT");
            let (_, err) = json_of(res).await;
            assert_eq!(err["error"], "method_not_allowed");
        }
    }
    assert_eq!(app.stored_fulfillments().await, 0);
}

#[tokio::test]
async fn the_usage_plan_throttles_each_key_with_rate_and_burst() {
    let app = TestApp::spawn_with(&["--throttle-rate", "0.5", "--throttle-burst", "3"]).await;
    let (_, ann) = app.attendee_with_key("ann").await;
    let (_, bob) = app.attendee_with_key("bob").await;
    for _ in 0..3 {
        assert_eq!(
            app.fulfill(&ann, r#"{"iridium":1}"#).await.status(),
            StatusCode::OK
        );
    }
    let res = app.fulfill(&ann, r#"{"iridium":1}"#).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"Too Many Requests"}"#
    );
    // Another key has its own bucket.
    assert_eq!(
        app.fulfill(&bob, r#"{"iridium":1}"#).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.stored_fulfillments().await, 4);
}

#[tokio::test]
async fn the_daily_quota_answers_limit_exceeded() {
    let app = TestApp::spawn_with(&["--quota-per-day", "2"]).await;
    let (_, key) = app.attendee_with_key("ann").await;
    assert_eq!(
        app.fulfill(&key, r#"{"iridium":1}"#).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.fulfill(&key, r#"{"iridium":1}"#).await.status(),
        StatusCode::OK
    );
    let res = app.fulfill(&key, r#"{"iridium":1}"#).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.text().await.unwrap(), r#"{"message":"Limit Exceeded"}"#);
    assert_eq!(app.stored_fulfillments().await, 2);
}

#[tokio::test]
async fn the_leaderboard_counts_at_once_ranks_and_never_shows_keys() {
    let app = TestApp::spawn().await;
    let (_, ann) = app.attendee_with_key("ann").await;
    let (_, bob) = app.attendee_with_key("bob").await;
    let _ = app.attendee("cat").await;
    for body in [r#"{"iridium": 1, "magnesite": 1}"#, r#"{"iridium": "2"}"#] {
        assert_eq!(app.fulfill(&bob, body).await.status(), StatusCode::OK);
    }
    assert_eq!(
        app.fulfill(&ann, r#"{"magnesite": 5}"#).await.status(),
        StatusCode::OK
    );

    let res = app
        .client
        .get(app.url("/api/leaderboard"))
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert!(
        !text.contains(&ann) && !text.contains(&bob),
        "keys leak into the leaderboard"
    );
    let board: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(board["generatedAt"].as_str().unwrap().ends_with('Z'));
    let entries = board["entries"].as_array().unwrap();
    let names: Vec<_> = entries
        .iter()
        .map(|e| e["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob", "ann", "cat"]);
    assert_eq!(
        (
            entries[0]["total"].as_u64(),
            entries[0]["iridium"].as_u64(),
            entries[0]["magnesite"].as_u64()
        ),
        (Some(2), Some(3), Some(1))
    );
    let per_minute = entries[0]["perMinute"].as_array().unwrap();
    assert_eq!(per_minute.len(), 60);
    assert_eq!(
        per_minute[59].as_u64().unwrap() + per_minute[58].as_u64().unwrap(),
        2
    );
    assert!(entries[0]["lastFulfilledAt"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert!(entries[2]["lastFulfilledAt"].is_null());
}

#[tokio::test]
async fn metrics_count_requests_and_fulfillment_outcomes() {
    let app = TestApp::spawn().await;
    let (_, key) = app.attendee_with_key("ann").await;
    app.fulfill(&key, r#"{"iridium":1}"#).await;
    app.fulfill(&key, r#"{"iridium":1}"#).await;
    app.fulfill(&key, "nope").await;
    app.fulfill("bad", r#"{"iridium":1}"#).await;
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(
        text.contains(r#"hq_fulfillments_total{outcome="accepted"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"hq_fulfillments_total{outcome="invalid"} 1"#));
    assert!(text.contains(r#"hq_fulfillments_total{outcome="forbidden"} 1"#));
    assert!(text
        .contains(r#"hq_http_requests_total{route="/receiving/",method="POST",status="200"} 2"#));
    assert!(text.contains(r#"hq_http_request_duration_seconds_bucket"#));
    assert!(!text.contains(&key));

    let (status, health) = json_of(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health, json!({"status": "ok"}));
}
