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
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::connection;
use super::websocket::WebSocketFrames;
use super::{Kind, ListenerContext};

type Reply = Response<Full<Bytes>>;

/// Accepts connections until shutdown; with `tls`, each one is HTTPS.
pub async fn accept_loop(listener: TcpListener, ctx: Arc<ListenerContext>, tls: Option<TlsAcceptor>) {
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let ctx2 = ctx.clone();
                    match &tls {
                        None => {
                            ctx.tasks.spawn(serve_http(stream, peer, ctx2, false));
                        }
                        Some(acceptor) => {
                            ctx.tasks.spawn(serve_https(acceptor.clone(), stream, peer, ctx2));
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

async fn serve_https(acceptor: TlsAcceptor, stream: TcpStream, peer: SocketAddr, ctx: Arc<ListenerContext>) {
    // The handshake is bounded like the HTTP header read: a peer that opens
    // a connection and says nothing must not hold it.
    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve_http(tls, peer, ctx, true).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves one HTTP connection; `secure` when it came over TLS.
async fn serve_http<IO>(io: IO, peer: SocketAddr, ctx: Arc<ListenerContext>, secure: bool)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shutdown = ctx.shutdown.clone();
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(route(req, peer, ctx, secure).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
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
) -> Reply {
    match (req.method(), req.uri().path()) {
        (&Method::GET, imbox_protocol::WEBSOCKET_PATH) if secure || ctx.web.plain_websocket() => {
            upgrade(req, peer, ctx, secure)
        }
        (&Method::GET, imbox_protocol::WEBSOCKET_PATH) => text(
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            "WebSocket over plain HTTP is turned off on this box (http.plain_websocket = false): connect with wss://\n",
        ),
        (&Method::GET, "/health") => {
            let (status, body) = crate::web::status::health(&ctx.hub.store);
            text(status, "text/plain; charset=utf-8", body)
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
    let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
        tracing::warn!(%peer, "connection limit reached; refusing a WebSocket");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "the box is at its connection limit; retry later\n",
        );
    };
    let task_ctx = ctx.clone();
    ctx.tasks.spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let _open = task_ctx.open.hold(if secure { Kind::Wss } else { Kind::Ws });
                let io = WebSocketFrames::accept(upgraded, task_ctx.max_frame).await;
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
