//! The command line. bench/run.sh drives it; the flags are a contract with
//! that script, so change them only together.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "imbox-bench",
    version,
    about = "Load generator: imboxd (WebSocket over TLS, QUIC) and MQTT brokers under the same load",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create users b0…b{U-1} through imboxd's control socket and log one
    /// device in per user; write their tokens for the scenarios.
    Provision(ProvisionArgs),
    /// Hold N authenticated sessions; report the server's memory per session.
    Idle(IdleArgs),
    /// U users sending messages at stepped rates; report latencies per step
    /// and the highest rate whose delivery p99 stays under 50 ms.
    Chat(ChatArgs),
    /// N devices logging in at once with full handshakes; report logins/s.
    Storm(StormArgs),
    /// imboxd's start-to-ready time and idle memory over a big database.
    Startup(StartupArgs),
    /// One big file up and down: imboxd over HTTPS (tus) and QUIC, nginx
    /// over HTTPS, interleaved; throughput and server CPU per GB.
    Transfer(TransferArgs),
    /// A phone's QUIC session through a counting UDP relay: resume latency
    /// with 0-RTT and with a full handshake, bytes per idle hour with and
    /// without keep-alives.
    Phone(PhoneArgs),
    /// Markdown tables and a latency plot from a directory of results.
    Report(ReportArgs),
}

/// Which kind of server is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SystemKind {
    Imbox,
    Mqtt,
}

