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

/// A client message id: 1–64 printable ASCII characters (a UUID fits).
pub fn valid_message_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_MESSAGE_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A device name: up to 64 bytes without control characters.
pub fn valid_device_name(name: &str) -> bool {
    name.len() <= MAX_DEVICE_NAME && !name.chars().any(char::is_control)
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
    fn passwords() {
        assert!(valid_password("correct horse"));
        assert!(!valid_password("short"));
        assert!(!valid_password(&"x".repeat(257)));
    }
}
