//! `transfer`: one big file uploaded and downloaded over imboxd's HTTPS
//! (tus) and QUIC transfer streams and over nginx's HTTPS, for each cipher
//! offer, a few times. The systems take turns within each repetition, so
//! that whatever else the machine does in the meantime falls on all of them.
//!
//! Each transfer is timed from opening its connection to the server's last
//! answer. The server's CPU time is read from /proc before the transfer and
//! again [`SETTLE`] after it, so that work it does just after answering
//! (imboxd's bookkeeping, say) counts; nginx's workers count with its master.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use imbox_protocol::Fingerprint;

use crate::cli::TransferArgs;
use crate::cpu::{cpu_seconds, tree_cpu_seconds};
use crate::net;
use crate::results::{DirectionFigures, FailureSamples, TransferFigures, TransferRun};
use crate::systems::imbox::TokensFile;
use crate::transfer::https::{Done, HttpsServer, ImboxHttps, Nginx};
use crate::transfer::quic::ImboxQuic;
use crate::transfer::{CipherOffer, Payload};

use super::{Envelope, Subject};

/// How long after a transfer the server's CPU time is read again.
const SETTLE: Duration = Duration::from_millis(500);

const MIB: u64 = 1024 * 1024;

/// One system under measurement, for one cipher offer.
#[derive(Debug)]
struct Contender {
    /// File names: transfer-<cipher>-<slug>.json.
    slug: &'static str,
    label: &'static str,
    system: &'static str,
    transport: &'static str,
    url: String,
    pid: Option<u32>,
    client: Client,
    envelope: Option<Envelope>,
    upload: Vec<TransferRun>,
    download: Vec<TransferRun>,
    /// The TLS 1.3 suites the client offers, in order.
    offered: Vec<String>,
    ciphers: Vec<String>,
    failures: FailureSamples,
}

#[derive(Debug)]
enum Client {
    ImboxHttps(ImboxHttps),
    ImboxQuic(ImboxQuic),
    Nginx(Nginx),
}

impl Contender {
    /// The server's CPU seconds so far (nginx: master and workers).
    fn server_cpu(&self) -> Option<f64> {
        let pid = self.pid?;
        match self.client {
            Client::Nginx(_) => tree_cpu_seconds(pid),
            _ => cpu_seconds(pid),
        }
    }

    async fn upload(&self, payload: &Payload, name: &str) -> anyhow::Result<Done> {
        match &self.client {
            Client::ImboxHttps(c) => c.upload(payload, name).await,
            Client::ImboxQuic(c) => c.upload(payload, name).await,
            Client::Nginx(c) => c.upload(payload, name).await,
        }
    }

    async fn download(&self, payload: &Payload, name: &str) -> anyhow::Result<Done> {
        match &self.client {
            Client::ImboxHttps(c) => c.download(payload).await,
            Client::ImboxQuic(c) => c.download(payload).await,
            Client::Nginx(c) => c.download(payload, name).await,
        }
    }

    /// Keeps the cipher a transfer saw.
    fn saw(&mut self, done: Done) {
        if let Some(cipher) = done.cipher {
            if !self.ciphers.contains(&cipher) {
                self.ciphers.push(cipher);
            }
        }
    }
}

/// Runs one transfer of `bytes` and measures what it cost; `server_cpu`
/// reads the server's CPU seconds so far.
async fn measure(
    server_cpu: impl Fn() -> Option<f64>,
    bytes: u64,
    transfer: impl Future<Output = anyhow::Result<Done>>,
) -> anyhow::Result<(TransferRun, Done)> {
    let server_before = server_cpu();
    let client_before = cpu_seconds(std::process::id());
    let start = Instant::now();
    let done = transfer.await?;
    let seconds = start.elapsed().as_secs_f64();
    let client_cpu = client_before.zip(cpu_seconds(std::process::id())).map(|(a, b)| b - a);
    tokio::time::sleep(SETTLE).await;
    let server_cpu = server_before.zip(server_cpu()).map(|(a, b)| b - a);
    let run = TransferRun {
        bytes,
        seconds,
        mb_per_second: bytes as f64 / 1e6 / seconds.max(1e-9),
        server_cpu_seconds: server_cpu,
        client_cpu_seconds: client_cpu,
    };
    Ok((run, done))
}

