//! Untrusted text made safe for a log line.
//!
//! Anything a client sends (an email typed at sign-in, a header) may hold
//! newlines that forge log lines, terminal escapes, or megabytes. [`LogText`]
//! writes it with control characters escaped and cut to a bounded length.

use std::fmt;

/// Most characters of untrusted text written to a log line.
pub const MAX_LOG_CHARS: usize = 200;

/// Displays untrusted text escaped and bounded (see the module docs).
#[derive(Clone, Copy)]
pub struct LogText<'a>(&'a str);

impl<'a> LogText<'a> {
    pub fn new(text: &'a str) -> Self {
        Self(text)
    }
}

impl fmt::Display for LogText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for ch in chars.by_ref().take(MAX_LOG_CHARS) {
            if ch.is_control() || ch == '\\' {
                write!(f, "{}", ch.escape_default())?;
            } else {
                f.write_fmt(format_args!("{ch}"))?;
            }
        }
        let rest = chars.count();
        if rest > 0 {
            write!(f, "…(+{rest} chars)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for LogText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_escapes_cannot_forge_a_line() {
        let text = "a@b.c\n2026-01-01T00:00:00Z INFO signed in user=admin\u{1b}[31m";
        let shown = LogText::new(text).to_string();
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
        assert!(shown.starts_with("a@b.c\\n2026"), "{shown}");
        assert!(shown.contains("\\u{1b}[31m"), "{shown}");
    }

    #[test]
    fn long_text_is_cut_and_says_how_much_was_left_out() {
        let text = "x".repeat(1_500_000);
        let shown = LogText::new(&text).to_string();
        assert!(shown.len() < MAX_LOG_CHARS + 30, "{}", shown.len());
        assert!(shown.ends_with("…(+1499800 chars)"), "{shown}");
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(
            LogText::new("owner@example.com").to_string(),
            "owner@example.com"
        );
    }
}
