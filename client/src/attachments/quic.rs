//! Transfers on QUIC streams of their own, beside the session stream on
//! the same connection (`imbox_protocol::transfer` is the specification):
//! one length-prefixed header each way, then the bytes.

use std::time::Duration;

use bytes::Bytes;
use imbox_protocol::transfer::{TransferRequest, TransferResponse, MAX_TRANSFER_HEADER};
use imbox_protocol::{ErrorBody, ErrorCode};
use tokio::io::AsyncWrite;

use super::{pending, transfer_error, Attempt, DownloadSink, Progress, UploadRun};
use crate::client::Client;
use crate::error::ClientError;
use crate::transport::describe_connection_error;

/// The most bytes taken from the stream at once while downloading.
const READ_CHUNK: usize = 256 * 1024;

/// One transfer stream. Dropped before it is finished (an upload
/// interrupted, its future dropped), it is reset, so that the box discards
/// the rest instead of taking a short content as complete: quinn would
/// otherwise finish a dropped stream.
struct TransferStream {
    send: Option<quinn::SendStream>,
    recv: quinn::RecvStream,
    timeout: Duration,
}

impl Drop for TransferStream {
    fn drop(&mut self) {
        if let Some(send) = &mut self.send {
            let _ = send.reset(0u32.into());
        }
    }
}

impl TransferStream {
    /// Opens a stream on the session's connection, once its handshake is
    /// confirmed: a transfer carries the device token and must never go out
    /// as 0-RTT early data, which an attacker could replay.
    async fn open(client: &mut Client) -> Result<TransferStream, ClientError> {
        let timeout = client.options().connect.request_timeout;
        let conn = client.connection().await?;
        conn.zero_rtt_settled().await;
        let Some(quic) = conn.quic_connection().cloned() else {
            return Err(ClientError::Protocol {
                reason: "a quic:// session without a QUIC connection".into(),
            });
        };
        // Waits while the box's limit of transfer streams is reached.
        let opened = tokio::time::timeout(timeout, quic.open_bi())
            .await
            .map_err(|_| ClientError::Timeout { what: "opening a transfer stream".into(), after: timeout })?;
        let (send, recv) = opened.map_err(|e| lost(&e))?;
        Ok(TransferStream { send: Some(send), recv, timeout })
    }

    async fn write_header(&mut self, request: &TransferRequest) -> Result<(), ClientError> {
        let frame = imbox_protocol::stream::length_prefixed(&request.encode());
        self.write(Bytes::from(frame)).await
    }

    async fn write(&mut self, bytes: Bytes) -> Result<(), ClientError> {
        let Some(send) = &mut self.send else { return Err(closed("the stream is finished")) };
        match tokio::time::timeout(self.timeout, send.write_chunk(bytes)).await {
            Err(_) => Err(ClientError::Timeout { what: "sending to the box".into(), after: self.timeout }),
            Ok(Ok(())) => Ok(()),
            // The box stopped reading: it says why in its answer.
            Ok(Err(quinn::WriteError::Stopped(code))) => match self.read_header(Duration::from_secs(2)).await
            {
                Ok(TransferResponse::Error { error }) => {
                    Err(ClientError::Server { request: "upload", error })
                }
                _ => Err(closed(&format!("the box stopped reading the transfer stream (error {code})"))),
            },
            Ok(Err(quinn::WriteError::ConnectionLost(err))) => Err(lost(&err)),
            Ok(Err(err)) => Err(closed(&err.to_string())),
        }
    }

    /// Ends the sending side: everything written is all there is.
    fn finish(&mut self) {
        if let Some(mut send) = self.send.take() {
            let _ = send.finish();
        }
    }

    /// Reads one length-prefixed header, waiting at most `wait`.
    async fn read_header(&mut self, wait: Duration) -> Result<TransferResponse, ClientError> {
        let read = async {
            let mut length = [0u8; 4];
            self.recv.read_exact(&mut length).await.map_err(read_exact_error)?;
            let length = u32::from_be_bytes(length) as usize;
            if length > MAX_TRANSFER_HEADER {
                return Err(ClientError::Protocol {
                    reason: format!("a transfer header of {length} bytes (at most {MAX_TRANSFER_HEADER})"),
                });
            }
            let mut header = vec![0u8; length];
            self.recv.read_exact(&mut header).await.map_err(read_exact_error)?;
            TransferResponse::decode(&header).map_err(|reason| ClientError::Protocol {
                reason: format!("an unreadable transfer header: {reason}"),
            })
        };
        match tokio::time::timeout(wait, read).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                what: "the box's answer on a transfer stream".into(),
                after: wait,
            }),
        }
    }
}

fn closed(reason: &str) -> ClientError {
    ClientError::ConnectionClosed { reason: reason.to_owned() }
}

fn lost(err: &quinn::ConnectionError) -> ClientError {
    closed(&describe_connection_error(err))
}

fn read_error(err: quinn::ReadError) -> ClientError {
    match err {
        quinn::ReadError::ConnectionLost(err) => lost(&err),
        quinn::ReadError::Reset(code) => closed(&format!("the box reset the transfer stream (error {code})")),
        other => closed(&other.to_string()),
    }
}

