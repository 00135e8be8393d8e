//! The machine a result was measured on, so that figures from different
//! machines are never compared unawares.

use serde::{Deserialize, Serialize};

/// What result files say about the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Processors this process may use.
    pub nproc: usize,
    /// Total memory, in bytes (MemTotal).
    pub memory_bytes: Option<u64>,
    /// The kernel release.
    pub kernel: String,
    /// The CPU model as /proc/cpuinfo names it.
    pub cpu_model: String,
    /// The processor architecture this program was built for.
    pub arch: String,
}

impl Machine {
    /// Describes the machine this process runs on.
    pub fn this() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_bytes: mem_total_bytes(&read("/proc/meminfo")),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu_model: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| "unknown".to_owned()),
            arch: std::env::consts::ARCH.to_owned(),
        }
    }
}

/// The CPU model from /proc/cpuinfo: x86 says `model name`; ARM kernels say
/// `Model` (the board, on a Raspberry Pi), `Hardware`, or only `CPU part`.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    let value = |key: &str| {
        cpuinfo.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == key && !value.trim().is_empty()).then(|| value.trim().to_owned())
        })
    };
    value("model name")
        .or_else(|| value("Model"))
        .or_else(|| value("Hardware"))
        .or_else(|| value("CPU part").map(|part| format!("CPU part {part}")))
}

/// MemTotal from /proc/meminfo, in bytes.
pub fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line["MemTotal:".len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_and_raspberry_pi_cpuinfo() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(cpu_model(x86).as_deref(), Some("Intel(R) Xeon(R) CPU @ 2.20GHz"));
        let pi = "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n";
        assert_eq!(cpu_model(pi).as_deref(), Some("Raspberry Pi 4 Model B Rev 1.4"));
        assert_eq!(cpu_model("processor : 0\nCPU part : 0xd08\n").as_deref(), Some("CPU part 0xd08"));
        assert_eq!(cpu_model(""), None);
    }

    #[test]
    fn mem_total() {
        assert_eq!(mem_total_bytes("MemTotal:       24576000 kB\nMemFree: 1 kB\n"), Some(24_576_000 * 1024));
        assert_eq!(mem_total_bytes("nothing"), None);
    }

    #[test]
    fn this_machine_is_described() {
        let machine = Machine::this();
        assert!(machine.nproc >= 1);
        assert!(!machine.kernel.is_empty());
    }
}
