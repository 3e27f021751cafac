//! The three pages and their static files, embedded in the binary: no CDN, no
//! build step, works offline. Every page answer carries a strict CSP.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use hq_web::ApiError;
use http::{header, HeaderValue, StatusCode};

const PORTAL: &str = include_str!("../web/portal.html");
const LEADERBOARD: &str = include_str!("../web/leaderboard.html");
const ADMIN: &str = include_str!("../web/admin.html");

/// Static files: name, content type, body.
const FILES: &[(&str, &str, &str)] = &[
    (
        "hq.css",
        "text/css; charset=utf-8",
        include_str!("../web/hq.css"),
    ),
    (
        "hq.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/hq.js"),
    ),
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/portal.js"),
    ),
    (
        "leaderboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/leaderboard.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/admin.js"),
    ),
];

/// Only our own scripts and styles; no inline script, no framing, no plugins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn secured(mut res: Response, cache: &'static str) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

fn page(html: &'static str) -> Response {
    secured(
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        "no-cache",
    )
}

pub(crate) async fn portal() -> Response {
    page(PORTAL)
}

pub(crate) async fn leaderboard() -> Response {
    page(LEADERBOARD)
}

pub(crate) async fn admin() -> Response {
    page(ADMIN)
}

pub(crate) async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => secured(
            ([(header::CONTENT_TYPE, *ct)], *body).into_response(),
            "no-cache",
        ),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response(),
    }
}
