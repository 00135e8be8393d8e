//! `report`: every result file in a directory turned into markdown tables, one
//! per scenario with every system side by side and imbox's ratio to the best
//! peer, plus the latency-against-load plot ([`crate::plot`]).
//!
//! The ratio is oriented so that above 1 means imbox wins: for memory and
//! latency (lower is better) it is best peer / imbox, for rates (higher is
//! better) imbox / best peer.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::ReportArgs;
use crate::results::{
    ChatFigures, IdleFigures, ResultFile, StartupFigures, StepFigures, StormFigures, TransferFigures,
};

/// Whether less or more of a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// imbox's ratio to the best of `peers`, above 1 when imbox is better; `None`
/// without a usable peer figure or imbox figure.
pub fn ratio(imbox: Option<f64>, peers: &[Option<f64>], better: Better) -> Option<f64> {
    let imbox = imbox.filter(|v| v.is_finite() && *v > 0.0)?;
    let usable = peers.iter().flatten().copied().filter(|v| v.is_finite() && *v > 0.0);
    match better {
        Better::Lower => usable.min_by(f64::total_cmp).map(|best| best / imbox),
        Better::Higher => usable.max_by(f64::total_cmp).map(|best| imbox / best),
    }
}

/// How a ratio reads in a table.
pub fn format_ratio(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("×{r:.2}"),
        None => "—".to_owned(),
    }
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let results = load(&args.results)?;
    anyhow::ensure!(!results.is_empty(), "{} holds no result files", args.results.display());
    let markdown = markdown(&results)?;
    write(&args.markdown_out, &markdown)?;
    crate::plot::draw(&results, &args.plot_out)?;
    if let Some(out) = &args.out {
        let mut text = serde_json::to_string_pretty(&headlines(&results)?)?;
        text.push('\n');
        write(out, &text)?;
    }
    tracing::info!(
        results = results.len(),
        markdown = %args.markdown_out.display(),
        plot = %args.plot_out.display(),
        "report written"
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Every result file in `dir`, the newest per scenario and label; files that
/// are not result files (a tokens file, say) are skipped.
pub fn load(dir: &Path) -> anyhow::Result<Vec<ResultFile>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    let mut newest: BTreeMap<(String, String), ResultFile> = BTreeMap::new();
    for path in paths {
        match ResultFile::read(&path) {
            Ok(result) => {
                let key = (result.scenario.clone(), result.label.clone());
                let newer = newest.get(&key).is_none_or(|kept| kept.finished_at <= result.finished_at);
                if newer {
                    newest.insert(key, result);
                }
            }
            Err(e) => tracing::debug!(path = %path.display(), error = %e, "skipped"),
        }
    }
    Ok(newest.into_values().collect())
}

/// imbox's rows first, then the peers by name.
fn ordered<'a>(results: &'a [ResultFile], scenario: &str) -> Vec<&'a ResultFile> {
    let mut rows: Vec<&ResultFile> = results.iter().filter(|r| r.scenario == scenario).collect();
    rows.sort_by(|a, b| (a.system != "imbox", &a.label).cmp(&(b.system != "imbox", &b.label)));
    rows
}

/// The ratio cell of one row: filled for imbox rows only.
fn ratio_cell(
    row: &ResultFile,
    rows: &[&ResultFile],
    value: impl Fn(&ResultFile) -> Option<f64>,
    better: Better,
) -> String {
    if row.system != "imbox" {
        return "—".to_owned();
    }
    let peers: Vec<Option<f64>> = rows.iter().filter(|r| r.system != "imbox").map(|r| value(r)).collect();
    match ratio(value(row), &peers, better) {
        None if value(row).is_some() && !peers.is_empty() && peers.iter().all(Option::is_none) => {
            "no peer figure".to_owned()
        }
        ratio => format_ratio(ratio),
    }
}

fn number(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "—".to_owned(),
    }
}

fn kib(bytes: Option<f64>) -> String {
    number(bytes.map(|b| b / 1024.0), 1)
}

fn mib(bytes: Option<f64>) -> String {
    number(bytes.map(|b| b / 1_048_576.0), 1)
}

