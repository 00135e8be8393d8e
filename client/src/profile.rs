//! A device's credentials and cursor, kept in a profile directory.
//!
//! `DIR/profile.json` holds the server URL, the user, the device id, the
//! device token and the cursor. The token is a credential, so the file is
//! written with mode 0600 (and the directory created with 0700). Every save
//! writes a new file and renames it over the old one, so a crash or a full
//! disk leaves either the old profile or the new one, never half of each.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use imbox_protocol::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// The profile file's name inside the profile directory.
pub const PROFILE_FILE: &str = "profile.json";

/// What a device remembers between runs. Its `Debug` output leaves the
/// token out, so that logging a profile never leaks the credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The server URL, as given at login or chosen at pairing
    /// (`ws://HOST:PORT`, `wss://HOST:PORT/ws` or `quic://HOST:PORT`).
    pub server: String,
    /// The user name.
    pub user: String,
    /// This device's id.
    pub device: u64,
    /// This device's token: its credential.
    pub token: String,
    /// The position of the last delivery-log entry this device processed.
    pub cursor: u64,
    /// The fingerprint of the box's key (`sha256:…`), which `wss://` and
    /// `quic://` connections check. Absent in profiles from before pinning,
    /// which still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
}

/// Reads a key fingerprint as people paste it: `sha256:` and base64url, or
/// hexadecimal (with or without colons).
pub fn parse_pin(text: &str) -> Result<Fingerprint, ClientError> {
    text.parse().map_err(|_| ClientError::InvalidPin { pin: text.to_owned() })
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("device", &self.device)
            .field("token", &"<secret>")
            .field("cursor", &self.cursor)
            .field("pin", &self.pin)
            .finish()
    }
}

impl Profile {
    /// The path of the profile file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(PROFILE_FILE)
    }

    /// Reads the profile in `dir`.
    pub fn load(dir: &Path) -> Result<Profile, ClientError> {
        let path = Profile::path(dir);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NoProfile { dir: dir.to_owned() })
            }
            Err(error) => return Err(ClientError::ProfileIo { action: "read", path, error }),
        };
        serde_json::from_slice(&text).map_err(|error| ClientError::ProfileCorrupt { path, error })
    }

    /// Writes the profile to `dir` atomically, creating `dir` if needed.
    pub fn save(&self, dir: &Path) -> Result<(), ClientError> {
        let path = Profile::path(dir);
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| ClientError::ProfileIo {
            action: "encode",
            path: path.clone(),
            error: std::io::Error::other(e),
        })?;
        text.push(b'\n');
        write_private(dir, PROFILE_FILE, &text)
    }

    /// Deletes the profile in `dir` (after logging out). A missing profile
    /// is not an error.
    pub fn remove(dir: &Path) -> Result<(), ClientError> {
        let path = Profile::path(dir);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(ClientError::ProfileIo { action: "delete", path, error }),
        }
    }
}

