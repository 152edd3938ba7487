//! The dashboard's files over HTTP: served at /dashboard without a key, under a strict
//! Content-Security-Policy; `/` leads there when no upstream is configured.

use crate::common;

use common::Running;
use reqwest::{Client, Method, redirect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_without_a_key_under_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let client = Client::builder().redirect(redirect::Policy::none()).build().unwrap();
    let get = |path: &str| client.request(Method::GET, format!("{}{path}", api.base)).send();

    let root = get("/").await.unwrap();
    assert_eq!((root.status().as_u16(), root.headers()["location"].to_str().unwrap()), (302, "/dashboard"));
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
        ("/dashboard/icon.svg", "image/svg+xml"),
    ] {
        let page = get(path).await.unwrap();
        assert_eq!(page.status().as_u16(), 200, "{path}");
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(page.headers()["x-content-type-options"], "nosniff");
        let body = page.text().await.unwrap();
        if kind == "text/html" {
            // No inline script, and no `onclick=`-style handler attribute.
            let handler = body.split(" on").skip(1).any(|rest| {
                let name = rest.trim_start_matches(|c: char| c.is_ascii_lowercase());
                name.len() < rest.len() && name.starts_with('=')
            });
            assert!(!body.contains("<script>") && !handler, "an inline script or handler in {path}");
        }
    }
    assert_eq!(get("/dashboard/missing.js").await.unwrap().status().as_u16(), 404);
    let posted = client.post(format!("{}/dashboard", api.base)).send().await.unwrap();
    assert_eq!((posted.status().as_u16(), posted.headers()["allow"].to_str().unwrap()), (405, "GET, HEAD"));
    api.stop().await;
}
