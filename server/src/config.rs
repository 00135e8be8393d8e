//! The daemon's configuration, stacked from five layers (later wins):
//!
//! 1. the built-in defaults, [`DEFAULT_TOML`] (`server/config/default.toml`, which lists and
//!    explains every key);
//! 2. [`ETC_CONFIG_FILE`] if it exists, or instead the file given with `--config`, which must
//!    exist;
//! 3. `<data_dir>/settings.toml` if it exists: the settings imboxd itself may write, since the OS
//!    root is read-only. `data_dir` is resolved from the other layers first, and this file may not
//!    set it;
//! 4. environment variables `IMBOX_<KEY>`, nested keys joined by `__` (`IMBOX_LOG__LEVEL`);
//! 5. command-line flags: `--data-dir` and, for `run`, `--listen` (repeatable; replaces
//!    `http.listen`).
//!
//! [`Config::load`] merges the layers with figment and validates the result before the caller
//! binds any socket. Every error names the key and the layer its value came from.
//!
//! Unknown keys: the structs use `deny_unknown_fields`, but by the time serde sees the merged tree
//! it no longer knows which layer an unknown key came from. So each layer is first compared with
//! the defaults (which hold every key), and an unknown key is reported with its file or its
//! environment variable. This includes every `IMBOX_` variable that names no key: nothing else may
//! use that prefix in imboxd's environment.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// The built-in defaults: the first configuration layer. Every key imboxd knows appears here,
/// with a comment, so the file doubles as documentation; a key missing from it is unknown.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The system-wide configuration file, read when `--config` is not given.
pub const ETC_CONFIG_FILE: &str = "/etc/imbox/imbox.toml";

/// The writable settings file, inside `data_dir`.
pub const SETTINGS_FILE: &str = "settings.toml";

/// The prefix of the environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "IMBOX_";

/// Variables of the `imbox` command-line client, which shares the prefix: a
/// shell that exports them must still be able to start the daemon.
pub const CLIENT_ENV: &[&str] =
    &["IMBOX_PASSWORD", "IMBOX_SERVER", "IMBOX_PROFILE", "IMBOX_PIN", "IMBOX_CLIENT_LOG"];

/// What separates nested keys in an environment variable name: `IMBOX_LIMITS__MAX_CONNECTIONS`.
pub const ENV_SEPARATOR: &str = "__";

/// The longest path a Unix socket can be bound to: `sun_path` holds 108 bytes including the NUL.
const MAX_UNIX_SOCKET_PATH: usize = 107;

/// Values given on the command line; they override every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config FILE`: read this file instead of [`ETC_CONFIG_FILE`]. It must exist.
    pub config_file: Option<PathBuf>,
    /// `--data-dir DIR`; a relative path is taken relative to the current directory.
    pub data_dir: Option<PathBuf>,
    /// `--listen ADDR`, repeatable; when not empty it replaces `http.listen`.
    pub http_listen: Vec<SocketAddr>,
}

/// Where [`Config::load_from`] finds the layers that are not on the command line. Tests point it
/// at a temporary directory; [`Config::load`] uses [`Sources::system`].
#[derive(Debug, Clone)]
pub struct Sources {
    /// The file read when `--config` is not given, if it exists (normally
    /// [`ETC_CONFIG_FILE`]); `None` skips this layer.
    pub etc_file: Option<PathBuf>,
    /// Environment variables; those whose name starts with [`ENV_PREFIX`] are used.
    pub env: Vec<(OsString, OsString)>,
}

impl Sources {
    /// The real locations: [`ETC_CONFIG_FILE`] and this process's `IMBOX_` variables.
    pub fn system() -> Sources {
        Sources { etc_file: Some(PathBuf::from(ETC_CONFIG_FILE)), env: env_vars() }
    }

    /// No system file and no environment: only the defaults and the [`Overrides`]. Handy for
    /// tests elsewhere, e.g. with `Overrides { data_dir: Some(temp_dir), .. }`.
    pub fn none() -> Sources {
        Sources { etc_file: None, env: Vec::new() }
    }
}

/// This process's environment variables whose name starts with [`ENV_PREFIX`].
fn env_vars() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(name, _)| name.as_encoded_bytes().starts_with(ENV_PREFIX.as_bytes()))
        .collect()
}

/// The effective configuration of imboxd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where everything durable lives; an absolute path.
    pub data_dir: PathBuf,
    /// The name of the box shown to clients and on the status page.
    pub box_name: String,
    /// The HTTP server.
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
    /// Limits on what clients may do.
    pub limits: LimitsConfig,
    /// The database.
    pub storage: StorageConfig,
    /// The HTTPS server (WebSocket over TLS), with the box identity.
    pub https: HttpsConfig,
    /// The QUIC listener for mobile clients.
    pub quic: QuicConfig,
    /// The box's key and certificate.
    pub identity: IdentityConfig,
    /// What pairing URIs (QR codes) tell clients.
    pub pairing: PairingConfig,
    /// First-run setup (claiming the box).
    pub setup: SetupConfig,
    /// Attachments: sizes, quotas, the space kept for messages, retention.
    pub media: MediaConfig,
    /// Push wake-ups (Web Push, UnifiedPush) for devices without a session.
    pub push: PushConfig,
}

