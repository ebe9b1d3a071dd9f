//! unas-search: hardware-aware architecture search over a [`unas_space::SearchSpace`].
//!
//! - [`config`]: the study configuration (TOML).
//! - [`objective`]: objectives and constraints; the [`QualityEvaluator`] trait that quality
//!   evaluators implement; cheap constraints are checked before any quality evaluation.
//! - [`controller`]: aging evolution, NSGA-II (constrained domination) and random search,
//!   stateless given the stored trials.
//! - [`pareto`]: non-dominated sorting, crowding distance, 2-D hypervolume, knee point.
//! - [`store`]: the [`Store`] trait, [`SqliteStore`] and [`PostgresStore`] (portable SQL,
//!   versioned migrations), [`open_store`] from a path or URL, [`copy_store`].
//! - [`study`]: [`Study`]: create/open, resumable parallel run loop, results.
//! - [`external`]: [`Study::run_external`], the controller of a study evaluated by workers.
//! - [`worker`]: [`Worker`], a stateless process that claims, evaluates and finishes trials.
//! - [`proxy_quality`]: [`proxy_quality::ProxyQuality`], the proxy-quality evaluator.
//! - [`benchmark`]: strategies against random search at equal trial budgets.
//! - [`fixture`]: a synthetic TEST FIXTURE evaluator (not a quality metric).

#![warn(missing_docs)]

pub mod benchmark;
pub mod config;
pub mod controller;
pub mod error;
pub mod external;
pub mod fixture;
pub mod objective;
pub mod pareto;
pub mod proxy_quality;
pub mod quality_cache;
pub mod run_dir;
pub mod store;
pub mod study;
pub mod worker;

pub use benchmark::{strategy_benchmark, BenchmarkReport, StrategyResult};
pub use config::{ConstraintsConfig, ControllerConfig, LatencyConfig, StudyConfig};
pub use error::SearchError;
pub use external::ExternalOptions;
pub use objective::{Evaluators, QualityError, QualityEvaluator, QualityResult};
pub use store::{
    copy_store, open_store, PostgresStore, SqliteStore, Store, StudyRecord, TrialRecord,
    TrialStatus,
};
pub use study::{Progress, RunSummary, Study, StudyResults};
pub use worker::{Worker, WorkerOptions, WorkerSummary};