/// Writes `DIR/name` atomically with mode 0600, creating `dir` (0700) if
/// needed: a crash or a full disk leaves the old file or the new one.
pub(crate) fn write_private(dir: &Path, name: &str, text: &[u8]) -> Result<(), ClientError> {
    create_private_dir(dir)?;
    let path = dir.join(name);
    // A name of its own per writer, so that two processes saving the
    // same file never write into each other's temporary file.
    let temp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), uuid::Uuid::new_v4()));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |error| ClientError::ProfileIo { action, path, error }
    };
    let written = (|| {
        let mut file = private_file_options().open(&temp).map_err(io("create", &temp))?;
        file.write_all(text).map_err(io("write", &temp))?;
        // Flushed to disk before the rename, or a power cut could leave
        // the new name pointing at an empty file.
        file.sync_all().map_err(io("write", &temp))?;
        fs::rename(&temp, &path).map_err(io("replace", &path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    sync_dir(dir);
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), ClientError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|error| ClientError::ProfileIo {
        action: "create",
        path: dir.to_owned(),
        error,
    })
}

fn private_file_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Makes the rename durable. Best effort: some file systems cannot sync a
/// directory, and the profile is already consistent either way.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Profile {
        Profile {
            server: "ws://127.0.0.1:8080".into(),
            user: "alice".into(),
            device: 3,
            token: "secret".into(),
            cursor: 41,
            pin: None,
        }
    }

    #[test]
    fn profiles_with_and_without_a_pin_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        // As written before pinning existed.
        let old =
            r#"{"server":"ws://127.0.0.1:8080/ws","user":"alice","device":3,"token":"secret","cursor":41}"#;
        fs::write(Profile::path(dir.path()), old).expect("write");
        let loaded = Profile::load(dir.path()).expect("an old profile loads");
        assert_eq!(loaded.pin, None);
        // Saving it again adds no pin field.
        loaded.save(dir.path()).expect("save");
        let text = fs::read_to_string(Profile::path(dir.path())).expect("read");
        assert!(!text.contains("pin"), "{text}");

        let pin = Fingerprint::of_spki(b"the box's key");
        let pinned =
            Profile { server: "quic://192.0.2.10:443".into(), pin: Some(pin.to_string()), ..sample() };
        pinned.save(dir.path()).expect("save");
        let loaded = Profile::load(dir.path()).expect("load");
        assert_eq!(loaded, pinned);
        assert_eq!(parse_pin(loaded.pin.as_deref().expect("pin")).expect("valid pin"), pin);
        assert!(format!("{loaded:?}").contains(&pin.to_string()), "the pin is no secret");
    }

    #[test]
    fn pins_parse_from_either_notation() {
        let pin = Fingerprint::of_spki(b"key");
        assert_eq!(parse_pin(&pin.to_string()).expect("base64url"), pin);
        assert_eq!(parse_pin(&pin.to_hex()).expect("hex with colons"), pin);
        let err = parse_pin("sha256:short").expect_err("too short");
        assert!(matches!(err, ClientError::InvalidPin { .. }), "{err}");
        assert!(err.to_string().contains("not a key fingerprint"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let text = format!("{:?}", sample());
        assert!(!text.contains("secret\""), "{text}");
        assert!(text.contains("alice"), "{text}");
    }

    #[test]
    fn round_trip_and_overwrite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dir = dir.path().join("nested/imbox");
        let mut profile = sample();
        profile.save(&dir).expect("save");
        assert_eq!(Profile::load(&dir).expect("load"), profile);
        profile.cursor = 42;
        profile.save(&dir).expect("save again");
        assert_eq!(Profile::load(&dir).expect("load again").cursor, 42);
        // Only the profile is left behind: no temporary files.
        let names: Vec<_> =
            fs::read_dir(&dir).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, [PROFILE_FILE]);
        Profile::remove(&dir).expect("remove");
        Profile::remove(&dir).expect("remove twice");
        assert!(matches!(Profile::load(&dir), Err(ClientError::NoProfile { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn only_the_owner_can_read_the_token() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let dir = dir.path().join("profile");
        sample().save(&dir).expect("save");
        let file_mode = fs::metadata(Profile::path(&dir)).expect("stat").permissions().mode();
        assert_eq!(file_mode & 0o777, 0o600);
        let dir_mode = fs::metadata(&dir).expect("stat").permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    #[test]
    fn missing_and_damaged_profiles_say_what_to_do() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = Profile::load(dir.path()).expect_err("empty dir");
        let text = err.to_string();
        assert!(text.starts_with("no profile in "), "{text}");
        assert!(text.contains("login USER` first"), "{text}");

        fs::write(Profile::path(dir.path()), b"{\"server\":").expect("write");
        let err = Profile::load(dir.path()).expect_err("damaged");
        assert!(matches!(err, ClientError::ProfileCorrupt { .. }), "{err}");
    }
}