/// Push wake-ups (`crate::push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Whether devices may register and are woken.
    pub enabled: bool,
    /// The VAPID `sub` claim: how a push service reaches the box's
    /// operator (`mailto:` or `https:`).
    pub contact: String,
    /// A PEM file of extra certificate authorities trusted for push
    /// endpoints, besides the built-in web roots; empty for none.
    pub extra_ca_file: PathBuf,
    /// Wake-ups waiting to be sent, at most (one per device).
    pub queue: u32,
    /// Wake-ups sent at the same time, at most.
    pub concurrency: u32,
    /// Tries per wake-up before it is given up.
    pub attempts: u32,
    /// The least time between two wake-ups of one device, in seconds.
    pub min_interval_s: u32,
    /// How long a push service may take to accept a connection, in ms.
    pub connect_timeout_ms: u64,
    /// How long one request may take in all, in ms.
    pub request_timeout_ms: u64,
    /// The longest wait between two tries, in seconds (Retry-After
    /// included).
    pub max_backoff_s: u32,
    /// How long a push service keeps an undelivered wake-up (the `TTL`
    /// header), in seconds.
    pub ttl_s: u32,
}

/// Attachments (`crate::media`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// The largest file, in MiB.
    pub max_file_mib: u32,
    /// What one user's uploads may take together, in MiB (0: no quota).
    pub user_quota_mib: u32,
    /// Space on the data disk that uploads never take, in MiB: kept for
    /// messages.
    pub reserve_mib: u32,
    /// An upload no message has carried for this long is removed, in hours.
    pub orphan_hours: u32,
    /// An unfinished upload is dropped this long after it last moved, in hours.
    pub upload_expiry_hours: u32,
    /// Attachments not sent for this many days are deleted (0: kept
    /// forever); the owner's setting on the admin pages wins.
    pub retention_days: u32,
}

/// First-run setup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupConfig {
    /// Where the claim code is written while the box has no owner; empty means
    /// `<data_dir>/imbox-claim.txt`.
    pub claim_file: PathBuf,
    /// A file holding a claim code chosen before the first boot (on the
    /// appliance, from the preseed `make flash` wrote); empty means none.
    /// While the box is unclaimed, a valid code there is used instead of a
    /// random one.
    pub preseeded_claim_file: PathBuf,
    /// The USB disks the appliance found at boot, for the storage step
    /// (written by the image's storage.sh; absent elsewhere).
    pub storage_status: PathBuf,
    /// The progress of a move to another disk, written by storage.sh.
    pub storage_progress: PathBuf,
}

/// The HTTPS server: the same routes as HTTP, over TLS with the box identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsConfig {
    /// Addresses to listen on; empty turns HTTPS off.
    #[serde(deserialize_with = "deserialize_listen")]
    pub listen: Vec<SocketAddr>,
}

/// The QUIC listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuicConfig {
    /// UDP addresses to listen on; empty turns QUIC off.
    #[serde(deserialize_with = "deserialize_listen")]
    pub listen: Vec<SocketAddr>,
    /// A connection with no traffic for this long is closed, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Bytes the server may have sent but not yet had acknowledged, per connection.
    pub send_window_bytes: u32,
}

/// The box identity (an ECDSA P-256 key generated on first start) and its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// How long a new self-signed certificate is valid, in days.
    pub certificate_days: u32,
    /// Renew the certificate (with the same key) this many days before it expires.
    pub renew_before_days: u32,
}

/// What pairing URIs carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingConfig {
    /// Host names or addresses clients should try, in order; empty means the addresses the
    /// listeners are bound to (every address of this machine for 0.0.0.0 or ::).
    pub hosts: Vec<String>,
}

/// The HTTP server (setup page, web client, admin API, WebSocket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Addresses to listen on; never empty. Written as a list, or (handy in an environment
    /// variable) as one string of comma-separated addresses.
    #[serde(deserialize_with = "deserialize_listen")]
    pub listen: Vec<SocketAddr>,
    /// Whether `/ws` is served over plain HTTP as well as over HTTPS.
    pub plain_websocket: bool,
    /// Time for each stage of an HTTP(S) request: the TLS handshake, the
    /// request head, and the request body, in milliseconds.
    pub request_timeout_ms: u64,
    /// A WebSocket peer silent this long is pinged, in milliseconds.
    pub ping_interval_ms: u64,
    /// Time a pinged WebSocket peer has to answer before it is dropped, in
    /// milliseconds.
    pub ping_timeout_ms: u64,
}

