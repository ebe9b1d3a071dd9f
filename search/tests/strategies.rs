//! Proposal rules of the strategies, on hand-made trial histories.

use std::collections::HashMap;

use unas_search::strategy::{Controller, Origin, Proposal};
use unas_search::{ControllerConfig, TrialRecord, TrialStatus};
use unas_space::rng::Rng;
use unas_space::{SearchSpace, UNetArch};

/// Trial `n`, done and feasible, with latency and quality `v`.
fn done(n: u64, arch: UNetArch, v: f64) -> TrialRecord {
    let mut t = TrialRecord::pending("a", n, arch, "{}".into(), 0, None);
    t.status = TrialStatus::Done;
    (t.latency_ms, t.quality, t.violation) = (Some(v), Some(v), Some(0.0));
    t.attempts = 1;
    t
}

#[test]
fn aging_evolution_removes_the_oldest_not_the_worst() {
    let space = SearchSpace::load("tiny").unwrap();
    let mut rng = Rng::seed(3);
    let trials: Vec<TrialRecord> = (0..5u64)
        .map(|n| {
            let arch = space.decode(&space.sample(&mut rng).unwrap());
            // Trial 0 dominates everything; later trials are worse and worse.
            let v = if n == 0 { 0.1 } else { 1.0 + n as f64 };
            done(n, arch, v)
        })
        .collect();
    let known: HashMap<String, u64> = trials.iter().map(|t| (t.hash.clone(), t.number)).collect();
    let aging = ControllerConfig::Aging {
        population: 3,
        sample: 3,
    };
    let mut c = Controller::new(aging, space.clone(), 0, 1);
    let parent = |p: unas_search::strategy::Proposal| match p.origin {
        Origin::Mutation { parent, .. } => parent,
        o => panic!("{o:?}"),
    };
    // Population {0, 1, 2}: the best, trial 0, is the parent.
    assert_eq!(parent(c.propose(3, &trials[..3], &known).unwrap()), 0);
    // Population {1, 2, 3}: trial 0 aged out although it is the best; trial 1 is now best.
    assert_eq!(parent(c.propose(4, &trials[..4], &known).unwrap()), 1);
    // Population {2, 3, 4}.
    assert_eq!(parent(c.propose(5, &trials[..5], &known).unwrap()), 2);
}

#[test]
fn aging_evolution_avoids_an_arch_already_proposed() {
    let space = SearchSpace::load("tiny").unwrap();
    let g = space.sample(&mut Rng::seed(5)).unwrap();
    let parent = space.decode(&g);
    let trials = vec![done(0, parent.clone(), 1.0)];
    // Known: the parent and, of every knob, all one-knob alternatives but the first, so a
    // single mutation is often a known arch (the first alternative of each knob is fresh).
    let mut known: HashMap<String, u64> = HashMap::from([(parent.hash_id(), 0)]);
    let mut fresh = Vec::new();
    for k in space.knobs(&g) {
        for (i, alt) in space.alternatives(&g, k).iter().enumerate() {
            let h = space.decode(alt).hash_id();
            if i == 0 {
                fresh.push(h);
            } else {
                known.insert(h, 1 + known.len() as u64);
            }
        }
    }
    assert!(known.len() > fresh.len(), "most neighbours known");
    let aging = ControllerConfig::Aging {
        population: 1,
        sample: 1,
    };
    let child = |p: Proposal| match p.origin {
        Origin::Mutation { parent: 0, .. } => p.arch.hash_id(),
        o => panic!("{o:?}"),
    };
    // Twenty study seeds: every proposal is one of the fresh neighbours.
    for seed in 0..20 {
        let mut c = Controller::new(aging.clone(), space.clone(), seed, 1);
        let h = child(c.propose(1, &trials, &known).unwrap());
        assert!(fresh.contains(&h), "seed {seed}: {h} is already known");
    }
}
