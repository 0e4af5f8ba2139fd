//! What the companion commands print, and how.
//!
//! Results go to stdout, one line each (or one JSON object a line), so they
//! can be piped. Progress goes to stderr: on a terminal as one status line
//! rewritten in place, elsewhere as plain lines when it changes; `--quiet`
//! hides it. Colour only when the stream is a terminal and `NO_COLOR` is
//! unset (<https://no-color.org>).
//!
//! Text that comes from elsewhere (payloads, the inbox's or a receiver's
//! answers, spool files, the database) is printed through [`TerminalText`]:
//! a payload must not be able to move the cursor, retitle the terminal or
//! print a line that looks like one of ours.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// Clears the terminal line the cursor is on.
const CLEAR_LINE: &str = "\r\x1b[2K";

#[derive(Debug, Clone, Copy)]
pub enum Style {
    Good,
    Bad,
    Warn,
    Dim,
    Bold,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Self::Good => "32",
            Self::Bad => "31",
            Self::Warn => "33",
            Self::Dim => "2",
            Self::Bold => "1",
        }
    }
}

pub struct Output {
    /// Colour on stdout.
    color: bool,
    /// stderr is a terminal: the status line is rewritten in place.
    status_in_place: bool,
    /// Colour on stderr.
    error_color: bool,
    quiet: bool,
    /// The status line as last shown (in place), or last printed.
    status: Mutex<Option<String>>,
}

fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

impl Output {
    pub fn new(quiet: bool) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        Self {
            color: std::io::stdout().is_terminal() && color_allowed(),
            status_in_place: stderr_tty,
            error_color: stderr_tty && color_allowed(),
            quiet,
            status: Mutex::new(None),
        }
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// `text` in `style` when stdout takes colour.
    pub fn paint(&self, style: Style, text: &str) -> String {
        paint(self.color, style, text)
    }

    /// One result line on stdout.
    pub fn line(&self, text: &str) {
        self.around_status(|| {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{text}");
            let _ = stdout.flush();
        });
    }

    /// One JSON object on a line of stdout.
    pub fn json(&self, value: &serde_json::Value) {
        self.line(&json_line(value));
    }

    /// A progress message on stderr (not with `--quiet`).
    pub fn info(&self, text: &str) {
        if !self.quiet {
            self.around_status(|| eprintln!("{text}"));
        }
    }

    /// A warning on stderr, also with `--quiet`.
    pub fn warn(&self, text: &str) {
        let label = paint(self.error_color, Style::Warn, "warning:");
        self.around_status(|| eprintln!("{label} {text}"));
    }

    /// An error on stderr, also with `--quiet`.
    pub fn error(&self, text: &str) {
        let label = paint(self.error_color, Style::Bad, "error:");
        self.around_status(|| eprintln!("{label} {text}"));
    }

    /// Sets the status line: rewritten in place on a terminal, else printed
    /// when it changes (not with `--quiet`).
    pub fn status(&self, text: &str) {
        if self.quiet {
            return;
        }
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if status.as_deref() == Some(text) {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        if self.status_in_place {
            let _ = write!(stderr, "{CLEAR_LINE}{text}");
        } else {
            let _ = writeln!(stderr, "{text}");
        }
        let _ = stderr.flush();
        *status = Some(text.to_owned());
    }

    /// Removes the status line from the terminal (before exiting).
    pub fn clear_status(&self) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if self.status_in_place && status.is_some() {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "{CLEAR_LINE}");
            let _ = stderr.flush();
        }
        *status = None;
    }

    /// Prints around the in-place status line: cleared first, drawn again
    /// after, so lines never mix with it.
    fn around_status(&self, print: impl FnOnce()) {
        let status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let in_place = self.status_in_place && status.is_some();
        if in_place {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "{CLEAR_LINE}");
            let _ = stderr.flush();
        }
        print();
        if in_place && let Some(text) = status.as_deref() {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "{text}");
            let _ = stderr.flush();
        }
    }
}

fn paint(color: bool, style: Style, text: &str) -> String {
    if color {
        format!("\x1b[{}m{text}\x1b[0m", style.code())
    } else {
        text.to_owned()
    }
}

/// Displays text from elsewhere with everything a terminal would act on
/// escaped: C0 controls (newline, carriage return, escape…), DEL, C1
/// controls (U+0080 to U+009F; some terminals read U+009B as an escape
/// sequence), the bidirectional overrides and isolates (which reorder what
/// is shown), and the line and paragraph separators. A backslash is doubled
/// so that an escape printed here cannot be faked by the text itself.
#[derive(Clone, Copy)]
pub struct TerminalText<'a>(pub &'a str);

