//! Keyset cursors over callbacks.
//!
//! A cursor is the position `(created_at, id)` of the last row a client saw.
//! `created_at` alone is not unique (bursts share a microsecond), so the
//! time-ordered id breaks ties and no row is ever skipped. To clients the
//! cursor is an opaque string.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A position in the callback list, ordered by `(created_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PollCursor {
    /// Unix time in microseconds.
    pub created_at_us: i64,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor {0:?} is not one this server issued; drop it and start without a cursor")]
pub struct CursorError(String);

impl PollCursor {
    pub fn new(created_at_us: i64, id: Uuid) -> Self {
        Self { created_at_us, id }
    }

    /// Parses an optional cursor field where an empty string means "none".
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, CursorError> {
        match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some),
        }
    }
}

impl fmt::Display for PollCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at_us, self.id.simple())
    }
}

impl FromStr for PollCursor {
    type Err = CursorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || CursorError(text.chars().take(80).collect());
        let (micros, id) = text.split_once('.').ok_or_else(malformed)?;
        let created_at_us = micros.parse::<i64>().map_err(|_| malformed())?;
        // Years 1 to 9999: every database can compare such a time (a forged
        // cursor far outside them would fail PostgreSQL's statement).
        if !(-62_135_596_800_000_000..=253_402_300_799_999_999).contains(&created_at_us) {
            return Err(malformed());
        }
        if id.len() != 32 {
            return Err(malformed());
        }
        let id = Uuid::try_parse(id).map_err(|_| malformed())?;
        Ok(Self { created_at_us, id })
    }
}

/// A position in the live feed: callbacks in the order their transactions
/// committed (not the order their requests started). Opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedCursor(pub i64);

impl FeedCursor {
    /// The feed before any callback.
    pub const START: Self = Self(0);

    /// Parses an optional cursor field where an empty string means "none".
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, CursorError> {
        match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some),
        }
    }
}

impl fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "feed-{}", self.0)
    }
}

impl FromStr for FeedCursor {
    type Err = CursorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || CursorError(text.chars().take(80).collect());
        let digits = text.strip_prefix("feed-").ok_or_else(malformed)?;
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        digits.parse().map(Self).map_err(|_| malformed())
    }
}

/// A position in the delivery audit log, ordered by `(received_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeliveryCursor {
    pub received_at_us: i64,
    pub id: i64,
}

impl DeliveryCursor {
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, CursorError> {
        match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some),
        }
    }
}

impl fmt::Display for DeliveryCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}.{}", self.received_at_us, self.id)
    }
}

impl FromStr for DeliveryCursor {
    type Err = CursorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || CursorError(text.chars().take(80).collect());
        let rest = text.strip_prefix('d').ok_or_else(malformed)?;
        let (micros, id) = rest.split_once('.').ok_or_else(malformed)?;
        Ok(Self {
            received_at_us: micros.parse().map_err(|_| malformed())?,
            id: id.parse().map_err(|_| malformed())?,
        })
    }
}

#[cfg(test)]
mod feed_tests {
    use super::*;

    #[test]
    fn feed_cursors_round_trip_and_reject_anything_else() {
        let cursor = FeedCursor(42);
        assert_eq!(cursor.to_string().parse::<FeedCursor>(), Ok(cursor));
        for bad in [
            "",
            "42",
            "feed-",
            "feed--1",
            "feed-1x",
            "feed-99999999999999999999",
            "1.abc",
        ] {
            assert!(bad.parse::<FeedCursor>().is_err(), "{bad:?}");
        }
        assert_eq!(FeedCursor::parse_optional(Some(" ")), Ok(None));
    }

    #[test]
    fn delivery_cursors_round_trip() {
        let cursor = DeliveryCursor {
            received_at_us: 1_763_000_000_000_000,
            id: 17,
        };
        assert_eq!(cursor.to_string().parse::<DeliveryCursor>(), Ok(cursor));
        assert!("17".parse::<DeliveryCursor>().is_err());
        assert!("d1.x".parse::<DeliveryCursor>().is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_through_its_text_form() {
        let cursor = PollCursor::new(1_763_700_000_123_456, Uuid::from_u128(42));
        assert_eq!(cursor.to_string().parse::<PollCursor>(), Ok(cursor));
    }

    #[test]
    fn cursors_order_by_time_then_id() {
        let a = PollCursor::new(10, Uuid::from_u128(2));
        let b = PollCursor::new(10, Uuid::from_u128(3));
        let c = PollCursor::new(11, Uuid::from_u128(1));
        assert!(a < b && b < c);
    }

    #[test]
    fn empty_or_missing_cursor_means_none() {
        assert_eq!(PollCursor::parse_optional(None), Ok(None));
        assert_eq!(PollCursor::parse_optional(Some("  ")), Ok(None));
    }

    #[test]
    fn garbage_cursors_are_rejected_with_a_clear_error() {
        for bad in [
            "x",
            "12",
            "12.",
            ".abc",
            "12.zz",
            "abc.00000000000000000000000000000001",
            "1.2.3",
        ] {
            let err = bad.parse::<PollCursor>().unwrap_err();
            assert!(
                err.to_string().contains("not one this server issued"),
                "{bad}"
            );
        }
    }
}
