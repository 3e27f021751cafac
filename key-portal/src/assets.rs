//! The workshop's downloadable files (what the original served from S3: code,
//! Dockerfiles, load-test files), read-only under `/assets/`.
//!
//! A request can only reach files inside the folder: paths are checked
//! component by component (no `..`, no hidden names), and the resolved real path
//! (symlinks followed) must still lie inside the folder's real path. The same
//! check guards a remote [`AssetStore`] (the AWS mode's bucket), and both are
//! answered alike: files with their type, folders as a listing, a folder named
//! without its `/` redirected to it.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use hq_web::ApiError;
use http::{header, HeaderValue, StatusCode};

use hq_core::ports::AssetStore;

use crate::{Assets, PortalState};

fn not_found() -> Response {
    ApiError::not_found("no such file in the workshop assets").into_response()
}

/// The parts of a URL path below `/assets/`, if every one is a plain name
/// (no `..`, no `.`-led or hidden names, no backslashes).
fn parts(rel: &str) -> Option<Vec<&str>> {
    rel.split('/')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let mut comps = Path::new(part).components();
            match (comps.next(), comps.next()) {
                (Some(Component::Normal(_)), None)
                    if !part.starts_with('.') && !part.contains('\\') =>
                {
                    Some(part)
                }
                _ => None,
            }
        })
        .collect()
}

/// Maps a URL path below `/assets/` to a real path inside `root`, or nothing.
pub fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let mut path = root.clone();
    path.extend(parts(rel)?);
    let real = path.canonicalize().ok()?;
    real.starts_with(&root).then_some(real)
}

pub(crate) async fn root(state: State<PortalState>) -> Response {
    serve(state, String::new()).await
}

pub(crate) async fn path(state: State<PortalState>, UrlPath(rel): UrlPath<String>) -> Response {
    serve(state, rel).await
}

async fn serve(State(s): State<PortalState>, rel: String) -> Response {
    match &s.assets {
        Some(Assets::Dir(root)) => serve_dir(root, &rel).await,
        Some(Assets::Store(store)) => serve_store(store.as_ref(), &rel)
            .await
            .unwrap_or_else(|e| ApiError::from(e).into_response()),
        None => not_found(),
    }
}

/// A folder asked for without its trailing `/`: relative links need it.
fn to_folder(rel: &str) -> Response {
    let to = format!("/assets/{rel}/");
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, to)]).into_response()
}

async fn serve_dir(root: &Path, rel: &str) -> Response {
    let Some(real) = resolve(root, rel) else {
        return not_found();
    };
    let Ok(meta) = tokio::fs::metadata(&real).await else {
        return not_found();
    };
    if meta.is_dir() {
        if !rel.is_empty() && !rel.ends_with('/') {
            return to_folder(rel);
        }
        return match dir_entries(&real).await {
            Some(entries) => listing(&entries, rel),
            None => not_found(),
        };
    }
    let Ok(file) = tokio::fs::File::open(&real).await else {
        return not_found();
    };
    file_response(
        &real,
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
        meta.len(),
    )
}

async fn serve_store(store: &dyn AssetStore, rel: &str) -> Result<Response, hq_core::StoreError> {
    let Some(parts) = parts(rel) else {
        return Ok(not_found());
    };
    let path = parts.join("/");
    if rel.is_empty() || rel.ends_with('/') {
        return Ok(match store.folder(&path).await? {
            Some(entries) => listing(&entries, rel),
            None => not_found(),
        });
    }
    match store.file(&path).await? {
        Some(bytes) => {
            let len = bytes.len() as u64;
            Ok(file_response(Path::new(&path), Body::from(bytes), len))
        }
        None if store.folder(&path).await?.is_some() => Ok(to_folder(rel)),
        None => Ok(not_found()),
    }
}

/// A file's answer: its type from its name, and headers that keep a browser
/// from running it as a page of HQ's.
fn file_response(name: &Path, body: Body, len: u64) -> Response {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let mut res = Response::new(body);
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    res
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A folder's names, folders with a trailing `/`, hidden ones left out, sorted.
async fn dir_entries(dir: &Path) -> Option<Vec<String>> {
    let mut entries = Vec::new();
    let mut rd = tokio::fs::read_dir(dir).await.ok()?;
    while let Ok(Some(e)) = rd.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let is_dir = e.file_type().await.map(|t| t.is_dir()).unwrap_or(false);
        entries.push(if is_dir { format!("{name}/") } else { name });
    }
    entries.sort();
    Some(entries)
}

/// A plain listing, so `curl` users and browsers alike can find the files.
fn listing(entries: &[String], rel: &str) -> Response {
    let items: String = entries
        .iter()
        .map(|n| {
            let href: String = n.split('/').map(urlencode).collect::<Vec<_>>().join("/");
            format!("<li><a href=\"{}\">{}</a></li>\n", escape(&href), escape(n))
        })
        .collect();
    let title = format!("Workshop files /{}", escape(rel));
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><ul>\n{items}</ul></body></html>\n"
    );
    let mut res = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    res
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn only_paths_inside_the_folder_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("assets");
        std::fs::create_dir_all(root.join("code")).unwrap();
        std::fs::write(root.join("code/monolith.py"), "print(1)").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
        assert!(resolve(&root, "code/monolith.py").is_some());
        assert!(resolve(&root, "").is_some());
        for bad in [
            "../secret.txt",
            "code/../../secret.txt",
            "..",
            ".hidden",
            "link.txt",
            "/etc/passwd",
            "code\\..\\x",
        ] {
            assert!(resolve(&root, bad).is_none(), "{bad}");
        }
    }
}
