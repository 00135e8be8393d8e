//! CPU time used by a process, from /proc/PID/stat. The load generator and
//! the server share the machine's cores, so a result says how much of them
//! each side took.

/// User plus system CPU seconds used so far by process `pid`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = busy_ticks(&stat)?;
    Some(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// User plus system CPU seconds used so far by process `pid` and its
/// children that are still running: nginx works in worker processes, whose
/// time reaches the master's figures only once they exit.
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let own = cpu_seconds(pid)?;
    let children: f64 = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| child != pid)
        .filter_map(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            (parent_pid(&stat)? == pid).then(|| busy_ticks(&stat)).flatten()
        })
        .map(|ticks| ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
        .sum();
    Some(own + children)
}

/// The parent pid (field 4) of a /proc/PID/stat line.
pub fn parent_pid(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from its closing parenthesis.
pub fn busy_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (the state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds of this process and (when known) the server during a scenario.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    generator: Option<f64>,
    server: Option<(u32, f64)>,
}

impl CpuMark {
    pub fn now(server_pid: Option<u32>) -> CpuMark {
        CpuMark {
            generator: cpu_seconds(std::process::id()),
            server: server_pid.and_then(|pid| cpu_seconds(pid).map(|seconds| (pid, seconds))),
        }
    }

    /// CPU seconds used since the mark: (generator, server).
    pub fn since(&self) -> (Option<f64>, Option<f64>) {
        let generator = self.generator.zip(cpu_seconds(std::process::id())).map(|(a, b)| b - a);
        let server = self.server.and_then(|(pid, a)| cpu_seconds(pid).map(|b| b - a));
        (generator, server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_read_past_an_awkward_command_name() {
        let stat = "1234 (imbox d) (x)) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 3 0 100 0 0";
        assert_eq!(busy_ticks(stat), Some(325));
        assert_eq!(busy_ticks("garbage"), None);
        assert_eq!(parent_pid(stat), Some(1));
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let mut spin = 0u64;
        for i in 0..5_000_000u64 {
            spin = spin.wrapping_mul(31).wrapping_add(i);
        }
        assert!(spin != 1);
        assert!(cpu_seconds(std::process::id()).is_some());
        let tree = tree_cpu_seconds(std::process::id()).expect("this process");
        assert!(tree >= cpu_seconds(std::process::id()).unwrap_or(f64::MAX) - 0.1);
    }
}
