//! `lut:auto`'s cache: this machine's table of a space is profiled once, found again under the
//! same key, and profiled anew when it disagrees with end-to-end measurements.

mod small;

use unas_evaluator::latency::auto::{auto_file, auto_table};
use unas_evaluator::latency::lut::LookupTable;
use unas_evaluator::latency::robust::Statistic;
use unas_evaluator::latency::{Dtype, LatencySetting};

#[test]
fn a_table_is_profiled_once_cached_and_profiled_again_when_it_disagrees() {
    let space = small::space();
    let setting = LatencySetting {
        latent: 8,
        batch: 1,
        text_len: 4,
        dtype: Dtype::F32,
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mut lines = Vec::new();
    let t = auto_table(&space, &setting, &cache, &mut |l| lines.push(l.to_string())).unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("profiling")),
        "{lines:?}"
    );
    assert!(
        t.file.starts_with(cache.join("lut")),
        "{}",
        t.file.display()
    );
    assert_eq!(t.measured.statistic, Statistic::LowerQuartile);
    assert!(t.measured.noise.is_some() && t.measured.validation.is_some());
    // The same machine, space and setting: the same file.
    assert_eq!(auto_file(&space, &setting, &cache), t.file);
    // A table three times too slow fails its check and is profiled again.
    let mut wrong = LookupTable::load(&t.file).unwrap();
    for e in &mut wrong.entry {
        e.ms *= 3.0;
    }
    wrong.save(&t.file).unwrap();
    let mut lines = Vec::new();
    let again = auto_table(&space, &setting, &cache, &mut |l| lines.push(l.to_string())).unwrap();
    assert!(
        lines.iter().any(|l| l.contains("profiling it again")),
        "{lines:?}"
    );
    let sum = |t: &LookupTable| t.entry.iter().map(|e| e.ms).sum::<f64>();
    assert!(sum(&again) < sum(&wrong) / 1.5);
}
