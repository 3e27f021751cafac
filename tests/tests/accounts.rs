//! Contract section 6, accounts and keys, through HTTP.

use hq_tests::{json_of, TestApp, ADMIN_TOKEN, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn user_count(app: &TestApp) -> usize {
    app.hq.accounts.store().list_users().await.unwrap().len()
}

#[tokio::test]
async fn signup_validates_and_refuses_duplicates_storing_nothing_on_error() {
    let app = TestApp::spawn().await;
    let (status, body) = json_of(app.signup("ann.b-c_1", PASSWORD).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["username"], "ann.b-c_1");

    let (status, body) = json_of(app.signup("ann.b-c_1", "another password").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("username_taken"))
    );

    for bad in [
        "ab",
        "",
        "has space",
        "<script>alert(1)</script>",
        "ünïcode",
        "a/b",
        &"x".repeat(33),
    ] {
        let (status, body) = json_of(app.signup(bad, PASSWORD).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(
            body["message"].as_str().unwrap().contains("username"),
            "{body}"
        );
    }
    let (status, body) = json_of(app.signup("shortpw", "1234567").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("password"));

    for raw in [
        "",
        "{",
        "[]",
        r#"{"username":"zed"}"#,
        r#"{"username":1,"password":"12345678"}"#,
    ] {
        let res = app
            .client
            .post(app.url("/api/signup"))
            .body(raw)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("malformed_json")),
            "{raw}"
        );
    }
    let res = app
        .client
        .post(app.url("/api/signup"))
        .body(" ".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let res = app.client.get(app.url("/api/signup")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn login_gives_a_token_and_a_strict_http_only_cookie_and_logout_ends_it() {
    let app = TestApp::spawn().await;
    app.signup("ann", PASSWORD).await;
    let res = app
        .post_json(
            "/api/login",
            json!({"username": "ann", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("hq_session="));
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/")
    );
    let (_, body) = json_of(res).await;
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 40);
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert!(cookie.contains(&token));

    // The cookie alone authenticates.
    let pair = cookie.split(';').next().unwrap().to_owned();
    let res = app
        .client
        .get(app.url("/api/key"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let res = app.post_auth("/api/logout", &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        app.get_auth("/api/key", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = app
        .client
        .get(app.url("/api/key"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_username_and_wrong_password_are_indistinguishable_and_guessing_is_slowed() {
    let app = TestApp::spawn().await;
    app.signup("ann", PASSWORD).await;
    let wrong_pw = app
        .post_json(
            "/api/login",
            json!({"username": "ann", "password": "wrong password"}),
        )
        .await;
    let no_user = app
        .post_json(
            "/api/login",
            json!({"username": "nobody", "password": "wrong password"}),
        )
        .await;
    let (s1, b1) = json_of(wrong_pw).await;
    let (s2, b2) = json_of(no_user).await;
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    assert_eq!((s1, b1), (s2, b2));

    for _ in 0..4 {
        let res = app
            .post_json(
                "/api/login",
                json!({"username": "ann", "password": "wrong password"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Five failures: now even the right password waits.
    let res = app
        .post_json(
            "/api/login",
            json!({"username": "ann", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let (_, body) = json_of(res).await;
    assert_eq!(body["error"], "too_many_attempts");
    // Other usernames are not affected.
    app.signup("bob", PASSWORD).await;
    app.login("bob", PASSWORD).await;
}

#[tokio::test]
async fn missing_garbage_and_expired_tokens_get_401() {
    let app = TestApp::spawn_with(&["--session-hours", "0"]).await;
    let res = app.client.get(app.url("/api/key")).send().await.unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    for garbage in ["x", &"y".repeat(4000)] {
        assert_eq!(
            app.get_auth("/api/key", garbage).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let res = app
        .client
        .get(app.url("/api/key"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Sessions of zero hours expire at once.
    let token = app.attendee("ann").await;
    assert_eq!(
        app.get_auth("/api/key", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post_auth("/api/key/rotate", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_key_is_issued_once_lives_30_days_and_rotates() {
    let app = TestApp::spawn().await;
    let token = app.attendee("ann").await;
    let (status, first) = json_of(app.get_auth("/api/key", &token).await).await;
    assert_eq!(status, StatusCode::OK);
    let key = first["apiKey"].as_str().unwrap();
    assert_eq!(key.len(), 40);
    assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(first["daysLeft"], 30);
    assert_eq!(first["status"], "active");
    for field in ["createdAt", "expiresAt"] {
        assert!(first[field].as_str().unwrap().ends_with('Z'), "{field}");
    }
    let (_, again) = json_of(app.get_auth("/api/key", &token).await).await;
    assert_eq!(again, first);

    let (_, rotated) = json_of(app.post_auth("/api/key/rotate", &token).await).await;
    assert_ne!(rotated["apiKey"], first["apiKey"]);
    assert_ne!(rotated["keyId"], first["keyId"]);
    let (_, now) = json_of(app.get_auth("/api/key", &token).await).await;
    assert_eq!(now["apiKey"], rotated["apiKey"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_agree_on_one_key() {
    let app = TestApp::spawn().await;
    let token = app.attendee("ann").await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, token) = (app.client.clone(), app.url("/api/key"), token.clone());
            tokio::spawn(async move { client.get(url).bearer_auth(token).send().await.unwrap() })
        })
        .collect();
    let mut keys = Vec::new();
    for call in calls {
        let (_, body) = json_of(call.await.unwrap()).await;
        keys.push(body["apiKey"].as_str().unwrap().to_owned());
    }
    keys.dedup();
    assert_eq!(keys.len(), 1);
}

#[tokio::test]
async fn the_admin_api_needs_the_token_lists_attendees_without_keys_and_revokes() {
    let app = TestApp::spawn().await;
    let (_, key) = app.attendee_with_key("ann").await;
    app.attendee("bob").await;

    let res = app
        .client
        .get(app.url("/admin/api/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .client
        .get(app.url("/admin/api/users"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // An attendee's session is not the admin token.
    let token = app.login("ann", PASSWORD).await;
    assert_eq!(
        app.get_auth("/admin/api/users", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let res = app.admin(Method::GET, "/admin/api/users", None).await;
    let text = res.text().await.unwrap();
    assert!(
        !text.contains(&key),
        "the admin list shows key ids, never keys"
    );
    let users: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(users[0]["username"], "ann");
    assert_eq!(users[0]["keyStatus"], "active");
    assert!(users[0]["keyId"].as_str().unwrap().starts_with("key-"));
    assert_eq!(users[1]["username"], "bob");
    assert!(users[1]["keyId"].is_null());

    let (status, _) = json_of(
        app.admin(Method::POST, "/admin/api/users/ann/revoke-key", None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, users) = json_of(app.admin(Method::GET, "/admin/api/users", None).await).await;
    assert_eq!(users[0]["keyStatus"], "revoked");
    assert_eq!(
        app.fulfill(&key, r#"{"iridium":1}"#).await.status(),
        StatusCode::FORBIDDEN
    );

    for who in ["nobody", "bob", "..%2F..", "<x>"] {
        let (status, _) = json_of(
            app.admin(
                Method::POST,
                &format!("/admin/api/users/{who}/revoke-key"),
                None,
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who}");
    }
    let _ = ADMIN_TOKEN;
}

#[tokio::test]
async fn topics_and_rates_are_public_to_read_and_admin_to_change() {
    let app = TestApp::spawn().await;
    let (status, topics) =
        json_of(app.client.get(app.url("/api/topics")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = topics
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orderTopic", "iridium", "magnesite"]);
    assert_eq!(
        topics[0]["arn"],
        "arn:aws:sns:us-west-2:000000000000:orderTopic"
    );
    assert_eq!(topics[0]["ratePerMinute"], 2.0);
    assert_eq!(topics[0]["paused"], false);
    assert_eq!(topics[0]["malformedShare"], 0.0);

    let body = json!({"ratePerMinute": 30.0, "paused": true, "malformedShare": 0.1});
    let res = app
        .client
        .put(app.url("/admin/api/rates/iridium"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, set) = json_of(
        app.admin(Method::PUT, "/admin/api/rates/iridium", Some(body))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(set["ratePerMinute"], 30.0);

    for bad in [
        json!({"ratePerMinute": -1.0}),
        json!({"malformedShare": 2.0}),
        json!({"paused": "yes"}),
        json!([1]),
    ] {
        let (status, _) = json_of(
            app.admin(Method::PUT, "/admin/api/rates/iridium", Some(bad.clone()))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _) = json_of(
        app.admin(
            Method::PUT,
            "/admin/api/rates/gold",
            Some(json!({"paused": true})),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, topics) = json_of(app.client.get(app.url("/api/topics")).send().await.unwrap()).await;
    assert_eq!(topics[1]["ratePerMinute"], 30.0);
    assert_eq!(topics[1]["paused"], true);
    assert_eq!(topics[1]["malformedShare"], 0.1);
    assert_eq!(topics[2]["ratePerMinute"], 2.0);
}

#[tokio::test]
async fn accounts_keys_and_totals_survive_a_restart() {
    let app = TestApp::spawn().await;
    let (token, key) = app.attendee_with_key("ann").await;
    assert_eq!(
        app.fulfill(&key, r#"{"iridium": 2}"#).await.status(),
        StatusCode::OK
    );
    let dir = app.stop().await;

    let app = TestApp::spawn_in(dir, &[]).await;
    assert_eq!(
        app.fulfill(&key, r#"{"iridium": 1}"#).await.status(),
        StatusCode::OK
    );
    let (_, shown) = json_of(app.get_auth("/api/key", &token).await).await;
    assert_eq!(shown["apiKey"], key);
    let board = app.leaderboard().await;
    assert_eq!(board["entries"][0]["total"], 2);
    assert_eq!(board["entries"][0]["iridium"], 3);
}

#[tokio::test]
async fn unknown_paths_get_a_json_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/nope",
        "/admin/api/nope",
        "/../../etc/passwd",
        "/api/key/../../x",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
}
