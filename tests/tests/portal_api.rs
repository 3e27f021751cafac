//! The portal's JSON API beyond accounts: info, subscriptions, CSRF, pages,
//! workshop assets, and the facilitator's stats, surge and reset.

use hq_tests::{eventually, json_of, Receiver, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn cookie_authenticated_changes_need_the_csrf_header() {
    let app = TestApp::spawn().await;
    app.signup("ann", hq_tests::PASSWORD).await;
    let res = app
        .post_json(
            "/api/login",
            json!({"username": "ann", "password": hq_tests::PASSWORD}),
        )
        .await;
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (_, before) = json_of(
        app.client
            .get(app.url("/api/key"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;

    let res = app
        .client
        .post(app.url("/api/key/rotate"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let (status, err) = json_of(res).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf"))
    );
    let (_, same) = json_of(
        app.client
            .get(app.url("/api/key"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        same["apiKey"], before["apiKey"],
        "a refused rotation changes nothing"
    );
    let res = app
        .client
        .post(app.url("/api/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = app
        .client
        .post(app.url("/api/key/rotate"))
        .header("cookie", &cookie)
        .header("x-hq-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn pages_are_embedded_with_a_strict_csp_and_info_tells_what_to_paste() {
    let app = TestApp::spawn().await;
    for page in ["/", "/leaderboard", "/admin"] {
        let res = app.client.get(app.url(page)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{page}");
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-eval"));
        let html = res.text().await.unwrap();
        assert!(
            !html.contains("http://") || html.contains("http://host"),
            "{page} must not load from elsewhere"
        );
        assert!(!html.contains("<script>"), "{page} has no inline script");
    }
    for file in ["hq.css", "hq.js", "portal.js", "leaderboard.js", "admin.js"] {
        let res = app
            .client
            .get(app.url(&format!("/static/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{file}");
    }
    assert_eq!(
        app.client
            .get(app.url("/static/nope.js"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let js = app
        .client
        .get(app.url("/static/portal.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!js.contains("innerHTML") && !js.contains("localStorage"));

    let (_, info) = json_of(app.client.get(app.url("/api/info")).send().await.unwrap()).await;
    assert_eq!(info["fulfillmentUrl"], format!("{}/receiving/", app.base));
    assert_eq!(info["snsEndpoint"], format!("{}/sns", app.base));
    assert_eq!(
        info["topics"][0]["arn"],
        "arn:aws:sns:us-west-2:000000000000:orderTopic"
    );
    assert!(info["assetsUrl"].is_null());
}

#[tokio::test]
async fn workshop_assets_are_served_read_only_and_nothing_outside_the_folder() {
    let outside = tempfile::tempdir().unwrap();
    let root = outside.path().join("assets");
    std::fs::create_dir_all(root.join("code/monolith")).unwrap();
    std::fs::write(root.join("code/monolith/monolith.py"), "print('orders')\n").unwrap();
    std::fs::write(root.join("code/monolith/Dockerfile"), "FROM python:3\n").unwrap();
    std::fs::write(root.join("<b>x.txt"), "angle").unwrap();
    std::fs::write(root.join("task-definition.json"), "{}").unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("up")).unwrap();
    let app = TestApp::spawn_with(&["--assets-dir", root.to_str().unwrap()]).await;

    let res = app
        .client
        .get(app.url("/assets/code/monolith/monolith.py"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/"));
    assert_eq!(res.text().await.unwrap(), "print('orders')\n");
    let res = app
        .client
        .get(app.url("/assets/task-definition.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");
    let listing = app
        .client
        .get(app.url("/assets/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains("code/")
            && listing.contains("&lt;b&gt;x.txt")
            && !listing.contains("<b>x")
    );
    let res = app
        .client
        .get(app.url("/assets/code"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "redirected to the listing");
    assert!(res.text().await.unwrap().contains("monolith/"));
    for bad in [
        "/assets/%2e%2e/secret.txt",
        "/assets/code/%2e%2e/%2e%2e/secret.txt",
        "/assets/escape.txt",
        "/assets/up/secret.txt",
        "/assets/..%2fsecret.txt",
        "/assets/%2fetc%2fpasswd",
    ] {
        let res = app.client.get(app.url(bad)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{bad}");
        assert!(!res.text().await.unwrap().contains("top secret"));
    }
    let res = app
        .client
        .put(app.url("/assets/code/monolith/monolith.py"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let (_, info) = json_of(app.client.get(app.url("/api/info")).send().await.unwrap()).await;
    assert_eq!(info["assetsUrl"], format!("{}/assets/", app.base));
}

#[tokio::test]
async fn attendees_subscribe_their_endpoint_which_confirms_and_only_they_can_remove_it() {
    let app = TestApp::spawn().await;
    let ann = app.attendee("ann").await;
    let bob = app.attendee("bob").await;
    let receiver = Receiver::start("/order/").await;

    let res = app
        .client
        .post(app.url("/api/subscriptions"))
        .bearer_auth(&ann)
        .json(&json!({"topic": "orders", "endpoint": receiver.url}))
        .send()
        .await
        .unwrap();
    let (status, sub) = json_of(res).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(sub["topic"], "orderTopic");
    assert_eq!(
        sub["topicArn"],
        "arn:aws:sns:us-west-2:000000000000:orderTopic"
    );
    assert_eq!(sub["endpoint"], receiver.url);
    for field in [
        "id",
        "subscriptionArn",
        "status",
        "delivered",
        "failedAttempts",
        "lastError",
        "lastDeliveredAt",
    ] {
        assert!(sub.get(field).is_some(), "{field} in {sub}");
    }
    let id = sub["id"].as_str().unwrap().to_owned();
    let confirmed = eventually(10, || async {
        let (_, subs) = json_of(app.get_auth("/api/subscriptions", &ann).await).await;
        subs[0]["status"] == "Confirmed"
    })
    .await;
    assert!(confirmed, "the receiver confirmed through the SubscribeURL");
    let (_, bobs) = json_of(app.get_auth("/api/subscriptions", &bob).await).await;
    assert_eq!(bobs, json!([]));

    let res = app
        .client
        .delete(app.url(&format!("/api/subscriptions/{id}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "bob cannot remove ann's subscription"
    );
    let (_, all) = json_of(
        app.admin(Method::GET, "/admin/api/subscriptions", None)
            .await,
    )
    .await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(all[0]["owner"], "ann");

    let res = app
        .client
        .delete(app.url(&format!("/api/subscriptions/{id}")))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (_, subs) = json_of(app.get_auth("/api/subscriptions", &ann).await).await;
    assert_eq!(subs, json!([]));
}

#[tokio::test]
async fn hostile_endpoints_and_topics_are_refused_with_the_reason_and_nothing_is_subscribed() {
    let app = TestApp::spawn_with(&["--deny-private-endpoints"]).await;
    let ann = app.attendee("ann").await;
    let cases = [
        ("orders", "http://169.254.169.254/latest/meta-data/"),
        ("orders", "http://[fe80::1]/x"),
        ("orders", "http://224.0.0.1/x"),
        ("orders", "http://0.0.0.0:5000/order/"),
        ("orders", "http://255.255.255.255/"),
        ("orders", "http://user:pw@example.com/"),
        ("orders", "ftp://example.com/"),
        ("orders", "javascript:alert(1)"),
        ("orders", "not a url"),
        ("orders", "http://127.0.0.1:5000/order/"),
        ("orders", "http://10.0.0.8:5000/order/"),
        ("gold", "http://127.0.0.1:5000/order/"),
    ];
    for (topic, endpoint) in cases {
        let res = app
            .client
            .post(app.url("/api/subscriptions"))
            .bearer_auth(&ann)
            .json(&json!({"topic": topic, "endpoint": endpoint}))
            .send()
            .await
            .unwrap();
        let (status, err) = json_of(res).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{endpoint}: {status}"
        );
        assert!(!err["message"].as_str().unwrap().is_empty(), "{endpoint}");
    }
    let (_, all) = json_of(
        app.admin(Method::GET, "/admin/api/subscriptions", None)
            .await,
    )
    .await;
    assert_eq!(all, json!([]));
    let res = app
        .client
        .post(app.url("/api/subscriptions"))
        .json(&json!({"topic": "orders", "endpoint": "http://x/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_facilitator_sees_totals_surges_and_resets_behind_a_typed_confirmation() {
    let app = TestApp::spawn().await;
    let (_, key) = app.attendee_with_key("ann").await;
    assert_eq!(
        app.fulfill(&key, r#"{"iridium": 2}"#).await.status(),
        StatusCode::OK
    );
    let (status, stats) = json_of(app.admin(Method::GET, "/admin/api/stats", None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (stats["attendees"].as_u64(), stats["fulfillments"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(stats["fulfillmentsLastMinute"], 1);

    for bad in [
        json!({"topic": "gold", "count": 5, "seconds": 5}),
        json!({"topic": "orders", "count": 0, "seconds": 5}),
        json!({"topic": "orders", "count": 5}),
    ] {
        let res = app
            .admin(Method::POST, "/admin/api/surge", Some(bad.clone()))
            .await;
        assert!(res.status().is_client_error(), "{bad}");
    }
    let res = app
        .admin(
            Method::POST,
            "/admin/api/surge",
            Some(json!({"topic": "iridium", "count": 3, "seconds": 1})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);

    for bad in [
        json!({"scope": "fulfillments", "confirm": "reset"}),
        json!({"scope": "all", "confirm": "RESET"}),
        json!({"scope": "fulfillments"}),
    ] {
        let res = app
            .admin(Method::POST, "/admin/api/reset", Some(bad.clone()))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(app.stored_fulfillments().await, 1);

    let res = app
        .admin(
            Method::POST,
            "/admin/api/reset",
            Some(json!({"scope": "fulfillments", "confirm": "RESET"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.stored_fulfillments().await, 0);
    let board = app.leaderboard().await;
    assert_eq!(
        (
            board["entries"][0]["username"].as_str(),
            board["entries"][0]["total"].as_u64()
        ),
        (Some("ann"), Some(0))
    );
    assert_eq!(
        app.fulfill(&key, r#"{"iridium": 1}"#).await.status(),
        StatusCode::OK,
        "keys survive a fulfillments reset"
    );

    let res = app
        .admin(
            Method::POST,
            "/admin/api/reset",
            Some(json!({"scope": "everything", "confirm": "RESET"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.fulfill(&key, r#"{"iridium": 1}"#).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.leaderboard().await["entries"], json!([]));
    let (_, users) = json_of(app.admin(Method::GET, "/admin/api/users", None).await).await;
    assert_eq!(users, json!([]));
}
