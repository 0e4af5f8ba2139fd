//! Unix time in microseconds: the unit of every stored timestamp and cursor.
//!
//! The one place that converts between it and [`OffsetDateTime`].

use time::OffsetDateTime;

/// `at` in microseconds since 1970 (saturating: no stored time is near).
pub fn unix_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The time `micros` after 1970, or `None` beyond what a date can hold.
pub fn checked_time_of(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

/// The time of a stored timestamp. Stored times come from [`unix_micros`]
/// of a real time, so they are always in range; 1970 stands in otherwise.
pub fn time_of(micros: i64) -> OffsetDateTime {
    checked_time_of(micros).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        for micros in [0, 1, 1_763_000_000_123_456, -5_000_000] {
            assert_eq!(unix_micros(time_of(micros)), micros);
        }
        assert!(checked_time_of(i64::MAX).is_none());
    }
}