/// Logging; see [`crate::logging`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// An `EnvFilter` directive such as `info` or `info,imboxd::store=debug`.
    pub level: String,
}

/// Limits on what clients may do. Each bounds memory, disk or CPU on a small board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connected devices, WebSocket and QUIC together.
    pub max_connections: u32,
    /// Largest frame accepted from a client, in bytes.
    pub max_frame_bytes: u32,
    /// Largest text of one message, in bytes; less than `max_frame_bytes - 1024`.
    pub max_text_bytes: u32,
    /// Most messages in one sync page.
    pub max_sync_page: u32,
    /// Most messages in one history page.
    pub max_history_page: u32,
    /// Messages one device may send per second, on average, over all its
    /// sessions (a user's devices together: twice as many).
    pub sends_per_second: u32,
    /// Messages one device may send in a burst above that average.
    pub send_burst: u32,
    /// Members of one group.
    pub max_group_members: u32,
    /// Failed logins per minute to one account from one client address (an
    /// address may fail three times as often over all accounts).
    pub login_attempts_per_minute: u32,
    /// Devices one user may have; a login beyond it retires the
    /// longest-unused one.
    pub max_devices_per_user: u32,
    /// Requests of one session waiting for an answer.
    pub max_inflight_requests: u32,
    /// Events queued for one session before it is treated as lagging.
    pub session_queue: u32,
    /// Time allowed for hello and authentication, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Time one frame may take to leave, on every transport, before the
    /// connection is dropped, in milliseconds.
    pub write_timeout_ms: u64,
}

/// The database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Most writes committed in one transaction (group commit).
    pub commit_batch_max: u32,
    /// Writes waiting for the database writer.
    pub write_queue: u32,
    /// The redb page cache, in MiB.
    pub cache_mib: u32,
    /// A checkpoint of the database comes when writes pause this long.
    pub checkpoint_idle_ms: u64,
    /// The longest time between checkpoints of the database.
    pub checkpoint_interval_ms: u64,
    /// The write-ahead log's size that triggers a checkpoint, in MiB.
    pub log_max_mib: u32,
    /// Free space kept on the data disk, in MiB: below it writes are
    /// refused with `storage_full` until space is freed.
    pub min_free_mib: u32,
    /// Messages older than this many days are deleted (0: kept forever);
    /// a conversation may have a retention of its own.
    pub retention_days: u32,
    /// A device unused for this many days no longer holds back the pruning
    /// of its user's delivery records; if it comes back, it resyncs.
    pub device_inactive_days: u32,
}

/// Why the configuration could not be loaded. Each message names the key, its value where that
/// helps, and where the value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` does not exist. Check the path, or leave the flag out to use
    /// `/etc/imbox/imbox.toml`.
    #[error("configuration file {path} (given with --config) does not exist")]
    MissingConfigFile {
        /// The path as given.
        path: PathBuf,
    },
    /// A configuration file exists but cannot be read, e.g. for lack of permission.
    #[error("cannot read configuration file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        source: io::Error,
    },
    /// A configuration file is not valid TOML; the message gives the line and column.
    #[error("configuration file {origin} is not valid TOML: {message}")]
    Syntax {
        /// The file (or "built-in defaults").
        origin: String,
        /// The TOML parser's description of the problem.
        message: String,
    },
    /// A key imboxd does not know, often a misspelling; `docs/CONFIGURATION.md` lists the keys.
    /// For an environment variable this means a variable starting with `IMBOX_` that names no key.
    #[error("unknown configuration key `{key}` (from {origin})")]
    UnknownKey {
        /// The key, dotted (`limits.max_conections`).
        key: String,
        /// Where it was set.
        origin: String,
    },
    /// `settings.toml` sets `data_dir`. It lives inside the data directory, so it cannot choose
    /// it; set `data_dir` in `/etc/imbox/imbox.toml`, `IMBOX_DATA_DIR` or `--data-dir` instead.
    #[error(
        "{path} sets data_dir, which settings.toml may not do (it lives in the data directory); \
         set data_dir in /etc/imbox/imbox.toml, IMBOX_DATA_DIR or --data-dir instead"
    )]
    DataDirInSettings {
        /// The settings file.
        path: PathBuf,
    },
    /// A value has the wrong type or form, e.g. text where a number belongs, or a malformed
    /// address.
    #[error("{key} (from {origin}) is not valid: {reason}")]
    WrongType {
        /// The key, dotted.
        key: String,
        /// Where the value came from.
        origin: String,
        /// What was expected.
        reason: String,
    },
    /// A number outside the range the key allows.
    #[error("{key} = {value} (from {origin}) is out of range: it must be between {min} and {max}")]
    OutOfRange {
        /// The key, dotted.
        key: &'static str,
        /// The value given.
        value: u64,
        /// Where the value came from.
        origin: String,
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
    },
    /// `limits.max_text_bytes` does not fit in a frame together with the message's envelope.
    /// Lower it, or raise `limits.max_frame_bytes`.
    #[error(
        "limits.max_text_bytes = {text} (from {text_origin}) must be less than \
         limits.max_frame_bytes - 1024 = {limit} (limits.max_frame_bytes from {frame_origin}), \
         to leave room for the rest of the frame"
    )]
    TextLargerThanFrame {
        /// `limits.max_text_bytes`.
        text: u32,
        /// Where it came from.
        text_origin: String,
        /// `limits.max_frame_bytes - 1024`.
        limit: u64,
        /// Where `limits.max_frame_bytes` came from.
        frame_origin: String,
    },
    /// A value of the right type that is still not acceptable; the reason says why.
    #[error("{key} = {value} (from {origin}) is not valid: {reason}")]
    InvalidValue {
        /// The key, dotted.
        key: String,
        /// The value as given.
        value: String,
        /// Where the value came from.
        origin: String,
        /// Why it is not acceptable.
        reason: String,
    },
    /// A relative `--data-dir` could not be made absolute because the current directory is
    /// unknown (e.g. it was deleted). Give an absolute path.
    #[error("cannot resolve --data-dir {path} against the current directory: {source}")]
    CurrentDir {
        /// The path as given.
        path: PathBuf,
        /// Why the current directory is unknown.
        source: io::Error,
    },
}

