//! Serving as nginx does: one event loop per core, each with its own listening socket on the same
//! address (`SO_REUSEPORT`, the kernel spreading connections among them). A request, its
//! connection and the backend connection it uses (its own, from the thread's idle ones,
//! [`crate::upstream`]) then stay on one thread; on one shared
//! multi-thread runtime, every request woke tasks on the other workers (hyper's connection tasks),
//! and those wake-ups were most of the gateway's cost (BENCHMARKS.md, "The local gateway").

use std::net::SocketAddr;
use std::sync::Arc;

use latchkey::audit::AuditLog;
use latchkey::datasource::DatasourceStore;
use latchkey::gateway::pool::GatewaySlots;
use latchkey::ingest::RecordStore;
use latchkey::store::KeyStore;
use latchkey::verifications::VerificationStore;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::LocalApi;

/// `count` listening sockets on `addr` (port 0: one free port, the same for all). Linux lets
/// only sockets of the same user share the port.
pub async fn bind(addr: &str, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut addr: SocketAddr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr} names no address")))?;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        addr = listener.local_addr()?;
        listeners.push(listener.into_std()?);
    }
    Ok(listeners)
}

/// Serves `api` on each listener from a thread of its own (a current-thread runtime) until
/// `shutdown`, then lets each finish its requests in flight ([`crate::serve`]'s graceful shutdown).
pub async fn serve<S, R>(
    listeners: Vec<std::net::TcpListener>,
    api: Arc<LocalApi<S, R>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()>
where
    S: KeyStore + GatewaySlots + AuditLog + latchkey::credits::CreditStore + DatasourceStore + 'static,
    R: RecordStore + VerificationStore + 'static,
{
    let (stop, stopped) = watch::channel(false);
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let count = listeners.len();
    for (n, listener) in listeners.into_iter().enumerate() {
        let (api, mut stopped, done) = (api.clone(), stopped.clone(), done.clone());
        std::thread::Builder::new().name(format!("latchkey-serve-{n}")).spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread().enable_all().build().and_then(|runtime| {
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    crate::serve(listener, api, async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await
                })
            });
            let _ = done.send(served);
        })?;
    }
    drop(done);
    // A thread ends before the shutdown only on an error (or a panic: its sender dropped unsent).
    let early = tokio::select! {
        () = shutdown => None,
        early = finished.recv() => Some(early),
    };
    let _ = stop.send(true);
    let mut ended = 0;
    if let Some(early) = early {
        early.unwrap_or_else(|| Err(std::io::Error::other("a serving thread panicked")))?;
        ended += 1;
    }
    while let Some(served) = finished.recv().await {
        served?;
        ended += 1;
    }
    if ended < count {
        return Err(std::io::Error::other("a serving thread panicked"));
    }
    Ok(())
}
