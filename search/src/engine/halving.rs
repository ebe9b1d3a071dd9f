//! Successive halving over stored rungs, asynchronous (ASHA, Li et al. 2020, Algorithm 2):
//! the promotions, whether a study with rungs is complete, and each trial's score at its
//! highest rung for the front.
//!
//! Rung 0 is a trial's own evaluation (its `quality`); rungs 1.. are rows of the store's
//! `rungs` table. A trial is promotable from rung k when it is among the best
//! `floor(n_k / reduction)` of the `n_k` scores finished at rung k (ties: the lower trial
//! number) and has no row at rung k+1 yet; the highest promotable rung goes first. The
//! controllers see rung 0 only, so proposals do not depend on when promotions happen.

use std::collections::HashSet;

use crate::config::HalvingConfig;
use crate::store::{RungRecord, TrialRecord, TrialStatus};

/// The successive-halving rule of a study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Halving {
    /// Rungs, rung 0 included.
    pub rungs: u32,
    /// Reduction factor η.
    pub reduction: usize,
}

impl Halving {
    /// The rule of a study's configuration (`None` without `[halving]`).
    pub fn of(cfg: Option<&HalvingConfig>) -> Option<Self> {
        cfg.map(|h| Self {
            rungs: h.rungs as u32,
            reduction: h.reduction,
        })
    }

    /// The finished scores at rung `k`: (score, trial number), best first.
    fn scores(&self, k: u32, trials: &[TrialRecord], rungs: &[RungRecord]) -> Vec<(f64, u64)> {
        let mut s: Vec<(f64, u64)> = if k == 0 {
            trials
                .iter()
                .filter(|t| t.status == TrialStatus::Done && t.duplicate_of.is_none())
                .filter_map(|t| Some((t.quality?, t.number)))
                .collect()
        } else {
            rungs
                .iter()
                .filter(|r| r.rung == k && r.status == TrialStatus::Done)
                .filter_map(|r| Some((r.score?, r.number)))
                .collect()
        };
        s.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        s
    }

    /// The next promotion, `(trial number, rung)`, or `None` when no trial is promotable.
    pub fn next_promotion(
        &self,
        trials: &[TrialRecord],
        rungs: &[RungRecord],
    ) -> Option<(u64, u32)> {
        (0..self.rungs.saturating_sub(1)).rev().find_map(|k| {
            let scores = self.scores(k, trials, rungs);
            let promoted: HashSet<u64> = rungs
                .iter()
                .filter(|r| r.rung == k + 1)
                .map(|r| r.number)
                .collect();
            scores[..scores.len() / self.reduction]
                .iter()
                .find(|(_, n)| !promoted.contains(n))
                .map(|&(_, n)| (n, k + 1))
        })
    }

    /// Whether nothing is left to do on the rungs: none pending or running, none promotable.
    pub fn settled(&self, trials: &[TrialRecord], rungs: &[RungRecord]) -> bool {
        rungs.iter().all(|r| r.status.is_final()) && self.next_promotion(trials, rungs).is_none()
    }
}

/// `trials` with each one's quality taken from its highest finished rung (the front is built
/// from these), and the rung named in its quality details (`rung`).
pub fn with_top_rungs(trials: &[TrialRecord], rungs: &[RungRecord]) -> Vec<TrialRecord> {
    let mut out = trials.to_vec();
    for r in rungs.iter().filter(|r| r.status == TrialStatus::Done) {
        let Some(t) = out.get_mut(r.number as usize) else {
            continue;
        };
        if t.number == r.number && top_rung(t) < r.rung {
            t.quality = r.score;
            let mut o: serde_json::Value = t
                .objectives
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_else(|| serde_json::json!({}));
            o["quality"] = r.score.into();
            o["rung"] = r.rung.into();
            if let Some(q) = r
                .quality
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
            {
                o["quality_result"] = q;
            }
            t.objectives = Some(o.to_string());
        }
    }
    out
}

/// The rung a trial's quality comes from (0 unless [`with_top_rungs`] raised it).
pub fn top_rung(t: &TrialRecord) -> u32 {
    t.objectives
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|o| o["rung"].as_u64())
        .map_or(0, |r| r as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(number: u64, quality: f64) -> TrialRecord {
        let origin = "{\"kind\":\"random\"}".to_string();
        let arch = unas_space::preset("tiny");
        TrialRecord {
            status: TrialStatus::Done,
            quality: Some(quality),
            ..TrialRecord::pending("s", number, arch, origin, 0, None)
        }
    }

    fn rung(number: u64, rung: u32, score: Option<f64>) -> RungRecord {
        RungRecord {
            status: match score {
                Some(_) => TrialStatus::Done,
                None => TrialStatus::Pending,
            },
            score,
            ..RungRecord::pending("s", number, rung)
        }
    }

    #[test]
    fn asha_promotes_the_best_third_the_highest_rung_first() {
        let h = Halving {
            rungs: 3,
            reduction: 3,
        };
        // Two finished trials: floor(2/3) = 0 promotable.
        let mut trials = vec![trial(0, 5.0), trial(1, 3.0)];
        assert_eq!(h.next_promotion(&trials, &[]), None);
        // Three: the best (trial 1) goes to rung 1.
        trials.push(trial(2, 4.0));
        assert_eq!(h.next_promotion(&trials, &[]), Some((1, 1)));
        let mut rungs = vec![rung(1, 1, None)];
        assert_eq!(h.next_promotion(&trials, &rungs), None);
        assert!(!h.settled(&trials, &rungs), "a rung is pending");
        // Six: two promotable from rung 0 (trials 1 and 3); 1 is already at rung 1.
        trials.extend([trial(3, 1.0), trial(4, 9.0), trial(5, 8.0)]);
        assert_eq!(h.next_promotion(&trials, &rungs), Some((3, 1)));
        // (Trial 0 at rung 1 too, as an earlier, smaller rung 0 would have promoted it.)
        rungs = vec![
            rung(1, 1, Some(2.5)),
            rung(3, 1, Some(0.5)),
            rung(0, 1, Some(4.0)),
        ];
        // Rung 1 has three finished: the best (trial 3) goes to rung 2, before anything else.
        assert_eq!(h.next_promotion(&trials, &rungs), Some((3, 2)));
        rungs.push(rung(3, 2, Some(0.4)));
        assert!(h.settled(&trials, &rungs));
        // The front's quality: each trial's highest finished rung.
        let top = with_top_rungs(&trials, &rungs);
        assert_eq!(top[3].quality, Some(0.4));
        assert_eq!(top_rung(&top[3]), 2);
        assert_eq!(top[1].quality, Some(2.5));
        assert_eq!(top[2].quality, Some(4.0));
        assert_eq!(top_rung(&top[2]), 0);
    }
}
