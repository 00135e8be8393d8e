//! The claim code: the one secret that makes a stranger on the LAN unable
//! to take over a new box.
//!
//! While the box has no owner, imboxd makes a code of 16 characters from
//! Crockford's base32 alphabet (no I, L, O or U; 80 random bits), shown in
//! groups of four. It writes the code to the claim file (`setup.claim_file`,
//! on the appliance the FAT boot partition, readable from any PC) and logs
//! it. The database keeps only the code's SHA-256: the claim file is where
//! the code lives. At start, a claim file whose code matches the stored hash
//! is kept (the code survives restarts); if the file is gone or does not
//! match, a new code replaces the old one. A code chosen before the first
//! start (`setup.preseeded_claim_file`: on the appliance, the one `make
//! flash` printed and put in the preseed) wins over both while the box is
//! unclaimed. The claim voids the code in the
//! same write that creates the owner, and the file is then deleted.
//!
//! Wrong codes are rate-limited per address and for the whole box, so even
//! a patient attacker needs far longer than the age of the universe.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::session::limits::LoginLimit;
use crate::store::{Store, StoreError};

/// Crockford's base32 alphabet: digits and letters without I, L, O and U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters in a code: 16 × 5 = 80 bits.
pub const LENGTH: usize = 16;

/// Wrong codes allowed per minute from one address.
pub const PER_ADDRESS_PER_MINUTE: u32 = 5;

/// Wrong codes allowed per minute from everywhere together.
pub const GLOBAL_PER_MINUTE: u32 = 30;

/// The line of the claim file that carries the code.
const CODE_LINE: &str = "Claim code: ";

/// A claim code, normalised (upper case, no separators).
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimCode(String);

impl std::fmt::Debug for ClaimCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A secret: never in debug output by accident.
        f.write_str("ClaimCode(..)")
    }
}

impl ClaimCode {
    /// A new random code.
    pub fn generate() -> Result<ClaimCode, StoreError> {
        let mut bytes = [0u8; LENGTH * 5 / 8];
        getrandom::fill(&mut bytes)
            .map_err(|e| StoreError::Invalid(format!("the system random source failed: {e}")))?;
        let bits = bytes.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
        let code = (0..LENGTH)
            .map(|i| char::from(ALPHABET[((bits >> (5 * (LENGTH - 1 - i))) & 31) as usize]))
            .collect();
        Ok(ClaimCode(code))
    }

    /// Reads a code as a person types it: any case, with spaces or dashes,
    /// O for 0 and I or L for 1. `None` if it cannot be a code.
    pub fn parse(text: &str) -> Option<ClaimCode> {
        let mut code = String::with_capacity(LENGTH);
        for c in text.chars() {
            let c = match c.to_ascii_uppercase() {
                ' ' | '-' | '\t' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
                _ => return None,
            };
            code.push(c);
            if code.len() > LENGTH {
                return None;
            }
        }
        (code.len() == LENGTH).then_some(ClaimCode(code))
    }

    /// The code in groups of four, as shown to people.
    pub fn grouped(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
    }

    /// What the database keeps.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The code in the text of a claim file, if there is one.
    pub fn from_file_text(text: &str) -> Option<ClaimCode> {
        text.lines().find_map(|line| line.trim().strip_prefix(CODE_LINE)).and_then(ClaimCode::parse)
    }
}

/// The claim file's text.
fn file_text(code: &ClaimCode) -> String {
    format!(
        "imbox: this box has no owner yet.\n\n{CODE_LINE}{}\n\n\
         Open the box's setup page (https://imbox.local/setup, or the address the box shows on\n\
         http://imbox.local) and type this code to become the box's owner. It works once; this\n\
         file is deleted when the box is claimed.\n",
        code.grouped()
    )
}

/// Where the claim file goes: `setup.claim_file`, or inside the data
/// directory when that is empty.
pub fn file_path(configured: &Path, data_dir: &Path) -> PathBuf {
    if configured.as_os_str().is_empty() {
        data_dir.join("imbox-claim.txt")
    } else {
        configured.to_owned()
    }
}

/// Writes the file through a temporary file and a rename, so that a reader
/// (or a power cut) never sees half a code.
fn write_file(path: &Path, code: &ClaimCode) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    file.write_all(file_text(code).as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Deletes the claim file after the claim (or finds it stale at start).
pub fn remove_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed the claim file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            // A file that cannot be deleted is at least emptied: the code in
            // it is void anyway.
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the claim file; emptying it");
            let _ = std::fs::write(path, b"");
        }
    }
}

/// The most of a preseeded claim file that is read: a code and a newline,
/// with room for comments.
const MAX_PRESEEDED_BYTES: u64 = 4096;

