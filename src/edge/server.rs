//! The accept loop: HTTP/1.1 (keep-alive) and h2c on one listener, graceful shutdown.
//!
//! In: a bound listener, a cancellation token and a handler. Out: nothing until the token is
//! cancelled; then it stops accepting, lets in-flight requests finish (up to a grace
//! period) and returns. Knows nothing of caching.
//!
//! A plain connection is a [`ZeroCopyIo`]; with [`ZeroCopy::Enabled`], each HTTP/1.x request
//! carries the connection's [`FileSender`] in its extensions (HTTP/2 requests never do). On
//! a [`Transport::Tls`] listener each connection first completes a TLS handshake
//! ([`crate::edge::tls`]), then is served the same way, without zero-copy sends.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::edge::body::Body;
use crate::edge::zero_copy::{FileSender, ZeroCopyIo};

/// Whether HTTP/1.x requests get a [`FileSender`] for zero-copy bodies.
#[derive(Clone)]
pub enum ZeroCopy {
    Disabled,
    /// Counting the bytes sent with `sendfile` into this counter.
    Enabled(Arc<AtomicU64>),
}

/// What a listener's connections carry.
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP (HTTP/1.x and h2c).
    Plain(ZeroCopy),
    /// HTTPS: a TLS handshake first, then HTTP/1.x or h2.
    Tls(TlsAcceptor),
}

impl From<ZeroCopy> for Transport {
    fn from(zero_copy: ZeroCopy) -> Transport {
        Transport::Plain(zero_copy)
    }
}

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may take to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long in-flight connections get to finish after shutdown starts.
pub const GRACE: Duration = Duration::from_secs(10);

/// Serves `listener` until `shutdown` is cancelled.
pub async fn serve<H, F>(
    listener: TcpListener,
    shutdown: CancellationToken,
    transport: impl Into<Transport>,
    handler: H,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let transport = transport.into();
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its request head is dropped (slowloris). A client that
    // shuts down its write side after the request (`nc -N`, scripts) still gets the
    // response, as from nginx; hyper's default would drop it at the read EOF.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .half_close(true);
    builder.http2().timer(TokioTimer::new());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        // Each request is handed to `handler`, HTTP/1.x ones with the connection's sender.
        let service = move |sender: Option<FileSender>| {
            service_fn(move |mut req: Request<Incoming>| {
                let handler = handler.clone();
                if let Some(sender) = &sender
                    && req.version() < Version::HTTP_2
                {
                    req.extensions_mut().insert::<FileSender>(sender.clone());
                }
                async move { Ok::<_, Infallible>(handler(req, peer).await) }
            })
        };
        match &transport {
            Transport::Plain(zero_copy) => {
                let (io, sender) = match zero_copy {
                    ZeroCopy::Enabled(counter) => {
                        let io = ZeroCopyIo::new(stream, counter.clone());
                        let sender = io.sender();
                        (io, sender)
                    }
                    ZeroCopy::Disabled => (ZeroCopyIo::new(stream, Arc::default()), None),
                };
                let connection = builder
                    .serve_connection(TokioIo::new(io), service(sender))
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
            Transport::Tls(acceptor) => {
                let (acceptor, builder, watcher) =
                    (acceptor.clone(), builder.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder
                        .serve_connection(TokioIo::new(tls), service(None))
                        .into_owned();
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {GRACE:?}; closing them");
    }
}
