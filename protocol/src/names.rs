//! Rules for the names people and programs choose.

/// The longest user name, in bytes.
pub const MAX_USERNAME: usize = 32;
/// The longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 64;
/// The longest client message id, in bytes.
pub const MAX_MESSAGE_ID: usize = 64;
/// The longest device name, in bytes.
pub const MAX_DEVICE_NAME: usize = 64;
/// The shortest password, in characters.
pub const MIN_PASSWORD: usize = 8;
/// The longest password, in bytes (argon2 input is bounded too).
pub const MAX_PASSWORD: usize = 256;

fn name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
}

/// A user name: 1–32 of `a-z 0-9 _ - .`, starting with a letter or digit.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USERNAME
        && name.chars().all(name_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// A group name: 1–64 of `a-z 0-9 _ - .`, starting with a letter or digit.
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_GROUP_NAME
        && name.chars().all(name_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// A client message id: 1–64 printable ASCII characters, bytes 0x21–0x7E
/// (no space), so a UUID fits.
pub fn valid_message_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_MESSAGE_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Why a device name was refused. Device names are shown to people (on the
/// devices list, the admin pages, logs), so they may not be empty, look like
/// a file path, or hold characters that change how the text around them is
/// displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceNameError {
    /// Empty, or nothing but white space.
    #[error("the device name is empty: name the device (for example \"Anna's phone\")")]
    Empty,
    /// Over [`MAX_DEVICE_NAME`] bytes of UTF-8.
    #[error("the device name has {0} bytes; the limit is {MAX_DEVICE_NAME}")]
    TooLong(usize),
    /// Holds `/` or `\`, or is `.` or `..`: it would read as a path.
    #[error("the device name looks like a file path: '/', '\\', '.' and '..' are not allowed")]
    PathLike,
    /// Holds a control character (U+0000–U+001F, U+007F–U+009F).
    #[error("the device name holds the control character U+{0:04X}")]
    Control(u32),
    /// Holds a bidirectional formatting character (such as U+202E, which
    /// would display the rest of a line reversed).
    #[error("the device name holds the bidirectional formatting character U+{0:04X}")]
    Bidi(u32),
}

/// The bidirectional formatting characters: marks, embeddings, overrides
/// and isolates (Unicode UAX #9).
fn bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A device name: 1–64 bytes of UTF-8, not only white space, without `/`,
/// `\`, control characters or bidirectional formatting characters, and not
/// `.` or `..`.
pub fn check_device_name(name: &str) -> Result<(), DeviceNameError> {
    if name.trim().is_empty() {
        return Err(DeviceNameError::Empty);
    }
    if name.len() > MAX_DEVICE_NAME {
        return Err(DeviceNameError::TooLong(name.len()));
    }
    if let Some(c) = name.chars().find(|&c| c.is_control()) {
        return Err(DeviceNameError::Control(u32::from(c)));
    }
    if let Some(c) = name.chars().find(|&c| bidi_control(c)) {
        return Err(DeviceNameError::Bidi(u32::from(c)));
    }
    if name.contains(['/', '\\']) || matches!(name.trim(), "." | "..") {
        return Err(DeviceNameError::PathLike);
    }
    Ok(())
}

/// Whether [`check_device_name`] accepts `name`.
pub fn valid_device_name(name: &str) -> bool {
    check_device_name(name).is_ok()
}

/// A password: at least 8 characters, at most 256 bytes.
pub fn valid_password(password: &str) -> bool {
    password.chars().count() >= MIN_PASSWORD && password.len() <= MAX_PASSWORD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(valid_username("alice"));
        assert!(valid_username("a.b-c_9"));
        assert!(!valid_username(""));
        assert!(!valid_username("Alice"));
        assert!(!valid_username(".alice"));
        assert!(!valid_username("al ice"));
        assert!(!valid_username(&"a".repeat(33)));
    }

    #[test]
    fn message_ids() {
        assert!(valid_message_id("3f2a9c1e-0000-4000-8000-000000000001"));
        assert!(!valid_message_id(""));
        assert!(!valid_message_id("a b"));
        assert!(!valid_message_id(&"x".repeat(65)));
    }

    #[test]
    fn message_ids_are_0x21_to_0x7e() {
        assert!(valid_message_id("!~"));
        for bad in [" ", "a\u{7f}", "\u{e9}", "a\tb"] {
            assert!(!valid_message_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn device_names() {
        assert_eq!(check_device_name("Anna's phone"), Ok(()));
        assert_eq!(check_device_name("imbox-cli@host.local"), Ok(()));
        assert_eq!(check_device_name("téléphone ☎"), Ok(()));
        assert_eq!(check_device_name(""), Err(DeviceNameError::Empty));
        assert_eq!(check_device_name("   "), Err(DeviceNameError::Empty));
        assert_eq!(check_device_name("../../etc/passwd"), Err(DeviceNameError::PathLike));
        assert_eq!(check_device_name("a\\b"), Err(DeviceNameError::PathLike));
        assert_eq!(check_device_name(".."), Err(DeviceNameError::PathLike));
        assert_eq!(check_device_name("phone\u{202E}gnp.exe"), Err(DeviceNameError::Bidi(0x202E)));
        assert_eq!(check_device_name("a\u{2066}b"), Err(DeviceNameError::Bidi(0x2066)));
        assert_eq!(check_device_name("a\nb"), Err(DeviceNameError::Control(0x0A)));
        assert_eq!(check_device_name("a\u{85}b"), Err(DeviceNameError::Control(0x85)));
        assert_eq!(check_device_name(&"x".repeat(65)), Err(DeviceNameError::TooLong(65)));
        assert_eq!(check_device_name(&"x".repeat(64)), Ok(()));
    }

    #[test]
    fn passwords() {
        assert!(valid_password("correct horse"));
        assert!(!valid_password("short"));
        assert!(!valid_password(&"x".repeat(257)));
    }
}
