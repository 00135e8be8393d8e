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
    /// The warning's stable code (zxcvbn's name for it, or `TooShort`,
    /// `TooLong`), which pages translate; the text above is English.
    pub warning_code: Option<String>,
    /// The suggestions' codes, in the same order.
    pub suggestion_codes: Vec<String>,
    /// The shortest password accepted, in characters (for `TooShort`).
    pub min_length: usize,
    /// The longest password accepted, in bytes (for `TooLong`).
    pub max_length: usize,
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
    let max = imbox_protocol::names::MAX_PASSWORD;
    if !imbox_protocol::names::valid_password(password) {
        let too_long = password.len() > max;
        let (code, warning) = if too_long {
            ("TooLong", format!("A password may have at most {max} bytes."))
        } else {
            ("TooShort", format!("A password needs at least {min} characters."))
        };
        return Strength {
            score: 0,
            acceptable: false,
            warning: Some(warning),
            suggestions: vec!["Use a few uncommon words together.".to_owned()],
            warning_code: Some(code.to_owned()),
            suggestion_codes: vec!["UseAFewUncommonWords".to_owned()],
            min_length: min,
            max_length: max,
        };
    }
    let analysed: String = password.chars().take(MAX_ANALYSED).collect();
    let entropy = zxcvbn::zxcvbn(&analysed, context);
    let score = u8::from(entropy.score());
    // zxcvbn's enums name each piece of feedback; their Debug names are the
    // codes (e.g. ThisIsACommonPassword), stable across its 3.x releases.
    let (warning, suggestions, warning_code, suggestion_codes) = match entropy.feedback() {
        Some(feedback) => (
            feedback.warning().map(|w| w.to_string()),
            feedback.suggestions().iter().map(ToString::to_string).collect(),
            feedback.warning().map(|w| format!("{w:?}")),
            feedback.suggestions().iter().map(|s| format!("{s:?}")).collect(),
        ),
        None => (None, Vec::new(), None, Vec::new()),
    };
    Strength {
        score,
        acceptable: score >= MIN_SCORE,
        warning,
        suggestions,
        warning_code,
        suggestion_codes,
        min_length: min,
        max_length: max,
    }
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
        assert_eq!(short.warning_code.as_deref(), Some("TooShort"));
        assert!(!short.acceptable && short.warning.is_some_and(|w| w.contains("at least")));
        // Every piece of feedback has its code, for the pages to translate.
        assert_eq!(weak.warning.is_some(), weak.warning_code.is_some());
        assert_eq!(weak.suggestions.len(), weak.suggestion_codes.len());
        assert!(weak.suggestion_codes.iter().all(|c| c.chars().all(|c| c.is_ascii_alphanumeric())));
    }
}
