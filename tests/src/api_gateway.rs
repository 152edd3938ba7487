//! API Gateway (REST API) played in process, for tests that call functions as the deployed API
//! does: the REQUEST authorizer event, the `ACCESS_DENIED` gateway response for a Deny, and the
//! proxy event that carries an Allow's context to the function.

use std::collections::HashMap;
use std::future::Future;

use serde_json::{Value, json};

use crate::unique_name;

const METHOD_ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/GET/whoami";

/// What the client receives.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

impl Answer {
    pub fn new(status: u16, headers: HashMap<String, String>, body: &str) -> Self {
        crate::capture_body(body);
        let body = if body.is_empty() { Value::Null } else { serde_json::from_str(body).expect("bodies are JSON") };
        Self { status, headers, body }
    }

    /// A function's response.
    pub fn of(response: lambda_http::Response<lambda_http::Body>) -> Self {
        let status = response.status().as_u16();
        let headers =
            response.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
        Self::new(status, headers, std::str::from_utf8(response.body()).unwrap())
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self.body
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "unexpected answer: {}", self.body);
        assert_eq!(self.body["success"], false);
    }
}

/// A request as the client sends it: `authorize` gets the REQUEST authorizer event (`Err` when
/// the authorizer fails); a Deny is answered as the gateway response renders it; an Allow's
/// proxy event goes to `invoke`.
pub async fn request<A, AF, I, IF>(
    authorize: A,
    invoke: I,
    headers: &[(&str, &str)],
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Answer
where
    A: FnOnce(Vec<u8>) -> AF,
    AF: Future<Output = Result<Vec<u8>, ()>>,
    I: FnOnce(String) -> IF,
    IF: Future<Output = Answer>,
{
    let path_only = path.split_once('?').map_or(path, |(path, _)| path);
    let headers: HashMap<&str, &str> = headers.iter().copied().collect();
    let event = json!({
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "resource": path_only,
        "path": path_only,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi(&headers),
        "requestContext": {"requestId": "authz-req", "stage": "prod", "httpMethod": method, "path": path_only},
    });
    let decision: Value = match authorize(event.to_string().into_bytes()).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        // The authorizer failed: API Gateway answers 5xx, rendered as SERVICE_UNAVAILABLE.
        Err(()) => return Answer::new(503, HashMap::new(), &latchkey::ApiError::ServiceUnavailable.to_json()),
    };
    let context = &decision["context"];
    if decision["policyDocument"]["Statement"][0]["Effect"] != "Allow" {
        // The ACCESS_DENIED gateway response: the status and body the authorizer chose.
        let status = context["error_status"].as_str().unwrap().parse().unwrap();
        return Answer::new(status, HashMap::new(), context["error_body"].as_str().unwrap());
    }
    let mut authorizer = context.clone();
    authorizer["principalId"] = decision["principalId"].clone();
    invoke(proxy_event(method, path, &headers, body, authorizer).to_string()).await
}

/// An API Gateway REST API proxy event, as a function receives it behind the authorizer.
pub fn proxy_event(
    method: &str,
    path: &str,
    headers: &HashMap<&str, &str>,
    body: Option<&str>,
    authorizer: Value,
) -> Value {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let query: HashMap<&str, &str> = query.split('&').filter_map(|pair| pair.split_once('=')).collect();
    let (query_single, query_multi) =
        if query.is_empty() { (Value::Null, Value::Null) } else { (json!(query), json!(multi(&query))) };
    json!({
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi(headers),
        "queryStringParameters": query_single,
        "multiValueQueryStringParameters": query_multi,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "resourcePath": path, "httpMethod": method, "path": format!("/prod{path}"),
            "stage": "prod", "requestId": unique_name("req"), "accountId": "123456789012",
            "apiId": "a1b2c3d4e5", "identity": {"sourceIp": "127.0.0.1"}, "authorizer": authorizer,
        },
        "body": body,
        "isBase64Encoded": false,
    })
}

fn multi(map: &HashMap<&str, &str>) -> HashMap<String, Vec<String>> {
    map.iter().map(|(k, v)| (k.to_string(), vec![v.to_string()])).collect()
}
