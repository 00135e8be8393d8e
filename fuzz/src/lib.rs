//! A small fuzzing harness that runs on the stable toolchain, inside
//! `cargo test`, so CI needs nothing beyond what builds imbox.
//!
//! Each target (in `tests/`) is a function of bytes that must never panic
//! and must keep its own invariants. [`run`] feeds it first every file of
//! its corpus (`fuzz/corpus/<target>/`, committed: seeds and every input
//! that once failed), then mutations of them for a time budget:
//! `IMBOX_FUZZ_SECONDS` (default 2 per target, so `cargo test` stays quick;
//! `make fuzz` gives each target 20). The mutations are seeded:
//! `IMBOX_FUZZ_SEED` replays a run exactly; a failure prints the seed and
//! saves the input under `target/fuzz-failures/`, ready to be added to the
//! corpus once fixed.
//!
//! This is blind mutation, not coverage-guided fuzzing (cargo-fuzz needs a
//! nightly compiler): it finds what the seeds are a few mutations away
//! from, which is why the seeds cover every request type and frame shape.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A xorshift64* generator: small, fast, and the same on every machine,
/// so a seed replays a run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced: xorshift would stay at 0).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Bytes that MessagePack, length prefixes and WebSocket headers give
/// meaning to: the mutator prefers them to uniformly random bytes.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc7, 0xca, 0xcb,
    0xcc, 0xcf, 0xd0, 0xd4, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff, 0x02, 0x08, 0x09, 0x0a, 0x88,
    0x89, 0x8a, 0x7e, 0xfe,
];

/// Changes `input` in one to eight random ways: bit flips, interesting
/// bytes, inserted and deleted runs, duplicated runs, 16/32-bit boundary
/// values, truncation, and splices from `other` (another corpus entry).
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8], max_len: usize) {
    for _ in 0..1 + rng.below(8) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                for k in 0..n {
                    let b = if rng.one_in(2) {
                        INTERESTING[rng.below(INTERESTING.len())]
                    } else {
                        rng.next_u64() as u8
                    };
                    input.insert(at + k, b);
                }
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = (1 + rng.below(16)).min(len - at);
                input.drain(at..at + n);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = (1 + rng.below(32)).min(len - at);
                let run: Vec<u8> = input[at..at + n].to_vec();
                let to = rng.below(input.len() + 1);
                input.splice(to..to, run);
            }
            5 if len >= 4 => {
                let at = rng.below(len - 3);
                let value: u32 =
                    [0, 1, 0x7f, 0xff, 0x100, 0xffff, 0x1_0000, 0x7fff_ffff, u32::MAX][rng.below(9)];
                let bytes = if rng.one_in(2) { value.to_be_bytes() } else { value.to_le_bytes() };
                input[at..at + 4].copy_from_slice(&bytes);
            }
            6 if len > 0 => input.truncate(rng.below(len)),
            7 if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = 1 + rng.below(other.len() - from);
                let at = rng.below(len + 1);
                input.splice(at..at, other[from..from + n].iter().copied());
            }
            _ => {
                let at = rng.below(len + 1);
                input.insert(at, rng.next_u64() as u8);
            }
        }
    }
    input.truncate(max_len);
}

/// The corpus of a target: every file in `fuzz/corpus/<target>/`, sorted
/// by name so that a seed replays the same run.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(e) => panic!("the corpus {} cannot be read: {e}", dir.display()),
    };
    files.sort();
    let corpus: Vec<(PathBuf, Vec<u8>)> =
        files.into_iter().filter_map(|p| std::fs::read(&p).ok().map(|bytes| (p, bytes))).collect();
    assert!(!corpus.is_empty(), "the corpus {} is empty", dir.display());
    corpus
}

/// Where a target's corpus lives.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target)
}

/// The time budget per target.
pub fn budget() -> Duration {
    let seconds = std::env::var("IMBOX_FUZZ_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(seconds.max(0.0))
}

/// The seed of this run: `IMBOX_FUZZ_SEED`, or the clock.
pub fn seed() -> u64 {
    std::env::var("IMBOX_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// What a run did, for the test's output.
#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    pub seed: u64,
    pub runs: u64,
}

/// Runs `target` on its corpus, then on mutations of it until the budget
/// is spent (at least `min_runs` mutations, so that a slow target is still
/// exercised with a zero budget). Inputs are at most `max_len` bytes.
/// Panics, naming the seed and the saved input, if the target panics.
pub fn run(target: &'static str, max_len: usize, min_runs: u64, mut check: impl FnMut(&[u8])) -> Report {
    let corpus = corpus(target);
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut attempt = |input: &[u8], what: &str| {
        if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            let saved = save_failure(target, input);
            panic!(
                "fuzz target {target} failed on {what}; input saved as {} (replay the run with IMBOX_FUZZ_SEED={seed})",
                saved.display()
            );
        }
    };
    for (path, bytes) in &corpus {
        attempt(bytes, &format!("its corpus file {}", path.display()));
    }
    let deadline = Instant::now() + budget();
    let mut runs = 0;
    while runs < min_runs || Instant::now() < deadline {
        let mut input = corpus[rng.below(corpus.len())].1.clone();
        let other = &corpus[rng.below(corpus.len())].1;
        mutate(&mut rng, &mut input, other, max_len);
        attempt(&input, "a mutated input");
        runs += 1;
    }
    let report = Report { target, seed, runs };
    eprintln!("fuzz {target}: {} corpus files, {runs} mutations, seed {seed}", corpus.len());
    report
}

fn save_failure(target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let hash =
        input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let path = dir.join(format!("{target}-{hash:016x}.bin"));
    let _ = std::fs::write(&path, input);
    path
}

/// Reads choices out of fuzz bytes, as `arbitrary`'s `Unstructured` does:
/// a target that needs structure (a sequence of requests) decodes it from
/// the bytes, so mutating the bytes mutates the structure. Running out of
/// bytes yields zeros, never a failure.
#[derive(Debug)]
pub struct Choices<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Choices<'a> {
    pub fn new(bytes: &'a [u8]) -> Choices<'a> {
        Choices { bytes, at: 0 }
    }

    /// Whether every byte was used.
    pub fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// The next byte.
    pub fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::from(self.byte()) % n
        }
    }

    /// A 64-bit number, often small or on a boundary.
    pub fn number(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => u64::from(u32::MAX),
            3 => u64::from_be_bytes(std::array::from_fn(|_| self.byte())),
            _ => u64::from(self.byte()) % 12,
        }
    }

    /// One of `options`.
    pub fn pick<T: Clone>(&mut self, options: &[T]) -> T {
        options[self.below(options.len())].clone()
    }

    /// Up to `max` raw bytes.
    pub fn slice(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.bytes.len().saturating_sub(self.at));
        let start = self.at.min(self.bytes.len());
        self.at += n;
        &self.bytes[start..start + n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_mutations() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let (mut x, mut y) = (b"hello frame".to_vec(), b"hello frame".to_vec());
        for _ in 0..100 {
            mutate(&mut a, &mut x, b"other", 64);
            mutate(&mut b, &mut y, b"other", 64);
        }
        assert_eq!(x, y);
        assert!(x.len() <= 64);
    }
}