impl ConfigError {
    /// Converts figment's extraction error, which knows the key's path and its provider.
    fn from_figment(error: figment::Error) -> ConfigError {
        let origin = error.metadata.as_ref().map_or_else(|| "unknown source".to_owned(), describe);
        ConfigError::WrongType { key: error.path.join("."), origin, reason: error.kind.to_string() }
    }
}

/// One configuration layer as figment sees it: a tree of values and where they came from.
struct Layer {
    metadata: Metadata,
    values: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

impl Layer {
    fn defaults() -> Result<Layer, ConfigError> {
        let values = toml::from_str::<Dict>(DEFAULT_TOML).map_err(|e| ConfigError::Syntax {
            origin: "built-in defaults".to_owned(),
            message: e.to_string(),
        })?;
        Ok(Layer { metadata: Metadata::named("built-in defaults"), values })
    }

    /// Reads a TOML file; `Ok(None)` if it does not exist.
    fn file(path: &Path) -> Result<Option<Layer>, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ConfigError::ReadFile { path: path.to_owned(), source }),
        };
        let values = toml::from_str::<Dict>(&text).map_err(|e| ConfigError::Syntax {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Some(Layer { metadata: Metadata::from("TOML file", Source::File(path.to_owned())), values }))
    }

    /// One value set from outside any file: an environment variable or a flag.
    fn single(origin: String, path: &[String], value: Value) -> Layer {
        Layer { metadata: Metadata::named(origin), values: nest(path, value) }
    }

    fn origin(&self) -> String {
        describe(&self.metadata)
    }
}

/// How an error names where a value came from: a file by its path, anything else by the name its
/// layer was given ("built-in defaults", "environment variable IMBOX_…", "command-line flag …").
fn describe(metadata: &Metadata) -> String {
    match &metadata.source {
        // Not `Source`'s Display, which shortens paths relative to the current directory.
        Some(Source::File(path)) => path.display().to_string(),
        _ => metadata.name.to_string(),
    }
}

/// Where the value at `key` in the merged configuration came from.
fn origin_of(figment: &Figment, key: &str) -> String {
    figment.find_metadata(key).map_or_else(|| "unknown source".to_owned(), describe)
}

/// `{a: {b: {c: value}}}` for the path `[a, b, c]`.
fn nest(path: &[String], value: Value) -> Dict {
    let mut nested = value;
    for key in path.iter().skip(1).rev() {
        nested = Value::from(Dict::from([(key.clone(), nested)]));
    }
    match path.first() {
        Some(first) => Dict::from([(first.clone(), nested)]),
        None => Dict::new(),
    }
}

/// The value at `path` in `dict`, if any.
fn lookup<'a>(dict: &'a Dict, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let value = dict.get(first)?;
    if rest.is_empty() {
        return Some(value);
    }
    match value {
        Value::Dict(_, inner) => lookup(inner, rest),
        _ => None,
    }
}

/// Fails on the first key in `values` that the defaults (`known`) do not have.
fn check_known_keys(
    values: &Dict,
    known: &Dict,
    prefix: &str,
    origin: &dyn Fn() -> String,
) -> Result<(), ConfigError> {
    for (key, value) in values {
        let dotted = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match (known.get(key), value) {
            (None, _) => return Err(ConfigError::UnknownKey { key: dotted, origin: origin() }),
            (Some(Value::Dict(_, known_inner)), Value::Dict(_, inner)) => {
                check_known_keys(inner, known_inner, &dotted, origin)?
            }
            // A table given a scalar (or the reverse) is a type error, which extraction reports.
            (Some(_), _) => {}
        }
    }
    Ok(())
}

