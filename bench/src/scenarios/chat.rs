//! `chat`: U users online, sending to random other users (or to their group)
//! at an offered rate that steps up, open loop. Per step: acknowledgement and
//! delivery latencies, achieved rates, errors. The headline is the highest
//! step whose delivery p99 stays under 50 ms while at least 95 % of the
//! offered messages are acknowledged and delivered; stepping stops after the
//! first step that misses, since higher rates would only miss by more.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::ensure;
use tokio::sync::mpsc::error::TrySendError;

use crate::cli::ChatArgs;
use crate::clock;
use crate::cpu;
use crate::diskio;
use crate::latency::Latencies;
use crate::payload::Stamp;
use crate::progress;
use crate::results::{ChatFigures, StepFigures};
use crate::schedule::{Dice, Schedule};
use crate::systems::{Dest, Observer, Outgoing, Slot};

use super::{check_open_files, label, open_all, system, Envelope, Running, Subject};

/// The delivery p99 a step must stay under.
pub const TARGET_P99_MS: f64 = 50.0;

/// The share of offered messages that must be acknowledged and delivered.
pub const TARGET_SHARE: f64 = 0.95;

/// A send issued later than this after its due time counts as late.
const LATE_US: u64 = 10_000;

/// The longest wait after a step for its last acknowledgements and deliveries.
const DRAIN: Duration = Duration::from_secs(5);

/// Distinct error reasons kept per step.
const ERROR_KINDS: usize = 32;

/// Everything recorded about one step, written by every session task.
#[derive(Debug, Default)]
struct StepLog {
    missed: AtomicU64,
    late: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
    expected: AtomicU64,
    last_ack_us: AtomicU64,
    last_delivery_us: AtomicU64,
    ack: Mutex<Latencies>,
    delivery: Mutex<Latencies>,
    errors: Mutex<BTreeMap<String, u64>>,
}

/// The observer of a chat run: one log per step.
#[derive(Debug)]
struct ChatLog {
    run: u32,
    steps: Vec<StepLog>,
}

impl ChatLog {
    fn step(&self, stamp: &Stamp) -> Option<&StepLog> {
        if stamp.run != self.run {
            return None;
        }
        self.steps.get(usize::from(stamp.step))
    }
}

impl Observer for ChatLog {
    fn acked(&self, message: &Outgoing, now_us: u64) {
        let Some(step) = self.step(&message.stamp) else { return };
        step.acked.fetch_add(1, Ordering::Relaxed);
        step.expected.fetch_add(u64::from(message.fanout), Ordering::Relaxed);
        step.last_ack_us.fetch_max(now_us, Ordering::Relaxed);
        let latency = now_us.saturating_sub(message.stamp.scheduled_us);
        step.ack.lock().unwrap_or_else(PoisonError::into_inner).record_us(latency);
    }

    fn failed(&self, message: &Outgoing, reason: &str) {
        let Some(step) = self.step(&message.stamp) else { return };
        step.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = step.errors.lock().unwrap_or_else(PoisonError::into_inner);
        if errors.len() < ERROR_KINDS || errors.contains_key(reason) {
            *errors.entry(reason.to_owned()).or_default() += 1;
        }
    }

