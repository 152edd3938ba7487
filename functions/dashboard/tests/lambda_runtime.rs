//! The built `dashboard` binary as Lambda runs it (`cargo lambda watch`, `cargo lambda invoke`),
//! with the proxy events API Gateway sends for `GET /prod/dashboard` and its files.

use std::collections::HashMap;

use latchkey_tests::api_gateway::proxy_event;
use latchkey_tests::cargo_lambda::Watch;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_function_serves_the_page_for_its_stage() {
    let watch = Watch::start(&[("RUST_LOG", "info".to_owned())]).await;
    // No authorizer in front of these routes: an empty context.
    let get = |path: &str| proxy_event("GET", path, &HashMap::new(), None, json!({})).to_string();

    let page = watch.invoke("dashboard", &get("/dashboard")).await;
    assert_eq!(page["statusCode"], 200, "{page}");
    // A REST API's proxy response: lambda_http puts every header in multiValueHeaders.
    let header = |name: &str| page["multiValueHeaders"][name][0].as_str().unwrap_or_default().to_owned();
    assert!(header("content-type").starts_with("text/html"), "{page}");
    assert!(header("content-security-policy").contains("script-src 'self'"), "{page}");
    let body = page["body"].as_str().unwrap();
    // Its files and requests under the stage it is served from.
    assert!(body.contains(r#"<meta name="latchkey-api" content="/prod">"#), "{body}");
    assert!(body.contains(r#"src="/prod/dashboard/app.js""#), "{body}");

    let script = watch.invoke("dashboard", &get("/dashboard/app.js")).await;
    assert_eq!(script["statusCode"], 200, "{script}");
    assert!(script["body"].as_str().unwrap().contains("POST\", \"/sessions\""));
    let missing = watch.invoke("dashboard", &get("/dashboard/secrets.txt")).await;
    assert_eq!(missing["statusCode"], 404, "{missing}");
}
