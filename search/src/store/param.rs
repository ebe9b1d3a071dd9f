//! Statement parameters that both databases bind, so that one list of parameters serves
//! PostgreSQL and SQLite alike.

/// A value bound as a statement parameter by either database (`i32`, `i64`, `f64`, strings
/// and their `Option`s).
pub trait Param: postgres::types::ToSql + rusqlite::ToSql + Sync {}

impl<T: postgres::types::ToSql + rusqlite::ToSql + Sync> Param for T {}

/// A count or index as an SQL `INTEGER` (`i32`), capped at `i32::MAX`.
pub(crate) fn sql_int(v: u32) -> i32 {
    v.min(i32::MAX as u32) as i32
}
