//! The SDK's own tokio runtime. Every async call runs as a task on it, and
//! the foreign language's executor (Kotlin coroutines, Swift concurrency,
//! Python's asyncio) only awaits that task's handle, which needs no tokio
//! context. Connections, their driver tasks and the event listener thus live
//! on one runtime whatever thread the app calls from. Dropping the foreign
//! future (a cancelled coroutine or Swift `Task`) aborts the task.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::error::ImboxError;

/// Two workers: enough for a phone app's requests beside the connection's
/// driver, and no more threads than a phone wants.
const WORKER_THREADS: usize = 2;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

pub(crate) fn runtime() -> Result<&'static Runtime, ImboxError> {
    let built = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("imbox-sdk")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    built.as_ref().map_err(|reason| ImboxError::Io {
        message: format!("cannot start the SDK's threads: {reason}; the device is out of resources"),
    })
}

/// Runs `work` on the SDK's runtime and waits for it.
pub(crate) async fn run<T, F>(work: F) -> Result<T, ImboxError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ImboxError>> + Send + 'static,
{
    let task = AbortOnDrop(runtime()?.spawn(work));
    task.await
}

/// A task handle that aborts the task when dropped, so that a caller that
/// stops waiting also stops the work (the library's waits are cancel-safe).
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> std::fmt::Debug for AbortOnDrop<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AbortOnDrop").finish()
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<Result<T, ImboxError>> {
    type Output = Result<T, ImboxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(result) => result,
            Err(err) if err.is_cancelled() => {
                Err(ImboxError::Closed { message: "the call was cancelled".to_owned() })
            }
            Err(_) => Err(ImboxError::Protocol {
                message: "the SDK failed internally (a bug): report it with the app's log".to_owned(),
            }),
        })
    }
}
