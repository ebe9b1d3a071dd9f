//! Tests of the parent module.

use super::*;

/// Three seeds of three archs: splitting off seed 0 or seed 1 gives τ 1/3, seed 2 (which
/// reverses C) gives −1/3; the summary is mean 1/9, range [−1/3, 1/3], 3 splits.
#[test]
fn the_noise_ceiling_over_all_splits() {
    let arch = |v: [f64; 3]| {
        v.into_iter()
            .enumerate()
            .map(|(s, x)| (s as u64, x))
            .collect()
    };
    let table: BTreeMap<String, BTreeMap<u64, f64>> = [
        ("A".to_string(), arch([1.0, 1.0, 2.0])),
        ("B".to_string(), arch([2.0, 2.0, 2.1])),
        ("C".to_string(), arch([3.0, 3.0, 1.0])),
    ]
    .into_iter()
    .collect();
    let (mean, min, max, k) = noise_ceiling_splits(&table).unwrap();
    assert_eq!(k, 3);
    assert!((mean - 1.0 / 9.0).abs() < 1e-12, "mean {mean}");
    assert!((min + 1.0 / 3.0).abs() < 1e-12 && (max - 1.0 / 3.0).abs() < 1e-12);
    let row = noise_ceiling_row(&table, 10).unwrap();
    assert!(
        (row.tau - 1.0 / 3.0).abs() < 1e-12,
        "the row is seed 0 against 1-2"
    );
}

#[test]
fn statistics_on_known_values() {
    // Perfect agreement and perfect disagreement.
    let a = [1.0, 2.0, 3.0, 4.0, 5.0];
    let r = [5.0, 4.0, 3.0, 2.0, 1.0];
    assert_eq!(spearman(&a, &a), 1.0);
    assert_eq!(spearman(&a, &r), -1.0);
    // Null sd of τ: 0.289 at n = 8, 0.221 at n = 12.
    assert!((tau_null_sd(8) - 0.2887).abs() < 1e-3);
    assert!((tau_null_sd(12) - 0.2210).abs() < 1e-3);
    // ICC: no seed noise → 1; pure noise around equal means → ≤ 0.
    assert!((icc1(&[vec![1.0, 1.0], vec![2.0, 2.0], vec![3.0, 3.0]]) - 1.0).abs() < 1e-12);
    assert!(icc1(&[vec![1.0, 2.0], vec![2.0, 1.0], vec![1.5, 1.5]]) < 0.0);
    // A repeat shifted by a constant: ICC(1) drops, the consistency ICC stays 1.
    let shifted = [vec![1.0, 11.0], vec![2.0, 12.0], vec![3.0, 13.0]];
    assert!(icc1(&shifted) < 0.0);
    assert!((icc_consistency(&shifted) - 1.0).abs() < 1e-12);
    // Worked example (Shrout & Fleiss 1979, Table 2: 6 targets x 4 judges): ICC(3,1) 0.71.
    let sf = [
        vec![9.0, 2.0, 5.0, 8.0],
        vec![6.0, 1.0, 3.0, 2.0],
        vec![8.0, 4.0, 6.0, 8.0],
        vec![7.0, 1.0, 2.0, 6.0],
        vec![10.0, 5.0, 6.0, 9.0],
        vec![6.0, 2.0, 4.0, 7.0],
    ];
    assert!(
        (icc_consistency(&sf) - 0.71).abs() < 0.005,
        "{}",
        icc_consistency(&sf)
    );
    assert!((icc1(&sf) - 0.17).abs() < 0.005, "{}", icc1(&sf));
    // A bootstrap CI contains the point estimate for a clean monotone relation.
    let b = [1.1, 1.9, 3.2, 3.9, 5.3, 6.0, 7.2, 7.9];
    let c = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let (lo, hi) = bootstrap_tau(&b, &c, 200, 1);
    assert!(lo <= 1.0 && hi == 1.0 && lo > 0.5, "{lo} {hi}");
}

#[test]
fn tables_round_trip_and_means_use_common_seeds() {
    let dir = tempfile_dir();
    let file = dir.join("ground_truth.csv");
    let row = |arch: &str, seed, v| GroundTruthRow {
        arch: arch.into(),
        arch_file: format!("archs/{arch}.toml"),
        seed,
        steps: 100,
        weights: "final".into(),
        val_loss: v,
        fd: None,
        kid: Some(0.5),
    };
    let rows = vec![row("a", 0, 1.0), row("a", 1, 3.0), row("b", 0, 2.0)];
    append_ground_truth(&file, &rows[..2]).unwrap();
    append_ground_truth(&file, &rows[2..]).unwrap();
    assert_eq!(read_ground_truth(&file).unwrap(), rows);
    // Seed 1 is missing for b: means use seed 0 only.
    let (means, seeds) = ground_truth_means(&rows, 100, "final");
    assert_eq!(seeds, vec![0]);
    assert_eq!(means["a"], 1.0);
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("unas-cal-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn picks_split_over_groups_and_stratify_each() {
    let space = SearchSpace::load("tiny-depth").unwrap();
    let macs = |a: &UNetArch| {
        let q = unas_space::CostQuery {
            height: 16,
            width: 16,
            batch: 2,
            text_len: 16,
        };
        a.plan().unwrap().cost(&q).unwrap().macs as f64
    };
    let flexible = |a: &UNetArch| a.layout == unas_space::Layout::Flexible;
    let stages = |a: &UNetArch| a.down.len();
    let picked = pick_archs_by(&space, 12, 480, 0, &macs, &flexible, &stages).unwrap();
    assert_eq!(picked.len(), 12);
    assert!(picked.iter().all(flexible));
    let three: Vec<f64> = picked
        .iter()
        .filter(|a| a.down.len() == 3)
        .map(macs)
        .collect();
    let four: Vec<f64> = picked
        .iter()
        .filter(|a| a.down.len() == 4)
        .map(macs)
        .collect();
    assert_eq!((three.len(), four.len()), (6, 6));
    // Each group from its cheapest to its most expensive sample, in order.
    assert!(three.windows(2).all(|w| w[0] <= w[1]) && four.windows(2).all(|w| w[0] <= w[1]));
    let ids: std::collections::BTreeSet<String> = picked.iter().map(|a| a.hash_id()).collect();
    assert_eq!(ids.len(), 12, "distinct");
    // The one-group form is the plain stratified pick.
    let plain = pick_archs(&space, 12, 480, 0, &macs).unwrap();
    let same = pick_archs_by(&space, 12, 480, 0, &macs, &|_| true, &|_| 0).unwrap();
    assert_eq!(plain, same);
}
