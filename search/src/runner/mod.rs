//! Thin runners over the engine ([`crate::engine`]): each loads the trials, makes the ready
//! ones, starts and finishes them through the engine's steps, and differs only in where the
//! evaluations run.
//!
//! - [`local`]: [`Study::run`](crate::Study::run), on threads of this process.
//! - [`external`]: [`Study::run_external`](crate::Study::run_external), a controller that only
//!   proposes and polls while workers evaluate.
//! - [`worker`]: [`Worker`](crate::Worker), a stateless process that claims, evaluates and
//!   finishes trials.
//! - [`references`]: [`Study::run_references`](crate::Study::run_references), the reference
//!   archs in a companion study.

pub mod external;
pub mod local;
pub mod references;
pub mod worker;
