//! `imboxd`: parses arguments, loads the configuration, sets up logging and
//! hands over to the library.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use imboxd::admin::{self, AdminContext, AdminReply, AdminRequest};
use imboxd::config::{Config, Overrides};
use imboxd::control::{self, ControlError};
use imboxd::identity::{Identity, Validity};
use imboxd::pairing::PairingTemplate;
use imboxd::store::{NoListener, Store, StoreError, StoreOptions};
use tokio_util::sync::CancellationToken;

/// mimalloc rather than the C library's allocator: the message path allocates
/// and frees small buffers on several threads at once, where glibc's malloc
/// showed up with about a tenth of the writer's time in profiles, and the
/// appliance's static musl build would otherwise get musl's allocator, which
/// is slower still. (Heap profiles build with `--features system-allocator`.)
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// imboxd, the imbox messaging daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Read this configuration file instead of /etc/imbox/imbox.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Keep the database, the control socket and settings.toml here.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run {
        /// Listen for HTTP and WebSocket here (repeatable); replaces http.listen.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<SocketAddr>,
    },
    /// Serve only a page that says why the box's data is not available
    /// (the data disk is missing, failed its check, or is there twice), over
    /// http.listen and https.listen, until stopped. Opens no database and
    /// writes nothing; the image's storage service starts it.
    Standby {
        /// The storage service's status file, read for every request;
        /// setup.storage_status when absent.
        #[arg(long, value_name = "FILE")]
        status: Option<PathBuf>,
    },
    /// Print the effective configuration as TOML.
    Config,
    /// Print the box identity (the key fingerprint clients pin), making the
    /// key on first use.
    Identity,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage invites.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Manage conversations.
    #[command(subcommand)]
    Conversation(ConversationCommand),
    /// Give the database file's free space back to the disk, while imboxd is
    /// stopped (it also compacts by itself when much is free). Prints the
    /// file's size before and after.
    Compact,
}

#[derive(Debug, Subcommand)]
enum ConversationCommand {
    /// Set how long a conversation keeps its messages.
    Retention {
        /// The conversation: a group as #name, or a conversation id.
        conversation: String,
        /// Days to keep messages (0: forever), or `default` for the box's
        /// storage.retention_days.
        days: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input.
    Add {
        name: String,
        /// Make the account an administrator of the box.
        #[arg(long)]
        admin: bool,
    },
    /// List accounts.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove an account: frees the name, revokes every device, leaves every group.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
enum InviteCommand {
    /// Create an invite and print its one-time token.
    Create {
        /// How many accounts the invite may create.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Hours until the invite expires (never, when absent).
        #[arg(long, value_name = "HOURS")]
        expires_in: Option<u64>,
        /// Print the pairing URI (what the QR code carries) instead of the bare token.
        #[arg(long)]
        uri: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imboxd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = match &cli.command {
        Some(Command::Run { listen }) => listen.clone(),
        _ => Vec::new(),
    };
    let overrides =
        Overrides { config_file: cli.config.clone(), data_dir: cli.data_dir.clone(), http_listen: listen };
    let config = Config::load(&overrides)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
    match cli.command.unwrap_or(Command::Run { listen: Vec::new() }) {
        Command::Run { .. } => {
            imboxd::logging::init(&config.log.level)?;
            runtime.block_on(serve(config))
        }
        Command::Standby { status } => {
            imboxd::logging::init(&config.log.level)?;
            let status = status.unwrap_or_else(|| config.setup.storage_status.clone());
            runtime.block_on(standby(config, status))
        }
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Identity => {
            imboxd::server::prepare_data_dir(&config)?;
            let identity = load_identity(&config)?;
            println!("{}", identity.fingerprint());
            Ok(())
        }
        Command::User(UserCommand::Add { name, admin }) => {
            let password = read_password()?;
            let reply = runtime.block_on(administer(
                &config,
                AdminRequest::UserAdd { name: name.clone(), password, admin },
            ))?;
            if let AdminReply::UserAdded { id } = reply {
                println!("created {}{name} (id {id})", if admin { "administrator " } else { "" });
            }
            Ok(())
        }
        Command::User(UserCommand::List { json }) => {
            if let AdminReply::Users { users } =
                runtime.block_on(administer(&config, AdminRequest::UserList))?
            {
                if json {
                    println!("{}", serde_json::to_string_pretty(&users)?);
                } else {
                    println!("{:<32} {:>6} {:>8}", "NAME", "ADMIN", "DEVICES");
                    for user in users {
                        println!(
                            "{:<32} {:>6} {:>8}",
                            user.name,
                            if user.admin { "yes" } else { "no" },
                            user.devices
                        );
                    }
                }
            }
            Ok(())
        }
        Command::User(UserCommand::Remove { name }) => {
            runtime.block_on(administer(&config, AdminRequest::UserRemove { name: name.clone() }))?;
            println!("removed {name}");
            Ok(())
        }
        Command::Conversation(ConversationCommand::Retention { conversation, days }) => {
            let days = match days.as_str() {
                "default" => None,
                number => Some(number.parse::<u32>().map_err(|_| {
                    anyhow::anyhow!(
                        "{number:?} is not a number of days: give 0 (forever), 1 to 36500, or `default`"
                    )
                })?),
            };
            let request = AdminRequest::Retention { conversation: conversation.clone(), days };
            if let AdminReply::Retention { conversation: id, days } =
                runtime.block_on(administer(&config, request))?
            {
                match days {
                    None => println!("conversation {id} keeps messages as storage.retention_days says"),
                    Some(0) => println!("conversation {id} keeps its messages forever"),
                    Some(days) => println!("conversation {id} keeps messages for {days} days"),
                }
            }
            Ok(())
        }
        Command::Compact => {
            let path = config.database_path();
            let done = match runtime.block_on(imboxd::store::compact_file(&path)) {
                Err(StoreError::Locked) => bail!(
                    "{} is in use: imboxd is running (it compacts by itself when much of the file is \
                     free). To compact now, stop it first (systemctl stop imboxd), run imboxd compact, \
                     then start it again",
                    path.display()
                ),
                other => other.with_context(|| format!("cannot compact {}", path.display()))?,
            };
            println!(
                "compacted {}: {} -> {} bytes ({} MiB freed) in {} ms",
                path.display(),
                done.before,
                done.after,
                done.before.saturating_sub(done.after) >> 20,
                done.took.as_millis()
            );
            Ok(())
        }
        Command::Invite(InviteCommand::Create { uses, expires_in, uri }) => {
            let request = AdminRequest::InviteCreate { uses, expires_in_hours: expires_in, uri };
            if let AdminReply::Invite { token, uri, .. } = runtime.block_on(administer(&config, request))? {
                println!("{}", uri.unwrap_or(token));
            }
            Ok(())
        }
    }
}

/// A cancellation token cancelled by SIGTERM or Ctrl-C.
fn stop_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        signal.cancel();
    });
    shutdown
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = stop_on_signal();
    tracing::info!(data_dir = %config.data_dir.display(), "starting imboxd {}", env!("CARGO_PKG_VERSION"));
    imboxd::run(config, shutdown).await?;
    Ok(())
}