/// The markdown document.
pub fn markdown(results: &[ResultFile]) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut machines: Vec<String> = results
        .iter()
        .map(|r| {
            let m = &r.machine;
            let memory = m
                .memory_bytes
                .map(|b| format!(", {:.1} GiB", b as f64 / 1_073_741_824.0))
                .unwrap_or_default();
            format!("{} ({} cores{memory}, {}, Linux {})", m.cpu_model, m.nproc, m.arch, m.kernel)
        })
        .collect();
    machines.sort();
    machines.dedup();
    let _ = writeln!(out, "Measured on: {}.\n", machines.join("; "));
    idle_table(&mut out, results)?;
    chat_table(&mut out, results, "chat")?;
    for scenario in group_scenarios(results) {
        chat_table(&mut out, results, &scenario)?;
    }
    disk_table(&mut out, results)?;
    storm_table(&mut out, results)?;
    startup_table(&mut out, results)?;
    phone_table(&mut out, results)?;
    for scenario in transfer_scenarios(results) {
        transfer_table(&mut out, results, &scenario)?;
    }
    cpu_table(&mut out, results);
    Ok(out)
}

/// How busy each side was: the generator shares the cores with the server.
fn cpu_table(out: &mut String, results: &[ResultFile]) {
    let mut rows: Vec<&ResultFile> =
        // (The transfer scenario's figures hold CPU per transfer; its
        // systems share one run, so whole-run figures would mislead.)
        results
            .iter()
            .filter(|r| {
                r.generator_cpu_seconds.is_some()
                    && r.scenario != "provision"
                    && !r.scenario.starts_with("transfer-")
            })
            .collect();
    if rows.is_empty() {
        return;
    }
    rows.sort_by(|a, b| {
        (&a.scenario, a.system != "imbox", &a.label).cmp(&(&b.scenario, b.system != "imbox", &b.label))
    });
    let _ = writeln!(
        out,
        "### CPU used during each scenario
"
    );
    let _ = writeln!(
        out,
        "The load generator runs on the same cores as the server; cores = CPU seconds / wall seconds.\n"
    );
    let _ = writeln!(out, "| Scenario | System | Seconds | Generator CPU (s) | Generator cores | Server CPU (s) | Server cores |");
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let cores = |cpu: Option<f64>| number(cpu.map(|c| c / row.duration_seconds.max(1e-9)), 2);
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} | {} | {} | {} |",
            row.scenario,
            row.label,
            row.duration_seconds,
            number(row.generator_cpu_seconds, 1),
            cores(row.generator_cpu_seconds),
            number(row.server_cpu_seconds, 1),
            cores(row.server_cpu_seconds),
        );
    }
    let _ = writeln!(out);
}

fn idle_table(out: &mut String, results: &[ResultFile]) -> anyhow::Result<()> {
    let rows = ordered(results, "idle");
    if rows.is_empty() {
        return Ok(());
    }
    let figures: Vec<IdleFigures> = rows.iter().map(|r| r.figures()).collect::<anyhow::Result<_>>()?;
    let per_session = |r: &ResultFile| r.figures::<IdleFigures>().ok().and_then(|f| f.bytes_per_session);
    let _ = writeln!(out, "### Idle sessions: server memory per session\n");
    let _ = writeln!(
        out,
        "Ratio: the best peer's memory per session divided by imbox's (above 1: imbox uses less).\n"
    );
    let _ = writeln!(out, "| System | Sessions open | Memory per session (KiB) | Server RSS with all open (MiB) | Connects/s | Failures | vs best peer |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (row, f) in rows.iter().zip(&figures) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            f.sessions_open,
            kib(f.bytes_per_session),
            mib(f.loaded_rss_bytes.map(|b| b as f64)),
            number(Some(f.connects_per_second), 0),
            f.failures + f.dropped,
            ratio_cell(row, &rows, per_session, Better::Lower),
        );
    }
    let _ = writeln!(out);
    Ok(())
}

/// The step a chat result's headline names.
fn headline_step(figures: &ChatFigures) -> Option<&StepFigures> {
    let rate = figures.headline_rate?;
    figures.steps.iter().find(|step| step.offered_rate == rate && step.meets_target)
}

