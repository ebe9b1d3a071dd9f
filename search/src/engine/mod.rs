//! The engine: a study bound to its store, and the steps every runner takes over its trials.
//!
//! The store is the only state. A runner (in-process threads, [`crate::runner::local`];
//! external workers, [`crate::runner::external`] and [`crate::runner::worker`]; the reference
//! archs, [`crate::runner::references`]) loads the trials (`Ledger::load`), makes
//! the ready ones (`Ledger::ready`: duplicates resolved, trials proposed in number
//! order as the controller's window allows), starts and finishes them (`start`,
//! `finish`). Every proposal, start and result is written before the next step, so
//! after a `kill -9` at any moment nothing finished is lost, nothing finished is evaluated
//! again, and in-flight trials re-run.
//!
//! Reproducibility: trial `n`'s proposal depends only on the study seed, `n` and the results
//! of the trials the controller lets it see (see [`crate::strategy`]); every candidate's
//! evaluator seed is [`eval_seed`] of the study seed. With a deterministic evaluator the same
//! settings therefore give the same trials (archs, results) whatever the runner and `jobs`
//! are and however the run was interrupted. The proposal window (`window`, default `jobs` at
//! creation) is part of the settings.
//!
//! Duplicates: a proposal whose hash an earlier trial already has is recorded with
//! `duplicate_of` and receives that trial's result once it is final; it is never evaluated.

pub mod halving;
pub(crate) mod ledger;
mod progress;
mod results;
mod settings;

use std::path::Path;

use unas_space::SearchSpace;

pub use ledger::eval_seed;
pub use progress::{Progress, RunSummary};
pub use results::StudyResults;
pub use settings::StoredSettings;

use crate::config::StudyConfig;
use crate::error::SearchError;
use crate::store::{now_ms, RungRecord, SqliteStore, Store, StudyRecord, TrialRecord};
use settings::first_difference;

/// Suffix of the companion study that holds a study's reference archs (`<name>::references`).
pub const REFERENCES_SUFFIX: &str = "::references";

/// A study bound to its store.
pub struct Study {
    pub(crate) store: Box<dyn Store>,
    pub(crate) config: StudyConfig,
    pub(crate) space: SearchSpace,
    pub(crate) jobs: usize,
}

