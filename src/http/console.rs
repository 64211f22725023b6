//! `GET /console/`: the operator console, a web page served by the daemon itself.
//!
//! The assets are plain HTML, CSS and JavaScript modules in `console/` at the repository root,
//! compiled into the binary: no build step, no CDN, nothing fetched from elsewhere. They are
//! public (the page signs in with an API token it keeps in the browser's session storage and
//! sends as a bearer token to `/api/v1`); every answer carries a strict Content-Security-Policy
//! that allows nothing but this origin, so injected markup could neither run nor load anything.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;

/// The policy of every console answer: only this origin, no inline script or style, no
/// framing, no `<base>`, forms post only here; `data:` images for the favicon.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; media-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// One compiled-in asset: its file name under `/console/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../console/index.html"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/console.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/api.js"),
    },
    Asset {
        name: "sse.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/sse.js"),
    },
];

/// `GET /console`: to `/console/`, so the page's relative URLs resolve under it.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/console/")
}

/// `GET /console/`: the page.
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /console/{file}`: one asset, or 404.
pub async fn asset(Path(file): Path<String>) -> Response {
    serve(&file)
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::not_found(format!("no console file {name:?}")).into_response();
    };
    let mut response = (StatusCode::OK, asset.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The file names carry no version: revalidate every time, so an upgraded daemon never
    // serves a page with last release's script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_served() {
        let page = std::str::from_utf8(ASSETS[0].body).expect("utf-8");
        for asset in &ASSETS[1..] {
            let named = page.contains(&format!("\"{}\"", asset.name))
                || ASSETS
                    .iter()
                    .filter(|a| a.name.ends_with(".js"))
                    .any(|a| std::str::from_utf8(a.body).is_ok_and(|s| s.contains(asset.name)));
            assert!(named, "{} is served but nothing loads it", asset.name);
        }
    }
}
