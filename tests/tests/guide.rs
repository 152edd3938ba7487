//! The guide's reference tables against the code, so the docs cannot drift from it: every
//! variable the code reads, every parameter of `template.yaml` and every error code of `ApiError`
//! and `openapi.yaml` is named in exactly one row of the guide's tables (Configuration; the HTTP
//! API's errors), nothing the code does not know is named there, and each code's status is the
//! one the code renders.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::Utc;
use latchkey::{ApiError, Permission};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A body row of a table: the code spans of its first cell, and each cell's text.
#[derive(Default)]
struct Row {
    names: Vec<String>,
    cells: Vec<String>,
}

/// Every body row of every table on a page of the guide, read with a Markdown parser.
fn table_rows(page: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(root().join("docs/src").join(page)).unwrap();
    let (mut rows, mut row, mut in_head) = (Vec::new(), None::<Row>, false);
    for event in Parser::new_ext(&text, Options::ENABLE_TABLES) {
        match (event, row.as_mut()) {
            (Event::Start(Tag::TableHead), _) => in_head = true,
            (Event::End(TagEnd::TableHead), _) => in_head = false,
            (Event::Start(Tag::TableRow), _) if !in_head => row = Some(Row::default()),
            (Event::End(TagEnd::TableRow), _) => rows.extend(row.take()),
            (Event::Start(Tag::TableCell), Some(row)) => row.cells.push(String::new()),
            (Event::Code(code), Some(row)) => {
                if row.cells.len() == 1 {
                    row.names.push(code.to_string());
                }
                row.cells.last_mut().unwrap().push_str(&code);
            }
            (Event::Text(text), Some(row)) => row.cells.last_mut().unwrap().push_str(&text),
            _ => {}
        }
    }
    rows
}

/// How many rows of `rows` name each of their first cell's names: a name in two rows is a fact
/// with two homes.
fn named(rows: &[Row], keep: impl Fn(&str) -> bool) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for name in rows.iter().flat_map(|row| row.names.iter().filter(|name| keep(name))) {
        *count.entry(name.clone()).or_insert(0) += 1;
    }
    count
}

/// `"LATCHKEY_…"` string literals in the product's sources: the variables the code reads.
fn variables_the_code_reads() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs: Vec<_> =
        ["shared/src", "infra/local/src", "infra/admin/src"].iter().map(|d| root().join(d)).collect();
    for function in std::fs::read_dir(root().join("functions")).unwrap() {
        dirs.push(function.unwrap().path().join("src"));
    }
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices("\"LATCHKEY_") {
                    let rest = &text[at + 1..];
                    let end = rest.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap();
                    if rest[end..].starts_with('"') {
                        names.insert(rest[..end].to_owned());
                    }
                }
            }
        }
    }
    names
}

fn assert_each_once(what: &str, code: &BTreeSet<String>, documented: &BTreeMap<String, usize>) {
    let missing: Vec<_> = code.iter().filter(|name| !documented.contains_key(*name)).collect();
    let unknown: Vec<_> = documented.keys().filter(|name| !code.contains(*name)).collect();
    let twice: Vec<_> = documented.iter().filter(|(_, rows)| **rows > 1).collect();
    assert!(
        missing.is_empty() && unknown.is_empty() && twice.is_empty(),
        "{what}: not in the guide's tables: {missing:?}; in them but unknown to the code: {unknown:?}; in more than one row: {twice:?}"
    );
}

#[test]
fn every_variable_the_code_reads_is_in_one_row_of_the_configuration_page() {
    let code = variables_the_code_reads();
    assert!(code.len() > 40 && code.contains("LATCHKEY_KEYS_TABLE"), "the scan found the code's variables: {code:?}");
    let documented = named(&table_rows("configuration.md"), |name| name.starts_with("LATCHKEY_"));
    assert_each_once("variables", &code, &documented);
}

#[test]
fn every_parameter_of_the_template_is_in_one_row_of_the_configuration_page() {
    let template = latchkey_tests::template::source();
    let code: BTreeSet<String> =
        template["Parameters"].as_object().expect("template.yaml has Parameters").keys().cloned().collect();
    let documented = named(&table_rows("configuration.md"), |name| code.contains(name) || is_parameter_name(name));
    assert_each_once("template parameters", &code, &documented);
}