/// One layer per `IMBOX_` variable, so that each value's origin names its variable. Sorted by
/// name, so that two spellings of one key (`IMBOX_LOG__LEVEL`, `IMBOX_log__level`) resolve the
/// same way every time.
fn env_layers(env: &[(OsString, OsString)], known: &Dict) -> Result<Vec<Layer>, ConfigError> {
    let mut vars: Vec<&(OsString, OsString)> =
        env.iter().filter(|(name, _)| name.as_encoded_bytes().starts_with(ENV_PREFIX.as_bytes())).collect();
    vars.retain(|(name, _)| !CLIENT_ENV.iter().any(|c| name.as_encoded_bytes() == c.as_bytes()));
    vars.sort();
    vars.into_iter().map(|(name, value)| env_layer(name, value, known)).collect()
}

fn env_layer(name: &OsStr, value: &OsStr, known: &Dict) -> Result<Layer, ConfigError> {
    let origin = format!("environment variable {}", name.to_string_lossy());
    let unknown = |key: String| ConfigError::UnknownKey { key, origin: origin.clone() };
    let Some(rest) = name.to_str().and_then(|name| name.strip_prefix(ENV_PREFIX)) else {
        return Err(unknown(name.to_string_lossy().into_owned()));
    };
    let path: Vec<String> = rest.split(ENV_SEPARATOR).map(str::to_ascii_lowercase).collect();
    let key = path.join(".");
    let Some(default) = lookup(known, &path) else {
        return Err(unknown(key));
    };
    let Some(value) = value.to_str() else {
        let value = value.to_string_lossy().into_owned();
        return Err(ConfigError::InvalidValue {
            key,
            value,
            origin,
            reason: "it is not valid UTF-8".to_owned(),
        });
    };
    let value = match default {
        // Taken verbatim, so that a box named `2024` or a path stays text.
        Value::String(..) => Value::from(value),
        Value::Dict(_, table) => {
            let keys: Vec<String> = table
                .keys()
                .map(|k| {
                    format!("{name}{ENV_SEPARATOR}{}", k.to_ascii_uppercase(), name = name.to_string_lossy())
                })
                .collect();
            let reason = format!("it is a table; set one of its keys instead: {}", keys.join(", "));
            return Err(ConfigError::WrongType { key, origin, reason });
        }
        // Numbers, and lists such as `["0.0.0.0:80", "[::]:80"]`, in figment's TOML-like syntax.
        _ => value.parse::<Value>().unwrap_or_else(|never| match never {}),
    };
    Ok(Layer::single(origin, &path, value))
}

/// The command-line flags, each its own layer.
fn flag_layers(overrides: &Overrides) -> Result<Vec<Layer>, ConfigError> {
    let mut layers = Vec::new();
    if let Some(dir) = &overrides.data_dir {
        let origin = "command-line flag --data-dir".to_owned();
        let absolute = std::path::absolute(dir)
            .map_err(|source| ConfigError::CurrentDir { path: dir.clone(), source })?;
        let Some(absolute) = absolute.to_str() else {
            let value = absolute.display().to_string();
            let reason = "it is not valid UTF-8".to_owned();
            return Err(ConfigError::InvalidValue { key: "data_dir".to_owned(), value, origin, reason });
        };
        layers.push(Layer::single(origin, &["data_dir".to_owned()], Value::from(absolute)));
    }
    if !overrides.http_listen.is_empty() {
        let addresses: Vec<String> = overrides.http_listen.iter().map(SocketAddr::to_string).collect();
        let path = ["http".to_owned(), "listen".to_owned()];
        layers.push(Layer::single("command-line flag --listen".to_owned(), &path, Value::from(addresses)));
    }
    Ok(layers)
}

/// The layers in order: later ones win.
fn stack<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> Figment {
    layers.into_iter().fold(Figment::new(), |figment, layer| figment.merge(layer))
}

