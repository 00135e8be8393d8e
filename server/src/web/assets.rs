//! The files of the pages and of the chat app (`server/web/`), embedded in
//! the binary so that the box serves everything itself and nothing is
//! loaded from the internet.
//!
//! Release builds carry the files inside the binary. Debug builds read them
//! from the source tree on each request (rust-embed's behaviour), so that a
//! change to a page or script shows on reload without rebuilding imboxd.
//!
//! Every file is served under `/assets/PATH`, except the service worker and
//! the manifest, which are served from the root (`/sw.js`,
//! `/manifest.webmanifest`): a service worker only controls pages at or
//! below its own path. HTML fragments (`pages/`) are not assets: the pages
//! module fills them in.
//!
//! Text files are compressed with gzip once, on their first request, and
//! served compressed to browsers that accept it; every answer carries an
//! ETag, so a browser revalidates with a 304 instead of downloading again.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, ETAG, IF_NONE_MATCH, VARY,
};
use hyper::HeaderMap;
use hyper::StatusCode;
use rust_embed::RustEmbed;

use super::reply::{self, Reply};

#[derive(RustEmbed)]
#[folder = "web/"]
#[exclude = "pages/*"]
#[exclude = "*.md"]
struct Files;

/// One file as served: its bytes, its gzip form (when that is smaller) and
/// its entity tag.
struct Prepared {
    plain: Bytes,
    gzip: Option<Bytes>,
    etag: HeaderValue,
}

/// The prepared files, by path. In release builds the content never changes;
/// in debug builds an entry is dropped when the file's hash changes.
fn prepared() -> &'static Mutex<HashMap<String, Arc<Prepared>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Prepared>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The path inside `server/web/` that a request path names, if any.
fn file_path(path: &str) -> Option<&str> {
    match path {
        "/sw.js" => Some("sw.js"),
        "/manifest.webmanifest" => Some("manifest.webmanifest"),
        _ => path.strip_prefix("/assets/").filter(|p| !p.is_empty() && !p.contains("..")),
    }
}

/// The Content-Type of a file, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether compressing a file of this type is worth it.
fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/") || content_type.contains("json") || content_type == "image/svg+xml"
}

/// A file's bytes, from the binary (or the source tree in debug builds).
pub fn text(path: &str) -> Option<Cow<'static, [u8]>> {
    Files::get(path).map(|file| file.data)
}

/// The paths of the embedded files under `dir/` (for example the message
/// catalogs under `locales/`).
pub fn list(dir: &str) -> Vec<String> {
    let prefix = format!("{dir}/");
    let mut paths: Vec<String> =
        Files::iter().filter(|p| p.starts_with(&prefix)).map(Cow::into_owned).collect();
    paths.sort();
    paths
}

fn prepare(path: &str) -> Option<Arc<Prepared>> {
    let file = Files::get(path)?;
    let hash = file.metadata.sha256_hash();
    let etag = HeaderValue::from_str(&format!("\"{}\"", hex(&hash[..12]))).ok()?;
    let mut cache = prepared().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(entry) = cache.get(path).filter(|e| e.etag == etag) {
        return Some(Arc::clone(entry));
    }
    let plain = Bytes::from(file.data.into_owned());
    let gzip =
        compressible(content_type(path)).then(|| gzip(&plain)).flatten().filter(|g| g.len() < plain.len());
    let entry = Arc::new(Prepared { plain, gzip, etag });
    cache.insert(path.to_owned(), Arc::clone(&entry));
    Some(entry)
}

fn gzip(data: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the browser takes gzip (`Accept-Encoding`, ignoring `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|value| {
        value.split(',').any(|item| {
            let mut fields = item.split(';').map(str::trim);
            let name = fields.next().unwrap_or("");
            let refused = fields.any(|f| f.replace(' ', "") == "q=0" || f.replace(' ', "") == "q=0.0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

/// The answer for an asset path, or `None` when the path names no asset.
pub fn serve(headers: &HeaderMap, path: &str) -> Option<Reply> {
    let file = file_path(path)?;
    let prepared = prepare(file)?;
    let ctype = content_type(file);
    let not_modified = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim().as_bytes() == prepared.etag.as_bytes()));
    let mut reply = if not_modified {
        reply::body(StatusCode::NOT_MODIFIED, ctype, Bytes::new())
    } else {
        match (&prepared.gzip, accepts_gzip(headers)) {
            (Some(gzip), true) => {
                let mut reply = reply::body(StatusCode::OK, ctype, gzip.clone());
                reply.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                reply
            }
            _ => reply::body(StatusCode::OK, ctype, prepared.plain.clone()),
        }
    };
    let headers = reply.headers_mut();
    headers.insert(ETAG, prepared.etag.clone());
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    // Revalidated each time (a 304 when unchanged): a new imboxd must not run
    // an old script next to a new page.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if file == "sw.js" {
        // The worker may control the whole origin, the chat app included.
        headers.insert("service-worker-allowed", HeaderValue::from_static("/"));
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hyper::Request;

    fn parts(headers: &[(&str, &str)]) -> HeaderMap {
        let mut builder = Request::builder();
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0.headers
    }

    #[test]
    fn files_are_served_compressed_with_an_etag() {
        let plain = serve(&parts(&[]), "/assets/app.js").unwrap();
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        let etag = plain.headers().get(ETAG).unwrap().to_str().unwrap().to_owned();
        let gzip = serve(&parts(&[("accept-encoding", "gzip, br")]), "/assets/app.js").unwrap();
        assert_eq!(gzip.headers().get(CONTENT_ENCODING).unwrap(), "gzip");
        let refused = serve(&parts(&[("accept-encoding", "gzip;q=0")]), "/assets/app.js").unwrap();
        assert!(refused.headers().get(CONTENT_ENCODING).is_none());
        let again = serve(&parts(&[("if-none-match", &etag)]), "/assets/app.js").unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn only_asset_paths_are_assets() {
        assert!(serve(&parts(&[]), "/assets/../Cargo.toml").is_none());
        assert!(serve(&parts(&[]), "/assets/pages/login.html").is_none(), "fragments are not assets");
        assert!(serve(&parts(&[]), "/assets/").is_none());
        assert!(serve(&parts(&[]), "/assets/no-such-file.js").is_none());
        assert!(!list("locales").is_empty(), "the message catalogs are embedded");
    }
}