/// A stack parameter's shape (`CacheTtlSeconds`): so a row naming a parameter the template lost
/// is found, while the rows' other code spans (`x-api-key`, `0`) are not taken for one.
fn is_parameter_name(name: &str) -> bool {
    name.len() > 3
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
        && name.chars().any(|c| c.is_ascii_lowercase())
}

/// One of each `ApiError`. The match below has no wildcard: a new variant does not compile until
/// it is listed here, and so until the guide's table and `openapi.yaml` are held to it.
fn every_api_error() -> Vec<ApiError> {
    let every = vec![
        ApiError::MissingApiKey { header: "x-api-key" },
        ApiError::ConflictingCredentials,
        ApiError::InvalidApiKeyFormat,
        ApiError::InvalidApiKey,
        ApiError::ExpiredApiKey { expired_at: Utc::now() },
        ApiError::DisabledApiKey,
        ApiError::IpNotAllowed { source_ip: None },
        ApiError::UsageExceeded { refills_at: None },
        ApiError::InvalidToken,
        ApiError::ExpiredToken,
        ApiError::InvalidSignature { header: "github-public-key-signature" },
        ApiError::InsufficientPermissions { required: Permission::Admin },
        ApiError::NotFound,
        ApiError::conflict("c"),
        ApiError::validation("f", "m"),
        ApiError::PayloadTooLarge { limit_bytes: 1 },
        ApiError::MethodNotAllowed { allowed: &["GET"] },
        ApiError::RateLimited { retry_after_seconds: 1 },
        ApiError::QuotaExceeded { retry_after_seconds: 1 },
        ApiError::KeyLimitReached,
        ApiError::TenantKeyLimitReached { limit: 1 },
        ApiError::Internal,
        ApiError::ServiceUnavailable,
        ApiError::BadGateway,
        ApiError::GatewayTimeout,
    ];
    for error in &every {
        match error {
            ApiError::MissingApiKey { .. }
            | ApiError::ConflictingCredentials
            | ApiError::InvalidApiKeyFormat
            | ApiError::InvalidApiKey
            | ApiError::ExpiredApiKey { .. }
            | ApiError::DisabledApiKey
            | ApiError::IpNotAllowed { .. }
            | ApiError::UsageExceeded { .. }
            | ApiError::InvalidToken
            | ApiError::ExpiredToken
            | ApiError::InvalidSignature { .. }
            | ApiError::InsufficientPermissions { .. }
            | ApiError::NotFound
            | ApiError::Conflict { .. }
            | ApiError::Validation { .. }
            | ApiError::PayloadTooLarge { .. }
            | ApiError::MethodNotAllowed { .. }
            | ApiError::RateLimited { .. }
            | ApiError::QuotaExceeded { .. }
            | ApiError::KeyLimitReached
            | ApiError::TenantKeyLimitReached { .. }
            | ApiError::Internal
            | ApiError::ServiceUnavailable
            | ApiError::BadGateway
            | ApiError::GatewayTimeout => {}
        }
    }
    every
}

#[test]
fn every_error_code_is_in_one_row_of_the_error_table_with_its_status() {
    let errors = every_api_error();
    let code: BTreeSet<String> = errors.iter().map(|e| e.code().to_owned()).collect();
    assert_eq!(code.len(), errors.len(), "each ApiError has a code of its own");
    let rows = table_rows("http-api.md");
    let is_code = |name: &str| name.len() > 3 && name.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    assert_each_once("ApiError's codes", &code, &named(&rows, is_code));

    let documented: Vec<_> = openapi_codes();
    assert_eq!(
        documented.iter().cloned().collect::<BTreeSet<_>>(),
        code,
        "openapi.yaml's Error.code enum is ApiError's codes"
    );
    assert_eq!(documented.len(), code.len(), "openapi.yaml lists each code once: {documented:?}");

    for error in &errors {
        let row = rows.iter().find(|row| row.names.iter().any(|name| name == error.code())).unwrap();
        assert_eq!(row.cells[1].trim(), error.status().to_string(), "the status the guide gives {}", error.code());
    }
}

/// The `enum` of `openapi.yaml`'s `Error.error.code`, in its order.
fn openapi_codes() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("openapi.yaml")).unwrap();
    let document: serde_json::Value = yaml_serde::from_str(&text).expect("openapi.yaml is YAML");
    let code = &document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"];
    let codes = code["enum"].as_array().expect("Error.code has an enum");
    codes.iter().map(|code| code.as_str().unwrap().to_owned()).collect()
}
