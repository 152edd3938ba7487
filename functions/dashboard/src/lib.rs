//! The dashboard ("Settings → API Keys"): the four static files of `dashboard/`, compiled in,
//! served without the authorizer (they hold nothing: every datum comes from the public API, with
//! the session the page signs in for), under a strict Content-Security-Policy: scripts and
//! styles from this origin only, no inline script, requests to this origin only. The local API
//! serves them at `/dashboard`; deployed, the `dashboard` function does, behind the same API.
//!
//! The page names the API's base path in a `<meta>` tag (`{{base}}` in the file: the stage, or a
//! custom domain's base path, before `/dashboard`), so the same files work at
//! `http://127.0.0.1:3000/dashboard` and at `https://…/prod/dashboard`.

const INDEX: &str = include_str!("../../../dashboard/index.html");
const SCRIPT: &str = include_str!("../../../dashboard/app.js");
const STYLE: &str = include_str!("../../../dashboard/app.css");
const ICON: &str = include_str!("../../../dashboard/icon.svg");

/// Where the dashboard is served, below the API's base path.
pub const PATH: &str = "/dashboard";

/// `frame-ancestors *`: a provider may embed the page in its own.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors *";

/// An answer: status, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Whether `path` (below the base path) is the dashboard's.
pub fn owns(path: &str) -> bool {
    path == PATH || path.starts_with("/dashboard/")
}

/// The file at `path` for a GET or HEAD; `None` for a path that is not the dashboard's. `base`:
/// the API's base path before `/dashboard` (`""` locally, `/prod` behind a stage).
pub fn serve(method: &str, path: &str, base: &str) -> Option<Page> {
    if !owns(path) {
        return None;
    }
    let file = match path {
        "/dashboard" | "/dashboard/" | "/dashboard/index.html" => {
            Some((INDEX.replace("{{base}}", &attribute(base)), "text/html; charset=utf-8"))
        }
        "/dashboard/app.js" => Some((SCRIPT.to_owned(), "text/javascript; charset=utf-8")),
        "/dashboard/app.css" => Some((STYLE.to_owned(), "text/css; charset=utf-8")),
        "/dashboard/icon.svg" => Some((ICON.to_owned(), "image/svg+xml")),
        _ => None,
    };
    let mut headers = vec![
        ("content-security-policy", CONTENT_SECURITY_POLICY.to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
    ];
    Some(match file {
        None => {
            headers.push(("content-type", "text/plain".to_owned()));
            Page { status: 404, headers, body: "not found".to_owned() }
        }
        Some(_) if method != "GET" && method != "HEAD" => {
            headers.push(("allow", "GET, HEAD".to_owned()));
            Page { status: 405, headers, body: String::new() }
        }
        Some((body, kind)) => {
            headers.push(("content-type", kind.to_owned()));
            // Revalidated on each load: a new deployment serves new files at once.
            headers.push(("cache-control", "no-cache".to_owned()));
            Page { status: 200, headers, body }
        }
    })
}

/// A base path as an HTML attribute value: only the characters a path segment is made of.
fn attribute(base: &str) -> String {
    base.chars().filter(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(*c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_base_path_and_nothing_else_gets_in() {
        let page = serve("GET", "/dashboard", "/prod").unwrap();
        assert!(page.body.contains(r#"content="/prod""#), "{}", page.body);
        let page = serve("GET", "/dashboard", "/x\"><script>").unwrap();
        assert!(page.body.contains(r#"content="/xscript""#), "{}", page.body);
        assert!(!serve("GET", "/dashboard", "").unwrap().body.contains("{{base}}"));
        assert_eq!(serve("GET", "/dashboards", ""), None);
        assert_eq!(serve("GET", "/dashboard/nope", "").unwrap().status, 404);
        assert_eq!(serve("POST", "/dashboard", "").unwrap().status, 405);
    }
}