/// The system under load and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The kind of server.
    #[arg(long, value_enum)]
    pub system: SystemKind,
    /// imbox: wss://127.0.0.1:8443 or quic://127.0.0.1:8443; mqtt: mqtts://127.0.0.1:PORT.
    #[arg(long)]
    pub url: String,
    /// imbox: the box's key fingerprint (`imboxd identity`).
    #[arg(long)]
    pub pin: Option<String>,
    /// imbox: the tokens file from `provision`; tokens are used round robin.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// mqtt: the broker's certificate or its CA (PEM) to trust.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// mqtt: the user name every session connects with.
    #[arg(long)]
    pub mqtt_user: Option<String>,
    /// mqtt: the password every session connects with.
    #[arg(long)]
    pub mqtt_password: Option<String>,
    /// How reports name the system, e.g. "imbox (QUIC)" or "mosquitto".
    #[arg(long)]
    pub label: Option<String>,
    /// The server's process id, for memory readings (/proc/PID/status).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// How many source addresses (127.0.0.2, 127.0.0.3, …) to connect from
    /// [default: one per 25,000 connections].
    #[arg(long)]
    pub sources: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// imboxd's control socket (DATA_DIR/control.sock).
    #[arg(long)]
    pub control_socket: PathBuf,
    /// How many users (b0 … b{U-1}).
    #[arg(long)]
    pub users: usize,
    /// Their password (at least 8 characters).
    #[arg(long)]
    pub password: String,
    /// Where to write the tokens (JSON).
    #[arg(long)]
    pub tokens_out: PathBuf,
    /// Where the devices log in: wss://… or quic://… (ws:// also works).
    #[arg(long)]
    pub url: String,
    /// The box's key fingerprint (`imboxd identity`).
    #[arg(long)]
    pub pin: Option<String>,
    /// Accounts created, and logins made, at once (each costs the server an
    /// argon2 hash).
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Also write a result file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Sessions to hold open.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Seconds to let the server settle before each memory reading.
    #[arg(long, default_value_t = 5)]
    pub settle_seconds: u64,
    /// The result file (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Users online, one session each (imbox: needs as many tokens).
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Offered rates in messages per second, stepped through in order.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000,10000,20000")]
    pub rates: Vec<u32>,
    /// Seconds per step.
    #[arg(long, default_value_t = 10)]
    pub step_seconds: u64,
    /// Send to groups of this many members instead of to single users.
    #[arg(long)]
    pub group_size: Option<usize>,
    /// The result file (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Devices logging in at once.
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// The result file (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct StartupArgs {
    /// The imboxd binary to start.
    #[arg(long)]
    pub imboxd: PathBuf,
    /// Messages the database should hold (seeded when it holds fewer).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// The data directory, kept between runs so that seeding happens once.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// How many times to start imboxd.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// imboxd's HTTP address (WebSocket ws://…/ws) [default: a free port on 127.0.0.1].
    #[arg(long)]
    pub listen: Option<String>,
    /// imboxd's HTTPS and QUIC address [default: a free port on 127.0.0.1].
    #[arg(long)]
    pub tls_listen: Option<String>,
    /// How reports name the system.
    #[arg(long)]
    pub label: Option<String>,
    /// The result file (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// imboxd's HTTPS address (tus uploads, downloads): https://127.0.0.1:8443.
    #[arg(long)]
    pub imbox_https: Option<String>,
    /// imboxd's QUIC address (transfer streams): quic://127.0.0.1:8443.
    #[arg(long)]
    pub imbox_quic: Option<String>,
    /// imboxd: the box's key fingerprint (`imboxd identity`) [default: the tokens file's].
    #[arg(long)]
    pub pin: Option<String>,
    /// imboxd: the tokens file from `provision`; the first token is used.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// imboxd's process id, for its CPU time.
    #[arg(long)]
    pub imbox_pid: Option<u32>,
    /// nginx's WebDAV directory: https://127.0.0.1:18443/upload/.
    #[arg(long)]
    pub nginx: Option<String>,
    /// nginx: its certificate or CA (PEM) to trust.
    #[arg(long)]
    pub nginx_ca: Option<PathBuf>,
    /// nginx's master process id; its workers' CPU time counts too.
    #[arg(long)]
    pub nginx_pid: Option<u32>,
    /// The file's size in MiB.
    #[arg(long, default_value_t = 256)]
    pub size_mib: u64,
    /// Uploads and downloads per system and cipher offer; the medians are reported.
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
    /// The cipher offers to run, each a result file per system.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "aes-first,chacha20")]
    pub ciphers: Vec<crate::transfer::CipherOffer>,
    /// Where to write the result files (transfer-<cipher>-<system>.json).
    #[arg(long)]
    pub out_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct PhoneArgs {
    /// imboxd's QUIC address: quic://127.0.0.1:8443.
    #[arg(long)]
    pub url: String,
    /// The box's key fingerprint [default: the tokens file's].
    #[arg(long)]
    pub pin: Option<String>,
    /// The tokens file from `provision`; the first user's token is used.
    #[arg(long)]
    pub tokens: PathBuf,
    /// Reconnections measured per kind (0-RTT, full handshake) and round-trip time.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Round-trip times the relay adds, in ms (0: loopback as it is).
    #[arg(long, value_delimiter = ',', default_value = "0,60")]
    pub rtts_ms: Vec<u64>,
    /// Seconds the idle sessions are watched: longer than imboxd's QUIC idle
    /// timeout (60 s) and a few keep-alive periods.
    #[arg(long, default_value_t = 80)]
    pub idle_seconds: u64,
    /// The keep-alive interval of the session that sends them (the
    /// library's default).
    #[arg(long, default_value_t = 25)]
    pub keep_alive_seconds: u64,
    /// How reports name the system.
    #[arg(long)]
    pub label: Option<String>,
    /// Where to write the result (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The directory of result files (every *.json that is one).
    #[arg(long)]
    pub results: PathBuf,
    /// Where to write the markdown tables.
    #[arg(long)]
    pub markdown_out: PathBuf,
    /// Where to write the latency-against-load plot (SVG).
    #[arg(long)]
    pub plot_out: PathBuf,
    /// Also write the headline figures as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_contract_parses() {
        let chat = Cli::try_parse_from([
            "imbox-bench",
            "chat",
            "--system",
            "mqtt",
            "--url",
            "mqtts://127.0.0.1:18883",
            "--ca",
            "ca.pem",
            "--mqtt-user",
            "bench",
            "--mqtt-password",
            "pw",
            "--label",
            "mosquitto",
            "--server-pid",
            "42",
            "--sources",
            "2",
            "--users",
            "200",
            "--rates",
            "500,1000",
            "--step-seconds",
            "3",
            "--group-size",
            "100",
            "--out",
            "r.json",
        ])
        .expect("chat parses");
        let Command::Chat(chat) = chat.command else { panic!("not chat") };
        assert_eq!(chat.rates, vec![500, 1000]);
        assert_eq!(chat.group_size, Some(100));
        assert_eq!(chat.target.system, SystemKind::Mqtt);
        assert_eq!(chat.target.sources, Some(2));

        let provision = Cli::try_parse_from([
            "imbox-bench",
            "provision",
            "--control-socket",
            "/d/control.sock",
            "--users",
            "10",
            "--password",
            "pw",
            "--tokens-out",
            "t.json",
            "--url",
            "wss://127.0.0.1:8443",
            "--pin",
            "sha256:x",
        ]);
        assert!(provision.is_ok());
        let report = Cli::try_parse_from([
            "imbox-bench",
            "report",
            "--results",
            "d",
            "--markdown-out",
            "b.md",
            "--plot-out",
            "p.svg",
        ]);
        assert!(report.is_ok());
        let transfer = Cli::try_parse_from([
            "imbox-bench",
            "transfer",
            "--imbox-https",
            "https://127.0.0.1:8443",
            "--imbox-quic",
            "quic://127.0.0.1:8443",
            "--tokens",
            "t.json",
            "--imbox-pid",
            "7",
            "--nginx",
            "https://127.0.0.1:18443/upload/",
            "--nginx-ca",
            "ca.pem",
            "--nginx-pid",
            "8",
            "--size-mib",
            "64",
            "--repetitions",
            "2",
            "--ciphers",
            "chacha20",
            "--out-dir",
            "results",
        ])
        .expect("transfer parses");
        let Command::Transfer(transfer) = transfer.command else { panic!("not transfer") };
        assert_eq!(transfer.ciphers, vec![crate::transfer::CipherOffer::Chacha20]);
        assert_eq!(transfer.size_mib, 64);
    }
}
