//! unas-search: hardware-aware architecture search over a [`unas_space::SearchSpace`].
//!
//! - [`config`]: the study configuration (TOML).
//! - [`objective`]: objectives and constraints; the [`QualityEvaluator`] trait that quality
//!   evaluators implement; cheap constraints are checked before any quality evaluation.
//! - [`controller`]: aging evolution, NSGA-II (constrained domination) and random search,
//!   stateless given the stored trials.
//! - [`pareto`]: non-dominated sorting, crowding distance, 2-D hypervolume, knee point.
//! - [`store`]: the [`Store`] trait and [`SqliteStore`] (portable SQL, versioned migrations).
//! - [`study`]: [`Study`]: create/open, resumable parallel run loop, results.
//! - [`benchmark`]: strategies against random search at equal trial budgets.
//! - [`fixture`]: a synthetic TEST FIXTURE evaluator (not a quality metric).

#![warn(missing_docs)]

pub mod benchmark;
pub mod config;
pub mod controller;
pub mod error;
pub mod fixture;
pub mod objective;
pub mod pareto;
pub mod store;
pub mod study;

pub use benchmark::{strategy_benchmark, BenchmarkReport, StrategyResult};
pub use config::{ConstraintsConfig, ControllerConfig, LatencyConfig, StudyConfig};
pub use error::SearchError;
pub use objective::{Evaluators, QualityError, QualityEvaluator, QualityResult};
pub use store::{SqliteStore, Store, StudyRecord, TrialRecord, TrialStatus};
pub use study::{Progress, RunSummary, Study, StudyResults};
