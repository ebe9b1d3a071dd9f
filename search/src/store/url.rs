//! Store addresses: [`open_store`] picks a store from a path or URL; [`redact_url`] keeps
//! passwords out of messages.

use std::path::Path;

use super::{PostgresStore, SqliteStore, Store};
use crate::error::SearchError;

/// Opens a trial store from a path or URL:
/// - `postgres://user:password@host:port/database` (or `postgresql://`): a [`PostgresStore`];
/// - `sqlite://PATH` or a plain path: a [`SqliteStore`] (a directory means its `study.sqlite`).
///
/// Errors never contain the password.
pub fn open_store(spec: &str) -> Result<Box<dyn Store>, SearchError> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return Ok(Box::new(PostgresStore::connect(spec)?));
    }
    check_scheme(spec)?;
    Ok(Box::new(SqliteStore::open(&sqlite_file(spec))?))
}

fn check_scheme(spec: &str) -> Result<(), SearchError> {
    if let Some((scheme, _)) = spec.split_once("://") {
        if scheme != "sqlite" {
            return Err(SearchError::Store {
                location: redact_url(spec),
                message: format!(
                    "unknown store scheme `{scheme}://` (use postgres://user:password@host:port/database, sqlite://FILE or a path)"
                ),
            });
        }
    }
    Ok(())
}

/// The SQLite file a path or `sqlite://` address names (a directory means its `study.sqlite`).
fn sqlite_file(spec: &str) -> std::path::PathBuf {
    let path = Path::new(spec.strip_prefix("sqlite://").unwrap_or(spec));
    if path.is_dir() {
        SqliteStore::file_in(path)
    } else {
        path.to_path_buf()
    }
}

/// Opens an existing trial store for reading only (`unas dashboard`), from the same
/// addresses as [`open_store`]: nothing is created, migrated or written.
pub fn open_store_read_only(spec: &str) -> Result<Box<dyn Store>, SearchError> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return Ok(Box::new(PostgresStore::connect_read_only(spec)?));
    }
    check_scheme(spec)?;
    Ok(Box::new(SqliteStore::open_read_only(&sqlite_file(spec))?))
}

/// A store URL with the password (and any `password=` parameter) removed, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| {
                    if kv.to_ascii_lowercase().starts_with("password=") {
                        "password=***".to_string()
                    } else {
                        kv.to_string()
                    }
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}
