//! The HTTP server loop (hyper under the axum router): a cap on open connections, a header
//! read timeout (which also ends idle keep-alive connections), and a graceful shutdown that
//! loses nothing a client already sent.
//!
//! Shutdown, from the signal on: `/healthz` reports `draining` for [`ServerSettings::drain`]
//! while everything is still served; then the listener stops, after taking every connection
//! the operating system had already queued; each connection finishes the requests it has
//! (a connection whose first request is still on the wire gets it served) and closes; open
//! subscriptions complete. At the end of [`ServerSettings::grace`] requests still running are
//! answered with a 503 envelope, and the process exits.

mod client_addr;
mod guard;
mod rate;
mod shutdown;

pub use client_addr::{ClientAddr, TrustedProxies, parse_net};
pub use guard::{Door, Guard, MAX_HEADER_BYTES, guard, record};
pub use rate::RateLimits;
pub use shutdown::{Phase, Shutdown};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};

/// Largest request head the HTTP parser buffers; a larger one is refused with a bare 431.
pub const MAX_HEAD_BUFFER: usize = 64 * 1024;

/// Connections refused at the cap that are still being answered at one time; beyond this a
/// refused connection is closed without an answer.
const MAX_REFUSING: usize = 256;

/// Lets a handler end the connection its request came on (an event-stream client that
/// stopped reading: nothing else would free it).
#[derive(Clone, Debug, Default)]
pub struct ConnectionCloser(Arc<Notify>);

impl ConnectionCloser {
    /// Closes the connection at once.
    pub fn close(&self) {
        self.0.notify_one();
    }

    async fn closed(&self) {
        self.0.notified().await;
    }
}

/// A connection's place under `--max-connections`, in every request's extensions: an
/// upgraded WebSocket keeps it after hyper lets go of the connection, so sockets count
/// against the cap for as long as they are open.
#[derive(Clone, Debug)]
pub struct ConnectionPermit {
    _held: Arc<OwnedSemaphorePermit>,
}

/// How the server treats connections.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Most connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and the longest a keep-alive
    /// connection stays idle; zero for no limit.
    pub header_timeout: Duration,
    /// Time `/healthz` reports `draining` before the listener stops.
    pub drain: Duration,
    /// Time from the signal to the exit.
    pub grace: Duration,
    /// The body of the 503 a connection over the cap gets (JSON, before any request is
    /// read, so in the shape most clients read).
    pub over_cap_body: fn() -> Vec<u8>,
    /// The load balancers whose forwarding headers name the client ([`ClientAddr`]).
    pub trusted_proxies: TrustedProxies,
}

/// Serves `router` on `listener` until `stop` completes, then shuts down as the module
/// describes, moving `shutdown` through its phases.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    shutdown: Shutdown,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let settings = Arc::new(settings);
    let open = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    // Every connection task holds a sender: the channel closes when the last one ends.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let start = |stream: TcpStream, peer: SocketAddr| match open.clone().try_acquire_owned() {
        Ok(permit) => {
            tokio::spawn(connection(
                stream,
                peer,
                router.clone(),
                settings.clone(),
                shutdown.clone(),
                permit,
                alive.clone(),
            ));
        }
        Err(_) => {
            tracing::warn!(%peer, max = settings.max_connections, "connection cap reached");
            if let Ok(permit) = refusing.clone().try_acquire_owned() {
                tokio::spawn(refuse_connection(
                    stream,
                    permit,
                    (settings.over_cap_body)(),
                ));
            }
        }
    };

    tokio::pin!(stop);
    let mut signalled = None;
    loop {
        let drain_over = async {
            match signalled {
                Some(at) => sleep_until(at + settings.drain).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut stop, if signalled.is_none() => {
                tracing::info!(drain_ms = settings.drain.as_millis() as u64, grace_ms = settings.grace.as_millis() as u64, "shutting down: draining");
                shutdown.enter(Phase::Draining);
                signalled = Some(Instant::now());
                if settings.drain.is_zero() {
                    break;
                }
            }
            () = drain_over => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => start(stream, peer),
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    let signalled = signalled.unwrap_or_else(Instant::now);

    // Take what the operating system has already accepted for us, then close the listener.
    let listener = listener.into_std()?;
    let mut queued = 0;
    while let Ok((stream, peer)) = listener.accept() {
        if stream.set_nonblocking(true).is_ok()
            && let Ok(stream) = TcpStream::from_std(stream)
        {
            queued += 1;
            start(stream, peer);
        }
    }
    drop(listener);
    tracing::info!(queued, "stopped accepting; finishing what was accepted");
    shutdown.enter(Phase::Closing);

    drop(alive);
    let flush = (settings.grace / 4).min(Duration::from_secs(1));
    let deadline = signalled + settings.grace.saturating_sub(flush);
    if timeout(
        deadline.saturating_duration_since(Instant::now()),
        all_closed.recv(),
    )
    .await
    .is_err()
    {
        tracing::warn!("grace period over: answering requests still running with 503");
        shutdown.enter(Phase::Deadline);
        let _ = timeout(flush, all_closed.recv()).await;
    }
    Ok(())
}

/// Serves one connection until it closes, or until shutdown lets it finish what it has.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    settings: Arc<ServerSettings>,
    shutdown: Shutdown,
    permit: OwnedSemaphorePermit,
    _alive: mpsc::Sender<()>,
) {
    let _ = stream.set_nodelay(true);
    let permit = ConnectionPermit {
        _held: Arc::new(permit),
    };
    let closer = ConnectionCloser::default();
    let (started, mut first_request) = watch::channel(false);
    let handle = closer.clone();
    let trusted = settings.trusted_proxies.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        started.send_replace(true);
        let mut request = request.map(Body::new);
        let client = trusted.client(peer, request.headers());
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(client);
        request.extensions_mut().insert(permit.clone());
        request.extensions_mut().insert(handle.clone());
        tower::ServiceExt::oneshot(router.clone(), request)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .max_buf_size(MAX_HEAD_BUFFER);
    if !settings.header_timeout.is_zero() {
        builder.header_read_timeout(settings.header_timeout);
    }
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return finished(result, peer),
        () = closer.closed() => {
            tracing::debug!(%peer, "connection closed by its handler");
            return;
        }
        () = shutdown.reached(Phase::Closing) => {}
    }
    // Accepted but nothing read yet: its first request may be on the wire. It is served
    // (the header timeout ends a connection that never sends one).
    if !*first_request.borrow() {
        tokio::select! {
            result = conn.as_mut() => return finished(result, peer),
            _ = first_request.wait_for(|s| *s) => {}
        }
    }
    conn.as_mut().graceful_shutdown();
    finished(conn.await, peer);
}

fn finished(result: Result<(), hyper::Error>, peer: SocketAddr) {
    if let Err(e) = result {
        // Header timeouts, resets and malformed requests: the client's doing.
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

/// Answers a connection over the cap with a 503 envelope and closes it, reading what the
/// client sent first so the close does not reset the answer away.
async fn refuse_connection(mut stream: TcpStream, _permit: OwnedSemaphorePermit, body: Vec<u8>) {
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = timeout(Duration::from_secs(2), async {
        let mut buf = [0u8; 4096];
        let _ = timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await?;
        while stream.read(&mut buf).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
