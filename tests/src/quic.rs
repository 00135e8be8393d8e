//! A bare QUIC client for tests that must control what goes on the wire
//! (0-RTT timing, rebinding, silence), independent of the client library.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use imbox_protocol::stream::{length_prefixed, FrameBuffer};
use imbox_protocol::{ClientFrame, Request, ServerFrame};
use quinn::{Endpoint, RecvStream, SendStream};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// A quinn client endpoint that trusts the box certificate in `data_dir`
/// (its names are imbox.local and imbox), with 0-RTT enabled and session
/// tickets kept for the endpoint's life.
pub fn endpoint(data_dir: &Path, keep_alive: Option<Duration>) -> Endpoint {
    let pem = std::fs::read(data_dir.join("identity.crt")).unwrap();
    let cert = CertificateDer::from_pem_slice(&pem).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![imbox_protocol::QUIC_ALPN.to_vec()];
    tls.enable_early_data = true;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(keep_alive);
    config.transport_config(Arc::new(transport));
    let mut endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint
}

/// The session stream of a bare connection.
#[derive(Debug)]
pub struct Stream {
    pub send: SendStream,
    pub recv: RecvStream,
    buffer: FrameBuffer,
    next_id: u32,
    /// Answers that arrived while another was awaited (answers to requests
    /// that wait for a commit may overtake one another).
    early: Vec<ServerFrame>,
}

impl Stream {
    pub fn new(send: SendStream, recv: RecvStream) -> Stream {
        Stream { send, recv, buffer: FrameBuffer::new(1 << 20), next_id: 1, early: Vec::new() }
    }

    /// Writes a request; returns its id.
    pub async fn write(&mut self, req: Request) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.send.write_all(&length_prefixed(&ClientFrame { id, req }.encode())).await.unwrap();
        id
    }

    /// The next frame from the server, or `None` when the stream ends.
    pub async fn read(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some(frame) = self.buffer.next_frame().unwrap() {
                return Some(ServerFrame::decode(&frame).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.recv.read_chunk(usize::MAX, true))
                .await
                .expect("no frame within 10 s");
            match chunk {
                Ok(Some(chunk)) => self.buffer.extend(&chunk.bytes),
                _ => return None,
            }
        }
    }

    /// The answer to request `id`, skipping events.
    pub async fn answer(&mut self, id: u32) -> ServerFrame {
        let answers = |f: &ServerFrame| matches!(f, ServerFrame::Ok { id: got, .. } | ServerFrame::Err { id: got, .. } if *got == id);
        if let Some(i) = self.early.iter().position(answers) {
            return self.early.remove(i);
        }
        loop {
            match self.read().await.expect("the stream ended") {
                frame if answers(&frame) => return frame,
                frame @ (ServerFrame::Ok { .. } | ServerFrame::Err { .. }) => self.early.push(frame),
                ServerFrame::Event { .. } => continue,
            }
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn call(&mut self, req: Request) -> ServerFrame {
        let id = self.write(req).await;
        self.answer(id).await
    }
}

/// A UDP relay that delays every datagram from the server to the client by
/// `delay`: a link with a long downstream latency. With it, everything a
/// client sends in its first flight (0-RTT data included) reaches the server
/// well before the client can complete the handshake.
pub async fn slow_relay(server: SocketAddr, delay: Duration) -> SocketAddr {
    let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(server).await.unwrap();
    let addr = front.local_addr().unwrap();
    let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
    let (f, b, c) = (front.clone(), back.clone(), client.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = f.recv_from(&mut buf).await {
            *c.lock().unwrap() = Some(from);
            let _ = b.send(&buf[..n]).await;
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf).await {
            let datagram = buf[..n].to_vec();
            let (front, client) = (front.clone(), *client.lock().unwrap());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(client) = client {
                    let _ = front.send_to(&datagram, client).await;
                }
            });
        }
    });
    addr
}
