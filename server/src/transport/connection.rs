//! The connection loop shared by every transport.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use imbox_protocol::{ClientFrame, ErrorBody, ErrorCode, Event, ServerFrame};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{CloseReason, FrameIo, TransportError};
use crate::router::{Push, Signal};
use crate::session::{Deferred, Handled, Hub, Outbound, Session};

/// Frames gathered into one write at most, besides a catch-up page (itself
/// bounded by `limits.max_sync_page`). Bounds how long one write may take
/// and how much a connection buffers at once.
const GATHER_MAX: usize = 64;

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Requests whose answers wait on a commit, at most, before the loop
    /// stops reading (back-pressure instead of an unbounded queue).
    pub max_inflight: usize,
    /// Time allowed from connecting to being authenticated.
    pub handshake_timeout: Duration,
    /// Time one write (a frame, or the frames ready at once, at most
    /// [`GATHER_MAX`] or a catch-up page) may take to leave; a peer that
    /// stops reading would otherwise hold its connection, its place and its
    /// "online" presence for as long as TCP or QUIC keeps retrying.
    pub write_timeout: Duration,
}

async fn next_push(queue: &mut Option<mpsc::Receiver<Push>>) -> Option<Push> {
    match queue {
        Some(q) => q.recv().await,
        None => std::future::pending().await,
    }
}

async fn lagged(signal: &Option<Arc<Signal>>) {
    match signal {
        Some(s) => s.notify.notified().await,
        None => std::future::pending().await,
    }
}

/// What the loop does after a step.
enum Step {
    Continue,
    Close,
}

/// Writes `frames` in one go: fed one by one, flushed once, so that they
/// share TLS records and system calls.
async fn send_all<T: FrameIo>(io: &mut T, limit: Duration, frames: Vec<Outbound>, close: bool) -> Step {
    if let (true, Some(last)) = (close, frames.last().and_then(Outbound::frame)) {
        io.closing(CloseReason::after(last));
    }
    if !frames.is_empty() {
        let write = async {
            for frame in &frames {
                io.feed(frame.encode()).await?;
            }
            io.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Step::Close,
            Err(_) => {
                tracing::info!(after = ?limit, "closing a connection whose peer stopped reading");
                return Step::Close;
            }
        }
    }
    if close {
        Step::Close
    } else {
        Step::Continue
    }
}

/// Adds to `frames` what is ready without waiting, up to [`GATHER_MAX`]:
/// answers whose commits are done, then pushes already queued. One commit
/// wakes a session with several of either (a busy group's batch holds many
/// of its messages), and they leave in one write. Returns whether the
/// session must close after them.
fn gather(
    session: &mut Session,
    inflight: &mut FuturesUnordered<Deferred>,
    queue: &mut Option<mpsc::Receiver<Push>>,
    frames: &mut Vec<Outbound>,
) -> bool {
    while frames.len() < GATHER_MAX {
        // Polled again by the loop's `select!` before it sleeps, which
        // registers the task's waker anew: polling here without it loses
        // no wake-up.
        if !inflight.is_empty() {
            if let Some(Some(frame)) = inflight.next().now_or_never() {
                frames.push(frame.into());
                continue;
            }
        }
        let Some(push) = queue.as_mut().and_then(|q| q.try_recv().ok()) else { break };
        let (more, close) = session.on_push(push);
        frames.extend(more);
        if close {
            return true;
        }
    }
    false
}