/// Why a preseeded claim code is not used.
#[derive(Debug, thiserror::Error)]
pub enum PreseededError {
    /// The file exists but cannot be read.
    #[error("cannot read the preseeded claim code {path}: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// The file holds something that is not a claim code.
    #[error(
        "{path} does not hold a claim code (16 characters of Crockford base32, as XXXX-XXXX-XXXX-XXXX, \
         which `make flash` writes): a random code is used instead; write the card again with \
         `make flash` or image/flash.sh, or read the code in imbox-claim.txt"
    )]
    Malformed { path: PathBuf },
}

/// The code in the preseeded claim file: `Ok(None)` when the path is empty
/// or the file does not exist. The file holds the code on its first line
/// that is not empty or a `#` comment.
pub fn read_preseeded(path: &Path) -> Result<Option<ClaimCode>, PreseededError> {
    use std::io::Read;
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let unreadable = |source| PreseededError::Unreadable { path: path.to_owned(), source };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_PRESEEDED_BYTES).read_to_end(&mut bytes).map_err(unreadable)?;
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .and_then(ClaimCode::parse)
        .map(Some)
        .ok_or_else(|| PreseededError::Malformed { path: path.to_owned() })
}

/// Makes sure an unclaimed box has a claim code and returns it; `None` once
/// the box is claimed. The code is, in this order: a valid code in the
/// preseeded file `preseeded` (`setup.preseeded_claim_file`; an invalid one
/// is logged and ignored), else the one in the claim file if it matches the
/// stored hash, else a new random one. A new code is stored (as its hash)
/// and written to the claim file. A claim file that cannot be written is
/// logged, not fatal: the code is still logged.
pub async fn prepare(store: &Store, file: &Path, preseeded: &Path) -> Result<Option<ClaimCode>, StoreError> {
    let settings = store.box_settings()?;
    if settings.claimed_at.is_some() {
        remove_file(file);
        return Ok(None);
    }
    let existing = std::fs::read_to_string(file).ok().and_then(|text| ClaimCode::from_file_text(&text));
    let chosen = match read_preseeded(preseeded) {
        Ok(Some(code)) => {
            tracing::info!(path = %preseeded.display(), "using the claim code preseeded when the card was written");
            Some(code)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!("{e}");
            None
        }
    };
    let code = match chosen {
        Some(code) => code,
        None => match existing.clone().filter(|c| settings.claim_hash == Some(c.hash())) {
            Some(kept) => return Ok(Some(kept)),
            None => ClaimCode::generate()?,
        },
    };
    if settings.claim_hash != Some(code.hash()) {
        store.set_claim_code(code.hash()).await?;
    }
    if existing.as_ref() != Some(&code) {
        if let Err(e) = write_file(file, &code) {
            tracing::warn!(path = %file.display(), error = %e, "cannot write the claim file; the code is only in this log");
        }
    }
    Ok(Some(code))
}

/// Failed claim attempts, per address and for the whole box.
#[derive(Debug)]
pub struct ClaimLimit {
    per_address: LoginLimit,
    global: LoginLimit,
}

/// The key under which the global limit counts every attempt.
const EVERYONE: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl Default for ClaimLimit {
    fn default() -> Self {
        ClaimLimit::new(PER_ADDRESS_PER_MINUTE, GLOBAL_PER_MINUTE)
    }
}

impl ClaimLimit {
    /// A limit of `per_address` and `global` failures a minute.
    pub fn new(per_address: u32, global: u32) -> ClaimLimit {
        ClaimLimit { per_address: LoginLimit::new(per_address), global: LoginLimit::new(global) }
    }

