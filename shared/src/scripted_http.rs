//! A stand-in AWS endpoint for unit tests: answers with scripted statuses and bodies, so that a
//! test can make a service throttle or cancel exactly where it needs to (neither moto nor
//! DynamoDB Local can be made to).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers each request, one per connection, with the next of `answers`; notes the
/// requests' first lines.
pub(crate) async fn scripted(answers: Vec<(u16, &'static str)>) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let noted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let requests = noted.clone();
    tokio::spawn(async move {
        for (status, body) in answers {
            let Ok((mut socket, _)) = listener.accept().await else { break };
            let mut request = vec![0; 8192];
            let read = socket.read(&mut request).await.unwrap();
            let text = String::from_utf8_lossy(&request[..read]).into_owned();
            requests.lock().unwrap().push(text.lines().next().unwrap_or_default().to_owned());
            let error_type = if status == 429 { "x-amzn-errortype: TooManyRequestsException\r\n" } else { "" };
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{error_type}content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.write_all(body.as_bytes()).await.unwrap();
        }
    });
    (address, noted)
}

/// The SDK configuration the functions load ([`crate::aws`], at its defaults), with test
/// credentials. A test sets its endpoint on the service's own configuration, where it wins over
/// the `AWS_ENDPOINT_URL_<SERVICE>` the suite's engines export (on the SDK's, it would not).
#[cfg(feature = "aws")]
pub(crate) async fn sdk_config() -> aws_config::SdkConfig {
    use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
    let sdk = crate::aws::load_sdk_config(&crate::config::AwsTimeouts::default()).await;
    sdk.to_builder()
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new("test", "test", None, None, "test")))
        .build()
}