fn chat_table(out: &mut String, results: &[ResultFile], scenario: &str) -> anyhow::Result<()> {
    let rows = ordered(results, scenario);
    if rows.is_empty() {
        return Ok(());
    }
    let figures: Vec<ChatFigures> = rows.iter().map(|r| r.figures()).collect::<anyhow::Result<_>>()?;
    let group = is_group(scenario);
    let headline = |r: &ResultFile| {
        let f = r.figures::<ChatFigures>().ok()?;
        if group {
            f.headline_delivered_rate
        } else {
            f.headline_rate.map(|rate| rate as f64)
        }
    };
    if group {
        let size = figures.iter().find_map(|f| f.group_size).unwrap_or(0);
        let _ = writeln!(
            out,
            "### Group chat (groups of {size}): deliveries per second with delivery p99 under 50 ms\n"
        );
        let _ = writeln!(
            out,
            "Headline: the highest offered rate whose delivery p99 stayed under 50 ms with at least 95 % of the messages acknowledged and delivered; every member's delivery counts. Ratio: imbox's deliveries/s at its headline divided by the best peer's.\n"
        );
    } else {
        let _ = writeln!(out, "### Direct chat: messages per second with delivery p99 under 50 ms\n");
        let _ = writeln!(
            out,
            "Headline: the highest offered rate whose delivery p99 stayed under 50 ms with at least 95 % of the messages acknowledged and delivered. imbox acknowledges after fsync; brokers acknowledge on receipt. Ratio: imbox's headline divided by the best peer's.\n"
        );
    }
    let _ = writeln!(
        out,
        "| System | Headline (msg/s) | Deliveries/s | Ack p99 (ms) | Delivery p50 / p99 / p99.9 (ms) | Highest rate tried | vs best peer |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (row, f) in rows.iter().zip(&figures) {
        let step = headline_step(f);
        let tried = f.steps.iter().map(|s| s.offered_rate).max();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            f.headline_rate.map_or("none".to_owned(), |r| r.to_string()),
            number(step.map(|s| s.delivered_rate), 0),
            number(step.map(|s| s.ack_latency.p99_ms), 1),
            step.map_or("—".to_owned(), |s| format!(
                "{:.1} / {:.1} / {:.1}",
                s.delivery_latency.p50_ms, s.delivery_latency.p99_ms, s.delivery_latency.p999_ms
            )),
            tried.map_or("—".to_owned(), |r| r.to_string()),
            ratio_cell(row, &rows, headline, Better::Higher),
        );
    }
    let _ = writeln!(out, "\nEvery step:\n");
    let _ = writeln!(
        out,
        "| System | Offered (msg/s) | Acked/s | Delivered/s | Ack p50 / p99 (ms) | Delivery p50 / p99 / p99.9 (ms) | Missed | Errors | Under target |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |");
    for (row, f) in rows.iter().zip(&figures) {
        for s in &f.steps {
            let errors: u64 = s.errors.values().sum::<u64>() + s.unanswered;
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {} | {} | {} |",
                row.label,
                s.offered_rate,
                s.ack_rate,
                s.delivered_rate,
                s.ack_latency.p50_ms,
                s.ack_latency.p99_ms,
                s.delivery_latency.p50_ms,
                s.delivery_latency.p99_ms,
                s.delivery_latency.p999_ms,
                s.missed,
                errors,
                if s.meets_target { "yes" } else { "no" },
            );
        }
    }
    let _ = writeln!(out);
    Ok(())
}

fn storm_table(out: &mut String, results: &[ResultFile]) -> anyhow::Result<()> {
    let rows = ordered(results, "storm");
    if rows.is_empty() {
        return Ok(());
    }
    let figures: Vec<StormFigures> = rows.iter().map(|r| r.figures()).collect::<anyhow::Result<_>>()?;
    let rate = |r: &ResultFile| r.figures::<StormFigures>().ok().map(|f| f.logins_per_second);
    let _ = writeln!(out, "### Login storm: devices reconnecting at once (full handshakes)\n");
    let _ = writeln!(out, "Ratio: imbox's logins per second divided by the best peer's.\n");
    let _ = writeln!(out, "| System | Devices | Logged in | All in (s) | Logins/s | Login p50 / p99 (ms) | Failures | vs best peer |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (row, f) in rows.iter().zip(&figures) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {:.0} | {:.1} / {:.1} | {} | {} |",
            row.label,
            f.devices,
            f.logged_in,
            f.all_in_seconds,
            f.logins_per_second,
            f.login_latency.p50_ms,
            f.login_latency.p99_ms,
            f.failures,
            ratio_cell(row, &rows, rate, Better::Higher),
        );
    }
    let _ = writeln!(out);
    Ok(())
}

fn startup_table(out: &mut String, results: &[ResultFile]) -> anyhow::Result<()> {
    let rows = ordered(results, "startup");
    if rows.is_empty() {
        return Ok(());
    }
    let _ = writeln!(out, "### Start-up with a full database\n");
    let _ = writeln!(out, "| System | Messages stored | Ready, median (ms) | Ready, every run (ms) | Idle RSS, median (MiB) | Database (MiB) |");
    let _ = writeln!(out, "| --- | ---: | ---: | --- | ---: | ---: |");
    for row in rows {
        let f: StartupFigures = row.figures()?;
        let every: Vec<String> = f.runs.iter().map(|run| format!("{:.1}", run.ready_ms)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.label,
            f.messages,
            number(f.ready_ms_median, 1),
            every.join(", "),
            mib(f.rss_bytes_median),
            mib(Some(f.database_bytes as f64)),
        );
    }
    let _ = writeln!(out);
    Ok(())
}

