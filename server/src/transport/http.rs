//! imboxd's HTTP listener (hyper): the WebSocket endpoint and a health check
//! here; every other path (pages, API, metrics) goes to [`crate::web`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderValue, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::connection;
use super::websocket::WebSocketFrames;
use super::{Kind, ListenerContext};

type Reply = Response<Full<Bytes>>;

/// Idle time before TCP keep-alive probes start on an accepted socket, and
/// the time between probes; after the kernel's count of unanswered probes
/// (Linux: 9) it drops the connection. A backstop for a peer that vanished at any stage: the
/// request timeout and WebSocket pings (`http.ping_interval_ms`, 5 minutes)
/// come first, so on a healthy idle WebSocket these probes are never sent.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(600);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);

/// Connections beyond `max_connections` that are still told so with a 503
/// over plain HTTP, at once; past these they are dropped without a word.
const REFUSALS: usize = 64;

/// Accepts connections until shutdown; with `tls`, each one is HTTPS.
///
/// Every accepted connection takes its place under `max_connections` (the
/// semaphore shared with QUIC) before its TLS handshake, and keeps it through
/// its request head and body and any WebSocket it becomes: a connection
/// stalled at any stage counts.
pub async fn accept_loop(listener: TcpListener, ctx: Arc<ListenerContext>, tls: Option<TlsAcceptor>) {
    let refusals = Arc::new(Semaphore::new(REFUSALS));
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let keepalive = TcpKeepalive::new()
                        .with_time(KEEPALIVE_IDLE)
                        .with_interval(KEEPALIVE_INTERVAL);
                    if let Err(e) = SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
                        tracing::debug!(%peer, error = %e, "cannot turn on TCP keep-alive");
                    }
                    let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
                        refuse(stream, peer, &ctx, tls.is_none(), &refusals);
                        continue;
                    };
                    let permit = Arc::new(permit);
                    let ctx2 = ctx.clone();
                    match &tls {
                        None => {
                            ctx.tasks.spawn(serve_http(stream, peer, ctx2, false, permit));
                        }
                        Some(acceptor) => {
                            ctx.tasks.spawn(serve_https(acceptor.clone(), stream, peer, ctx2, permit));
                        }
                    }
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of
                    // spinning, and let existing connections finish.
                    tracing::warn!(error = %e, "accept failed; pausing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// A connection beyond `max_connections`. Over plain HTTP it is answered 503
/// (a client then says why it failed instead of "connection reset"), by a
/// connection that reads one request head and closes, within the request
/// timeout; at most [`REFUSALS`] at once. Over TLS it is closed at once:
/// a handshake only to refuse would cost the box more than the client.
fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &ListenerContext,
    plain: bool,
    refusals: &Arc<Semaphore>,
) {
    tracing::warn!(%peer, "connection limit reached; refusing a connection");
    if !plain {
        return;
    }
    let Ok(permit) = refusals.clone().try_acquire_owned() else { return };
    let timeout = ctx.http.request_timeout;
    ctx.tasks.spawn(async move {
        let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
            let mut reply = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "the box is at its connection limit; retry later\n",
            );
            reply.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            Ok::<_, Infallible>(reply)
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeout)
            .keep_alive(false)
            .max_buf_size(16 * 1024)
            .serve_connection(TokioIo::new(stream), service);
        let _ = tokio::time::timeout(timeout, conn).await;
        drop(permit);
    });
}

async fn serve_https(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ListenerContext>,
    permit: Arc<OwnedSemaphorePermit>,
) {
    // The handshake is bounded like the HTTP header read: a peer that opens
    // a connection and says nothing must not hold it.
    match tokio::time::timeout(ctx.http.request_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve_http(tls, peer, ctx, true, permit).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// When the body of the request must have arrived: put in each request's
/// extensions, read by the web handlers that read bodies
/// ([`crate::web::reply::read_json`]). A handler that does not read the body
/// answers at once, and hyper then closes the connection rather than wait
/// for the rest.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub tokio::time::Instant);

/// Serves one HTTP connection; `secure` when it came over TLS. `permit` is
/// its place under `max_connections`, kept by a WebSocket it upgrades to.
async fn serve_http<IO>(
    io: IO,
    peer: SocketAddr,
    ctx: Arc<ListenerContext>,
    secure: bool,
    permit: Arc<OwnedSemaphorePermit>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shutdown = ctx.shutdown.clone();
    let request_timeout = ctx.http.request_timeout;
    let service = service_fn(move |mut req: Request<hyper::body::Incoming>| {
        let ctx = ctx.clone();
        let permit = permit.clone();
        req.extensions_mut().insert(BodyDeadline(tokio::time::Instant::now() + request_timeout));
        async move { Ok::<_, Infallible>(route(req, peer, ctx, secure, permit).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection ended");
            }
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

async fn route(
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
    ctx: Arc<ListenerContext>,
    secure: bool,
    permit: Arc<OwnedSemaphorePermit>,
) -> crate::web::reply::StreamReply {
    use crate::web::reply::boxed;
    match (req.method(), req.uri().path()) {
        (&Method::GET, imbox_protocol::WEBSOCKET_PATH) if secure || ctx.web.plain_websocket() => {
            boxed(upgrade(req, peer, ctx, secure, permit))
        }
        (&Method::GET, imbox_protocol::WEBSOCKET_PATH) => boxed(text(
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            "WebSocket over plain HTTP is turned off on this box (http.plain_websocket = false): connect with wss://\n",
        )),
        (&Method::GET, "/health") => {
            let (status, body) = crate::web::status::health(&ctx.hub.store);
            boxed(text(status, "text/plain; charset=utf-8", body))
        }
        _ => crate::web::handle(&ctx.web, req, peer.ip(), secure).await,
    }
}

fn bad_request(message: &'static str) -> Reply {
    text(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", message)
}

fn header_has(req: &Request<hyper::body::Incoming>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(token))
}

fn upgrade(
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
    ctx: Arc<ListenerContext>,
    secure: bool,
    permit: Arc<OwnedSemaphorePermit>,
) -> Reply {
    if !header_has(&req, UPGRADE, "websocket") || !header_has(&req, CONNECTION, "upgrade") {
        return bad_request("this endpoint speaks WebSocket only: send an Upgrade: websocket request\n");
    }
    if req.headers().get(SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return bad_request("only WebSocket version 13 is supported\n");
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return bad_request("missing Sec-WebSocket-Key\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let task_ctx = ctx.clone();
    ctx.tasks.spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let _open = task_ctx.open.hold(if secure { Kind::Wss } else { Kind::Ws });
                let io = WebSocketFrames::accept(upgraded, task_ctx.max_frame, task_ctx.http.heartbeat).await;
                connection::serve(
                    task_ctx.hub.clone(),
                    io,
                    peer.ip(),
                    task_ctx.limits.clone(),
                    task_ctx.shutdown.clone(),
                )
                .await;
            }
            Err(e) => tracing::debug!(%peer, error = %e, "WebSocket upgrade failed"),
        }
        // The connection's place is given back when both this and the HTTP
        // connection it came from are done.
        drop(permit);
    });
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = reply.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, value);
    }
    reply
}