/// Serves one connection until either side closes it or `shutdown` fires.
pub async fn serve<T: FrameIo>(
    hub: Arc<Hub>,
    mut io: T,
    peer: IpAddr,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let mut session = Session::new(hub, peer);
    let mut inflight = FuturesUnordered::new();
    let mut queue = None;
    let mut signal = None;
    let handshake = tokio::time::sleep(limits.handshake_timeout);
    tokio::pin!(handshake);
    loop {
        let step = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                let event = ServerFrame::Event {
                    event: Event::GoingAway { reason: "the server is shutting down; reconnect shortly".into() },
                };
                // Writes already queued are committed before the store stops;
                // give their answers a moment so that clients need not retry.
                let mut frames = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(frame) = inflight.next().await {
                        frames.push(frame);
                    }
                })
                .await;
                frames.push(event);
                let frames = frames.into_iter().map(Outbound::from).collect();
                send_all(&mut io, limits.write_timeout, frames, true).await
            }
            Some(frame) = inflight.next(), if !inflight.is_empty() => {
                let mut frames = vec![frame.into()];
                let close = gather(&mut session, &mut inflight, &mut queue, &mut frames);
                send_all(&mut io, limits.write_timeout, frames, close).await
            }
            push = next_push(&mut queue) => match push {
                Some(push) => {
                    let (mut frames, mut close) = session.on_push(push);
                    if !close {
                        close = gather(&mut session, &mut inflight, &mut queue, &mut frames);
                    }
                    send_all(&mut io, limits.write_timeout, frames, close).await
                }
                None => Step::Close,
            },
            () = &mut handshake, if !session.is_authenticated() => {
                let frame = ServerFrame::Err {
                    id: 0,
                    error: ErrorBody::new(ErrorCode::NotAuthenticated, "no authentication in time; closing"),
                };
                send_all(&mut io, limits.write_timeout, vec![frame.into()], true).await
            }
            received = io.recv(), if inflight.len() < limits.max_inflight => match received {
                Ok(Some(bytes)) => match ClientFrame::decode(&bytes) {
                    Ok(frame) => {
                        session.set_early_data(io.in_early_data());
                        let handled = session.handle(frame).await;
                        if let Some(inbox) = session.take_inbox() {
                            queue = Some(inbox.queue);
                            signal = Some(inbox.signal);
                        }
                        match handled {
                            Handled::Reply(frame) => {
                                let mut frames = vec![frame.into()];
                                let close = gather(&mut session, &mut inflight, &mut queue, &mut frames);
                                send_all(&mut io, limits.write_timeout, frames, close).await
                            }
                            Handled::Later(future) => {
                                inflight.push(future);
                                Step::Continue
                            }
                            Handled::Close(frame) => send_all(&mut io, limits.write_timeout, vec![frame.into()], true).await,
                        }
                    }
                    Err(e) => {
                        let (frame, close) = e.to_frame();
                        if close {
                            tracing::info!(%peer, error = %e, "closing a connection that sent a malformed frame");
                        }
                        send_all(&mut io, limits.write_timeout, vec![frame.into()], close).await
                    }
                },
                Ok(None) => Step::Close,
                Err(TransportError::TooLarge { size, limit }) => {
                    tracing::info!(%peer, size, limit, "closing a connection that sent an oversize frame");
                    let frame = ServerFrame::Err {
                        id: 0,
                        error: ErrorBody::new(
                            ErrorCode::FrameTooLarge,
                            format!("a frame of {size} bytes exceeds the limit of {limit}; closing"),
                        ),
                    };
                    send_all(&mut io, limits.write_timeout, vec![frame.into()], true).await
                }
                Err(TransportError::NotAFrame(what)) => {
                    let frame = ServerFrame::Err {
                        id: 0,
                        error: ErrorBody::new(ErrorCode::BadFrame, format!("{what}; closing")),
                    };
                    send_all(&mut io, limits.write_timeout, vec![frame.into()], true).await
                }
                Err(TransportError::NoPong(after)) => {
                    tracing::info!(%peer, ?after, "closing a connection whose peer stopped answering pings");
                    Step::Close
                }
                Err(TransportError::Io(e)) => {
                    tracing::debug!(%peer, error = %e, "connection failed");
                    Step::Close
                }
            },
            // Below the socket: catch-up raises the signal again while pages
            // remain, and the client's requests (an ack, a send) must not wait
            // for the whole backlog.
            () = lagged(&signal) => {
                if signal.as_ref().is_some_and(|s| s.take_lagged()) {
                    let (frames, close) = session.catch_up();
                    send_all(&mut io, limits.write_timeout, frames, close).await
                } else {
                    Step::Continue
                }
            }
        };
        if let Step::Close = step {
            break;
        }
    }
    // A polite close writes too (a WebSocket close frame): bounded the same
    // way, so that a peer that stopped reading cannot hold the connection.
    let _ = tokio::time::timeout(limits.write_timeout, io.close()).await;
}