/// The `phone` scenario: resume latency and idle traffic of a QUIC session.
fn phone_table(out: &mut String, results: &[ResultFile]) -> anyhow::Result<()> {
    use crate::results::PhoneFigures;
    let rows = ordered(results, "phone");
    if rows.is_empty() {
        return Ok(());
    }
    let _ = writeln!(
        out,
        "### A phone's QUIC session: resume latency
"
    );
    let _ = writeln!(out, "From the start of the reconnection to the answer of the first `sync` (hello, resume, sync), through a UDP relay that adds the round-trip time; medians.\n");
    let _ = writeln!(
        out,
        "| System | Added RTT (ms) | `ping` (ms) | 0-RTT (ms) | Full handshake (ms) | 0-RTT refused |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        let f: PhoneFigures = row.figures()?;
        for r in &f.resume {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} |",
                row.label,
                r.rtt_ms,
                number(r.ping_ms_median, 1),
                number(r.zero_rtt_ms_median, 1),
                number(r.full_handshake_ms_median, 1),
                r.zero_rtt_refused,
            );
        }
    }
    let _ = writeln!(out, "\n### A phone's QUIC session: bytes while idle\n");
    let _ = writeln!(out, "Every datagram both ways through the relay, IPv4 and UDP headers included, after the session synced and settled.\n");
    let _ = writeln!(out, "| System | Client keep-alive | Window (s) | Datagrams up / down | Bytes on the wire | Open at the end | Bytes per idle hour |");
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | :---: | ---: |");
    for row in &rows {
        let f: PhoneFigures = row.figures()?;
        for i in &f.idle {
            let keep_alive =
                i.keep_alive_seconds.map_or_else(|| "none".to_owned(), |s| format!("every {s} s"));
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} / {} | {} | {} | {:.0} |",
                row.label,
                keep_alive,
                i.window_seconds,
                i.datagrams_up,
                i.datagrams_down,
                i.wire_bytes,
                if i.open_at_end { "yes" } else { "no" },
                i.wire_bytes_per_hour,
            );
        }
    }
    let _ = writeln!(out);
    Ok(())
}

/// The attachment transfer scenarios present (`transfer-<cipher offer>`).
fn transfer_scenarios(results: &[ResultFile]) -> Vec<String> {
    let mut found: Vec<String> =
        results.iter().filter(|r| r.scenario.starts_with("transfer-")).map(|r| r.scenario.clone()).collect();
    found.sort();
    found.dedup();
    found
}

/// One big file up and down: throughput and the server's CPU per GB, with
/// imbox's ratio to nginx.
fn transfer_table(out: &mut String, results: &[ResultFile], scenario: &str) -> anyhow::Result<()> {
    let rows = ordered(results, scenario);
    let figures: Vec<TransferFigures> = rows.iter().map(|r| r.figures()).collect::<anyhow::Result<_>>()?;
    let Some(first) = figures.first() else { return Ok(()) };
    let offer = if first.offered_ciphers.len() == 1 {
        format!("the client offered {} alone", first.offered_ciphers.join(""))
    } else {
        format!("the client offered {}, in that order", first.offered_ciphers.join(", "))
    };
    let _ =
        writeln!(out, "### Attachments: a {} MiB file up and down ({offer})\n", first.size_bytes / 1_048_576);
    let _ = writeln!(
        out,
        "Medians of {} repetitions; MB = 10^6 bytes, GB = 10^9 bytes. Server CPU: user + system seconds of the server's processes (nginx: master and workers) from the start of a transfer until 0.5 s after it, per GB moved. Ratios: imbox against nginx, above 1 when imbox is better (faster, or less CPU).\n",
        first.repetitions
    );
    let _ = writeln!(out, "| System | Cipher negotiated | Upload (MB/s) | vs nginx | Download (MB/s) | vs nginx | Server CPU, upload (s/GB) | vs nginx | Server CPU, download (s/GB) | vs nginx | Failures |");
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let transfer = |r: &ResultFile| r.figures::<TransferFigures>().ok();
    let up_rate = |r: &ResultFile| transfer(r).and_then(|f| f.upload.mb_per_second_median);
    let down_rate = |r: &ResultFile| transfer(r).and_then(|f| f.download.mb_per_second_median);
    let up_cpu = |r: &ResultFile| transfer(r).and_then(|f| f.upload.server_cpu_seconds_per_gb_median);
    let down_cpu = |r: &ResultFile| transfer(r).and_then(|f| f.download.server_cpu_seconds_per_gb_median);
    for (row, f) in rows.iter().zip(&figures) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            f.cipher.as_deref().unwrap_or("not reported"),
            number(f.upload.mb_per_second_median, 0),
            ratio_cell(row, &rows, up_rate, Better::Higher),
            number(f.download.mb_per_second_median, 0),
            ratio_cell(row, &rows, down_rate, Better::Higher),
            number(f.upload.server_cpu_seconds_per_gb_median, 2),
            ratio_cell(row, &rows, up_cpu, Better::Lower),
            number(f.download.server_cpu_seconds_per_gb_median, 2),
            ratio_cell(row, &rows, down_cpu, Better::Lower),
            f.failures,
        );
    }
    let _ = writeln!(out);
    for (row, f) in rows.iter().zip(&figures) {
        for sample in &f.failure_samples {
            let _ = writeln!(out, "- {} failed: {}", row.label, sample.replace('\n', " "));
        }
    }
    if figures.iter().any(|f| !f.failure_samples.is_empty()) {
        let _ = writeln!(out);
    }
    Ok(())
}

