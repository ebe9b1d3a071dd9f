//! Where a study lives: a run directory's own SQLite file, or a shared store (a PostgreSQL URL
//! or another SQLite file) that holds the study named in the run directory's study file.

use std::path::Path;

use crate::config::StudyConfig;
use crate::engine::Study;
use crate::error::SearchError;
use crate::store::open_store;

/// A new search's study: in `store` (URL or path) when given, else in `dir`'s SQLite file.
/// Creates it, or reopens it when the store holds it with the same settings.
pub fn create_study(
    store: Option<&str>,
    dir: &Path,
    config: StudyConfig,
) -> Result<Study, SearchError> {
    match store {
        None => Study::create(dir, config),
        Some(spec) => {
            std::fs::create_dir_all(dir).map_err(|source| SearchError::Io {
                file: dir.to_path_buf(),
                source,
            })?;
            Study::create_in(open_store(spec)?, config)
        }
    }
}

/// A resumed search's study (`--resume RUN_DIR [--store URL]`): with a store, the study named
/// in the run directory's copy of its study file.
pub fn open_study(store: Option<&str>, dir: &Path) -> Result<Study, SearchError> {
    match store {
        None => Study::open(dir),
        Some(spec) => {
            let cfg = StudyConfig::load(&dir.join("study.toml"))?;
            Study::open_in(open_store(spec)?, &cfg.name)
        }
    }
}