fn read_exact_error(err: quinn::ReadExactError) -> ClientError {
    match err {
        quinn::ReadExactError::FinishedEarly(_) => {
            closed("the box ended the transfer stream without an answer")
        }
        quinn::ReadExactError::ReadError(err) => read_error(err),
    }
}

fn unexpected(what: &str, response: &TransferResponse) -> ClientError {
    ClientError::Protocol { reason: format!("the box answered {what} with {response:?}") }
}

impl Client {
    /// One attempt at an upload on a transfer stream.
    pub(super) async fn upload_quic(
        &mut self,
        run: &mut UploadRun,
        progress: &mut (impl FnMut(Progress) + Send),
    ) -> Result<Attempt, ClientError> {
        let key = self.pending_key();
        let size = run.file.size;
        let request = TransferRequest::Upload {
            token: self.profile().token.clone(),
            upload: run.upload.clone(),
            length: size,
            name: run.file.name.clone(),
            media_type: run.file.media_type.clone(),
        };
        let mut stream = TransferStream::open(self).await?;
        let timeout = stream.timeout;
        stream.write_header(&request).await?;
        let answer = stream.read_header(timeout).await;
        let offset = match answer {
            Ok(TransferResponse::Ready { upload, offset }) if offset <= size => {
                if run.upload.as_deref() != Some(upload.as_str()) {
                    pending::save(self.dir(), &key, &run.file, &upload, None);
                    run.upload = Some(upload);
                }
                offset
            }
            Ok(TransferResponse::Stored { upload, attachment, size: stored }) if stored == size => {
                run.upload = Some(upload);
                run.resumed_at.get_or_insert(size);
                return Ok(Attempt::Stored { attachment });
            }
            Ok(TransferResponse::Error { error }) => return self.upload_refused(run, error),
            Ok(other) => return Err(unexpected("an upload", &other)),
            Err(err) => return Err(err),
        };
        let resumed_at = *run.resumed_at.get_or_insert(offset);
        run.hash.catch_up(&run.file, offset).await?;
        progress(Progress { done: offset, total: size, resumed_at });
        let mut reader = run.file.reader_at(offset).await?;
        let mut at = offset;
        while at < size {
            let chunk = run.file.read_chunk(&mut reader, at).await?;
            run.hash.feed(at, &chunk);
            let length = chunk.len() as u64;
            match stream.write(chunk).await {
                Ok(()) => {}
                Err(ClientError::Server { error, .. }) => return self.upload_refused(run, error),
                Err(err) => return Err(err),
            }
            at += length;
            run.sent += length;
            progress(Progress { done: at, total: size, resumed_at });
        }
        stream.finish();
        // The box makes the content durable before it answers.
        match stream.read_header(timeout * 2).await? {
            TransferResponse::Stored { attachment, size: stored, .. } if stored == size => {
                Ok(Attempt::Stored { attachment })
            }
            TransferResponse::Error { error } => self.upload_refused(run, error),
            other => Err(unexpected("the end of an upload", &other)),
        }
    }

    fn upload_refused(&self, run: &UploadRun, error: ErrorBody) -> Result<Attempt, ClientError> {
        match error.code {
            ErrorCode::NotFound if run.upload.is_some() => Ok(Attempt::Forgotten),
            ErrorCode::BadCredentials => Err(self.revoked()),
            _ => Err(transfer_error("upload", error, run.file.size, "")),
        }
    }

    /// One attempt at a download on a transfer stream, from what `sink`
    /// has written so far.
    pub(super) async fn download_quic<W: AsyncWrite + Unpin + Send>(
        &mut self,
        id: &str,
        sink: &mut DownloadSink<'_, W>,
        progress: &mut (impl FnMut(Progress) + Send),
    ) -> Result<(), ClientError> {
        let request = TransferRequest::Download {
            token: self.profile().token.clone(),
            attachment: id.to_owned(),
            offset: sink.written(),
        };
        let mut stream = TransferStream::open(self).await?;
        let timeout = stream.timeout;
        stream.write_header(&request).await?;
        stream.finish();
        match stream.read_header(timeout).await? {
            TransferResponse::Blob { size, media_type, offset } if offset == sink.written() => {
                sink.announce(id, size, &media_type)?;
            }
            TransferResponse::Error { error } if error.code == ErrorCode::BadCredentials => {
                return Err(self.revoked())
            }
            TransferResponse::Error { error } => return Err(transfer_error("download", error, 0, id)),
            other => return Err(unexpected("a download", &other)),
        }
        loop {
            let chunk = tokio::time::timeout(timeout, stream.recv.read_chunk(READ_CHUNK, true))
                .await
                .map_err(|_| ClientError::Timeout { what: "receiving from the box".into(), after: timeout })?
                .map_err(read_error)?;
            match chunk {
                Some(chunk) => sink.write(id, &chunk.bytes, progress).await?,
                None if Some(sink.written()) == sink.total => return Ok(()),
                None => return Err(closed("the box ended the download early")),
            }
        }
    }
}