/// Whether a scenario is group chat (`chat-group-<size>`, or `chat-group`
/// in older files).
fn is_group(scenario: &str) -> bool {
    scenario.starts_with("chat-group")
}

/// The group chat scenarios present, smallest groups first.
fn group_scenarios(results: &[ResultFile]) -> Vec<String> {
    let mut found: Vec<(u64, String)> = results
        .iter()
        .filter(|r| is_group(&r.scenario))
        .map(|r| {
            let size = r.figures::<ChatFigures>().ok().and_then(|f| f.group_size).unwrap_or(0);
            (size, r.scenario.clone())
        })
        .collect();
    found.sort();
    found.dedup_by(|a, b| a.1 == b.1);
    found.into_iter().map(|(_, scenario)| scenario).collect()
}

/// The step a disk figure is quoted from: the first, lightest one, which
/// every system runs. Bytes per message fall as the load grows (a batch
/// rewrites each page it touches once, however many of its messages touched
/// it), so figures compare at equal rates: every group size starts at the
/// same rate in the standard run.
fn disk_step(figures: &ChatFigures) -> Option<&StepFigures> {
    figures.steps.first().filter(|s| s.write_bytes_per_message.is_some())
}

/// Bytes the server wrote to storage per message, direct and per group size.
fn disk_table(out: &mut String, results: &[ResultFile]) -> anyhow::Result<()> {
    let mut scenarios = vec!["chat".to_owned()];
    scenarios.extend(group_scenarios(results));
    let mut columns = Vec::new();
    for scenario in &scenarios {
        let rows = ordered(results, scenario);
        let figures: Vec<(&ResultFile, ChatFigures)> =
            rows.into_iter().map(|r| Ok((r, r.figures()?))).collect::<anyhow::Result<_>>()?;
        if figures.iter().any(|(_, f)| disk_step(f).is_some()) {
            let title = match figures.iter().find_map(|(_, f)| f.group_size) {
                Some(size) => format!("groups of {size}"),
                None => "direct".to_owned(),
            };
            columns.push((title, figures));
        }
    }
    if columns.is_empty() {
        return Ok(());
    }
    let mut labels: Vec<(bool, String)> = columns
        .iter()
        .flat_map(|(_, figures)| figures.iter().map(|(r, _)| (r.system != "imbox", r.label.clone())))
        .collect();
    labels.sort();
    labels.dedup();
    let _ = writeln!(
        out,
        "### Disk bytes written per message
"
    );
    let _ = writeln!(
        out,
        "The server's `write_bytes` (/proc/PID/io) from before a load step until it has been quiet for 1.2 s after it (so imboxd's checkpoint of the step is counted), divided by the messages acknowledged in the step; a group message counts once. Taken at each scenario's first step (its rate in parentheses): bytes per message fall as batches grow, so sizes compare at equal rates. It includes what the load's other requests write (imbox sessions acknowledge their read position every 5 s).\n"
    );
    let header: Vec<&str> = columns.iter().map(|(title, _)| title.as_str()).collect();
    let _ = writeln!(out, "| System | {} |", header.join(" | "));
    let _ = writeln!(out, "| --- |{}", " ---: |".repeat(columns.len()));
    for (_, label) in &labels {
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, figures)| {
                let step = figures.iter().find(|(r, _)| &r.label == label).and_then(|(_, f)| disk_step(f));
                match step {
                    Some(s) => format!("{} ({}/s)", number(s.write_bytes_per_message, 0), s.offered_rate),
                    None => "—".to_owned(),
                }
            })
            .collect();
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }
    let _ = writeln!(out);
    Ok(())
}

