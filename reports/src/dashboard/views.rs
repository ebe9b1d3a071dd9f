//! The dashboard's JSON views of a study, computed with the report's own functions (front,
//! knee, hypervolume, composition, labels), so `report.html` and the dashboard never disagree.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use unas_search::store::{Lease, RungRecord};
use unas_search::{SearchError, Study, TrialRecord, TrialStatus};

use crate::{layout_summary, plots, quality_details, reference_name, text, ReportInput};

/// One reading of the study: what `/api/study`, `/api/trials` and `/api/plots` answer.
pub(crate) struct Snapshot {
    /// Changes whenever a trial or rung changes state (not with heartbeats).
    pub version: u64,
    /// `/api/study`.
    pub study: Value,
    /// Every trial's row with the time it last changed (store clock, Unix ms).
    pub trials: Vec<(i64, Value)>,
    /// What the plots are drawn from.
    input: ReportInput,
}

impl Snapshot {
    /// Reads the study (trials, rungs, references, leases) from its store.
    pub fn read(study: &mut Study, location: &str) -> Result<Self, SearchError> {
        let input = ReportInput::from_study(study)?;
        let rungs = study.rungs()?;
        let name = study.config().name.clone();
        let leases = study.store().leases(&name)?;
        let now = study.store().clock_ms()?;
        let version = version_of(&input, &rungs);
        let trials = input
            .trials
            .iter()
            .map(|t| {
                let own: Vec<&RungRecord> = rungs.iter().filter(|r| r.number == t.number).collect();
                let lease = leases.iter().find(|l| l.number == t.number);
                (updated_ms(t, &own), trial_row(t, &own, lease, now))
            })
            .collect();
        let study = study_view(&input, location, &leases, now, version);
        Ok(Self {
            version,
            study,
            trials,
            input,
        })
    }

    /// `/api/trials?since=N`: the trials that changed at or after store time `N` (all for 0),
    /// and the cursor to pass next time.
    pub fn trials_since(&self, since: i64) -> Value {
        let rows: Vec<&Value> = self
            .trials
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, v)| v)
            .collect();
        let cursor = self.trials.iter().map(|(t, _)| *t).max().unwrap_or(0);
        json!({ "cursor": cursor, "version": self.version.to_string(), "trials": rows })
    }

    /// `/api/plots`: the report's Pareto (with each trial's point position, for clicks),
    /// hypervolume and composition plots as SVG.
    pub fn plots(&self) -> Result<Value, String> {
        let results = self.input.results();
        let (pareto, hits) = plots::pareto_svg(&self.input, &results)?;
        let (hypervolume, composition) = plots::other_svgs(&self.input, &results)?;
        Ok(json!({
            "version": self.version.to_string(),
            "pareto": pareto,
            "hits": hits,
            "hypervolume": hypervolume,
            "composition": composition,
        }))
    }
}

/// A hash of every trial's and rung's state (FNV-1a): the page redraws when it changes.
fn version_of(input: &ReportInput, rungs: &[RungRecord]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |v: i64| {
        for b in v.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
    };
    for t in input.trials.iter().chain(&input.references) {
        eat(t.number as i64);
        eat(t.status as i64);
        eat(t.attempts as i64);
        eat(t.started_ms.unwrap_or(-1));
        eat(t.finished_ms.unwrap_or(-1));
        eat(t.quality.map_or(-1, |q| q.to_bits() as i64));
    }
    for r in rungs {
        eat(r.number as i64);
        eat(r.rung as i64);
        eat(r.status as i64);
        eat(r.attempts as i64);
    }
    h
}

/// When a trial (or one of its rungs) last changed.
fn updated_ms(t: &TrialRecord, rungs: &[&RungRecord]) -> i64 {
    let own = [Some(t.created_ms), t.started_ms, t.finished_ms];
    let rung_times = rungs
        .iter()
        .flat_map(|r| [Some(r.created_ms), r.started_ms, r.finished_ms]);
    own.into_iter()
        .chain(rung_times)
        .flatten()
        .max()
        .unwrap_or(0)
}