pub async fn run(args: TransferArgs) -> anyhow::Result<()> {
    ensure!(args.size_mib > 0, "--size-mib must be at least 1");
    ensure!(args.repetitions > 0, "--repetitions must be at least 1");
    ensure!(
        args.imbox_https.is_some() || args.imbox_quic.is_some() || args.nginx.is_some(),
        "nothing to measure: give --imbox-https, --imbox-quic or --nginx"
    );
    let size = usize::try_from(args.size_mib * MIB).context("--size-mib is too large")?;
    let started = Instant::now();
    let file = Payload::new(size, 0x1b0c_5eed);
    tracing::info!(size_mib = args.size_mib, seconds = started.elapsed().as_secs_f64(), "file made");
    // Contents no earlier run stored: the box keeps each content once.
    let run_stamp = u128::from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    ) << 64;
    let mut stamp = 0u128;
    let mut measured = 0usize;
    let mut failed = 0usize;
    for &offer in &args.ciphers {
        let mut contenders = contenders(&args, offer).await?;
        for contender in &mut contenders {
            contender.envelope = Some(Envelope::start(contender.pid));
        }
        for repetition in 0..args.repetitions {
            for contender in &mut contenders {
                stamp += 1;
                let payload = file.stamp(run_stamp | stamp);
                let name = format!("bench-{}-{repetition}-{stamp}.bin", offer.as_str());
                let uploaded =
                    measure(|| contender.server_cpu(), payload.len(), contender.upload(&payload, &name))
                        .await;
                match uploaded {
                    Ok((run, done)) => {
                        log_run(contender, offer, "upload", &run);
                        contender.saw(done);
                        contender.upload.push(run);
                        measured += 1;
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        tracing::warn!(system = contender.label, cipher = offer.as_str(), error = %e, "upload failed");
                        contender.failures.add(format!("upload: {e}"));
                        failed += 1;
                        continue;
                    }
                }
                let downloaded =
                    measure(|| contender.server_cpu(), payload.len(), contender.download(&payload, &name))
                        .await;
                match downloaded {
                    Ok((run, done)) => {
                        log_run(contender, offer, "download", &run);
                        contender.saw(done);
                        contender.download.push(run);
                        measured += 1;
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        tracing::warn!(system = contender.label, cipher = offer.as_str(), error = %e, "download failed");
                        contender.failures.add(format!("download: {e}"));
                        failed += 1;
                    }
                }
                if let Client::Nginx(nginx) = &contender.client {
                    if let Err(e) = nginx.delete(&name).await {
                        tracing::warn!(error = %format!("{e:#}"), "cannot delete the file from nginx");
                    }
                }
            }
        }
        for contender in contenders {
            if let Client::ImboxQuic(quic) = &contender.client {
                quic.finish().await;
            }
            write_result(contender, &args, offer)?;
        }
    }
    ensure!(measured > 0, "every transfer failed ({failed})");
    if failed > 0 {
        tracing::warn!(failed, measured, "some transfers failed; the result files name them");
    }
    Ok(())
}

fn log_run(contender: &Contender, offer: CipherOffer, direction: &str, run: &TransferRun) {
    let per_gb = |cpu: Option<f64>| cpu.map(|c| c / (run.bytes as f64 / 1e9));
    tracing::info!(
        system = contender.label,
        cipher = offer.as_str(),
        direction,
        mb_per_second = format!("{:.1}", run.mb_per_second),
        server_cpu_seconds_per_gb = ?per_gb(run.server_cpu_seconds).map(|v| (v * 100.0).round() / 100.0),
        "transfer"
    );
}

