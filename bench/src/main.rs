//! imbox-bench, the load generator: drives imboxd (WebSocket over TLS, QUIC)
//! and MQTT brokers with the same load shapes, side by side on one machine,
//! and turns the results into the tables and plot of docs/BENCHMARKS.md.
//!
//! # Layout
//!
//! - [`cli`]: the command line (a contract with bench/run.sh).
//! - [`systems`]: the systems under load behind one interface:
//!   [`systems::imbox`] (protocol frames over `wss://` or `quic://`) and
//!   [`systems::mqtt`] (MQTT 3.1.1 with rumqttc's codec over `mqtts://`).
//! - [`scenarios`]: `provision`, `idle`, `chat`, `storm`, `startup`,
//!   `transfer`, `phone`.
//! - [`relay`]: a counting, delaying UDP relay (the `phone` scenario's).
//! - [`transfer`]: one big file up and down over imboxd's HTTPS (tus) and
//!   QUIC transfer streams, and nginx's HTTPS.
//! - [`net`]: source addresses, TCP and TLS set up the same for every system,
//!   QUIC endpoints.
//! - [`schedule`]: the open-loop send schedule and random choices.
//! - [`payload`]: what a message's text says about itself (send time, step).
//! - [`latency`]: HDR histograms and their percentiles.
//! - [`results`]: the JSON result files; [`report`] and [`plot`] read them.
//! - [`machine`], [`memory`], [`cpu`], [`openfiles`], [`clock`], [`progress`]:
//!   the machine's description, a server's resident memory, CPU time used,
//!   the open-files limit, the process clock, progress bars.

mod cli;
mod clock;
mod cpu;
mod diskio;
mod latency;
mod machine;
mod memory;
mod net;
mod openfiles;
mod payload;
mod plot;
mod progress;
mod relay;
mod report;
mod results;
mod scenarios;
mod schedule;
mod systems;
mod transfer;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in run.sh's log files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();

    if let Command::Report(args) = cli.command {
        return report::run(args);
    }
    match openfiles::raise() {
        Ok(limit) => tracing::debug!(limit, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Provision(args) => scenarios::provision::run(args).await,
            Command::Idle(args) => scenarios::idle::run(args).await,
            Command::Chat(args) => scenarios::chat::run(args).await,
            Command::Storm(args) => scenarios::storm::run(args).await,
            Command::Startup(args) => scenarios::startup::run(args).await,
            Command::Phone(args) => scenarios::phone::run(args).await,
            Command::Transfer(args) => scenarios::transfer::run(args).await,
            Command::Report(args) => report::run(args),
        }
    })
}