fn finite(v: Option<f64>) -> Value {
    v.filter(|v| v.is_finite()).map_or(Value::Null, Value::from)
}

fn blocks(t: &TrialRecord) -> Value {
    let a = &t.arch;
    json!({
        "down": a.down.iter().map(|d| [d.resnets, d.attentions]).collect::<Vec<_>>(),
        "mid": [a.mid.resnets, a.mid.attentions],
        "up": a.up.iter().map(|u| [u.resnets, u.attentions]).collect::<Vec<_>>(),
    })
}

fn trial_row(t: &TrialRecord, rungs: &[&RungRecord], lease: Option<&Lease>, now: i64) -> Value {
    let (metric, details) = quality_details(t).unwrap_or_default();
    let heartbeat_age_s = lease
        .and_then(|l| l.heartbeat_ms)
        .filter(|_| t.status == TrialStatus::Running)
        .map(|h| (now - h) as f64 / 1000.0);
    json!({
        "number": t.number,
        "status": t.status.as_str(),
        "hash": t.hash,
        "layout": layout_summary(&t.arch),
        "blocks": blocks(t),
        "latency_ms": finite(t.latency_ms),
        "sampling_steps": t.arch.sampling_steps,
        "quality": finite(t.quality),
        "metric": metric,
        "details": details,
        "params": t.params,
        "macs": t.macs,
        "violation": finite(t.violation),
        "duplicate_of": t.duplicate_of,
        "attempts": t.attempts,
        "error": t.error,
        "quality_s": finite(t.quality_s),
        "worker": lease.and_then(|l| l.worker.clone()),
        "heartbeat_age_s": heartbeat_age_s,
        "rungs": rungs.iter().map(|r| json!({
            "rung": r.rung,
            "status": r.status.as_str(),
            "score": finite(r.score),
            "error": r.error,
        })).collect::<Vec<_>>(),
    })
}

fn study_view(
    input: &ReportInput,
    location: &str,
    leases: &[Lease],
    now: i64,
    version: u64,
) -> Value {
    let results = input.results();
    let mut counts: BTreeMap<&str, usize> = ["pending", "running", "done", "failed", "infeasible"]
        .into_iter()
        .map(|k| (k, 0))
        .collect();
    for t in &input.trials {
        *counts.entry(t.status.as_str()).or_default() += 1;
    }
    let running: Vec<Value> = input
        .trials
        .iter()
        .filter(|t| t.status == TrialStatus::Running)
        .map(|t| {
            let lease = leases.iter().find(|l| l.number == t.number);
            json!({
                "number": t.number,
                "worker": lease.and_then(|l| l.worker.clone()),
                "heartbeat_age_s": lease
                    .and_then(|l| l.heartbeat_ms)
                    .map(|h| (now - h) as f64 / 1000.0),
            })
        })
        .collect();
    let references: Vec<Value> = input
        .references
        .iter()
        .map(|r| {
            json!({
                "name": reference_name(r),
                "status": r.status.as_str(),
                "latency_ms": finite(r.latency_ms),
                "quality": finite(r.quality),
                "layout": layout_summary(&r.arch),
            })
        })
        .collect();
    let c = &input.config;
    json!({
        "name": c.name,
        "space": input.space_name,
        "store": location,
        "metric": input.metric(),
        "latency_model": input.latency_model(),
        "objective": text::objective_lines(input)
            .into_iter()
            .map(|l| l.replace("**", ""))
            .collect::<Vec<_>>(),
        "budget_ms": c.latency.budget_ms,
        "per_image": c.latency.per_image(),
        "trials_planned": c.trials,
        "halving": c.halving.is_some(),
        "counts": counts,
        "total": input.trials.len(),
        "duplicates": input.trials.iter().filter(|t| t.duplicate_of.is_some()).count(),
        "running": running,
        "feasible": results.feasible,
        "front": results.front.iter().map(|t| t.number).collect::<Vec<_>>(),
        "knee": results.knee,
        "hypervolume": results.hypervolume,
        "reference_point": results.reference.iter().map(|v| finite(Some(*v))).collect::<Vec<_>>(),
        "references": references,
        "version": version.to_string(),
        "now_ms": now,
    })
}