/// The systems the flags name, with clients offering `offer`.
async fn contenders(args: &TransferArgs, offer: CipherOffer) -> anyhow::Result<Vec<Contender>> {
    let provider = offer.provider();
    let quic_provider = offer.quic_provider();
    let mut out = Vec::new();
    let imbox = if args.imbox_https.is_some() || args.imbox_quic.is_some() {
        let path =
            args.tokens.as_ref().context("--tokens (from `imbox-bench provision`) is required for imboxd")?;
        let tokens = TokensFile::read(path)?;
        let token = tokens.users.first().context("the tokens file holds no token")?.token.clone();
        let pin_text = args.pin.clone().unwrap_or_else(|| tokens.pin.clone());
        let pin: Fingerprint = pin_text.parse().map_err(|e| anyhow::anyhow!("--pin: {e}"))?;
        Some((token, pin))
    } else {
        None
    };
    let contender = |slug, label, system, transport, url: &str, pid, client| Contender {
        slug,
        label,
        system,
        transport,
        url: url.to_owned(),
        pid,
        offered: CipherOffer::offered(if transport == "quic" { &quic_provider } else { &provider }),
        client,
        envelope: None,
        upload: Vec::new(),
        download: Vec::new(),
        ciphers: Vec::new(),
        failures: FailureSamples::default(),
    };
    if let (Some(url), Some((token, pin))) = (&args.imbox_https, &imbox) {
        let tls = net::pinned_tls_with(provider.clone(), *pin, b"http/1.1", false)?;
        let client = ImboxHttps { server: HttpsServer::new(url, tls).await?, token: token.clone() };
        out.push(contender(
            "imbox-https",
            "imbox (HTTPS, tus)",
            "imbox",
            "https",
            url,
            args.imbox_pid,
            Client::ImboxHttps(client),
        ));
    }
    if let (Some(url), Some((token, pin))) = (&args.imbox_quic, &imbox) {
        let tls = net::pinned_tls_with(quic_provider.clone(), *pin, imbox_protocol::QUIC_ALPN, true)?;
        let client = ImboxQuic::new(url, tls, token.clone()).await?;
        out.push(contender(
            "imbox-quic",
            "imbox (QUIC)",
            "imbox",
            "quic",
            url,
            args.imbox_pid,
            Client::ImboxQuic(client),
        ));
    }
    if let Some(url) = &args.nginx {
        let ca = args.nginx_ca.as_ref().context("--nginx-ca is required with --nginx")?;
        let tls = net::ca_file_tls_with(provider.clone(), ca)?;
        let client = Nginx { server: HttpsServer::new(url, tls).await? };
        out.push(contender(
            "nginx",
            "nginx (HTTPS)",
            "nginx",
            "https",
            url,
            args.nginx_pid,
            Client::Nginx(client),
        ));
    }
    Ok(out)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] })
}

fn direction(runs: Vec<TransferRun>) -> DirectionFigures {
    let per_gb = |cpu: Option<f64>, bytes: u64| cpu.map(|c| c / (bytes as f64 / 1e9));
    DirectionFigures {
        mb_per_second_median: median(runs.iter().map(|r| r.mb_per_second).collect()),
        server_cpu_seconds_per_gb_median: median(
            runs.iter().filter_map(|r| per_gb(r.server_cpu_seconds, r.bytes)).collect(),
        ),
        client_cpu_seconds_per_gb_median: median(
            runs.iter().filter_map(|r| per_gb(r.client_cpu_seconds, r.bytes)).collect(),
        ),
        runs,
    }
}

fn write_result(contender: Contender, args: &TransferArgs, offer: CipherOffer) -> anyhow::Result<()> {
    let cipher = match contender.ciphers.as_slice() {
        [] => None,
        seen => Some(seen.join(" / ")),
    };
    let figures = TransferFigures {
        size_bytes: args.size_mib * MIB,
        repetitions: args.repetitions as u64,
        offered_ciphers: contender.offered,
        cipher,
        upload: direction(contender.upload),
        download: direction(contender.download),
        failures: contender.failures.count,
        failure_samples: contender.failures.samples,
    };
    let parameters = serde_json::json!({
        "size_mib": args.size_mib,
        "repetitions": args.repetitions,
        "cipher_offer": offer.as_str(),
    });
    let subject = Subject {
        system: contender.system.to_owned(),
        label: contender.label.to_owned(),
        transport: contender.transport.to_owned(),
        url: Some(contender.url),
    };
    let envelope = contender.envelope.unwrap_or_else(|| Envelope::start(contender.pid));
    let result = envelope.finish(&format!("transfer-{}", offer.as_str()), subject, parameters, &figures)?;
    result.write(&args.out_dir.join(format!("transfer-{}-{}.json", offer.as_str(), contender.slug)))
}
