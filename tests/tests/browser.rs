//! The pages in a real headless Chromium: the attendee's whole flow, the
//! facilitator's console, and XSS attempts. Screenshots of the three pages go to
//! `target/screenshots/`.

use std::sync::{Arc, Mutex};

use hq_tests::browser::Browser;
use hq_tests::{eventually, json_of, TestApp, ADMIN_TOKEN, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A receiver like the attendees' monolith: confirms its subscription, and for
/// each order fulfills with the key it was given, without Content-Type.
async fn fulfilling_receiver(
    hq: String,
    key: Arc<Mutex<String>>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let orders = Arc::new(Mutex::new(Vec::new()));
    let seen = orders.clone();
    let client = reqwest::Client::new();
    let handler = move |body: String| {
        let (seen, client, key, hq) = (seen.clone(), client.clone(), key.clone(), hq.clone());
        async move {
            let Ok(v) = serde_json::from_str::<Value>(&body) else {
                return "ok";
            };
            if let Some(url) = v["SubscribeURL"].as_str() {
                let _ = client.get(url).send().await;
            } else if let Some(m) = v["Message"].as_str() {
                seen.lock().unwrap().push(m.to_owned());
                if m.contains("bundle") {
                    let key = key.lock().unwrap().clone();
                    let _ = client
                        .post(format!("{hq}/receiving/"))
                        .header("x-api-key", key)
                        .body(r#"{"iridium": 1, "magnesite": 1}"#)
                        .send()
                        .await;
                }
            }
            "ok"
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/order/", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/order/", axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, orders)
}

async fn pause_all(app: &TestApp) {
    for t in ["orders", "iridium", "magnesite"] {
        let res = app
            .admin(
                Method::PUT,
                &format!("/admin/api/rates/{t}"),
                Some(json!({"paused": true})),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attendee_signs_up_subscribes_gets_an_order_fulfills_and_shows_on_the_leaderboard() {
    let app = TestApp::spawn().await;
    pause_all(&app).await;
    let b = Browser::start().await;
    b.goto(&app.url("/")).await;
    b.type_into("#username", "ann").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#signup").await;
    let key = b.wait_text("#api-key", 15, |t| t.len() == 40).await;
    assert_eq!(key.len(), 40, "the key is shown");
    assert_eq!(b.text("#days-left").await, "30");
    let share = b
        .wait_text("#share", 5, |t| t.contains("AWS_ENDPOINT_URL_SNS"))
        .await;
    assert!(share.contains(&app.url("/receiving/")), "{share}");
    assert!(
        share.contains(&app.url("/sns"))
            && share.contains("arn:aws:sns:us-west-2:000000000000:orderTopic")
    );

    let (endpoint, orders) =
        fulfilling_receiver(app.base.clone(), Arc::new(Mutex::new(key.clone()))).await;
    b.type_into("#endpoint", &endpoint).await;
    b.click("button[data-topic=orders]").await;
    let status = b
        .wait_text("#subs tr td:nth-child(3)", 15, |t| t == "Confirmed")
        .await;
    assert_eq!(
        status, "Confirmed",
        "the status turns confirmed without a reload"
    );
    assert!(b.text("#sub-msg").await.contains("Subscribed"));
    b.screenshot("portal").await;

    b.goto(&app.url("/leaderboard")).await;
    let before = b
        .wait_text("tr[data-user=ann] td:nth-child(3)", 10, |t| t == "0")
        .await;
    assert_eq!(before, "0");
    let res = app
        .admin(
            Method::PUT,
            "/admin/api/rates/orders",
            Some(json!({"paused": false, "ratePerMinute": 120})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let after = b
        .wait_text("tr[data-user=ann] td:nth-child(3)", 20, |t| {
            t.parse::<u32>().unwrap_or(0) >= 1
        })
        .await;
    assert!(
        after.parse::<u32>().unwrap_or(0) >= 1,
        "the leaderboard updated without a reload: {after}"
    );
    assert_eq!(orders.lock().unwrap()[0], r#"{"bundle": 1}"#);
    pause_all(&app).await;
    b.screenshot("leaderboard").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facilitator_sets_a_rate_surges_revokes_a_key_and_switches_errors_on_and_off() {
    let app = TestApp::spawn().await;
    pause_all(&app).await;
    let (_, ann_key) = app.attendee_with_key("ann").await;
    let (_, bob_key) = app.attendee_with_key("bob").await;
    let b = Browser::start().await;
    b.goto(&app.url("/admin")).await;
    b.type_into("#token", "wrong").await;
    b.click("#token-form button[type=submit]").await;
    assert!(b
        .wait_text("#signin-msg", 5, |t| !t.is_empty())
        .await
        .contains("not the admin token"));
    b.type_into("#token", ADMIN_TOKEN).await;
    b.click("#token-form button[type=submit]").await;
    b.wait_text("#topics tr[data-topic=iridium] td", 10, |t| t == "iridium")
        .await;
    let html = b.eval("return document.documentElement.outerHTML").await;
    assert!(
        !html.as_str().unwrap().contains(ADMIN_TOKEN),
        "the token is not written into the page"
    );
    let stored = b.eval("return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie").await;
    assert!(!stored.as_str().unwrap().contains(ADMIN_TOKEN));

    // A rate.
    b.type_into(
        "#topics tr[data-topic=iridium] input[aria-label^='Orders per minute']",
        "30",
    )
    .await;
    b.click("#topics tr[data-topic=iridium] button").await;
    let set = eventually(10, || async {
        let (_, r) = json_of(
            app.admin(Method::GET, "/admin/api/rates/iridium", None)
                .await,
        )
        .await;
        r["ratePerMinute"] == 30.0
    })
    .await;
    assert!(set, "the rate was saved");
    pause_all(&app).await;

    // A surge.
    b.click("#surge-topic").await;
    b.client
        .find(fantoccini::Locator::Css("#surge-topic"))
        .await
        .unwrap()
        .select_by_value("magnesite")
        .await
        .unwrap();
    b.type_into("#surge-count", "3").await;
    b.type_into("#surge-seconds", "1").await;
    b.click("#surge-form button[type=submit]").await;
    assert_eq!(
        b.wait_text("#topics-msg", 5, |t| t.contains("Surge")).await,
        "Surge started."
    );
    let surged = eventually(10, || async {
        let (_, s) = json_of(app.admin(Method::GET, "/admin/api/stats", None).await).await;
        s["publishedByTopic"]["magnesite"].as_u64().unwrap_or(0) >= 3
    })
    .await;
    assert!(surged, "the surge published its orders");

    // Revoke a key.
    b.click("#users tr[data-user=ann] button").await;
    b.wait_text("#users-msg", 5, |t| t.contains("Revoked"))
        .await;
    assert_eq!(
        app.fulfill(&ann_key, r#"{"iridium": 1}"#).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.fulfill(&bob_key, r#"{"iridium": 1}"#).await.status(),
        StatusCode::OK
    );

    // Errors on ...
    b.type_into("#lab-share", "1").await;
    b.click("#lab-form button[type=submit]").await;
    assert!(b
        .wait_text("#lab-state", 5, |t| t.starts_with("ACTIVE"))
        .await
        .contains("100%"));
    assert_eq!(
        app.fulfill(&bob_key, r#"{"iridium": 1}"#).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    b.screenshot("admin").await;
    // ... and off.
    b.click("#lab-off").await;
    assert!(b
        .wait_text("#lab-state", 5, |t| t.starts_with("Off"))
        .await
        .starts_with("Off"));
    assert_eq!(
        app.fulfill(&bob_key, r#"{"iridium": 1}"#).await.status(),
        StatusCode::OK
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xss_through_a_username_and_an_endpoint_url_renders_inert() {
    let app = TestApp::spawn().await;
    pause_all(&app).await;
    let b = Browser::start().await;
    b.goto(&app.url("/")).await;
    let payload = "<img src=x onerror=\"window.__xss=1\">";
    b.type_into("#username", payload).await;
    b.type_into("#password", PASSWORD).await;
    b.click("#signup").await;
    let msg = b.wait_text("#auth-msg", 5, |t| !t.is_empty()).await;
    assert!(msg.contains("username"), "{msg}");

    b.type_into("#username", "eve").await;
    b.click("#signup").await;
    b.wait_text("#api-key", 15, |t| t.len() == 40).await;
    let hostile = "http://127.0.0.1:9/x?<img src=x onerror=\"window.__xss=1\">";
    b.type_into("#endpoint", hostile).await;
    b.click("button[data-topic=iridium]").await;
    b.wait_text("#subs", 10, |t| t.contains("127.0.0.1:9"))
        .await;
    let checks = "return [typeof window.__xss, document.querySelectorAll('img').length]";
    assert_eq!(b.eval(checks).await, json!(["undefined", 0]));

    b.goto(&app.url("/admin")).await;
    b.type_into("#token", ADMIN_TOKEN).await;
    b.click("#token-form button[type=submit]").await;
    b.wait_text("#subs", 10, |t| t.contains("127.0.0.1:9"))
        .await;
    assert_eq!(b.eval(checks).await, json!(["undefined", 0]));
    b.close().await;
}
