//! The public dashboard: a page, its stylesheet and its ES modules, compiled into the binary
//! and served on ranking's port beside gRPC, so that the page and the JSON API it calls share
//! one origin (no CORS, nothing fetched from anywhere else).

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

/// The files under `services/ranking/web/`: name, content type, content.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../web/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/api.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/live.js"),
    ),
    (
        "ranking.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/ranking.js"),
    ),
    (
        "agency.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/agency.js"),
    ),
    (
        "alerts.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/alerts.js"),
    ),
    (
        "publications.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/publications.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/charts.js"),
    ),
    (
        "format.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/format.js"),
    ),
];

/// The page's placeholder for the heartbeat interval, which the page needs to tell a quiet
/// stream from a dead one.
const HEARTBEAT_PLACEHOLDER: &str = "{{HEARTBEAT_MS}}";

/// Only this origin: scripts, styles and API calls; nothing inline, nothing from outside.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file ready to serve.
#[derive(Debug)]
struct Asset {
    content_type: &'static str,
    body: Vec<u8>,
    /// A strong validator: the SHA-256 of the body, quoted.
    etag: HeaderValue,
}

impl Asset {
    fn new(content_type: &'static str, body: Vec<u8>) -> Self {
        let digest = Sha256::digest(&body);
        let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Self {
            content_type,
            body,
            etag,
        }
    }
}

/// The dashboard's files, by name.
#[derive(Debug, Clone)]
pub struct Dashboard {
    assets: Arc<HashMap<&'static str, Asset>>,
}

impl Dashboard {
    /// The files, with the page told the live rankings' heartbeat interval.
    pub fn new(heartbeat: Duration) -> Self {
        let heartbeat_ms = heartbeat.as_millis().to_string();
        let assets = FILES
            .iter()
            .map(|(name, content_type, text)| {
                let body = if *name == "index.html" {
                    text.replace(HEARTBEAT_PLACEHOLDER, &heartbeat_ms)
                } else {
                    (*text).to_owned()
                };
                (*name, Asset::new(content_type, body.into_bytes()))
            })
            .collect();
        Self {
            assets: Arc::new(assets),
        }
    }

    /// `GET /` (the page) and `GET /assets/{name}`; HEAD too.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(page))
            .route("/assets/{name}", get(asset))
            .with_state(self)
    }

    fn serve(&self, name: &str, request: &HeaderMap) -> Response {
        let Some(asset) = self.assets.get(name) else {
            return (StatusCode::NOT_FOUND, "not found\n").into_response();
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, asset.etag.clone());
        // Revalidate every time (a 304 costs a round trip, not the file): a new binary's files
        // are picked up at once, and the ETag keeps unchanged ones from being sent again.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if name == "index.html" {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            );
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
        }
        if matches_etag(request, &asset.etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        (StatusCode::OK, headers, asset.body.clone()).into_response()
    }
}

/// Whether the request's `If-None-Match` names `etag` (or is `*`).
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(wanted) = etag.to_str() else {
        return false;
    };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == wanted || tag == "*")
}

async fn page(State(dashboard): State<Dashboard>, headers: HeaderMap) -> Response {
    dashboard.serve("index.html", &headers)
}

async fn asset(
    State(dashboard): State<Dashboard>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if name == "index.html" {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    dashboard.serve(&name, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(dashboard: &Dashboard, name: &str, if_none_match: Option<&str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(tag) = if_none_match {
            headers.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(tag).expect("valid header"),
            );
        }
        dashboard.serve(name, &headers)
    }

    #[test]
    fn the_page_is_told_the_heartbeat_interval() {
        let dashboard = Dashboard::new(Duration::from_millis(1_500));
        let page = &dashboard.assets["index.html"].body;
        let page = std::str::from_utf8(page).expect("utf-8");
        assert!(page.contains("content=\"1500\""), "{page}");
        assert!(!page.contains(HEARTBEAT_PLACEHOLDER));
    }

    #[test]
    fn every_file_has_its_content_type_and_a_validator() {
        let dashboard = Dashboard::new(Duration::from_secs(5));
        for (name, content_type, _) in FILES {
            let response = get(&dashboard, name, None);
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], *content_type, "{name}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{name}");
            assert!(headers.contains_key(header::ETAG), "{name}");
        }
    }

    #[test]
    fn an_unchanged_file_is_not_sent_again() {
        let dashboard = Dashboard::new(Duration::from_secs(5));
        let etag = get(&dashboard, "app.js", None).headers()[header::ETAG].clone();
        let etag = etag.to_str().expect("ascii");
        let again = get(&dashboard, "app.js", Some(&format!("\"other\", {etag}")));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag);
        let other = get(&dashboard, "app.js", Some("\"other\""));
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[test]
    fn the_dashboard_names_every_metric_in_the_api_order() {
        let format = include_str!("../web/format.js");
        let listed: Vec<usize> = govpulse_core::Metric::ALL
            .iter()
            .map(|m| {
                format
                    .find(&format!("['{}',", m.name()))
                    .unwrap_or_else(|| panic!("format.js names no metric {}", m.name()))
            })
            .collect();
        assert!(
            listed.is_sorted(),
            "format.js lists the metrics out of order"
        );
    }

    #[test]
    fn every_module_a_page_file_imports_is_served() {
        let served: Vec<&str> = FILES.iter().map(|(name, _, _)| *name).collect();
        for (name, _, text) in FILES {
            for import in text.split("from './").skip(1) {
                let module = import.split('\'').next().unwrap_or_default();
                assert!(
                    served.contains(&module),
                    "{name} imports {module}, which FILES does not list"
                );
            }
        }
        let page = include_str!("../web/index.html");
        assert!(
            page.contains("src=\"/assets/app.js\""),
            "the page loads app.js"
        );
    }

    #[test]
    fn unknown_files_are_not_found() {
        let dashboard = Dashboard::new(Duration::from_secs(5));
        assert_eq!(
            get(&dashboard, "secret.txt", None).status(),
            StatusCode::NOT_FOUND
        );
    }
}