impl Config {
    /// Loads and validates the configuration from every layer, at the real locations
    /// ([`Sources::system`]). Call it before binding any socket: an error here means imboxd
    /// should not start.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        Config::load_from(overrides, &Sources::system())
    }

    /// [`Config::load`] with the system file and environment taken from `sources`.
    pub fn load_from(overrides: &Overrides, sources: &Sources) -> Result<Config, ConfigError> {
        let defaults = Layer::defaults()?;
        let known = &defaults.values;

        let main_file = match &overrides.config_file {
            Some(path) => Some(
                Layer::file(path)?.ok_or_else(|| ConfigError::MissingConfigFile { path: path.clone() })?,
            ),
            None => match &sources.etc_file {
                Some(path) => Layer::file(path)?,
                None => None,
            },
        };
        let env = env_layers(&sources.env, known)?;
        let flags = flag_layers(overrides)?;
        for layer in main_file.iter().chain(&env).chain(&flags) {
            check_known_keys(&layer.values, known, "", &|| layer.origin())?;
        }

        // settings.toml lives in data_dir, so data_dir must be known without it.
        let without_settings = stack(std::iter::once(&defaults).chain(&main_file).chain(&env).chain(&flags));
        let data_dir: PathBuf =
            without_settings.extract_inner("data_dir").map_err(ConfigError::from_figment)?;
        check_data_dir(&data_dir, &without_settings)?;

        let settings_path = data_dir.join(SETTINGS_FILE);
        let settings = Layer::file(&settings_path)?;
        if let Some(settings) = &settings {
            if settings.values.contains_key("data_dir") {
                return Err(ConfigError::DataDirInSettings { path: settings_path });
            }
            check_known_keys(&settings.values, known, "", &|| settings.origin())?;
        }

        let figment =
            stack(std::iter::once(&defaults).chain(&main_file).chain(&settings).chain(&env).chain(&flags));
        let config: Config = figment.extract().map_err(ConfigError::from_figment)?;
        config.validate(&figment)?;
        Ok(config)
    }

    /// The configuration as TOML, in the form of `default.toml`, for `imboxd config`.
    pub fn to_toml(&self) -> String {
        // Serialising fails only for a data_dir that is not UTF-8, which `load` never produces;
        // a Config built by hand still gets an answer rather than a panic.
        toml::to_string(self)
            .unwrap_or_else(|e| format!("# the configuration cannot be shown as TOML: {e}\n"))
    }

    /// The identity key: `<data_dir>/identity.key` (PEM, PKCS#8, mode 0600).
    pub fn identity_key_path(&self) -> PathBuf {
        self.data_dir.join("identity.key")
    }

    /// The identity certificate: `<data_dir>/identity.crt` (PEM).
    pub fn identity_cert_path(&self) -> PathBuf {
        self.data_dir.join("identity.crt")
    }

    /// The database file: `<data_dir>/imbox.redb`.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("imbox.redb")
    }

    /// The control socket for local administration: `<data_dir>/control.sock`.
    pub fn control_socket_path(&self) -> PathBuf {
        self.data_dir.join("control.sock")
    }

    /// The writable settings file: `<data_dir>/settings.toml`.
    pub fn settings_path(&self) -> PathBuf {
        self.data_dir.join(SETTINGS_FILE)
    }

    /// Checks what types alone cannot: ranges, relations between keys, addresses, the log filter.
    fn validate(&self, figment: &Figment) -> Result<(), ConfigError> {
        // data_dir itself was checked before settings.toml was read, and cannot change since.
        let socket = self.control_socket_path();
        if socket.as_os_str().len() > MAX_UNIX_SOCKET_PATH {
            return Err(invalid(
                figment,
                "data_dir",
                &self.data_dir.display(),
                format!(
                    "the control socket {} would be longer than the {MAX_UNIX_SOCKET_PATH} bytes a Unix \
                     socket path may have; choose a shorter directory",
                    socket.display()
                ),
            ));
        }

        let name_chars = self.box_name.chars().count();
        if self.box_name.trim().is_empty() || name_chars > 64 || self.box_name.chars().any(char::is_control) {
            let reason = "it must be 1 to 64 characters, not all spaces, with no control characters";
            return Err(invalid(
                figment,
                "box_name",
                &format_args!("{:?}", self.box_name),
                reason.to_owned(),
            ));
        }

        let listen = &self.http.listen;
        if listen.is_empty() {
            return Err(invalid(
                figment,
                "http.listen",
                &"[]",
                "it must name at least one address".to_owned(),
            ));
        }
        if let Some(duplicate) =
            listen.iter().enumerate().find_map(|(i, a)| listen[..i].contains(a).then_some(a))
        {
            let reason = format!("{duplicate} appears more than once");
            return Err(invalid(figment, "http.listen", &format_args!("{listen:?}"), reason));
        }

        for (key, addresses) in [("https.listen", &self.https.listen), ("quic.listen", &self.quic.listen)] {
            if let Some(duplicate) =
                addresses.iter().enumerate().find_map(|(i, a)| addresses[..i].contains(a).then_some(a))
            {
                let reason = format!("{duplicate} appears more than once");
                return Err(invalid(figment, key, &format_args!("{addresses:?}"), reason));
            }
        }
        if self.identity.renew_before_days >= self.identity.certificate_days {
            let reason = format!(
                "it must be less than identity.certificate_days ({}), or every certificate would be renewed at once",
                self.identity.certificate_days
            );
            return Err(invalid(
                figment,
                "identity.renew_before_days",
                &self.identity.renew_before_days,
                reason,
            ));
        }
        if let Some(bad) =
            self.pairing.hosts.iter().find(|h| h.is_empty() || h.contains(['/', '?', '#', ' ']))
        {
            let reason = "each entry must be a host name or an IP address".to_owned();
            return Err(invalid(figment, "pairing.hosts", &format_args!("{bad:?}"), reason));
        }

        let claim_file = &self.setup.claim_file;
        if !claim_file.as_os_str().is_empty()
            && (!claim_file.is_absolute() || claim_file.file_name().is_none())
        {
            let reason =
                "it must be empty (for <data_dir>/imbox-claim.txt) or an absolute path to a file".to_owned();
            return Err(invalid(
                figment,
                "setup.claim_file",
                &format_args!("{:?}", claim_file.display().to_string()),
                reason,
            ));
        }

        let preseeded = &self.setup.preseeded_claim_file;
        if !preseeded.as_os_str().is_empty() && (!preseeded.is_absolute() || preseeded.file_name().is_none())
        {
            let reason =
                "it must be empty (no preseeded claim code) or an absolute path to a file".to_owned();
            return Err(invalid(
                figment,
                "setup.preseeded_claim_file",
                &format_args!("{:?}", preseeded.display().to_string()),
                reason,
            ));
        }

        let contact = &self.push.contact;
        let contact_ok = (contact.starts_with("mailto:") && contact.len() > 8 && contact.contains('@'))
            || contact.starts_with("https://") && url::Url::parse(contact).is_ok();
        if !contact_ok || contact.len() > 256 || contact.chars().any(char::is_control) {
            let reason = "it must be a mailto: address or an https: URL (at most 256 bytes) where a push \
                          service can reach the box's operator"
                .to_owned();
            return Err(invalid(figment, "push.contact", &format_args!("{contact:?}"), reason));
        }
        let ca = &self.push.extra_ca_file;
        if !ca.as_os_str().is_empty() && (!ca.is_absolute() || ca.file_name().is_none()) {
            let reason =
                "it must be empty (the built-in web roots only) or an absolute path to a PEM file".to_owned();
            return Err(invalid(
                figment,
                "push.extra_ca_file",
                &format_args!("{:?}", ca.display().to_string()),
                reason,
            ));
        }

        for (key, path) in [
            ("setup.storage_status", &self.setup.storage_status),
            ("setup.storage_progress", &self.setup.storage_progress),
        ] {
            if !path.is_absolute() || path.file_name().is_none() {
                let reason = "it must be an absolute path to a file".to_owned();
                return Err(invalid(figment, key, &format_args!("{:?}", path.display().to_string()), reason));
            }
        }

        if let Err(e) = crate::logging::parse_filter(&self.log.level) {
            return Err(invalid(figment, "log.level", &format_args!("{:?}", self.log.level), e.to_string()));
        }

        let l = &self.limits;
        let ranges: [(&'static str, u64, u64, u64); 13] = [
            ("limits.max_connections", l.max_connections.into(), 1, 1_000_000),
            ("limits.max_frame_bytes", l.max_frame_bytes.into(), 1024, 16 * 1024 * 1024),
            ("limits.max_text_bytes", l.max_text_bytes.into(), 1, 16 * 1024 * 1024),
            ("limits.max_sync_page", l.max_sync_page.into(), 1, 10_000),
            ("limits.max_history_page", l.max_history_page.into(), 1, 10_000),
            ("limits.sends_per_second", l.sends_per_second.into(), 1, 100_000),
            ("limits.send_burst", l.send_burst.into(), 1, 1_000_000),
            ("limits.max_group_members", l.max_group_members.into(), 2, 100_000),
            ("limits.login_attempts_per_minute", l.login_attempts_per_minute.into(), 1, 10_000),
            ("limits.max_devices_per_user", l.max_devices_per_user.into(), 1, 10_000),
            ("limits.max_inflight_requests", l.max_inflight_requests.into(), 1, 65_536),
            ("limits.session_queue", l.session_queue.into(), 1, 65_536),
            ("limits.handshake_timeout_ms", l.handshake_timeout_ms, 100, 600_000),
        ];
        let s = &self.storage;
        let storage_ranges: [(&'static str, u64, u64, u64); 9] = [
            ("storage.commit_batch_max", s.commit_batch_max.into(), 1, 65_536),
            ("storage.write_queue", s.write_queue.into(), 1, 1_048_576),
            ("storage.cache_mib", s.cache_mib.into(), 1, 4096),
            ("storage.checkpoint_idle_ms", s.checkpoint_idle_ms, 10, 60_000),
            ("storage.checkpoint_interval_ms", s.checkpoint_interval_ms, 100, 3_600_000),
            ("storage.log_max_mib", s.log_max_mib.into(), 1, 4096),
            ("storage.min_free_mib", s.min_free_mib.into(), 0, 65_536),
            ("storage.retention_days", s.retention_days.into(), 0, 36_500),
            ("storage.device_inactive_days", s.device_inactive_days.into(), 1, 3650),
        ];
        let m = &self.media;
        let media_ranges: [(&'static str, u64, u64, u64); 6] = [
            ("media.max_file_mib", m.max_file_mib.into(), 1, 1_048_576),
            ("media.user_quota_mib", m.user_quota_mib.into(), 0, u32::MAX.into()),
            ("media.reserve_mib", m.reserve_mib.into(), 0, 1_048_576),
            ("media.orphan_hours", m.orphan_hours.into(), 1, 8760),
            ("media.upload_expiry_hours", m.upload_expiry_hours.into(), 1, 8760),
            ("media.retention_days", m.retention_days.into(), 0, 36_500),
        ];
        let (q, id) = (&self.quic, &self.identity);
        let h = &self.http;
        let transport_ranges: [(&'static str, u64, u64, u64); 8] = [
            ("http.request_timeout_ms", h.request_timeout_ms, 100, 600_000),
            ("http.ping_interval_ms", h.ping_interval_ms, 100, 86_400_000),
            ("http.ping_timeout_ms", h.ping_timeout_ms, 100, 600_000),
            ("limits.write_timeout_ms", l.write_timeout_ms, 100, 600_000),
            ("quic.idle_timeout_ms", q.idle_timeout_ms, 1000, 3_600_000),
            ("quic.send_window_bytes", q.send_window_bytes.into(), 4096, 64 * 1024 * 1024),
            ("identity.certificate_days", id.certificate_days.into(), 2, 3650),
            ("identity.renew_before_days", id.renew_before_days.into(), 1, 3649),
        ];
        let p = &self.push;
        let push_ranges: [(&'static str, u64, u64, u64); 8] = [
            ("push.queue", p.queue.into(), 1, 1_000_000),
            ("push.concurrency", p.concurrency.into(), 1, 256),
            ("push.attempts", p.attempts.into(), 1, 20),
            ("push.min_interval_s", p.min_interval_s.into(), 0, 3600),
            ("push.connect_timeout_ms", p.connect_timeout_ms, 100, 120_000),
            ("push.request_timeout_ms", p.request_timeout_ms, 100, 300_000),
            ("push.max_backoff_s", p.max_backoff_s.into(), 1, 86_400),
            ("push.ttl_s", p.ttl_s.into(), 0, 2_419_200),
        ];
        let all = ranges
            .into_iter()
            .chain(storage_ranges)
            .chain(transport_ranges)
            .chain(media_ranges)
            .chain(push_ranges);
        for (key, value, min, max) in all {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::OutOfRange {
                    key,
                    value,
                    origin: origin_of(figment, key),
                    min,
                    max,
                });
            }
        }

        // A text message travels in one frame together with its envelope (ids, conversation,
        // timestamps); 1024 bytes is the room kept for that.
        let limit = u64::from(l.max_frame_bytes).saturating_sub(1024);
        if u64::from(l.max_text_bytes) >= limit {
            return Err(ConfigError::TextLargerThanFrame {
                text: l.max_text_bytes,
                text_origin: origin_of(figment, "limits.max_text_bytes"),
                limit,
                frame_origin: origin_of(figment, "limits.max_frame_bytes"),
            });
        }
        Ok(())
    }
}

/// `data_dir` must be absolute: it is resolved before anything else and used by a daemon whose
/// current directory means nothing. (A relative `--data-dir` has already been made absolute.)
fn check_data_dir(data_dir: &Path, figment: &Figment) -> Result<(), ConfigError> {
    if data_dir.is_absolute() {
        return Ok(());
    }
    let reason = "it must be an absolute path".to_owned();
    Err(invalid(figment, "data_dir", &format_args!("{:?}", data_dir.display().to_string()), reason))
}

fn invalid(figment: &Figment, key: &str, value: &dyn fmt::Display, reason: String) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        value: value.to_string(),
        origin: origin_of(figment, key),
        reason,
    }
}

/// `http.listen` as a list of addresses or as one comma-separated string; the string form is what
/// an environment variable naturally holds.
fn deserialize_listen<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SocketAddr>, D::Error> {
    struct Listen;

    impl<'de> Visitor<'de> for Listen {
        type Value = Vec<SocketAddr>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of \"ip:port\" addresses, or one string of comma-separated addresses")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            text.split(',').map(str::trim).filter(|a| !a.is_empty()).map(parse_socket_addr).collect()
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut addresses = Vec::new();
            while let Some(address) = seq.next_element::<String>()? {
                addresses.push(parse_socket_addr(address.trim())?);
            }
            Ok(addresses)
        }
    }

    deserializer.deserialize_any(Listen)
}

fn parse_socket_addr<E: de::Error>(text: &str) -> Result<SocketAddr, E> {
    text.parse().map_err(|_| {
        E::custom(format!("{text:?} is not an \"ip:port\" address (e.g. \"0.0.0.0:80\" or \"[::]:80\")"))
    })
}

#[cfg(test)]
mod tests;
