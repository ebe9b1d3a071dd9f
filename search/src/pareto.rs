//! Pareto utilities for minimisation problems: dominance (plain and constrained), fast
//! non-dominated sorting, crowding distance, exact 2-D hypervolume and knee-point selection.

use std::cmp::Ordering;

/// `a` dominates `b` (minimisation): no worse in every objective and better in one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        if x < y {
            better = true;
        }
    }
    better
}

/// A point with a total constraint violation (0 = feasible) for constrained domination.
#[derive(Clone, Debug, PartialEq)]
pub struct Constrained {
    /// Objective values (minimised); only compared between feasible points.
    pub objectives: Vec<f64>,
    /// Total constraint violation, 0 when feasible.
    pub violation: f64,
}

impl Constrained {
    /// Whether the point meets every constraint.
    pub fn feasible(&self) -> bool {
        self.violation <= 0.0
    }
}

/// Deb's constrained domination: a feasible point beats an infeasible one; of two infeasible
/// points the smaller total violation wins; two feasible points compare by [`dominates`].
pub fn constrained_dominates(a: &Constrained, b: &Constrained) -> bool {
    match (a.feasible(), b.feasible()) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation < b.violation,
        (true, true) => dominates(&a.objectives, &b.objectives),
    }
}

/// Fast non-dominated sort (Deb 2002) of `n` items under the relation `dom(i, j)` ("i
/// dominates j"): fronts of indices, best first; each front in ascending index order.
pub fn sort_fronts(n: usize, dom: impl Fn(usize, usize) -> bool) -> Vec<Vec<usize>> {
    let mut dominated_by_count = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in (i + 1)..n {
            if dom(i, j) {
                dominates_list[i].push(j);
                dominated_by_count[j] += 1;
            } else if dom(j, i) {
                dominates_list[j].push(i);
                dominated_by_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominates_list[i] {
                dominated_by_count[j] -= 1;
                if dominated_by_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

/// Non-dominated fronts of plain objective vectors.
pub fn non_dominated_sort(points: &[Vec<f64>]) -> Vec<Vec<usize>> {
    sort_fronts(points.len(), |i, j| dominates(&points[i], &points[j]))
}

/// Non-dominated fronts under constrained domination.
pub fn constrained_sort(points: &[Constrained]) -> Vec<Vec<usize>> {
    sort_fronts(points.len(), |i, j| {
        constrained_dominates(&points[i], &points[j])
    })
}

/// Crowding distance of each point of one front (same order as `front`): boundary points of
/// each objective get infinity; interior points add `(f[i+1] - f[i-1]) / (f_max - f_min)`;
/// objectives with zero range are skipped.
pub fn crowding_distance(front: &[Vec<f64>]) -> Vec<f64> {
    let n = front.len();
    let mut d = vec![0.0; n];
    if n == 0 {
        return d;
    }
    let m = front[0].len();
    #[allow(clippy::needless_range_loop)]
    for k in 0..m {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| front[a][k].total_cmp(&front[b][k]).then(a.cmp(&b)));
        let lo = front[order[0]][k];
        let hi = front[order[n - 1]][k];
        let range = hi - lo;
        if range.is_nan() || range <= 0.0 {
            continue;
        }
        d[order[0]] = f64::INFINITY;
        d[order[n - 1]] = f64::INFINITY;
        for w in 1..n.saturating_sub(1) {
            let i = order[w];
            if d[i].is_finite() {
                d[i] += (front[order[w + 1]][k] - front[order[w - 1]][k]) / range;
            }
        }
    }
    d
}

/// Indices of the non-dominated points among 2-D points (duplicates all kept).
pub fn pareto_front_2d(points: &[[f64; 2]]) -> Vec<usize> {
    (0..points.len())
        .filter(|&i| !points.iter().any(|q| dominates(q, &points[i])))
        .collect()
}

/// Exact 2-D hypervolume (minimisation) dominated by `points` up to `reference`, by a sort and
/// sweep. Points not strictly better than the reference in both objectives add nothing, so the
/// result is 0 when the reference point dominates (or equals) the whole front.
pub fn hypervolume_2d(points: &[[f64; 2]], reference: [f64; 2]) -> f64 {
    let mut p: Vec<[f64; 2]> = points
        .iter()
        .copied()
        .filter(|q| q[0] < reference[0] && q[1] < reference[1])
        .collect();
    p.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut hv = 0.0;
    let mut best_y = reference[1];
    for q in p {
        if q[1] < best_y {
            hv += (reference[0] - q[0]) * (best_y - q[1]);
            best_y = q[1];
        }
    }
    hv
}

/// The knee of a 2-D front: among the non-dominated points, each objective normalised to
/// [0, 1] over the front, the point farthest from the straight line through the two extreme
/// points (ties: lowest index). With fewer than three distinct points on the front, the point
/// nearest the ideal corner (0, 0) in normalised space. `None` for no points.
pub fn knee_point(points: &[[f64; 2]]) -> Option<usize> {
    let front = pareto_front_2d(points);
    if front.is_empty() {
        return None;
    }
    let min = |k: usize| {
        front
            .iter()
            .map(|&i| points[i][k])
            .fold(f64::INFINITY, f64::min)
    };
    let max = |k: usize| {
        front
            .iter()
            .map(|&i| points[i][k])
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let (lo, hi) = ([min(0), min(1)], [max(0), max(1)]);
    let norm = |i: usize| -> [f64; 2] {
        let f = |k: usize| {
            let r = hi[k] - lo[k];
            if r > 0.0 {
                (points[i][k] - lo[k]) / r
            } else {
                0.0
            }
        };
        [f(0), f(1)]
    };
    let by = |score: &dyn Fn(usize) -> f64, prefer_max: bool| -> usize {
        let mut best = front[0];
        for &i in &front[1..] {
            let (a, b) = (score(i), score(best));
            let better = if prefer_max { a > b } else { a < b };
            if better {
                best = i;
            }
        }
        best
    };
    let mut distinct: Vec<[u64; 2]> = front
        .iter()
        .map(|&i| [points[i][0].to_bits(), points[i][1].to_bits()])
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 3 {
        return Some(by(&|i| norm(i).iter().map(|v| v * v).sum::<f64>(), false));
    }
    // Extremes in normalised space: (0, 1) and (1, 0); line x + y = 1; distance below it.
    Some(by(
        &|i| {
            let q = norm(i);
            (1.0 - q[0] - q[1]) / std::f64::consts::SQRT_2
        },
        true,
    ))
}

/// Total order helper: smaller rank first, then larger crowding distance.
pub fn rank_crowding_cmp(a: (usize, f64), b: (usize, f64)) -> Ordering {
    a.0.cmp(&b.0).then(b.1.total_cmp(&a.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominance() {
        assert!(dominates(&[1.0, 2.0], &[1.0, 3.0]));
        assert!(!dominates(&[1.0, 2.0], &[1.0, 2.0]));
        assert!(!dominates(&[1.0, 4.0], &[2.0, 3.0]));
    }

    #[test]
    fn hypervolume_hand_cases() {
        let ref4 = [4.0, 4.0];
        // Three staircase points: 3 + 2 + 1 unit cells.
        let front = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]];
        assert_eq!(hypervolume_2d(&front, ref4), 6.0);
        // Dominated and duplicate points add nothing; order does not matter.
        let more = [[3.0, 3.0], [3.0, 1.0], [1.0, 3.0], [2.0, 2.0], [2.0, 2.0]];
        assert_eq!(hypervolume_2d(&more, ref4), 6.0);
        // One point: a rectangle.
        assert_eq!(hypervolume_2d(&[[1.0, 2.5]], ref4), 3.0 * 1.5);
        // The reference point dominates the front: 0.
        assert_eq!(hypervolume_2d(&[[5.0, 5.0], [4.0, 6.0]], ref4), 0.0);
        // Points on the reference boundary add nothing.
        assert_eq!(hypervolume_2d(&[[4.0, 1.0], [1.0, 4.0]], ref4), 0.0);
        // Partly outside: only the part inside the box counts.
        assert_eq!(hypervolume_2d(&[[5.0, 0.0], [2.0, 2.0]], ref4), 4.0);
        assert_eq!(hypervolume_2d(&[], ref4), 0.0);
        // Non-integer case: (0.5, 1.5) and (1.5, 0.5) with reference (2, 2):
        // 1.5 * 0.5 + 0.5 * 1.0 = 1.25.
        assert!((hypervolume_2d(&[[0.5, 1.5], [1.5, 0.5]], [2.0, 2.0]) - 1.25).abs() < 1e-12);
    }

    #[test]
    fn non_dominated_sorting_hand_case() {
        let p = vec![
            vec![1.0, 5.0], // 0: front 0
            vec![2.0, 3.0], // 1: front 0
            vec![4.0, 1.0], // 2: front 0
            vec![3.0, 4.0], // 3: dominated by 1
            vec![5.0, 5.0], // 4: dominated by 5
            vec![4.0, 4.0], // 5: dominated by 3
        ];
        assert_eq!(
            non_dominated_sort(&p),
            vec![vec![0, 1, 2], vec![3], vec![5], vec![4]]
        );
        // Equal points are mutually non-dominated.
        assert_eq!(
            non_dominated_sort(&[vec![1.0, 1.0], vec![1.0, 1.0]]),
            vec![vec![0, 1]]
        );
    }

    #[test]
    fn constrained_sorting() {
        let c = |o: [f64; 2], v: f64| Constrained {
            objectives: o.to_vec(),
            violation: v,
        };
        let p = vec![
            c([9.0, 9.0], 0.0), // feasible but poor: front 0 (alone among feasible)
            c([1.0, 1.0], 0.5), // infeasible
            c([0.0, 0.0], 0.2), // infeasible, less violation
            c([8.0, 9.5], 0.0), // feasible, trade-off with 0
        ];
        assert!(constrained_dominates(&p[0], &p[2]));
        assert!(constrained_dominates(&p[2], &p[1]));
        assert!(!constrained_dominates(&p[1], &p[2]));
        assert_eq!(constrained_sort(&p), vec![vec![0, 3], vec![2], vec![1]]);
    }

    #[test]
    fn crowding_hand_cases() {
        let f = vec![vec![2.0, 3.0], vec![1.0, 5.0], vec![4.0, 1.0]];
        let d = crowding_distance(&f);
        assert_eq!(d[1], f64::INFINITY);
        assert_eq!(d[2], f64::INFINITY);
        // (4 - 1) / 3 + (5 - 1) / 4 = 2.
        assert!((d[0] - 2.0).abs() < 1e-12);
        // Zero-range objective skipped: only objective 0 counts.
        let f = vec![
            vec![1.0, 2.0],
            vec![2.0, 2.0],
            vec![3.0, 2.0],
            vec![5.0, 2.0],
        ];
        let d = crowding_distance(&f);
        assert_eq!(d[0], f64::INFINITY);
        assert_eq!(d[3], f64::INFINITY);
        assert!((d[1] - 2.0 / 4.0).abs() < 1e-12);
        assert!((d[2] - 3.0 / 4.0).abs() < 1e-12);
        // All objectives constant: nothing is a boundary, all zero.
        assert_eq!(crowding_distance(&[vec![1.0], vec![1.0]]), vec![0.0, 0.0]);
        assert_eq!(crowding_distance(&[vec![1.0, 2.0]]), vec![0.0]);
    }

    #[test]
    fn knee() {
        // Convex front with an obvious knee at (1, 1).
        let p = [[0.0, 10.0], [1.0, 1.0], [10.0, 0.0], [5.0, 5.0], [2.0, 6.0]];
        assert_eq!(knee_point(&p), Some(1));
        assert_eq!(knee_point(&[[3.0, 3.0]]), Some(0));
        assert_eq!(knee_point(&[]), None);
        // Two points: nearest the ideal corner after normalisation (ties: first).
        assert_eq!(knee_point(&[[0.0, 1.0], [1.0, 0.0]]), Some(0));
    }
}