    /// `Ok` when `peer` may try a code now, else how long to wait.
    pub fn allowed(&self, peer: IpAddr) -> Result<(), Duration> {
        // LoginLimit counts an account and an address; here the "account" of
        // the per-address limit is the address itself, and the global limit
        // uses one key for both.
        let mine = self.per_address.allowed(&peer.to_string(), peer);
        let all = self.global.allowed("", EVERYONE);
        match (mine, all) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(wait), _) | (_, Err(wait)) => Err(wait),
        }
    }

    /// Counts a wrong code from `peer`.
    pub fn failed(&self, peer: IpAddr) {
        self.per_address.failed(&peer.to_string(), peer);
        self.global.failed("", EVERYONE);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn codes_are_random_readable_and_parsed_leniently() {
        let a = ClaimCode::generate().unwrap();
        let b = ClaimCode::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.0.len(), LENGTH);
        let grouped = a.grouped();
        assert_eq!(grouped.len(), 19);
        assert_eq!(ClaimCode::parse(&grouped), Some(a.clone()));
        assert_eq!(ClaimCode::parse(&grouped.to_lowercase().replace('-', " ")), Some(a.clone()));
        assert_eq!(ClaimCode::parse("OIL0-1111-2222-3333"), ClaimCode::parse("0110-1111-2222-3333"));
        assert_eq!(ClaimCode::parse("ABCD-EFGH-JKMN-PQR"), None, "too short");
        assert_eq!(ClaimCode::parse("ABCD-EFGH-JKMN-PQRST"), None, "too long");
        assert_eq!(ClaimCode::parse("ABCD-EFGH-JKMN-PQRU"), None, "U is not in the alphabet");
        assert_eq!(ClaimCode::from_file_text(&file_text(&a)), Some(a.clone()));
        assert!(!format!("{a:?}").contains(&a.0));
    }

    #[tokio::test(start_paused = true)]
    async fn wrong_codes_are_limited_per_address_and_globally() {
        let limit = ClaimLimit::new(2, 3);
        let (one, two, three): (IpAddr, IpAddr, IpAddr) =
            ([192, 0, 2, 1].into(), [192, 0, 2, 2].into(), [192, 0, 2, 3].into());
        limit.failed(one);
        limit.failed(one);
        assert!(limit.allowed(one).is_err(), "per address");
        assert!(limit.allowed(two).is_ok());
        limit.failed(two);
        assert!(limit.allowed(three).is_err(), "three failures in all close the door for everyone");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(limit.allowed(one).is_ok() && limit.allowed(three).is_ok());
    }

    #[tokio::test]
    async fn the_code_survives_a_restart_until_the_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("claim.txt");
        let open = || {
            crate::store::Store::open(
                &dir.path().join("db.redb"),
                crate::store::StoreOptions::default(),
                std::sync::Arc::new(crate::store::NoListener),
            )
            .unwrap()
        };
        let store = open();
        let none = Path::new("");
        let first = prepare(&store, &file, none).await.unwrap().unwrap();
        assert_eq!(prepare(&store, &file, none).await.unwrap(), Some(first.clone()), "kept across starts");
        std::fs::remove_file(&file).unwrap();
        let second = prepare(&store, &file, none).await.unwrap().unwrap();
        assert_ne!(first, second, "a lost file gets a new code");
        assert_eq!(store.box_settings().unwrap().claim_hash, Some(second.hash()));
        store.claim(second.hash(), "olivia", "h".into()).await.unwrap();
        assert_eq!(prepare(&store, &file, none).await.unwrap(), None);
        assert!(!file.exists(), "a claimed box leaves no claim file");
    }

    fn open_store(dir: &Path) -> Store {
        Store::open(
            &dir.join("db.redb"),
            crate::store::StoreOptions::default(),
            std::sync::Arc::new(crate::store::NoListener),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_preseeded_code_is_used_until_the_claim() {
        let dir = tempfile::tempdir().unwrap();
        let (file, preseeded) = (dir.path().join("claim.txt"), dir.path().join("claim-code"));
        let store = open_store(dir.path());
        // A code made before the preseed existed (the box started once
        // without it) gives way to the preseeded one.
        let random = prepare(&store, &file, &preseeded).await.unwrap().unwrap();
        std::fs::write(&preseeded, "# from the preseed\nk7mq-4xzt-0hjb-w9ne\n").unwrap();
        let code = prepare(&store, &file, &preseeded).await.unwrap().unwrap();
        assert_eq!(code.grouped(), "K7MQ-4XZT-0HJB-W9NE");
        assert_ne!(code, random);
        assert_eq!(store.box_settings().unwrap().claim_hash, Some(code.hash()), "stored as its hash");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(ClaimCode::from_file_text(&text), Some(code.clone()), "the claim file shows it");
        assert_eq!(prepare(&store, &file, &preseeded).await.unwrap(), Some(code.clone()), "kept");

        store.claim(code.hash(), "olivia", "h".into()).await.unwrap();
        assert_eq!(prepare(&store, &file, &preseeded).await.unwrap(), None, "a claimed box ignores it");
        assert!(!file.exists());
        assert!(store.box_settings().unwrap().claim_hash.is_none(), "the claim voided the code");
    }

    #[tokio::test]
    async fn a_malformed_preseeded_code_is_ignored_for_a_random_one() {
        let dir = tempfile::tempdir().unwrap();
        let (file, preseeded) = (dir.path().join("claim.txt"), dir.path().join("claim-code"));
        let store = open_store(dir.path());
        for bad in ["K7MQ-4XZT-0HJB", "K7MQ-4XZT-0HJB-W9NE-AAAA", "K7MQ-4XZT-0HJB-W9NU", "", "\u{1F511}"] {
            std::fs::write(&preseeded, bad).unwrap();
            assert!(matches!(read_preseeded(&preseeded), Err(PreseededError::Malformed { .. })), "{bad:?}");
            let code = prepare(&store, &file, &preseeded).await.unwrap().unwrap();
            assert_eq!(code.0.len(), LENGTH);
            assert_eq!(store.box_settings().unwrap().claim_hash, Some(code.hash()));
        }
        assert!(read_preseeded(&dir.path().join("absent")).unwrap().is_none());
        assert!(read_preseeded(Path::new("")).unwrap().is_none());
    }
}
