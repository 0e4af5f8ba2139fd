//! Server-only helpers of the callbacks API: argument parsing and store access.

pub use crate::auth::server::require_user;
pub use inbox_core::accounts::Role;
pub use inbox_core::dto::HistoryFilter;
pub use inbox_core::store::{HistoryDirection, clamp_limit};

use inbox_core::cursor::{FeedCursor, PollCursor};
use inbox_core::store::Store;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, Time};
use uuid::Uuid;

use crate::error::AppError;

pub fn store() -> Result<Store, AppError> {
    Ok(crate::state::app_state()?.store)
}

pub fn now_us() -> i64 {
    inbox_core::ingest::unix_micros(OffsetDateTime::now_utc())
}

pub fn not_found(id: Uuid) -> AppError {
    AppError::NotFound(format!("no callback with id {id}"))
}

pub fn parse_feed_cursor(raw: Option<&str>) -> Result<Option<FeedCursor>, AppError> {
    FeedCursor::parse_optional(raw).map_err(|err| AppError::BadRequest(err.to_string()))
}

pub fn parse_cursor(raw: Option<&str>) -> Result<Option<PollCursor>, AppError> {
    PollCursor::parse_optional(raw).map_err(|err| AppError::BadRequest(err.to_string()))
}

/// Longest filter text accepted (search, event type, workflow name): far
/// beyond any real value, far below what would make a query expensive.
pub const MAX_FILTER_CHARS: usize = 500;

/// A text filter: empty means none; over-long text is a 400.
/// The history's filters as a request gives them, unchecked: the same
/// fields for the history page, the export and `callback-inbox export`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct HistoryQuery {
    pub source: Option<String>,
    pub group: Option<String>,
    pub event_type: Option<String>,
    pub workflow_name: Option<String>,
    pub signature_valid: Option<String>,
    pub viewed: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub q: Option<String>,
}

impl HistoryQuery {
    /// The one parse of the history's filters; a bad one is a 400 naming it.
    pub fn into_filter(self) -> Result<HistoryFilter, AppError> {
        Ok(HistoryFilter {
            source: filter_text("source", self.source)?,
            group: filter_text("group", self.group)?,
            event_type: filter_text("event_type", self.event_type)?,
            workflow_name: filter_text("workflow_name", self.workflow_name)?,
            signature_valid: parse_flag("signature_valid", self.signature_valid.as_deref())?,
            viewed: parse_flag("viewed", self.viewed.as_deref())?,
            from: parse_time("from", self.from.as_deref(), false)?,
            to: parse_time("to", self.to.as_deref(), true)?,
            q: filter_text("q", self.q)?,
        })
    }
}

pub fn filter_text(name: &str, value: Option<String>) -> Result<Option<String>, AppError> {
    let value = non_empty(value);
    if let Some(text) = &value
        && text.chars().count() > MAX_FILTER_CHARS
    {
        return Err(AppError::BadRequest(format!(
            "{name} is {} characters long; at most {MAX_FILTER_CHARS} are searched",
            text.chars().count()
        )));
    }
    Ok(value)
}

pub fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`); empty means "any".
pub fn parse_flag(name: &str, raw: Option<&str>) -> Result<Option<bool>, AppError> {
    match raw.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("any") => Ok(None),
        Some("true" | "1" | "yes") => Ok(Some(true)),
        Some("false" | "0" | "no") => Ok(Some(false)),
        Some(other) => Err(AppError::BadRequest(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

/// An RFC 3339 time, or a date (`YYYY-MM-DD`, UTC) meaning its start, or
/// with `end_of_day` its last microsecond.
pub fn parse_time(
    name: &str,
    raw: Option<&str>,
    end_of_day: bool,
) -> Result<Option<OffsetDateTime>, AppError> {
    let Some(text) = raw.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(Some(at));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    let date = Date::parse(text, &date_format).map_err(|_| {
        AppError::BadRequest(format!(
            "{name} must be a date (2026-11-21) or an RFC 3339 time, not {text:?}"
        ))
    })?;
    let time = if end_of_day {
        Time::from_hms_micro(23, 59, 59, 999_999).unwrap_or(Time::MIDNIGHT)
    } else {
        Time::MIDNIGHT
    };
    Ok(Some(date.with_time(time).assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_long_filter_text_is_a_bad_request() {
        assert_eq!(
            filter_text("q", Some("job_1".into())).unwrap(),
            Some("job_1".into())
        );
        assert_eq!(filter_text("q", Some(" ".into())).unwrap(), None);
        let long = "x".repeat(MAX_FILTER_CHARS + 1);
        assert!(matches!(
            filter_text("q", Some(long)),
            Err(AppError::BadRequest(_))
        ));
    }

    #[test]
    fn flags_accept_common_spellings_and_reject_others() {
        assert_eq!(parse_flag("viewed", Some("")).unwrap(), None);
        assert_eq!(parse_flag("viewed", Some("TRUE")).unwrap(), Some(true));
        assert_eq!(parse_flag("viewed", Some("0")).unwrap(), Some(false));
        assert_eq!(
            parse_flag("viewed", Some("maybe"))
                .unwrap_err()
                .status_code(),
            400
        );
    }

    #[test]
    fn dates_cover_whole_days() {
        let from = parse_time("from", Some("2026-11-21"), false)
            .unwrap()
            .unwrap();
        let to = parse_time("to", Some("2026-11-21"), true).unwrap().unwrap();
        assert_eq!((to - from).whole_microseconds(), 86_400_000_000 - 1);
        assert!(
            parse_time("from", Some("2026-11-21T10:00:00Z"), false)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            parse_time("from", Some("yesterday"), false)
                .unwrap_err()
                .status_code(),
            400
        );
    }
}
