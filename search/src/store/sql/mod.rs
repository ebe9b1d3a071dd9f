//! Portable SQL shared by the store implementations: the schema's migrations and the queries,
//! with PostgreSQL's `$1` placeholders (rewritten for SQLite by [`sqlite_placeholders`]).

mod migrations;
mod queries;
mod rung_queries;

pub use migrations::*;
pub use queries::*;
pub use rung_queries::*;

/// Rewrites PostgreSQL placeholders (`$1`) into SQLite's numbered ones (`?1`).
pub fn sqlite_placeholders(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}