impl Study {
    /// Creates the study in `dir` (its SQLite store is `dir/study.sqlite`), or reopens it if
    /// the store already holds a study of that name with the same settings (`jobs` may differ).
    pub fn create(dir: &Path, config: StudyConfig) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(|source| SearchError::Io {
            file: dir.to_path_buf(),
            source,
        })?;
        let store = SqliteStore::open(&SqliteStore::file_in(dir))?;
        Self::create_in(Box::new(store), config)
    }

    /// Like [`Study::create`] with any store.
    pub fn create_in(mut store: Box<dyn Store>, config: StudyConfig) -> Result<Self, SearchError> {
        config
            .check()
            .map_err(|(field, message)| SearchError::InvalidConfig { field, message })?;
        let mut config = config;
        config.window = Some(config.window());
        let jobs = config.jobs;
        let space = config.load_space()?;
        let settings = StoredSettings {
            config: config.clone(),
            space,
        };
        if store.study(&config.name)?.is_some() {
            let mut study = Self::open_in(store, &config.name)?;
            let mut want = serde_json::to_value(&settings).expect("settings serialise");
            let mut have = serde_json::to_value(StoredSettings {
                config: study.config.clone(),
                space: study.space.clone(),
            })
            .expect("settings serialise");
            for v in [&mut want, &mut have] {
                v["config"]["jobs"] = serde_json::Value::Null;
                // Measured when the study was created; a resume keeps the stored figures.
                if let Some(l) = v["config"]["latency"].as_object_mut() {
                    l.remove("image_parts");
                }
            }
            if let Some(field) = first_difference(&have, &want, "") {
                return Err(SearchError::SettingsMismatch {
                    location: study.store.location(),
                    study: config.name.clone(),
                    field,
                });
            }
            study.jobs = jobs;
            return Ok(study);
        }
        store.create_study(&StudyRecord {
            name: config.name.clone(),
            settings: serde_json::to_string(&settings).expect("settings serialise"),
            seed: config.seed,
            created_ms: now_ms(),
        })?;
        Ok(Self {
            store,
            space: settings.space,
            config,
            jobs,
        })
    }

    /// Reopens the study in a run directory with its stored settings (`--resume RUN_DIR`).
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        let file = SqliteStore::file_in(dir);
        if !file.is_file() {
            return Err(SearchError::NoStudy {
                dir: dir.to_path_buf(),
                file,
            });
        }
        let store = SqliteStore::open(&file)?;
        match Self::open_only(Box::new(store)) {
            Err(SearchError::Store { message, .. }) if message.contains("holds no study") => {
                Err(SearchError::NoStudy {
                    dir: dir.to_path_buf(),
                    file,
                })
            }
            r => r,
        }
    }

    /// Opens the one study of a store (its reference archs' study aside); an error names the
    /// studies when there are several.
    pub fn open_only(mut store: Box<dyn Store>) -> Result<Self, SearchError> {
        let names: Vec<String> = store
            .study_names()?
            .into_iter()
            .filter(|n| !n.ends_with(REFERENCES_SUFFIX))
            .collect();
        match names.as_slice() {
            [name] => {
                let name = name.clone();
                Self::open_in(store, &name)
            }
            _ => Err(SearchError::Store {
                location: store.location(),
                message: if names.is_empty() {
                    "holds no study".into()
                } else {
                    format!(
                        "holds several studies ({}); open one by name",
                        names.join(", ")
                    )
                },
            }),
        }
    }

    /// Opens a study by name in a store, with its stored settings.
    pub fn open_in(mut store: Box<dyn Store>, name: &str) -> Result<Self, SearchError> {
        let location = store.location();
        let record = store.study(name)?.ok_or_else(|| SearchError::Store {
            location: location.clone(),
            message: format!("no study named `{name}`"),
        })?;
        let settings: StoredSettings =
            serde_json::from_str(&record.settings).map_err(|e| SearchError::Store {
                location,
                message: format!("study `{name}`: stored settings unreadable: {e}"),
            })?;
        Ok(Self {
            store,
            jobs: settings.config.jobs,
            config: settings.config,
            space: settings.space,
        })
    }

    /// The (normalised) configuration.
    pub fn config(&self) -> &StudyConfig {
        &self.config
    }

    /// The search space.
    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    /// Worker threads used by [`Study::run`] (does not change the trials, only the speed).
    pub fn set_jobs(&mut self, jobs: usize) {
        self.jobs = jobs.max(1);
    }

    /// The store.
    pub fn store(&mut self) -> &mut dyn Store {
        self.store.as_mut()
    }

    /// All trials, by number.
    pub fn trials(&mut self) -> Result<Vec<TrialRecord>, SearchError> {
        let name = self.config.name.clone();
        self.store.trials(&name)
    }

    /// Every rung row (successive halving; empty without), by (number, rung).
    pub fn rungs(&mut self) -> Result<Vec<RungRecord>, SearchError> {
        let name = self.config.name.clone();
        self.store.rungs(&name)
    }

    /// Name of the companion study holding the reference archs.
    pub(crate) fn references_study(&self) -> String {
        format!("{}{REFERENCES_SUFFIX}", self.config.name)
    }

    /// The reference archs' rung rows (successive halving; empty without).
    pub fn reference_rungs(&mut self) -> Result<Vec<RungRecord>, SearchError> {
        let name = self.references_study();
        if self.store.study(&name)?.is_none() {
            return Ok(Vec::new());
        }
        self.store.rungs(&name)
    }

    /// The reference archs' records (see [`StudyConfig::references`]), numbered in the
    /// configured order; empty before [`Study::run_references`] first ran.
    pub fn references(&mut self) -> Result<Vec<TrialRecord>, SearchError> {
        let name = self.references_study();
        if self.store.study(&name)?.is_none() {
            return Ok(Vec::new());
        }
        self.store.trials(&name)
    }
}
