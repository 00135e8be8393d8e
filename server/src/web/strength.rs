//! Password strength for passwords set on the web pages: zxcvbn's estimate
//! of how hard a password is to guess, with its feedback, checked on the
//! box so that the rule cannot be skipped by a modified page.

use serde::Serialize;

/// The lowest zxcvbn score accepted (0 to 4): 3 means "safely
/// unguessable: moderate protection from offline slow-hash scenarios".
pub const MIN_SCORE: u8 = 3;

/// zxcvbn looks at this many characters at most: its matching grows faster
/// than linearly with length, and longer passwords are strong anyway.
const MAX_ANALYSED: usize = 100;

/// zxcvbn's verdict on a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Strength {
    /// 0 (too guessable) to 4 (very unguessable).
    pub score: u8,
    /// Whether the score is at least [`MIN_SCORE`] and the length rules hold.
    pub acceptable: bool,
    /// What makes it weak, if anything.
    pub warning: Option<String>,
    /// How to make it stronger.
    pub suggestions: Vec<String>,
}

impl Strength {
    /// One sentence for error messages.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self.warning.iter().cloned().collect();
        parts.extend(self.suggestions.iter().cloned());
        if parts.is_empty() {
            "add more words or characters".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// Rates `password`; `context` holds words that make it easier to guess
/// here (the user name, the box name).
pub fn rate(password: &str, context: &[&str]) -> Strength {
    let min = imbox_protocol::names::MIN_PASSWORD;
    if !imbox_protocol::names::valid_password(password) {
        let too_long = password.len() > imbox_protocol::names::MAX_PASSWORD;
        return Strength {
            score: 0,
            acceptable: false,
            warning: Some(if too_long {
                format!("A password may have at most {} bytes.", imbox_protocol::names::MAX_PASSWORD)
            } else {
                format!("A password needs at least {min} characters.")
            }),
            suggestions: vec!["Use a few uncommon words together.".to_owned()],
        };
    }
    let analysed: String = password.chars().take(MAX_ANALYSED).collect();
    let entropy = zxcvbn::zxcvbn(&analysed, context);
    let score = u8::from(entropy.score());
    let (warning, suggestions) = match entropy.feedback() {
        Some(feedback) => (
            feedback.warning().map(|w| w.to_string()),
            feedback.suggestions().iter().map(ToString::to_string).collect(),
        ),
        None => (None, Vec::new()),
    };
    Strength { score, acceptable: score >= MIN_SCORE, warning, suggestions }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_refused_with_feedback_and_long_phrases_pass() {
        let weak = rate("password1", &[]);
        assert!(!weak.acceptable && weak.score < MIN_SCORE);
        assert!(!weak.summary().is_empty());
        let named = rate("olivia2024", &["olivia"]);
        assert!(!named.acceptable);
        assert!(rate("violet tractor lantern 93", &[]).acceptable);
        let short = rate("a1!", &[]);
        assert!(!short.acceptable && short.warning.is_some_and(|w| w.contains("at least")));
    }
}
