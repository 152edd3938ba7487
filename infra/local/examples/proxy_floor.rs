//! The floor of the local gateway on hyper and tokio (`infra/bench/gateway`'s `floor` path): a
//! plain reverse proxy built as the gateway is (one current-thread event loop per core, each on its
//! own `SO_REUSEPORT` listener; one hyper http1 backend connection per client connection; bodies
//! streamed both ways as axum's `Body`; client connections served by hyper's http1 connection,
//! which measured the same as `axum::serve`, the gateway's) that does none of the gateway's work:
//! no key, no throttle, no count, no header touched, no timeout. What it costs a request is what
//! the HTTP stack costs before Latchkey does anything; the gateway's cost above it is Latchkey's
//! own.
//!
//! `LATCHKEY_ADDR=127.0.0.1:PORT LATCHKEY_UPSTREAM=127.0.0.1:PORT proxy_floor`

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// As the gateway's binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The client connection's backend connection, opened on its first request.
type BackendConnection = Mutex<Option<SendRequest<Body>>>;

async fn forward(
    upstream: &str,
    backend: &BackendConnection,
    request: Request<Incoming>,
) -> Result<Response<Body>, axum::BoxError> {
    let kept = backend.lock().expect("never held across a panic").take();
    let mut sender = match kept {
        Some(sender) => sender,
        None => {
            let stream = tokio::net::TcpStream::connect(upstream).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            sender
        }
    };
    sender.ready().await?;
    let response = sender.send_request(request.map(Body::new)).await?;
    *backend.lock().expect("never held across a panic") = Some(sender);
    Ok(response.map(Body::new))
}

async fn serve(listener: std::net::TcpListener, upstream: Arc<str>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let backend = Arc::new(BackendConnection::default());
            let service = hyper::service::service_fn(move |request| {
                let (upstream, backend) = (upstream.clone(), backend.clone());
                async move {
                    let answer = forward(&upstream, &backend, request).await;
                    Ok::<_, Infallible>(answer.unwrap_or_else(|_| {
                        Response::builder().status(StatusCode::BAD_GATEWAY).body(Body::empty()).expect("a valid answer")
                    }))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::var("LATCHKEY_ADDR").unwrap_or_else(|_| "127.0.0.1:3002".to_owned());
    let upstream: Arc<str> = std::env::var("LATCHKEY_UPSTREAM").unwrap_or_else(|_| "127.0.0.1:3001".to_owned()).into();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let listeners = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(latchkey_local::threads::bind(&addr, cores))?;
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(serve(listener, upstream))
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a serving thread panicked")?;
    }
    Ok(())
}
