//! The HTTP server: poem's endpoint served by hyper, with the connection limits a service on
//! the internet needs and poem's own server does not offer. A client must send a request's
//! head within [`ServerLimits::header_read`] (slowloris), a connection on which nothing moves
//! for [`ServerLimits::idle`] is closed, and at most [`ServerLimits::max_connections`] are
//! served at once (further clients wait in the listen backlog). Slow bodies are the handlers'
//! business (see the upload and `body`).
//!
//! It speaks HTTP/1.1 only. Browsers reach the gateway through a TLS terminator (ingress,
//! load balancer), which talks HTTP/1.1 to its upstream anyway, and API clients gain nothing
//! from multiplexing a few requests. Cleartext HTTP/2 would only add surface that hyper does
//! not bound the way it bounds HTTP/1.1: no deadline for a stream's headers, streams reset in
//! the middle of an upload, and many requests in flight on one connection. A client that
//! speaks HTTP/2 with prior knowledge is refused at its first bytes; `Upgrade: h2c` is ignored.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::{
    Endpoint, EndpointExt, IntoEndpoint, Response,
    endpoint::BoxEndpoint,
    web::{LocalAddr, RemoteAddr},
};
use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::{Instant, Sleep},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// From the first byte of a request (or from connecting) to the end of its head.
    pub header_read: Duration,
    /// No byte read or written for this long closes the connection.
    pub idle: Duration,
    /// How long running requests may go on once shutdown begins.
    pub shutdown_grace: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `endpoint` on `listener` until `shutdown` resolves, then lets the requests in
/// flight finish (up to the grace period) and returns.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    let endpoint = Arc::new(endpoint.into_endpoint().map_to_response().boxed());
    let stopping = CancellationToken::new();
    let connections = TaskTracker::new();
    let room = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // Wait for room before accepting: beyond the cap, clients queue in the backlog.
        let permit = tokio::select! {
            permit = room.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let local = stream.local_addr()?;
        let connection = serve_connection(
            stream,
            (local, remote),
            endpoint.clone(),
            limits,
            stopping.clone(),
        );
        connections.spawn(async move {
            let _permit = permit;
            connection.await;
        });
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the grace period were cut off");
    }
    Ok(())
}

/// One HTTP/1.1 connection, until the client closes it, it idles out, or `stopping` asks it
/// to finish its request in flight and close.
async fn serve_connection(
    stream: TcpStream,
    (local, remote): (SocketAddr, SocketAddr),
    endpoint: Arc<BoxEndpoint<'static, Response>>,
    limits: ServerLimits,
    stopping: CancellationToken,
) {
    let service = hyper::service::service_fn(move |request| {
        let endpoint = endpoint.clone();
        async move {
            let request = poem::Request::from((
                request,
                LocalAddr(local.into()),
                RemoteAddr(remote.into()),
                poem::http::uri::Scheme::HTTP,
            ));
            let response: Response = endpoint.get_response(request).await;
            Ok::<_, Infallible>(hyper::Response::<BoxBody<Bytes, io::Error>>::from(response))
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let io = TokioIo::new(Idle::new(stream, limits.idle));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopping.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// A connection that fails its next read or write once nothing has moved on it for `limit`.
struct Idle {
    stream: TcpStream,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Idle {
    fn new(stream: TcpStream, limit: Duration) -> Self {
        Self {
            stream,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.limit);
    }

    /// Ready with an error once the deadline has passed (and registers the waker otherwise).
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the connection was idle for too long",
        ))
    }
}

impl AsyncRead for Idle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.expired(cx).map(Err),
        }
    }
}

impl AsyncWrite for Idle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, data) {
            Poll::Ready(result) => {
                self.moved();
                Poll::Ready(result)
            }
            Poll::Pending => self.expired(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