/// The headline figure of every result, for `--out`.
fn headlines(results: &[ResultFile]) -> anyhow::Result<serde_json::Value> {
    let mut all = serde_json::Map::new();
    for result in results {
        let figure = match result.scenario.as_str() {
            "idle" => {
                serde_json::json!({ "bytes_per_session": result.figures::<IdleFigures>()?.bytes_per_session })
            }
            scenario if scenario == "chat" || is_group(scenario) => {
                let f: ChatFigures = result.figures()?;
                serde_json::json!({ "headline_rate": f.headline_rate, "headline_delivered_rate": f.headline_delivered_rate })
            }
            "storm" => {
                serde_json::json!({ "logins_per_second": result.figures::<StormFigures>()?.logins_per_second })
            }
            "startup" => {
                serde_json::json!({ "ready_ms_median": result.figures::<StartupFigures>()?.ready_ms_median })
            }
            scenario if scenario.starts_with("transfer-") => {
                let f: TransferFigures = result.figures()?;
                serde_json::json!({
                    "upload_mb_per_second": f.upload.mb_per_second_median,
                    "download_mb_per_second": f.download.mb_per_second_median,
                    "cipher": f.cipher,
                })
            }
            _ => continue,
        };
        let scenario = all.entry(result.scenario.clone()).or_insert_with(|| serde_json::json!({}));
        scenario[&result.label] = figure;
    }
    Ok(serde_json::Value::Object(all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Summary;
    use crate::machine::Machine;
    use crate::results::SCHEMA;

    #[test]
    fn ratios_say_above_one_when_imbox_wins() {
        // Memory: imbox 4 KiB, peers 10 and 8 KiB: the best peer (8) / 4 = 2.
        assert_eq!(ratio(Some(4.0), &[Some(10.0), Some(8.0)], Better::Lower), Some(2.0));
        // Rates: imbox 9000/s, peers 3000 and 1000/s: 9000 / 3000 = 3.
        assert_eq!(ratio(Some(9000.0), &[Some(3000.0), Some(1000.0)], Better::Higher), Some(3.0));
        // A peer that failed outright does not count as the best.
        assert_eq!(ratio(Some(9000.0), &[None, Some(4500.0)], Better::Higher), Some(2.0));
        assert_eq!(ratio(Some(9000.0), &[None], Better::Higher), None);
        assert_eq!(ratio(None, &[Some(1.0)], Better::Higher), None);
        assert_eq!(format_ratio(Some(2.0)), "×2.00");
        assert_eq!(format_ratio(None), "—");
    }

    fn result(scenario: &str, system: &str, label: &str, figures: serde_json::Value) -> ResultFile {
        ResultFile {
            schema: SCHEMA,
            tool: "imbox-bench test".into(),
            scenario: scenario.into(),
            system: system.into(),
            label: label.into(),
            transport: "wss".into(),
            url: None,
            parameters: serde_json::json!({}),
            machine: Machine {
                nproc: 2,
                memory_bytes: Some(1 << 30),
                kernel: "6.1".into(),
                cpu_model: "Test CPU".into(),
                arch: "x86_64".into(),
            },
            started_at: "2030-01-01T00:00:00Z".into(),
            finished_at: "2030-01-01T00:01:00Z".into(),
            duration_seconds: 60.0,
            generator_cpu_seconds: None,
            server_cpu_seconds: None,
            figures,
        }
    }

    fn step(rate: u64, p99: f64, meets: bool) -> StepFigures {
        StepFigures {
            offered_rate: rate,
            seconds: 10.0,
            ack_rate: rate as f64,
            delivered_rate: rate as f64,
            delivery_latency: Summary {
                count: 100,
                p50_ms: p99 / 4.0,
                p99_ms: p99,
                p999_ms: p99 * 2.0,
                ..Summary::default()
            },
            meets_target: meets,
            ..StepFigures::default()
        }
    }

    fn chat(headline: Option<u64>, steps: Vec<StepFigures>) -> serde_json::Value {
        serde_json::to_value(ChatFigures {
            users: 1000,
            sessions_open: 1000,
            target_p99_ms: 50.0,
            headline_rate: headline,
            headline_delivered_rate: headline.map(|r| r as f64),
            steps,
            ..ChatFigures::default()
        })
        .expect("json")
    }

    #[test]
    fn tables_put_systems_side_by_side_with_imbox_ratios() {
        let idle = |bytes: f64| {
            serde_json::to_value(IdleFigures {
                sessions_open: 10_000,
                bytes_per_session: Some(bytes),
                loaded_rss_bytes: Some(100 << 20),
                ..IdleFigures::default()
            })
            .expect("json")
        };
        let results = vec![
            result("idle", "mqtt", "mosquitto", idle(8192.0)),
            result("idle", "imbox", "imbox (WSS)", idle(4096.0)),
            result("idle", "mqtt", "rumqttd", idle(16384.0)),
            result(
                "chat",
                "mqtt",
                "mosquitto",
                chat(
                    Some(2000),
                    vec![step(1000, 5.0, true), step(2000, 20.0, true), step(4000, 80.0, false)],
                ),
            ),
            result(
                "chat",
                "imbox",
                "imbox (QUIC)",
                chat(
                    Some(8000),
                    vec![step(4000, 4.0, true), step(8000, 30.0, true), step(16000, 90.0, false)],
                ),
            ),
            result("chat", "mqtt", "rumqttd", chat(None, vec![step(1000, 70.0, false)])),
        ];
        let mut results = results;
        results[0].generator_cpu_seconds = Some(30.0);
        results[0].server_cpu_seconds = Some(60.0);
        let text = markdown(&results).expect("markdown");
        assert!(text.contains("| idle | mosquitto | 60.0 | 30.0 | 0.50 | 60.0 | 1.00 |"), "{text}");
        assert!(text.contains("Measured on: Test CPU (2 cores, 1.0 GiB, x86_64, Linux 6.1)."), "{text}");
        // imbox first, then the peers by name; memory ratio = 8 KiB / 4 KiB.
        let idle_rows: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("| imbox (WSS)")
                    || l.starts_with("| mosquitto | 10000")
                    || l.starts_with("| rumqttd | 10000")
            })
            .collect();
        assert_eq!(idle_rows.len(), 3, "{text}");
        assert!(idle_rows[0].starts_with("| imbox (WSS) | 10000 | 4.0 | 100.0 |"), "{}", idle_rows[0]);
        assert!(idle_rows[0].ends_with("| ×2.00 |"), "{}", idle_rows[0]);
        assert!(idle_rows[1].ends_with("| — |"));
        // Chat: 8000 / the best peer's 2000; the peer with no headline says so.
        let imbox_chat =
            text.lines().find(|l| l.starts_with("| imbox (QUIC) | 8000 |")).expect("imbox chat row");
        assert!(imbox_chat.ends_with("| ×4.00 |"), "{imbox_chat}");
        assert!(imbox_chat.contains("| 7.5 / 30.0 / 60.0 |"), "{imbox_chat}");
        assert!(text.contains("| rumqttd | none |"), "{text}");
        // Every step is listed.
        assert!(text.contains("| imbox (QUIC) | 16000 |"), "{text}");
        assert!(!text.contains("### Login storm"), "no storm results, no storm table");

        // When no peer met the target at all, imbox's row says so.
        let groups = vec![
            result("chat-group", "imbox", "imbox (WSS)", chat(Some(200), vec![step(200, 20.0, true)])),
            result("chat-group", "mqtt", "mosquitto", chat(None, vec![step(100, 80.0, false)])),
        ];
        let text = markdown(&groups).expect("markdown");
        let imbox_group =
            text.lines().find(|l| l.starts_with("| imbox (WSS) | 200 |")).expect("imbox group row");
        assert!(imbox_group.ends_with("| no peer figure |"), "{imbox_group}");
    }

    fn group(size: u64, headline: Option<u64>, steps: Vec<StepFigures>) -> serde_json::Value {
        let mut figures: ChatFigures = serde_json::from_value(chat(headline, steps)).expect("chat");
        figures.group_size = Some(size);
        serde_json::to_value(figures).expect("json")
    }

    #[test]
    fn group_sizes_get_a_table_each_and_a_disk_column_each() {
        let with_disk = |rate: u64, meets: bool, per_message: f64| StepFigures {
            write_bytes_per_message: Some(per_message),
            ..step(rate, if meets { 10.0 } else { 90.0 }, meets)
        };
        let results = vec![
            result(
                "chat-group-1000",
                "imbox",
                "imbox (WSS)",
                group(1000, Some(20), vec![with_disk(20, true, 900.0)]),
            ),
            result(
                "chat-group-10",
                "imbox",
                "imbox (WSS)",
                group(10, Some(500), vec![with_disk(500, true, 700.0)]),
            ),
            result(
                "chat-group-10",
                "mqtt",
                "mosquitto",
                group(10, None, vec![with_disk(200, false, 3.0), with_disk(500, false, 1.0)]),
            ),
        ];
        let text = markdown(&results).expect("markdown");
        let ten = text.find("### Group chat (groups of 10)").expect("groups of 10");
        let thousand = text.find("### Group chat (groups of 1000)").expect("groups of 1000");
        assert!(ten < thousand, "smaller groups first");
        assert!(text.contains("| System | groups of 10 | groups of 1000 |"), "{text}");
        // The first step's figure.
        assert!(text.contains("| imbox (WSS) | 700 (500/s) | 900 (20/s) |"), "{text}");
        assert!(text.contains("| mosquitto | 3 (200/s) | — |"), "{text}");
    }

    fn transfer(cipher: Option<&str>, up: f64, down: f64, up_cpu: f64) -> serde_json::Value {
        use crate::results::DirectionFigures;
        serde_json::to_value(TransferFigures {
            size_bytes: 256 << 20,
            repetitions: 3,
            offered_ciphers: vec!["TLS13_CHACHA20_POLY1305_SHA256".into()],
            cipher: cipher.map(str::to_owned),
            upload: DirectionFigures {
                mb_per_second_median: Some(up),
                server_cpu_seconds_per_gb_median: Some(up_cpu),
                ..DirectionFigures::default()
            },
            download: DirectionFigures { mb_per_second_median: Some(down), ..DirectionFigures::default() },
            ..TransferFigures::default()
        })
        .expect("figures")
    }

    #[test]
    fn transfers_are_compared_with_nginx() {
        let results = vec![
            result(
                "transfer-chacha20",
                "nginx",
                "nginx (HTTPS)",
                transfer(Some("TLS13_CHACHA20_POLY1305_SHA256"), 200.0, 400.0, 2.0),
            ),
            result(
                "transfer-chacha20",
                "imbox",
                "imbox (HTTPS, tus)",
                transfer(Some("TLS13_CHACHA20_POLY1305_SHA256"), 100.0, 400.0, 4.0),
            ),
            result("transfer-chacha20", "imbox", "imbox (QUIC)", transfer(None, 50.0, 100.0, 8.0)),
        ];
        let text = markdown(&results).expect("markdown");
        assert!(text.contains("### Attachments: a 256 MiB file up and down (the client offered TLS13_CHACHA20_POLY1305_SHA256 alone)"), "{text}");
        // imbox rows first; upload half as fast and twice the CPU: ×0.50 both.
        assert!(
            text.contains("| imbox (HTTPS, tus) | TLS13_CHACHA20_POLY1305_SHA256 | 100 | ×0.50 | 400 | ×1.00 | 4.00 | ×0.50 |"),
            "{text}"
        );
        assert!(text.contains("| imbox (QUIC) | not reported | 50 | ×0.25 |"), "{text}");
        assert!(text.contains("| nginx (HTTPS) | TLS13_CHACHA20_POLY1305_SHA256 | 200 | — |"), "{text}");
        let imbox = text.find("imbox (QUIC)").expect("imbox row");
        let nginx = text.find("| nginx (HTTPS)").expect("nginx row");
        assert!(imbox < nginx);
    }

    #[test]
    fn the_newest_result_per_scenario_and_label_wins_and_other_json_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut old = result(
            "storm",
            "imbox",
            "imbox (WSS)",
            serde_json::to_value(StormFigures { logins_per_second: 1.0, ..StormFigures::default() })
                .expect("json"),
        );
        old.finished_at = "2029-01-01T00:00:00Z".into();
        let new = result(
            "storm",
            "imbox",
            "imbox (WSS)",
            serde_json::to_value(StormFigures { logins_per_second: 2.0, ..StormFigures::default() })
                .expect("json"),
        );
        old.write(&dir.path().join("b-old.json")).expect("write");
        new.write(&dir.path().join("a-new.json")).expect("write");
        std::fs::write(dir.path().join("tokens.json"), r#"{"url":"x","pin":"y","users":[]}"#).expect("write");
        let loaded = load(dir.path()).expect("load");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].figures::<StormFigures>().expect("storm").logins_per_second, 2.0);
    }
}
