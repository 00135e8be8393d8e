//! `imbox`: the command-line client. Parses arguments, runs one command on
//! the library, prints JSON lines on stdout and one clear line per error on
//! stderr.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use imbox_client::protocol::{
    names, Attachment, ConversationInfo, DeviceInfo, Entry, Item, MembershipChange, Message, ReceiptKind,
    Request, Target,
};
use imbox_client::protocol::{Fingerprint, PairingUri, PushKind};
use imbox_client::{parse_pin, Client, ClientError, ClientOptions, ConnectOptions, Progress, ServerUrl};
use serde::Serialize;

/// The private instant-messaging box, from the command line.
#[derive(Debug, Parser)]
#[command(name = "imbox", version)]
struct Cli {
    /// The server, as quic://HOST:PORT, wss://HOST:PORT or ws://HOST:PORT.
    /// Needed by login and register; for other commands it overrides the
    /// profile's server for this run.
    #[arg(long, env = "IMBOX_SERVER", global = true, value_name = "URL")]
    server: Option<String>,

    /// The fingerprint of the box's key (sha256:..., as its pairing link or
    /// `imboxd identity` shows), which quic:// and wss:// need. Stored in
    /// the profile by login and register; for other commands it overrides
    /// the profile's pin for this run.
    #[arg(long, env = "IMBOX_PIN", global = true, value_name = "FINGERPRINT")]
    pin: Option<String>,

    /// The profile directory (default: $XDG_CONFIG_HOME/imbox or ~/.config/imbox).
    #[arg(long, env = "IMBOX_PROFILE", global = true, value_name = "DIR")]
    profile: Option<PathBuf>,

