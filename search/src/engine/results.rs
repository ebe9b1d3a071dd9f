//! The outcome of a study: its feasible Pareto front over (latency, quality), knee and
//! hypervolume, or the least-violating trials when none is feasible.

use std::collections::{BTreeMap, HashSet};

use super::Study;
use crate::config::StudyConfig;
use crate::error::SearchError;
use crate::pareto::{hypervolume_2d, knee_point, pareto_front_2d};
use crate::store::{TrialRecord, TrialStatus};

/// The outcome of a study so far.
#[derive(Clone, Debug)]
pub struct StudyResults {
    /// Whether any trial is feasible.
    pub feasible: bool,
    /// The feasible Pareto front over (latency, quality), one trial per arch, by latency;
    /// when no trial is feasible, the least-violating trials (up to 5) by violation.
    pub front: Vec<TrialRecord>,
    /// Trial number of the front's knee (feasible fronts only).
    pub knee: Option<u64>,
    /// Hypervolume of the feasible front.
    pub hypervolume: f64,
    /// Reference point (budget_ms, quality reference) of the hypervolume.
    pub reference: [f64; 2],
    /// Trials per status.
    pub counts: BTreeMap<String, usize>,
}

/// The hypervolume reference quality: the configured one, else the worst done quality.
pub(crate) fn quality_reference(config: &StudyConfig, trials: &[TrialRecord]) -> f64 {
    config.quality_reference.unwrap_or_else(|| {
        trials
            .iter()
            .filter(|t| t.status == TrialStatus::Done)
            .filter_map(|t| t.quality)
            .fold(f64::NEG_INFINITY, f64::max)
    })
}

impl Study {
    /// Feasible (latency, quality) points, one per arch hash: (trial index, point).
    fn feasible_points(trials: &[TrialRecord]) -> Vec<(usize, [f64; 2])> {
        let mut seen = HashSet::new();
        trials
            .iter()
            .enumerate()
            .filter(|(_, t)| t.status == TrialStatus::Done && t.duplicate_of.is_none())
            .filter(|(_, t)| seen.insert(t.hash.clone()))
            .filter_map(|(i, t)| Some((i, [t.latency_ms?, t.quality?])))
            .collect()
    }

    /// Hypervolume of the feasible front of `trials` for a reference point.
    pub fn hypervolume_of(trials: &[TrialRecord], reference: [f64; 2]) -> f64 {
        let pts: Vec<[f64; 2]> = Self::feasible_points(trials)
            .into_iter()
            .map(|p| p.1)
            .collect();
        hypervolume_2d(&pts, reference)
    }

    /// The Pareto front (or, with no feasible trial, the least-violating trials), its knee and
    /// hypervolume.
    /// With successive halving, each trial's quality is that of its highest finished rung.
    pub fn results(&mut self) -> Result<StudyResults, SearchError> {
        let trials = self.trials()?;
        let rungs = self.rungs()?;
        let trials = super::halving::with_top_rungs(&trials, &rungs);
        Ok(Self::results_of(&self.config, &trials))
    }

    /// [`Study::results`] of a list of trials (numbered `0..`) under a configuration.
    pub fn results_of(config: &StudyConfig, trials: &[TrialRecord]) -> StudyResults {
        let mut counts = BTreeMap::new();
        for t in trials {
            *counts.entry(t.status.as_str().to_string()).or_insert(0) += 1;
        }
        let reference = [config.latency.budget_ms, quality_reference(config, trials)];
        let pts = Self::feasible_points(trials);
        if pts.is_empty() {
            let mut seen = HashSet::new();
            let mut least: Vec<TrialRecord> = trials
                .iter()
                .filter(|t| t.status == TrialStatus::Infeasible)
                .filter(|t| seen.insert(t.hash.clone()))
                .cloned()
                .collect();
            least.sort_by(|a, b| {
                a.violation
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.violation.unwrap_or(f64::INFINITY))
                    .then(a.number.cmp(&b.number))
            });
            least.truncate(5);
            return StudyResults {
                feasible: false,
                front: least,
                knee: None,
                hypervolume: 0.0,
                reference,
                counts,
            };
        }
        let xy: Vec<[f64; 2]> = pts.iter().map(|p| p.1).collect();
        let mut front: Vec<TrialRecord> = pareto_front_2d(&xy)
            .into_iter()
            .map(|i| trials[pts[i].0].clone())
            .collect();
        front.sort_by(|a, b| {
            a.latency_ms
                .unwrap_or(0.0)
                .total_cmp(&b.latency_ms.unwrap_or(0.0))
                .then(a.number.cmp(&b.number))
        });
        let knee = knee_point(&xy).map(|i| trials[pts[i].0].number);
        StudyResults {
            feasible: true,
            front,
            knee,
            hypervolume: hypervolume_2d(&xy, reference),
            reference,
            counts,
        }
    }
}
