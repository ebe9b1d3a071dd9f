//! unas-search: hardware-aware architecture search over a [`unas_space::SearchSpace`].
//!
//! - [`config`]: the study configuration (TOML).
//! - [`objective`]: objectives and constraints; the [`QualityEvaluator`] trait that quality
//!   evaluators implement; cheap constraints are checked before any quality evaluation.
//! - [`strategy`]: aging evolution, NSGA-II (constrained domination) and random search behind
//!   one [`strategy::Strategy`] trait, driven by a [`strategy::Controller`]; stateless given
//!   the stored trials.
//! - [`pareto`]: non-dominated sorting, crowding distance, 2-D hypervolume, knee point.
//! - [`store`]: the [`Store`] trait, [`SqliteStore`] and [`PostgresStore`] (portable SQL,
//!   versioned migrations), [`open_store`] from a path or URL, [`copy_store`].
//! - [`engine`]: [`Study`] bound to its store (create/open, results) and the steps every
//!   runner takes: load, ready (duplicates, proposals), start, finish.
//! - [`runner`]: thin runners over the engine: [`Study::run`] (threads of this process),
//!   [`Study::run_external`] (a controller for external workers), [`Worker`] (claims,
//!   evaluates and finishes trials), [`Study::run_references`] (the reference archs).
//! - [`proxy_quality`]: [`proxy_quality::ProxyQuality`], the proxy-quality evaluator.
//! - [`benchmark`]: strategies against random search at equal trial budgets.
//! - `fixture` (feature `testing` only): synthetic TEST FIXTURE evaluators (not a quality
//!   metric) and the `UNAS_TEST_SYNTHETIC_QUALITY` hook ([`test_hook_quality`]).

#![warn(missing_docs)]

pub mod benchmark;
pub mod config;
pub mod engine;
pub mod error;
#[cfg(feature = "testing")]
pub mod fixture;
pub mod objective;
pub mod pareto;
pub mod proxy_quality;
pub mod quality_cache;
pub mod run_dir;
pub mod runner;
pub mod store;
pub mod strategy;

pub use benchmark::{strategy_benchmark, BenchmarkReport, StrategyResult};
pub use config::{
    ConstraintsConfig, ControllerConfig, HalvingConfig, LatencyConfig, LatencyObjective,
    StudyConfig,
};
pub use engine::{Progress, RunSummary, Study, StudyResults};
pub use error::SearchError;
pub use objective::{Evaluators, QualityError, QualityEvaluator, QualityResult};
pub use runner::external::ExternalOptions;
pub use runner::worker::{Worker, WorkerOptions, WorkerSummary};
pub use store::{
    copy_store, open_store, open_store_read_only, PostgresStore, SqliteStore, Store, StudyRecord,
    TrialRecord, TrialStatus,
};

/// The TEST FIXTURE quality evaluator selected by `UNAS_TEST_SYNTHETIC_QUALITY` (a delay in
/// milliseconds) in builds with the `testing` feature, which only the test suite enables;
/// `Ok(None)` in every other build, so a release binary never honours the variable. `Err` when
/// the variable is set but not a number.
pub fn test_hook_quality() -> Result<Option<Box<dyn QualityEvaluator + Sync>>, String> {
    #[cfg(feature = "testing")]
    {
        let q = fixture::SyntheticQuality::from_test_env()?;
        Ok(q.map(|q| Box::new(q) as Box<dyn QualityEvaluator + Sync>))
    }
    #[cfg(not(feature = "testing"))]
    Ok(None)
}