    /// Say more: what a send or group command stored (on stdout), and
    /// reconnects (on stderr; listen always reports them).
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log this device in (password from IMBOX_PASSWORD or one line of stdin).
    Login {
        user: String,
        /// How this device is listed among the user's devices (default: imbox-cli@HOSTNAME).
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Pair this device with a box: register USER with the invite in the
    /// box's pairing link (imbox:pair?...), trying its addresses in order,
    /// and keep the box's address and key in the profile (password as for
    /// login).
    Pair {
        /// The pairing link, as the box's invite QR code carries it.
        uri: String,
        user: String,
        /// How this device is listed among the user's devices (default: imbox-cli@HOSTNAME).
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Create an account with an invite (password as for login).
    Register {
        user: String,
        /// The invite token.
        #[arg(long)]
        invite: String,
        /// How this device is listed among the user's devices (default: imbox-cli@HOSTNAME).
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Send a message to a user or a #group; exits once the server stored it.
    /// With --file, uploads the files first (resuming an interrupted upload
    /// of the same file when run again) and sends them with the text as
    /// their caption.
    Send {
        /// A user name, #group, or =ID for a conversation id.
        to: String,
        /// The message text.
        #[arg(allow_hyphen_values = true, required_unless_present = "files")]
        text: Option<String>,
        /// A file to attach (repeat for several, at most 10); needs a
        /// quic:// or wss:// server.
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<PathBuf>,
        /// The text sent with the files (instead of TEXT).
        #[arg(long, conflicts_with = "text", requires = "files", allow_hyphen_values = true)]
        caption: Option<String>,
    },
    /// Download an attachment by its id (from a message's `attachments`),
    /// checking the content against the id.
    Download {
        /// The attachment id (64 hexadecimal digits).
        attachment: String,
        /// Where to write it; `-` for stdout (default: NAME, or the id, in
        /// the current directory).
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// The file name to save it under when no --output is given (as the
        /// message's attachment names it).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print every entry received since the last sync as JSON lines.
    Sync,
    /// Like sync, then keep printing entries as they arrive until interrupted.
    Listen,
    /// Manage groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Print a conversation's messages as JSON lines, oldest first.
    History {
        /// A user name, #group, or =ID.
        conversation: String,
        /// Only messages before this sequence number.
        #[arg(long, value_name = "SEQ")]
        before: Option<u64>,
        /// At most this many messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// List the conversations this user belongs to as JSON lines.
    Conversations,
    /// List this user's devices as JSON lines.
    Devices,
    /// Revoke another device of this user.
    RevokeDevice { device: u64 },
    /// Revoke this device's token and delete the profile.
    Logout,
    /// Push wake-ups for this device while it has no session.
    #[command(subcommand)]
    Push(PushCommand),
}

#[derive(Debug, Subcommand)]
enum PushCommand {
    /// Print the box's VAPID public key (base64url), for a push subscription.
    Key,
    /// Register a push endpoint (Web Push or UnifiedPush) for this device.
    Register {
        /// webpush or unifiedpush.
        #[arg(long, default_value = "unifiedpush", value_parser = parse_push_kind)]
        kind: PushKind,
        /// The endpoint URL the push service gave (https://...).
        endpoint: String,
        /// The subscription's public key (base64url).
        p256dh: String,
        /// The subscription's authentication secret (base64url).
        auth: String,
    },
    /// Remove this device's push registration.
    Unregister,
}

fn parse_push_kind(text: &str) -> Result<PushKind, String> {
    match text {
        "webpush" => Ok(PushKind::Webpush),
        "unifiedpush" => Ok(PushKind::Unifiedpush),
        other => Err(format!("{other:?} is not a push kind: use webpush or unifiedpush")),
    }
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create a group with you as its admin.
    Create { name: String, members: Vec<String> },
    /// Add a user to a group.
    Add { name: String, user: String },
    /// Remove a user from a group.
    Remove { name: String, user: String },
    /// Leave a group.
    Leave { name: String },
}

/// One line of output. The field order is the documented one.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Message {
        conversation: &'a str,
        conversation_id: u64,
        seq: u64,
        /// Absent in history, which is not read from the stream.
        #[serde(skip_serializing_if = "Option::is_none")]
        position: Option<u64>,
        from: &'a str,
        text: &'a str,
        id: &'a str,
        sent_at: u64,
        /// Absent when the message carries none; thumbnails as `data:` URLs.
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        attachments: &'a [Attachment],
    },
    Receipt {
        conversation: &'a str,
        conversation_id: u64,
        position: u64,
        user: &'a str,
        kind: ReceiptKind,
        seq: u64,
    },
    Membership {
        conversation: &'a str,
        conversation_id: u64,
        position: u64,
        user: &'a str,
        change: MembershipChange,
        by: &'a str,
    },
    Sent {
        conversation_id: u64,
        seq: u64,
        id: &'a str,
        sent_at: u64,
        duplicate: bool,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        attachments: &'a [Attachment],
    },
    Conversation(&'a ConversationInfo),
    Device(&'a DeviceInfo),
    Paired {
        server: &'a str,
        pin: &'a str,
        user: &'a str,
        device: u64,
    },
    Downloaded {
        id: &'a str,
        size: u64,
        media_type: &'a str,
        path: &'a str,
    },
}

fn message_line(message: &Message, position: Option<u64>) -> Line<'_> {
    Line::Message {
        conversation: &message.chat,
        conversation_id: message.conversation,
        seq: message.seq,
        position,
        from: &message.from,
        text: &message.text,
        id: &message.id,
        sent_at: message.sent_at,
        attachments: &message.attachments,
    }
}

/// The line for a delivery-log entry; `None` for this device's own messages,
/// which it knows already.
fn entry_line(entry: &Entry, own_device: u64) -> Option<Line<'_>> {
    let position = entry.position;
    match &entry.item {
        Item::Message(message) if message.from_device == own_device => None,
        Item::Message(message) => Some(message_line(message, Some(position))),
        Item::Receipt(r) => Some(Line::Receipt {
            conversation: &r.chat,
            conversation_id: r.conversation,
            position,
            user: &r.user,
            kind: r.kind,
            seq: r.seq,
        }),
        Item::Membership(m) => Some(Line::Membership {
            conversation: &m.chat,
            conversation_id: m.conversation,
            position,
            user: &m.user,
            change: m.change,
            by: &m.by,
        }),
    }
}

fn print_line(out: &mut impl Write, line: &Line<'_>) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, line).context("cannot encode output")?;
    out.write_all(b"\n").context("cannot write to stdout")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A listener runs for long: say on stderr when it reconnects.
    init_logging(cli.verbose || matches!(cli.command, Command::Listen));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("imbox: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("imbox: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Library diagnostics (reconnects) go to stderr; quiet unless asked.
/// IMBOX_CLIENT_LOG (a tracing filter such as `debug`) overrides the level.
fn init_logging(verbose: bool) {
    let default = if verbose { "imbox_client=info,imbox=info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMBOX_CLIENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = match cli.profile.clone() {
        Some(dir) => dir,
        None => default_profile_dir()?,
    };
    let pin = cli.pin.as_deref().map(parse_pin).transpose()?;
    let connect = ConnectOptions { pin, ..ConnectOptions::default() };
    let open_profile = |options: ClientOptions| open(&dir, cli.server.as_deref(), pin, options);
    match cli.command {
        Command::Login { user, device_name } => {
            let server = required_server(cli.server.as_deref())?;
            let password = read_password()?;
            let device_name = device_name_or_default(device_name)?;
            let client = Client::login_with(&dir, server, &connect, &user, &password, &device_name).await?;
            client.close().await;
        }
        Command::Register { user, invite, device_name } => {
            let server = required_server(cli.server.as_deref())?;
            let password = read_password()?;
            let device_name = device_name_or_default(device_name)?;
            let client =
                Client::register_with(&dir, server, &connect, &user, &password, &invite, &device_name)
                    .await?;
            client.close().await;
        }
        Command::Pair { uri, user, device_name } => {
            // Checked before asking for the password.
            let uri: PairingUri = uri.parse().map_err(ClientError::from)?;
            if uri.invite.is_none() {
                return Err(ClientError::NoInvite.into());
            }
            let password = read_password()?;
            let device_name = device_name_or_default(device_name)?;
            let client = Client::pair(&dir, &uri, &connect, &user, &password, &device_name).await?;
            if cli.verbose {
                let profile = client.profile();
                let line = Line::Paired {
                    server: &profile.server,
                    pin: profile.pin.as_deref().unwrap_or_default(),
                    user: &profile.user,
                    device: profile.device,
                };
                print_line(&mut std::io::stdout().lock(), &line)?;
            }
            client.close().await;
        }
        Command::Send { to, text, files, caption } => {
            let mut client = open_profile(ClientOptions::default())?;
            let target = Target::parse(&to);
            let mut attachments = Vec::new();
            for file in &files {
                let uploaded = until_interrupted(upload(&mut client, file)).await;
                let Some(uploaded) = uploaded else {
                    // Closing politely lets the box release the upload at
                    // once, rather than after its idle timeout.
                    client.close().await;
                    bail!("interrupted: run the same command again to resume the upload where the box is");
                };
                attachments.push(uploaded?);
            }
            let text = text.or(caption).unwrap_or_default();
            let sent = if attachments.is_empty() {
                client.send(&target, &text).await?
            } else {
                client.send_with_attachments(&target, &text, attachments.clone()).await?
            };
            if cli.verbose {
                let line = Line::Sent {
                    conversation_id: sent.conversation,
                    seq: sent.seq,
                    id: &sent.id,
                    sent_at: sent.sent_at,
                    duplicate: sent.duplicate,
                    attachments: &attachments,
                };
                print_line(&mut std::io::stdout().lock(), &line)?;
            }
            client.close().await;
        }
        Command::Download { attachment, output, name } => {
            if let Some(name) =
                name.as_deref().filter(|n| !imbox_client::protocol::attachment::valid_file_name(n))
            {
                // Names come from messages: never a path to somewhere else.
                bail!("{name:?} is not a file name (no '/', no control characters); use -o PATH to choose a path");
            }
            let mut client = open_profile(ClientOptions::default())?;
            let label = name.clone().unwrap_or_else(|| short_id(&attachment));
            let mut meter = ProgressLine::new(&label);
            let progress = |p: Progress| meter.show(p);
            let default_name = name.as_deref().unwrap_or(&attachment);
            let path = match output {
                Some(path) if path.as_os_str() == "-" => None,
                // Into a directory, under the file's name.
                Some(path) if path.is_dir() => Some(path.join(default_name)),
                Some(path) => Some(path),
                None => Some(PathBuf::from(default_name)),
            };
            let downloaded = match &path {
                None => {
                    let mut stdout = tokio::io::stdout();
                    until_interrupted(client.download_to(&attachment, &mut stdout, progress)).await
                }
                Some(path) => until_interrupted(client.download(&attachment, path, progress)).await,
            };
            let Some(downloaded) = downloaded else {
                client.close().await;
                bail!("interrupted: nothing was kept");
            };
            let downloaded = downloaded?;
            meter.done();
            if let (true, Some(path)) = (cli.verbose, &path) {
                let line = Line::Downloaded {
                    id: &attachment,
                    size: downloaded.size,
                    media_type: &downloaded.media_type,
                    path: &path.to_string_lossy(),
                };
                print_line(&mut std::io::stdout().lock(), &line)?;
            }
            client.close().await;
        }
        Command::Sync => {
            let mut client = open_profile(ClientOptions::default())?;
            let own_device = client.profile().device;
            // Stdout is line-buffered, so a line is written out before the
            // next entry is asked for, which is when the previous one counts
            // as delivered (and may be committed).
            let mut out = std::io::stdout().lock();
            while let Some(entry) = client.next_backlog_entry().await? {
                warn_if_resynced(&mut client);
                if let Some(line) = entry_line(&entry, own_device) {
                    print_line(&mut out, &line)?;
                }
            }
            client.commit().await?;
            client.close().await;
        }
        Command::Listen => {
            let options = ClientOptions { retry_for: None, ..ClientOptions::default() };
            let client = open_profile(options)?;
            listen(client).await?;
        }
        Command::Group(group) => {
            let mut client = open_profile(ClientOptions::default())?;
            let req = match group {
                GroupCommand::Create { name, members } => {
                    Request::CreateGroup { name: group_name(&name), members }
                }
                GroupCommand::Add { name, user } => Request::AddMember { group: group_target(&name), user },
                GroupCommand::Remove { name, user } => {
                    Request::RemoveMember { group: group_target(&name), user }
                }
                GroupCommand::Leave { name } => Request::Leave { group: group_target(&name) },
            };
            let response = client.call(req).await?;
            if let (true, imbox_client::protocol::Response::Group { conversation }) = (cli.verbose, &response)
            {
                print_line(&mut std::io::stdout().lock(), &Line::Conversation(conversation))?;
            }
            client.close().await;
        }
        Command::History { conversation, before, limit } => {
            let mut client = open_profile(ClientOptions::default())?;
            let (messages, _more) = client.history(&Target::parse(&conversation), before, limit).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for message in &messages {
                print_line(&mut out, &message_line(message, None))?;
            }
            out.flush().context("cannot write to stdout")?;
            client.close().await;
        }
        Command::Conversations => {
            let mut client = open_profile(ClientOptions::default())?;
            let conversations = client.conversations().await?;
            let mut out = std::io::stdout().lock();
            for conversation in &conversations {
                print_line(&mut out, &Line::Conversation(conversation))?;
            }
            client.close().await;
        }
        Command::Devices => {
            let mut client = open_profile(ClientOptions::default())?;
            let devices = client.devices().await?;
            let mut out = std::io::stdout().lock();
            for device in &devices {
                print_line(&mut out, &Line::Device(device))?;
            }
            client.close().await;
        }
        Command::RevokeDevice { device } => {
            let mut client = open_profile(ClientOptions::default())?;
            client.call(Request::RevokeDevice { device }).await?;
            client.close().await;
        }
        Command::Logout => {
            let client = open_profile(ClientOptions::default())?;
            client.logout().await?;
        }
        Command::Push(command) => {
            let mut client = open_profile(ClientOptions::default())?;
            match command {
                PushCommand::Key => println!("{}", client.push_key().await?),
                PushCommand::Register { kind, endpoint, p256dh, auth } => {
                    client.register_push(kind, &endpoint, &p256dh, &auth).await?;
                }
                PushCommand::Unregister => client.unregister_push().await?,
            }
            client.close().await;
        }
    }
    Ok(())
}

/// Tells the person, on stderr, when the box said that this device was
/// away too long for its stream to be complete.
fn warn_if_resynced(client: &mut Client) {
    if client.take_resync() {
        eprintln!(
            "imbox: this device was away longer than the box keeps its stream, so some messages \
             may be missing here; `imbox history CHAT` shows a conversation's past"
        );
    }
}

/// Prints the backlog, then pushed entries, until SIGINT or SIGTERM.
async fn listen(mut client: Client) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let own_device = client.profile().device;
    let mut out = std::io::stdout().lock();
    let outcome = loop {
        // Only `next_entry` is interrupted: an entry it returned is printed
        // before the next signal check, so none is lost between the two.
        let entry = tokio::select! {
            biased;
            _ = interrupt.recv() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
            entry = client.next_entry() => entry,
        };
        match entry {
            Ok(entry) => {
                warn_if_resynced(&mut client);
                if let Some(line) = entry_line(&entry, own_device) {
                    // A reader that went away (a closed pipe) ends the
                    // listener; that entry is not committed.
                    if let Err(err) = print_line(&mut out, &line).and_then(|()| Ok(out.flush()?)) {
                        break Err(err);
                    }
                }
            }
            Err(err) => break Err(err.into()),
        }
    };
    // Keep the cursor even when stopping on an error; give the server a
    // moment to take the ack, but the saved profile is what counts.
    let committed = tokio::time::timeout(Duration::from_secs(3), client.commit()).await;
    client.close().await;
    outcome?;
    match committed {
        Ok(result) => Ok(result?),
        Err(_) => Ok(()),
    }
}

/// Uploads one file for `send --file`, with a progress line on stderr.
async fn upload(client: &mut Client, path: &std::path::Path) -> anyhow::Result<Attachment> {
    let label =
        path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut meter = ProgressLine::new(&label);
    let uploaded = client.upload(path, |p| meter.show(p)).await?;
    meter.done();
    Ok(uploaded.attachment)
}

/// Runs `work` unless SIGINT (Ctrl-C) comes first: `None` then, and `work`
/// has been dropped (an upload's stream reset, a partial download removed
/// by its own clean-up).
async fn until_interrupted<T>(work: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        result = work => Some(result),
        _ = tokio::signal::ctrl_c() => {
            // Ends the progress line.
            eprintln!();
            None
        }
    }
}

/// The first digits of an attachment id, to name it on a progress line.
fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

/// One updating line on stderr (`name: 42% 80.0/200.0 MB 35.2 MB/s`),
/// drawn only when stderr is a terminal, at most ten times a second.
struct ProgressLine {
    label: String,
    enabled: bool,
    started: std::time::Instant,
    last_drawn: Option<std::time::Instant>,
    last: Option<Progress>,
}

impl ProgressLine {
    fn new(label: &str) -> ProgressLine {
        ProgressLine {
            label: label.to_owned(),
            enabled: std::io::stderr().is_terminal(),
            started: std::time::Instant::now(),
            last_drawn: None,
            last: None,
        }
    }

    fn show(&mut self, progress: Progress) {
        self.last = Some(progress);
        let now = std::time::Instant::now();
        if progress.done == progress.resumed_at {
            // An attempt starts (again): the rate counts from here, not
            // from a wait for the box before it.
            self.started = now;
        }
        let due = self.last_drawn.is_none_or(|at| now.duration_since(at) >= Duration::from_millis(100));
        if self.enabled && (due || progress.done == progress.total) {
            self.last_drawn = Some(now);
            eprint!("\r{}\x1b[K", progress_text(&self.label, progress, now.duration_since(self.started)));
        }
    }

    /// Draws the final state and ends the line.
    fn done(&mut self) {
        if let (true, Some(last)) = (self.enabled, self.last) {
            eprintln!("\r{}\x1b[K", progress_text(&self.label, last, self.started.elapsed()));
        }
    }
}

fn progress_text(label: &str, p: Progress, elapsed: Duration) -> String {
    const MB: f64 = 1_000_000.0;
    let percent = p.done.saturating_mul(100).checked_div(p.total).unwrap_or(100);
    let moved = p.done.saturating_sub(p.resumed_at) as f64;
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 { moved / MB / seconds } else { 0.0 };
    let resumed = if p.resumed_at > 0 && p.resumed_at < p.total {
        format!(" (resumed at {:.1} MB)", p.resumed_at as f64 / MB)
    } else {
        String::new()
    };
    format!(
        "{label}: {percent:>3}% {:.1}/{:.1} MB {rate:.1} MB/s{resumed}",
        p.done as f64 / MB,
        p.total as f64 / MB
    )
}

fn open(
    dir: &std::path::Path,
    server: Option<&str>,
    pin: Option<Fingerprint>,
    options: ClientOptions,
) -> anyhow::Result<Client> {
    let mut client = Client::open(dir)?.with_options(options);
    if let Some(server) = server {
        client.use_server(ServerUrl::parse(server)?);
    }
    if let Some(pin) = pin {
        client.use_pin(pin);
    }
    Ok(client)
}

fn required_server(server: Option<&str>) -> anyhow::Result<&str> {
    server.context(
        "no server given: pass --server quic://HOST:PORT (or wss://, ws://) or set IMBOX_SERVER, \
         or pair with a pairing link: imbox pair URI USER",
    )
}

fn default_profile_dir() -> anyhow::Result<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    if let Some(config) = non_empty("XDG_CONFIG_HOME") {
        return Ok(config.join("imbox"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(home.join(".config").join("imbox")),
        None => bail!("no profile directory: pass --profile DIR or set IMBOX_PROFILE"),
    }
}

/// The password from IMBOX_PASSWORD, or else one line of stdin.
fn read_password() -> anyhow::Result<String> {
    if let Some(password) = std::env::var_os("IMBOX_PASSWORD") {
        return password.into_string().map_err(|_| anyhow::anyhow!("IMBOX_PASSWORD is not valid UTF-8"));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // No echo suppression here: prefer IMBOX_PASSWORD on shared screens.
        eprint!("password: ");
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line).context("cannot read the password from stdin")?;
    if read == 0 {
        bail!("no password: set IMBOX_PASSWORD or write the password as one line on stdin");
    }
    let password = strip_line_end(&line);
    Ok(password.to_owned())
}

fn strip_line_end(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

fn device_name_or_default(name: Option<String>) -> anyhow::Result<String> {
    let name = name.unwrap_or_else(|| default_device_name(&hostname()));
    if let Err(e) = names::check_device_name(&name) {
        bail!("invalid device name {name:?}: {e}");
    }
    Ok(name)
}

/// `imbox-cli@HOST`, with the host name shortened to fit the limit.
fn default_device_name(host: &str) -> String {
    let prefix = "imbox-cli@";
    let mut name = String::from(prefix);
    for c in host.chars().filter(|c| !c.is_control()) {
        if name.len() + c.len_utf8() > names::MAX_DEVICE_NAME {
            break;
        }
        name.push(c);
    }
    // A host name the box would refuse (one with a bidirectional control
    // character, say) must not keep a person from logging in.
    if names::check_device_name(&name).is_err() {
        return "imbox-cli".to_owned();
    }
    name
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .find(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|name| !name.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn group_name(name: &str) -> String {
    name.strip_prefix('#').unwrap_or(name).to_owned()
}

fn group_target(name: &str) -> Target {
    Target::Group(group_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imbox_client::protocol::{Membership, Receipt};

    fn message(from_device: u64) -> Entry {
        Entry {
            position: 7,
            item: Item::Message(Message {
                conversation: 3,
                chat: "#ops".into(),
                seq: 12,
                from: "alice".into(),
                from_device,
                id: "m-1".into(),
                sent_at: 1_700_000_000_000,
                text: "hi \"there\"".into(),
                attachments: Vec::new(),
            }),
        }
    }

    fn json(line: &Line<'_>) -> String {
        serde_json::to_string(line).expect("encode")
    }

    #[test]
    fn message_lines_have_the_documented_shape() {
        let entry = message(5);
        let line = entry_line(&entry, 9).expect("someone else's message");
        assert_eq!(
            json(&line),
            r##"{"type":"message","conversation":"#ops","conversation_id":3,"seq":12,"position":7,"from":"alice","text":"hi \"there\"","id":"m-1","sent_at":1700000000000}"##
        );
        assert!(entry_line(&entry, 5).is_none(), "own messages are skipped");
        let Item::Message(m) = &entry.item else { unreachable!() };
        assert_eq!(
            json(&message_line(m, None)),
            r##"{"type":"message","conversation":"#ops","conversation_id":3,"seq":12,"from":"alice","text":"hi \"there\"","id":"m-1","sent_at":1700000000000}"##
        );
    }

    #[test]
    fn receipts_and_membership_have_their_own_type() {
        let receipt = Entry {
            position: 8,
            item: Item::Receipt(Receipt {
                conversation: 2,
                chat: "bob".into(),
                user: "bob".into(),
                kind: ReceiptKind::Read,
                seq: 4,
            }),
        };
        assert_eq!(
            json(&entry_line(&receipt, 1).expect("line")),
            r#"{"type":"receipt","conversation":"bob","conversation_id":2,"position":8,"user":"bob","kind":"read","seq":4}"#
        );
        let membership = Entry {
            position: 9,
            item: Item::Membership(Membership {
                conversation: 3,
                chat: "#ops".into(),
                user: "carol".into(),
                change: MembershipChange::Added,
                by: "alice".into(),
            }),
        };
        assert_eq!(
            json(&entry_line(&membership, 1).expect("line")),
            r##"{"type":"membership","conversation":"#ops","conversation_id":3,"position":9,"user":"carol","change":"added","by":"alice"}"##
        );
    }

    #[test]
    fn device_names_fit_the_limit() {
        assert_eq!(default_device_name("pi"), "imbox-cli@pi");
        let long = default_device_name(&"h".repeat(200));
        assert_eq!(long.len(), names::MAX_DEVICE_NAME);
        assert!(names::valid_device_name(&long));
        assert!(names::valid_device_name(&default_device_name("é\u{7}".repeat(40).as_str())));
        assert_eq!(default_device_name("pi\u{202e}"), "imbox-cli");
    }

    #[test]
    fn passwords_lose_only_the_line_end() {
        assert_eq!(strip_line_end("secret pw\n"), "secret pw");
        assert_eq!(strip_line_end("secret pw\r\n"), "secret pw");
        assert_eq!(strip_line_end(" spaced \n"), " spaced ");
        assert_eq!(strip_line_end("no newline"), "no newline");
    }

    #[test]
    fn group_names_may_carry_a_hash() {
        assert_eq!(group_target("#ops"), Target::Group("ops".into()));
        assert_eq!(group_target("ops"), Target::Group("ops".into()));
    }

    #[test]
    fn progress_reads_as_percent_and_rate() {
        let p = Progress { done: 100_000_000, total: 200_000_000, resumed_at: 80_000_000 };
        assert_eq!(
            progress_text("film.mp4", p, Duration::from_secs(2)),
            "film.mp4:  50% 100.0/200.0 MB 10.0 MB/s (resumed at 80.0 MB)"
        );
        let empty = Progress { done: 0, total: 0, resumed_at: 0 };
        assert_eq!(progress_text("e", empty, Duration::ZERO), "e: 100% 0.0/0.0 MB 0.0 MB/s");
    }

    #[test]
    fn message_lines_carry_attachments() {
        let mut entry = message(5);
        let Item::Message(m) = &mut entry.item else { unreachable!() };
        m.attachments.push(Attachment {
            id: "ab".repeat(32),
            media_type: "image/png".into(),
            size: 3,
            name: "a.png".into(),
            width: None,
            height: None,
            duration_ms: None,
            blurhash: None,
            thumbnail: Some("data:image/png;base64,iVBORw0KGgo=".into()),
            expired: false,
        });
        let line: serde_json::Value =
            serde_json::from_str(&json(&entry_line(&entry, 9).expect("line"))).expect("json");
        assert_eq!(line["attachments"][0]["id"], "ab".repeat(32));
        assert_eq!(line["attachments"][0]["thumbnail"], "data:image/png;base64,iVBORw0KGgo=");
        assert_eq!(line["attachments"][0]["name"], "a.png");
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["imbox", "--profile", "/p", "send", "bob", "-1 is fine"]).expect("parse");
        assert!(
            matches!(cli.command, Command::Send { ref text, .. } if text.as_deref() == Some("-1 is fine"))
        );
        assert!(Cli::try_parse_from(["imbox", "send", "bob"]).is_err());
        let cli = Cli::try_parse_from([
            "imbox",
            "send",
            "bob",
            "--file",
            "a.jpg",
            "--file",
            "b.pdf",
            "--caption",
            "hi",
        ])
        .expect("parse");
        assert!(matches!(cli.command, Command::Send { ref files, ref caption, .. }
            if files.len() == 2 && caption.as_deref() == Some("hi")));
        assert!(Cli::try_parse_from(["imbox", "send", "bob", "--caption", "no file"]).is_err());
        assert!(Cli::try_parse_from(["imbox", "send", "bob", "text", "--file", "a", "--caption", "both"])
            .is_err());
        let cli =
            Cli::try_parse_from(["imbox", "download", &"ab".repeat(32), "-o", "out.bin"]).expect("parse");
        assert!(
            matches!(cli.command, Command::Download { ref output, .. } if output.as_deref() == Some("out.bin".as_ref()))
        );

        let cli = Cli::try_parse_from(["imbox", "pair", "imbox:pair?v=1", "alice", "--pin", "sha256:x"])
            .expect("parse");
        assert!(matches!(cli.command, Command::Pair { ref user, .. } if user == "alice"));
        assert_eq!(cli.pin.as_deref(), Some("sha256:x"));
    }
}
