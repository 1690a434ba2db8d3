//! The server's accept loop, bounded against slow and idle clients: hyper's header-read
//! timer, a cap on open connections, and a drain on shutdown that has an end.
//!
//! hyper starts the header-read timer when a connection opens and again whenever a
//! keep-alive connection goes idle after an answer: one timeout closes both a client that
//! trickles its request head (slowloris) and one that holds an idle connection open.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// How connections are bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request head must arrive within this, and an idle keep-alive connection is closed
    /// after it.
    pub header_read_timeout: Duration,
    /// Connections open at once; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// The most a request head may take: a larger one is answered 431 with `{"error": ...}`
    /// by the router, and one over twice this is refused by hyper itself (431, no body)
    /// before it is read in full.
    pub max_header_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and
/// waits for open connections to finish their requests, up to the drain timeout.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size((2 * limits.max_header_bytes).max(8192));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE, ECONNABORTED...: the listener is fine; wait a little and go on.
                warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!("connection closed: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => info!("Stopped serving: every in-flight request was answered"),
        () = tokio::time::sleep(limits.drain_timeout) => warn!(
            "Stopped serving: requests still in flight after {:?} (--shutdown_drain_timeout_ms) were cut",
            limits.drain_timeout
        ),
    }
}
