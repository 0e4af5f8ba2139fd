//! The two databases behind [`Store`](super::Store): SQLite (the embedded
//! default) and PostgreSQL (several nodes on one server).
//!
//! Each store method is written once. [`on_db!`] runs its body against the
//! pool of whichever backend is open, typed for that backend, and hands it
//! the [`Dialect`] to pick SQL text where the two differ. Most statements
//! are the same text for both: `$N` parameters work in SQLite too. Rows are
//! read through [`StoreRow`], and times cross the boundary as [`DbTime`]:
//! Unix microseconds in SQLite's INTEGER columns, `timestamptz` in
//! PostgreSQL's.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgPool, PgRow, PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{
    Sqlite, SqliteArgumentValue, SqlitePool, SqliteRow, SqliteTypeInfo, SqliteValueRef,
};
use sqlx::{Decode, Encode, Row, Type};
use time::OffsetDateTime;
use uuid::Uuid;

/// The open database.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// Which SQL a statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Text as bound for this dialect: PostgreSQL's `text` cannot hold
    /// U+0000 (see [`pg_text`]); SQLite gets it unchanged.
    pub fn text(self, text: &str) -> String {
        match self {
            Self::Sqlite => text.to_owned(),
            Self::Postgres => pg_text(text).into_owned(),
        }
    }

    /// The statement text for this dialect.
    pub fn pick(self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Self::Sqlite => sqlite,
            Self::Postgres => postgres,
        }
    }
}

/// Runs `$body` with `$pool` bound to the open backend's pool (typed for
/// it) and `$dialect` to its [`Dialect`]. The body is compiled once per
/// backend, so everything in it must type-check against both.
///
/// It reads like a closure but is not one: the body is pasted into a
/// `match` arm, so a `return` (or `?`) in it leaves the enclosing method.
/// Use it as a method's tail, or give the body a value rather than a
/// `return`.
macro_rules! on_db {
    ($db:expr, |$pool:ident, $dialect:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $dialect = $crate::store::Dialect::Sqlite;
                $body
            }
            $crate::store::Db::Postgres($pool) => {
                #[allow(unused_variables)]
                let $dialect = $crate::store::Dialect::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_db;

/// A point in time as Unix microseconds: stored as INTEGER in SQLite and as
/// `timestamptz` in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DbTime(pub i64);

/// A time that PostgreSQL's `timestamptz` (through `time`) cannot hold:
/// refused, never stored as some other time.
#[derive(Debug, thiserror::Error)]
#[error("the time {0} µs since 1970 is out of the range a timestamp can hold")]
pub struct TimeOutOfRange(i64);

impl DbTime {
    fn to_offset(self) -> Result<OffsetDateTime, TimeOutOfRange> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .map_err(|_| TimeOutOfRange(self.0))
    }

    fn from_offset(at: OffsetDateTime) -> Self {
        Self(i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX))
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Sqlite>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<i64 as Decode<'r, Sqlite>>::decode(value)?))
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <OffsetDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<'_, Postgres>>::encode_by_ref(&self.to_offset()?, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self::from_offset(<OffsetDateTime as Decode<
            'r,
            Postgres,
        >>::decode(value)?))
    }
}

/// Reads a column of either backend's row by the Rust type the store uses.
pub trait StoreRow {
    fn uuid(&self, column: &str) -> Result<Uuid, sqlx::Error>;
    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, sqlx::Error>;
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
    /// A time as Unix microseconds.
    fn time(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_time(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
}

macro_rules! store_row_for {
    ($row:ty) => {
        impl StoreRow for $row {
            fn uuid(&self, column: &str) -> Result<Uuid, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, sqlx::Error> {
                self.try_get(column)
            }
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
                self.try_get(column)
            }
            fn time(&self, column: &str) -> Result<i64, sqlx::Error> {
                Ok(self.try_get::<DbTime, _>(column)?.0)
            }
            fn opt_time(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                Ok(self.try_get::<Option<DbTime>, _>(column)?.map(|t| t.0))
            }
        }
    };
}

store_row_for!(SqliteRow);
store_row_for!(PgRow);

/// PostgreSQL's `text` cannot hold U+0000, which JSON strings, emails and
/// search text sent by a client can: such text is stored and compared with
/// U+FFFD in its place instead of failing the statement.
pub fn pg_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_offset_date_time() {
        for micros in [0, 1, 1_763_000_000_123_456, -5_000_000] {
            assert_eq!(
                DbTime::from_offset(DbTime(micros).to_offset().unwrap()),
                DbTime(micros)
            );
        }
    }

    /// Out of range is an error, not 1970: a wrong time stored silently
    /// would misplace a callback in every time-ordered read.
    #[test]
    fn a_time_out_of_range_is_refused() {
        assert!(DbTime(i64::MAX).to_offset().is_err());
        assert!(DbTime(i64::MIN).to_offset().is_err());
    }

    #[test]
    fn nul_characters_are_replaced_for_postgres_text() {
        assert_eq!(pg_text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(pg_text("plain"), std::borrow::Cow::Borrowed(_)));
    }
}
