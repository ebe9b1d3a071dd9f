//! Constrained non-dominated selection shared by the evolutionary strategies: trials as
//! members, (rank, crowding distance) keys and elitist NSGA-II selection.

use unas_space::{Genome, SearchSpace};

use crate::pareto::{constrained_sort, crowding_distance, rank_crowding_cmp, Constrained};
use crate::store::{TrialRecord, TrialStatus};

/// A trial usable as a parent: its genome and its constrained objectives.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub number: u64,
    pub hash: String,
    pub genome: Genome,
    pub point: Constrained,
}

/// Usable trials (done, or infeasible with predictions) as members, in number order.
pub(crate) fn members(space: &SearchSpace, trials: &[TrialRecord]) -> Vec<Member> {
    trials
        .iter()
        .filter_map(|t| {
            let point = match t.status {
                TrialStatus::Done => Constrained {
                    objectives: vec![t.latency_ms?, t.quality?],
                    violation: 0.0,
                },
                TrialStatus::Infeasible => Constrained {
                    objectives: vec![t.latency_ms.unwrap_or(f64::INFINITY), f64::INFINITY],
                    violation: t.violation.filter(|v| *v > 0.0).unwrap_or(f64::MAX),
                },
                _ => return None,
            };
            Some(Member {
                number: t.number,
                hash: t.hash.clone(),
                genome: space.encode(&t.arch)?,
                point,
            })
        })
        .collect()
}

/// (rank, crowding distance) of each point under constrained domination; crowding is computed
/// within each front on the objectives (feasible fronts) or the violation (infeasible ones).
pub(crate) fn rank_and_crowding(points: &[Constrained]) -> Vec<(usize, f64)> {
    let mut keys = vec![(0usize, 0.0f64); points.len()];
    for (rank, front) in constrained_sort(points).iter().enumerate() {
        let values: Vec<Vec<f64>> = front
            .iter()
            .map(|&i| {
                if points[i].feasible() {
                    points[i].objectives.clone()
                } else {
                    vec![points[i].violation]
                }
            })
            .collect();
        let d = crowding_distance(&values);
        for (j, &i) in front.iter().enumerate() {
            keys[i] = (rank, d[j]);
        }
    }
    keys
}

/// Elitist NSGA-II selection of `n` members: whole fronts while they fit, then the last front
/// by crowding distance (larger first; ties: lower trial number). Result in number order.
pub(crate) fn select_best(members: Vec<Member>, n: usize) -> Vec<Member> {
    if members.len() <= n {
        let mut m = members;
        m.sort_by_key(|m| m.number);
        return m;
    }
    let points: Vec<Constrained> = members.iter().map(|m| m.point.clone()).collect();
    let keys = rank_and_crowding(&points);
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        rank_crowding_cmp(keys[a], keys[b]).then(members[a].number.cmp(&members[b].number))
    });
    let mut chosen: Vec<Member> = order[..n].iter().map(|&i| members[i].clone()).collect();
    chosen.sort_by_key(|m| m.number);
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(number: u64, lat: f64, q: f64, violation: f64) -> Member {
        let space = SearchSpace::load("tiny").unwrap();
        let genome = space.encode(&unas_space::preset("tiny")).unwrap();
        Member {
            number,
            hash: format!("h{number}"),
            genome,
            point: Constrained {
                objectives: vec![lat, q],
                violation,
            },
        }
    }

    #[test]
    fn elitist_selection_keeps_fronts_then_crowding() {
        let m = vec![
            member(0, 1.0, 5.0, 0.0),
            member(1, 2.0, 3.0, 0.0),
            member(2, 3.0, 2.0, 0.0),
            member(3, 5.0, 1.0, 0.0),
            member(4, 4.0, 4.0, 0.0), // dominated
            member(5, 0.1, 0.1, 0.3), // infeasible
        ];
        // Front 0 has 4 members; keep 3: both extremes (infinite crowding) and the interior
        // one with the larger crowding distance. Trial 1: (3-1)/4 + (5-2)/4 = 1.25;
        // trial 2: (5-2)/4 + (3-1)/4 = 1.25 -> tie, the lower number (1) wins.
        let got: Vec<u64> = select_best(m.clone(), 3).iter().map(|m| m.number).collect();
        assert_eq!(got, vec![0, 1, 3]);
        // Five: the whole first front plus the dominated feasible one before the infeasible.
        let got: Vec<u64> = select_best(m, 5).iter().map(|m| m.number).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn ranks_and_crowding() {
        let p: Vec<Constrained> = [
            member(0, 1.0, 5.0, 0.0),
            member(1, 2.0, 3.0, 0.0),
            member(2, 4.0, 1.0, 0.0),
            member(3, 3.0, 4.0, 0.0),
            member(4, 0.0, 0.0, 0.5),
        ]
        .iter()
        .map(|m| m.point.clone())
        .collect();
        let k = rank_and_crowding(&p);
        assert_eq!(k[0], (0, f64::INFINITY));
        assert_eq!(k[1].0, 0);
        assert!((k[1].1 - 2.0).abs() < 1e-12);
        assert_eq!(k[3].0, 1);
        assert_eq!(k[4].0, 2);
    }
}
