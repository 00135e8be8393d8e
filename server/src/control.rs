//! The control socket: a Unix socket inside the data directory through which
//! `imboxd user …` and `imboxd invite …` reach the running daemon. Only the
//! daemon's user can open it (the socket is 0600 inside a 0700 directory).
//!
//! One JSON request line in, one JSON reply line out, then the connection
//! closes.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminContext, AdminError, AdminReply, AdminRequest};

/// The longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No daemon is listening: the caller may open the store itself.
    #[error("imboxd is not running")]
    NotRunning,
    /// The socket exists but could not be used.
    #[error("the control socket failed: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon's answer could not be read.
    #[error("the daemon sent an unreadable answer: {0}")]
    Garbled(String),
    /// The daemon refused or failed the request.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

/// Binds the control socket and serves it until shutdown.
pub fn listen(
    path: &Path,
    context: Arc<AdminContext>,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> std::io::Result<()> {
    // A socket file left by a daemon that died is in the way; one that
    // answers belongs to a live daemon, which must not be hijacked.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                ErrorKind::AddrInUse,
                "another imboxd is running with this data directory",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let inner = tasks.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let context = context.clone();
                        inner.spawn(async move {
                            if let Err(e) = serve(stream, &context).await {
                                tracing::warn!(error = %e, "control request failed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        }
    });
    Ok(())
}

async fn serve(stream: UnixStream, context: &AdminContext) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST)).read_line(&mut line).await?;
    let reply: Result<AdminReply, AdminError> = match serde_json::from_str::<AdminRequest>(&line) {
        Ok(request) => {
            let what = format!("{request:?}").split_whitespace().next().unwrap_or("").to_owned();
            tracing::info!(request = %what, "control request");
            admin::execute(context, request).await
        }
        Err(e) => Err(AdminError::Refused(format!("unreadable control request: {e}"))),
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Sends one request to the running daemon.
pub async fn request(path: &Path, request: &AdminRequest) -> Result<AdminReply, ControlError> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Err(ControlError::NotRunning)
        }
        Err(e) => return Err(e.into()),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(|e| ControlError::Garbled(e.to_string()))?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.shutdown().await?;
    let mut answer = String::new();
    BufReader::new(read.take(16 * 1024 * 1024)).read_line(&mut answer).await?;
    let reply: Result<AdminReply, AdminError> =
        serde_json::from_str(&answer).map_err(|e| ControlError::Garbled(e.to_string()))?;
    Ok(reply?)
}