    fn missed(&self, message: &Outgoing) {
        if let Some(step) = self.step(&message.stamp) {
            step.missed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn delivered(&self, stamp: &Stamp, now_us: u64) {
        let Some(step) = self.step(stamp) else { return };
        step.delivered.fetch_add(1, Ordering::Relaxed);
        step.last_delivery_us.fetch_max(now_us, Ordering::Relaxed);
        let latency = now_us.saturating_sub(stamp.scheduled_us);
        step.delivery.lock().unwrap_or_else(PoisonError::into_inner).record_us(latency);
    }
}

/// Who sends to whom.
#[derive(Debug)]
struct Plan {
    /// Sessions that send: every open one (direct), or every open member of
    /// a group with another open member.
    senders: Vec<usize>,
    /// Open sessions (direct recipients).
    live: Vec<usize>,
    /// Groups: the group of each session, and each group's deliveries per
    /// message (open members other than the sender).
    group_of: Option<Vec<usize>>,
    fanout: Vec<u32>,
}

impl Plan {
    fn new(open: &[bool], group_size: Option<usize>) -> Plan {
        let live: Vec<usize> = (0..open.len()).filter(|&i| open[i]).collect();
        match group_size {
            None => Plan { senders: live.clone(), live, group_of: None, fanout: Vec::new() },
            Some(size) => {
                let group_of: Vec<usize> = (0..open.len()).map(|i| i / size).collect();
                let groups = open.len().div_ceil(size);
                let mut members = vec![0u32; groups];
                for &i in &live {
                    members[group_of[i]] += 1;
                }
                let fanout: Vec<u32> = members.iter().map(|m| m.saturating_sub(1)).collect();
                let senders = live.iter().copied().filter(|&i| fanout[group_of[i]] > 0).collect();
                Plan { senders, live, group_of: Some(group_of), fanout }
            }
        }
    }

    /// A random sender and where its message goes.
    fn pick(&self, dice: &mut Dice) -> Option<(usize, Dest, u32)> {
        if self.senders.is_empty() {
            return None;
        }
        let sender = self.senders[dice.below(self.senders.len())];
        match &self.group_of {
            Some(group_of) => {
                let group = group_of[sender];
                Some((sender, Dest::Group(group), self.fanout[group]))
            }
            None => {
                if self.live.len() < 2 {
                    return None;
                }
                let position = self.live.binary_search(&sender).unwrap_or(0);
                let recipient = self.live[dice.other_than(self.live.len(), position)];
                Some((sender, Dest::User(recipient), 1))
            }
        }
    }
}

pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    ensure!(!args.rates.is_empty(), "--rates lists no rate");
    ensure!(args.users >= 2, "--users must be at least 2");
    ensure!(args.step_seconds > 0, "--step-seconds must be at least 1");
    ensure!(args.rates.len() <= usize::from(u16::MAX), "too many steps");
    if let Some(size) = args.group_size {
        ensure!(size >= 2 && size <= args.users, "--group-size must be from 2 to --users");
    }
    let envelope = Envelope::start(args.target.server_pid);
    let users = args.users;
    let system = system(&args.target, users).await?;
    if let Some(available) = system.users() {
        ensure!(
            available >= users,
            "chat needs one user per session: the tokens file has {available} users, --users is {users}"
        );
    }
    let label = label(&args.target, &system);
    check_open_files(users);
    // One scenario name per group size, so that a report keeps groups of 10,
    // 100 and 1,000 apart.
    let scenario = match args.group_size {
        Some(size) => format!("chat-group-{size}"),
        None => "chat".to_owned(),
    };

    let slots: Vec<Slot> =
        (0..users).map(|index| Slot { index, group: args.group_size.map(|size| index / size) }).collect();
    let bar = progress::bar(users as u64, "sessions");
    let mut opened = open_all(&system, &slots, &bar).await;
    bar.finish_and_clear();
    let open: Vec<bool> = opened.sessions.iter().map(Option::is_some).collect();
    let plan = Plan::new(&open, args.group_size);
    tracing::info!(%label, open = plan.live.len(), failed = opened.failures.count, "sessions open");
    for sample in &opened.failures.samples {
        tracing::warn!(%sample, "a session failed to open");
    }
    ensure!(plan.live.len() >= 2, "fewer than two sessions opened; nothing to measure");

    if let Some(size) = args.group_size {
        let groups = users.div_ceil(size);
        for group in 0..groups {
            let members: Vec<usize> =
                (group * size..((group + 1) * size).min(users)).filter(|&i| open[i]).collect();
            if members.len() >= 2 {
                system.create_group(group, &members, &mut opened.sessions).await?;
            }
        }
        tracing::info!(groups, size, "groups ready");
    }

    let log = Arc::new(ChatLog {
        run: clock::run_id(),
        steps: args.rates.iter().map(|_| StepLog::default()).collect(),
    });
    let running = Running::start(opened.sessions, Arc::clone(&log) as Arc<dyn Observer>);
    let mut dice = Dice::new(u64::from(clock::run_id()));
    let mut seq = 0u64;
    let mut steps = Vec::new();
    let step_length = Duration::from_secs(args.step_seconds);
    let server = args.target.server_pid;
    // Each step's disk figure runs from the server's settled counter before
    // it to the settled counter after it, so that the checkpoint its writes
    // cause is counted with it (and group creation before the first is not).
    let mut written_before = diskio::settle(server).await;
    let mut cpu_before = server.and_then(cpu::cpu_seconds);
    for (index, &rate) in args.rates.iter().enumerate() {
        let step = index as u16;
        let schedule = Schedule::new(rate, step_length);
        let start_us = clock::now_us();
        let start = Instant::now();
        let bar = progress::bar(schedule.total(), &format!("{rate}/s"));
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut issued = 0u64;
        let step_log = &log.steps[index];
        while issued < schedule.total() {
            tick.tick().await;
            let due = schedule.due_by(start.elapsed());
            let now_us = clock::now_us();
            while issued < due {
                let scheduled_us = start_us + schedule.offset_us(issued);
                if now_us.saturating_sub(scheduled_us) > LATE_US {
                    step_log.late.fetch_add(1, Ordering::Relaxed);
                }
                issued += 1;
                seq += 1;
                let Some((sender, dest, fanout)) = plan.pick(&mut dice) else { continue };
                let stamp = Stamp { run: log.run, step, sender: sender as u32, seq, scheduled_us };
                let message = Outgoing { dest, stamp, fanout };
                let Some(outbox) = &running.outboxes[sender] else { continue };
                match outbox.try_send(message) {
                    Ok(()) => {}
                    Err(TrySendError::Full(message) | TrySendError::Closed(message)) => log.missed(&message),
                }
            }
            bar.set_position(issued);
        }
        bar.finish_and_clear();

        // Let the step's last messages be answered and delivered.
        let drain_start = Instant::now();
        loop {
            let settled = step_log.acked.load(Ordering::Relaxed)
                + step_log.failed.load(Ordering::Relaxed)
                + step_log.missed.load(Ordering::Relaxed)
                >= schedule.total()
                && step_log.delivered.load(Ordering::Relaxed) >= step_log.expected.load(Ordering::Relaxed);
            if settled || drain_start.elapsed() >= DRAIN {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut figures = summarize(step_log, rate, schedule.total(), step_length, start_us);
        let written_after = diskio::settle(server).await;
        figures.server_write_bytes = written_before.zip(written_after).map(|(a, b)| b.saturating_sub(a));
        figures.write_bytes_per_message =
            figures.server_write_bytes.filter(|_| figures.acked > 0).map(|b| b as f64 / figures.acked as f64);
        written_before = written_after;
        let cpu_after = server.and_then(cpu::cpu_seconds);
        figures.server_cpu_seconds = cpu_before.zip(cpu_after).map(|(a, b)| b - a);
        cpu_before = cpu_after;
        tracing::info!(
            %label,
            offered = rate,
            ack_rate = figures.ack_rate.round(),
            delivered_rate = figures.delivered_rate.round(),
            ack_p99_ms = figures.ack_latency.p99_ms,
            delivery_p50_ms = figures.delivery_latency.p50_ms,
            delivery_p99_ms = figures.delivery_latency.p99_ms,
            delivery_p999_ms = figures.delivery_latency.p999_ms,
            missed = figures.missed,
            late = figures.late,
            failed = figures.failed,
            meets_target = figures.meets_target,
            write_bytes_per_message = figures.write_bytes_per_message.map(f64::round),
            server_cpu_us_per_message =
                figures.server_cpu_seconds.filter(|_| figures.acked > 0).map(|s| (s * 1e6 / figures.acked as f64).round()),
            "step done"
        );
        let meets = figures.meets_target;
        steps.push(figures);
        if !meets {
            break;
        }
    }
    let lost = running.stop().await;
    for reason in &lost.samples {
        tracing::warn!(%reason, "a session ended during the run");
    }
    system.finish().await;

    let headline = steps.iter().filter(|step| step.meets_target).max_by_key(|step| step.offered_rate);
    let figures = ChatFigures {
        users: users as u64,
        sessions_open: plan.live.len() as u64,
        group_size: args.group_size.map(|size| size as u64),
        groups: args.group_size.map(|size| users.div_ceil(size) as u64),
        target_p99_ms: TARGET_P99_MS,
        headline_rate: headline.map(|step| step.offered_rate),
        headline_delivered_rate: headline.map(|step| step.delivered_rate),
        steps,
    };
    match figures.headline_rate {
        Some(rate) => tracing::info!(%label, rate, "headline: highest rate with delivery p99 under 50 ms"),
        None => tracing::warn!(%label, "no step met the target"),
    }
    let parameters = serde_json::json!({
        "users": users,
        "rates": args.rates,
        "step_seconds": args.step_seconds,
        "group_size": args.group_size,
        "message_bytes": crate::payload::MESSAGE_BYTES,
        "max_in_flight_per_session": crate::systems::MAX_IN_FLIGHT,
        "sources": args.target.sources,
    });
    let result = envelope.finish(&scenario, Subject::of(&system, label), parameters, figures)?;
    result.write(&args.out)
}

/// The figures of one step from its log.
fn summarize(log: &StepLog, rate: u32, scheduled: u64, length: Duration, start_us: u64) -> StepFigures {
    let seconds = length.as_secs_f64();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let (acked, failed, missed, delivered, expected) =
        (load(&log.acked), load(&log.failed), load(&log.missed), load(&log.delivered), load(&log.expected));
    // A rate over the step, or over the time until the last answer when the
    // system fell behind: 1000 answers trickling in over 3 s of a 1 s step
    // are 333/s, not 1000/s.
    let span = |last_us: u64| seconds.max(last_us.saturating_sub(start_us) as f64 / 1e6);
    let ack_rate = acked as f64 / span(load(&log.last_ack_us));
    let delivered_rate = delivered as f64 / span(load(&log.last_delivery_us));
    let ack_latency = log.ack.lock().unwrap_or_else(PoisonError::into_inner).summary();
    let delivery_latency = log.delivery.lock().unwrap_or_else(PoisonError::into_inner).summary();
    let meets_target =
        meets_target(rate, ack_rate, delivered, expected, delivery_latency.count, delivery_latency.p99_ms);
    StepFigures {
        offered_rate: u64::from(rate),
        seconds,
        scheduled,
        missed,
        late: load(&log.late),
        acked,
        failed,
        unanswered: scheduled.saturating_sub(acked + failed + missed),
        ack_rate,
        delivered,
        expected_deliveries: expected,
        delivered_rate,
        ack_latency,
        delivery_latency,
        errors: log.errors.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        meets_target,
        server_write_bytes: None,
        write_bytes_per_message: None,
        server_cpu_seconds: None,
    }
}

/// Whether a step counts for the headline.
fn meets_target(
    offered_rate: u32,
    ack_rate: f64,
    delivered: u64,
    expected: u64,
    delivery_count: u64,
    delivery_p99_ms: f64,
) -> bool {
    delivery_count > 0
        && delivery_p99_ms < TARGET_P99_MS
        && ack_rate >= TARGET_SHARE * f64::from(offered_rate)
        && delivered as f64 >= TARGET_SHARE * expected as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_needs_low_p99_and_most_messages_through() {
        assert!(meets_target(1000, 990.0, 9900, 9950, 9900, 12.0));
        assert!(!meets_target(1000, 990.0, 9900, 9950, 9900, 50.0), "p99 must stay under 50 ms");
        assert!(!meets_target(1000, 900.0, 9900, 9950, 9900, 12.0), "90 % acknowledged is too few");
        assert!(!meets_target(1000, 990.0, 5000, 9950, 5000, 12.0), "half delivered is too few");
        assert!(!meets_target(1000, 990.0, 0, 0, 0, 0.0), "no deliveries, no figure");
    }

    #[test]
    fn direct_plans_pick_other_open_sessions() {
        let open = [true, false, true, true];
        let plan = Plan::new(&open, None);
        let mut dice = Dice::new(1);
        for _ in 0..1000 {
            let (sender, dest, fanout) = plan.pick(&mut dice).expect("a pick");
            let Dest::User(recipient) = dest else { panic!("direct") };
            assert_ne!(sender, recipient);
            assert!(open[sender] && open[recipient]);
            assert_eq!(fanout, 1);
        }
    }

    #[test]
    fn group_plans_count_open_members_other_than_the_sender() {
        // Groups of 3: {0,1,2} with 1 closed, {3,4,5} all open, {6} alone.
        let open = [true, false, true, true, true, true, true];
        let plan = Plan::new(&open, Some(3));
        assert_eq!(plan.fanout, vec![1, 2, 0]);
        assert!(!plan.senders.contains(&6), "a lone member has nobody to send to");
        let mut dice = Dice::new(2);
        for _ in 0..1000 {
            let (sender, dest, fanout) = plan.pick(&mut dice).expect("a pick");
            assert_eq!(dest, Dest::Group(sender / 3));
            assert_eq!(fanout, plan.fanout[sender / 3]);
        }
    }

    fn message(step: u16, scheduled_us: u64, fanout: u32) -> Outgoing {
        Outgoing {
            dest: Dest::User(0),
            stamp: Stamp { run: 9, step, sender: 1, seq: 1, scheduled_us },
            fanout,
        }
    }

    #[test]
    fn a_step_summary_from_what_sessions_reported() {
        let log = ChatLog { run: 9, steps: vec![StepLog::default(), StepLog::default()] };
        // 100 messages in a 1 s step from t = 1 s, each acknowledged after
        // 2 ms and delivered to 2 sessions after 5 ms; one refused, one missed.
        for i in 0..100u64 {
            let sent = 1_000_000 + i * 10_000;
            let m = message(1, sent, 2);
            log.acked(&m, sent + 2_000);
            log.delivered(&m.stamp, sent + 5_000);
            log.delivered(&m.stamp, sent + 5_000);
        }
        log.failed(&message(1, 0, 2), "rate_limited");
        log.missed(&message(1, 0, 2));
        // Another run's message changes nothing.
        let mut foreign = message(1, 0, 1);
        foreign.stamp.run = 8;
        log.acked(&foreign, 5);
        let figures = summarize(&log.steps[1], 100, 103, Duration::from_secs(1), 1_000_000);
        assert_eq!((figures.acked, figures.failed, figures.missed, figures.unanswered), (100, 1, 1, 1));
        assert_eq!((figures.delivered, figures.expected_deliveries), (200, 200));
        assert!((figures.ack_rate - 100.0).abs() < 1e-9, "{}", figures.ack_rate);
        assert!((figures.delivered_rate - 200.0).abs() < 1e-9, "{}", figures.delivered_rate);
        assert!((figures.ack_latency.p99_ms - 2.0).abs() < 0.01);
        assert!((figures.delivery_latency.p50_ms - 5.0).abs() < 0.01);
        assert_eq!(figures.errors.get("rate_limited"), Some(&1));
        assert!(figures.meets_target);
        assert_eq!(log.steps[0].acked.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn answers_trickling_in_after_the_step_lower_the_rate() {
        let log = StepLog::default();
        let observer = ChatLog { run: 9, steps: vec![log] };
        for i in 0..100u64 {
            // Due within the first second, answered up to 4 s later.
            let m = message(0, i * 10_000, 1);
            observer.acked(&m, i * 40_000);
        }
        let figures = summarize(&observer.steps[0], 100, 100, Duration::from_secs(1), 0);
        assert!(figures.ack_rate < 30.0, "{}", figures.ack_rate);
        assert!(!figures.meets_target);
    }
}