impl fmt::Display for TerminalText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(|ch| needs_escape(ch) || ch == '\\') {
            f.write_str(&rest[..at])?;
            let ch = rest[at..].chars().next().unwrap_or_default();
            match ch {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                other => write!(f, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[at + ch.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// `text` safe to print on a terminal (see [`TerminalText`]).
pub fn terminal_safe(text: &str) -> String {
    TerminalText(text).to_string()
}

/// Whether a terminal would act on `ch` rather than show it.
fn needs_escape(ch: char) -> bool {
    ch.is_control() // C0, DEL, C1
        || matches!(
            ch,
            '\u{061c}'                     // Arabic letter mark
                | '\u{200e}' | '\u{200f}'   // left-to-right, right-to-left marks
                | '\u{2028}' | '\u{2029}'   // line and paragraph separators
                | '\u{202a}'..='\u{202e}'   // embeddings and overrides
                | '\u{2066}'..='\u{2069}' // isolates
        )
}

/// A JSON value on one line, with what JSON leaves raw but a terminal acts
/// on (DEL, C1 controls, bidirectional controls) written as `\uXXXX`: still
/// the same JSON, but inert on a terminal. serde_json already escapes C0.
pub fn json_line(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if !text.contains(needs_escape) {
        return text;
    }
    let mut safe = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        // Outside strings JSON is plain ASCII, so these are inside strings.
        if needs_escape(ch) {
            safe.push_str(&format!("\\u{:04x}", u32::from(ch)));
        } else {
            safe.push(ch);
        }
    }
    safe
}

/// A duration as people read it: `850 ms`, `4.2 s`, `3 min`, `2 h`.
pub fn human_duration(duration: std::time::Duration) -> String {
    let ms = duration.as_millis();
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..10_000 => format!("{:.1} s", duration.as_secs_f64()),
        10_000..120_000 => format!("{} s", duration.as_secs()),
        120_000..7_200_000 => format!("{} min", duration.as_secs() / 60),
        _ => format!("{} h", duration.as_secs() / 3600),
    }
}

/// This machine's UTC offset, read by [`remember_local_offset`].
static LOCAL_OFFSET: std::sync::OnceLock<time::UtcOffset> = std::sync::OnceLock::new();

/// Reads the local UTC offset. Call it before any thread starts: `time`
/// refuses to read it in a multi-threaded process (the C library's time
/// zone functions are not thread-safe). UTC when unknown.
pub fn remember_local_offset() {
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

/// `HH:MM:SS` of a time, in local time.
pub fn clock(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(LOCAL_OFFSET.get().copied().unwrap_or(time::UtcOffset::UTC));
    format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second())
}

/// RFC 3339 text of a time.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(12)), "12 ms");
        assert_eq!(human_duration(Duration::from_millis(4_210)), "4.2 s");
        assert_eq!(human_duration(Duration::from_secs(45)), "45 s");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 min");
        assert_eq!(human_duration(Duration::from_secs(7_200)), "2 h");
    }

    #[test]
    fn text_from_elsewhere_cannot_act_on_the_terminal() {
        let forged =
            "done\u{1b}[2K\r\n06:05:08  workflow.completed  → 200 OK\u{7}\u{9b}31m\u{202e}txt";
        let shown = terminal_safe(forged);
        assert!(!shown.chars().any(needs_escape), "{shown:?}");
        assert_eq!(
            shown,
            "done\\u{1b}[2K\\r\\n06:05:08  workflow.completed  → 200 OK\\u{7}\\u{9b}31m\\u{202e}txt"
        );
        // A backslash is doubled, so the text cannot fake an escape.
        assert_eq!(terminal_safe("a\\nb"), "a\\\\nb");
        assert_eq!(terminal_safe("plain → text, café"), "plain → text, café");
    }

    #[test]
    fn json_lines_stay_json_and_inert() {
        let value = serde_json::json!({"event": "a\u{7f}b\u{9b}c\u{202e}d\ne\u{1b}"});
        let line = json_line(&value);
        assert!(!line.chars().any(needs_escape), "{line:?}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
            value
        );
        assert_eq!(json_line(&serde_json::json!({"a": "b"})), r#"{"a":"b"}"#);
    }

    #[test]
    fn colour_is_only_added_when_allowed() {
        assert_eq!(paint(false, Style::Good, "200"), "200");
        assert_eq!(paint(true, Style::Bad, "500"), "\x1b[31m500\x1b[0m");
    }
}