async fn standby(config: Config, status: PathBuf) -> anyhow::Result<()> {
    let shutdown = stop_on_signal();
    tracing::info!(status = %status.display(), "starting imboxd {} in standby", env!("CARGO_PKG_VERSION"));
    imboxd::standby::run(&config, status, shutdown).await?;
    Ok(())
}

/// Through the running daemon if there is one, else against the store directly.
async fn administer(config: &Config, request: AdminRequest) -> anyhow::Result<AdminReply> {
    match control::request(&config.control_socket_path(), &request).await {
        Ok(reply) => Ok(reply),
        Err(ControlError::NotRunning) => {
            imboxd::server::prepare_data_dir(config)?;
            let store = Store::open(
                &config.database_path(),
                StoreOptions::default(),
                std::sync::Arc::new(NoListener),
            )
            .with_context(|| format!("cannot open {}", config.database_path().display()))?;
            // Stopped, the box is reachable where its configuration says.
            let fingerprint = load_identity(config)?.fingerprint();
            let pairing = PairingTemplate::new(
                &config.pairing.hosts,
                &config.quic.listen,
                &config.https.listen,
                fingerprint,
                &config.box_name,
            );
            let passwords = imboxd::session::password::Passwords::new(1);
            let ctx = AdminContext { store: store.clone(), pairing, passwords };
            let reply = admin::execute(&ctx, request).await;
            drop(ctx);
            store.shutdown().await;
            Ok(reply?)
        }
        Err(e) => Err(e.into()),
    }
}

fn load_identity(config: &Config) -> anyhow::Result<Identity> {
    let validity = Validity {
        days: config.identity.certificate_days,
        renew_before_days: config.identity.renew_before_days,
    };
    Ok(Identity::load_or_create(&config.identity_key_path(), &config.identity_cert_path(), validity)?)
}

/// Reads one line from standard input, prompting when it is a terminal.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!(
            "no password given: pipe it on standard input, e.g. `echo 'long secret' | imboxd user add NAME`"
        );
    }
    Ok(password)
}
