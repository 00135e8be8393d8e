//! `provision`: the accounts and device tokens the imbox scenarios resume
//! with. Accounts are made through the running daemon's control socket (as
//! `imboxd user add` does), devices are logged in over the network with the
//! imbox client library, the way a person's first login works.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures_util::StreamExt;
use imbox_client::{ConnectOptions, Connection, ServerUrl};
use imbox_protocol::Fingerprint;
use imboxd::admin::{AdminReply, AdminRequest};

use crate::cli::ProvisionArgs;
use crate::progress;
use crate::results::{FailureSamples, ProvisionFigures};
use crate::systems::imbox::{TokensFile, UserToken};

use super::{Envelope, Subject};

/// Tries per login: a loaded server may time a login out.
const LOGIN_TRIES: u32 = 3;

/// The name of user `index`.
pub fn user_name(index: usize) -> String {
    format!("b{index}")
}

pub async fn run(args: ProvisionArgs) -> anyhow::Result<()> {
    let envelope = Envelope::start(None);
    let start = Instant::now();
    ensure!(args.users > 0, "--users must be at least 1");
    ensure!(
        imbox_protocol::names::valid_password(&args.password),
        "--password must have at least 8 characters"
    );
    let parallel = args.parallel.max(1);
    let url = ServerUrl::parse(&args.url)?;
    let pin: Option<Fingerprint> =
        args.pin.as_deref().map(str::parse).transpose().map_err(|e| anyhow::anyhow!("--pin: {e}"))?;
    if url.scheme().is_tls() && pin.is_none() {
        bail!("--pin is required for {} (imboxd identity prints it)", url.scheme().as_str());
    }

    let existing: HashSet<String> =
        match imboxd::control::request(&args.control_socket, &AdminRequest::UserList)
            .await
            .with_context(|| format!("cannot reach imboxd through {}", args.control_socket.display()))?
        {
            AdminReply::Users { users } => users.into_iter().map(|user| user.name).collect(),
            other => bail!("imboxd answered the user list with {other:?}"),
        };
    let names: Vec<String> = (0..args.users).map(user_name).collect();
    let missing: Vec<&String> = names.iter().filter(|name| !existing.contains(*name)).collect();
    let existed = (names.len() - missing.len()) as u64;
    tracing::info!(users = args.users, existing = existed, creating = missing.len(), "provisioning");

    let mut failures = FailureSamples::default();
    let bar = progress::bar(missing.len() as u64, "accounts");
    let mut created = 0u64;
    let mut adds = futures_util::stream::iter(missing)
        .map(|name| {
            let socket = args.control_socket.clone();
            let request =
                AdminRequest::UserAdd { name: name.clone(), password: args.password.clone(), admin: false };
            async move { (name, imboxd::control::request(&socket, &request).await) }
        })
        .buffer_unordered(parallel);
    while let Some((name, added)) = adds.next().await {
        match added {
            Ok(_) => created += 1,
            Err(e) => failures.add(format!("user {name}: {e}")),
        }
        bar.inc(1);
    }
    drop(adds);
    bar.finish_and_clear();
    ensure!(failures.count == 0, "could not create {} accounts, e.g. {:?}", failures.count, failures.samples);

    let options = ConnectOptions {
        client_name: concat!("imbox-bench/", env!("CARGO_PKG_VERSION")).to_owned(),
        pin,
        ..ConnectOptions::default()
    };
    let bar = progress::bar(names.len() as u64, "logins");
    let mut tokens: Vec<Option<UserToken>> = vec![None; names.len()];
    let mut logins = futures_util::stream::iter(names.iter().enumerate())
        .map(|(index, name)| {
            let (url, options, password) = (&url, &options, args.password.as_str());
            async move { (index, log_in(url, options, name, password).await) }
        })
        .buffer_unordered(parallel);
    while let Some((index, token)) = logins.next().await {
        match token {
            Ok(token) => tokens[index] = Some(UserToken { name: names[index].clone(), token }),
            Err(e) => failures.add(format!("login {}: {e:#}", names[index])),
        }
        bar.inc(1);
    }
    drop(logins);
    bar.finish_and_clear();

    let users: Vec<UserToken> = tokens.into_iter().flatten().collect();
    let logged_in = users.len() as u64;
    let file = TokensFile { url: args.url.clone(), pin: args.pin.clone().unwrap_or_default(), users };
    write_private(&args.tokens_out, &serde_json::to_vec_pretty(&file)?)?;
    let figures = ProvisionFigures {
        users: args.users as u64,
        created,
        existed,
        logged_in,
        failures: failures.count,
        seconds: start.elapsed().as_secs_f64(),
        failure_samples: failures.samples.clone(),
    };
    tracing::info!(created, existed, logged_in, tokens = %args.tokens_out.display(), "provisioned");
    if let Some(out) = &args.out {
        let parameters = serde_json::json!({ "users": args.users, "parallel": parallel });
        let subject = Subject {
            system: "imbox".into(),
            label: "imbox".into(),
            transport: url.scheme().as_str().into(),
            url: Some(url.to_string()),
        };
        let result = envelope.finish("provision", subject, parameters, &figures)?;
        result.write(out)?;
    }
    ensure!(failures.count == 0, "{} logins failed, e.g. {:?}", failures.count, failures.samples);
    Ok(())
}

/// Logs a new device of `name` in and returns its token.
async fn log_in(
    url: &ServerUrl,
    options: &ConnectOptions,
    name: &str,
    password: &str,
) -> anyhow::Result<String> {
    let mut last = None;
    for attempt in 0..LOGIN_TRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
        let outcome = async {
            let connection = Connection::connect_with(url, options).await?;
            let auth = connection.login(name, password, "imbox-bench").await;
            connection.close().await;
            let auth = auth?;
            auth.token.context("the login answer carried no token")
        };
        match outcome.await {
            Ok(token) => return Ok(token),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
}

/// Writes a file only its owner can read: the tokens are credentials.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes).with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
