//! Building a lookup table on the device at hand, with the robust timing protocol
//! ([`super::robust`]): a noise check first, every block variant timed inside the covering
//! architectures with their repeats interleaved round by round, the lower quartile of the
//! repeats as each entry, and the overhead fitted on sampled architectures timed the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;

use unas_runtime::bench::Timing;
use unas_runtime::device::Device;
use unas_space::rng::Rng;
use unas_space::SearchSpace;

use super::lut::{covering_archs, variant_key, LookupTable, LutEntry, LutProgress, LutProvenance};
use super::measured::{MeasuredModel, Repeats};
use super::robust::{check_noise, interleaved_steps, Statistic};
use super::{LatencyModel, LatencySetting};
use crate::EvalError;

/// Covering architectures timed together (interleaved); a bound on the models held at once.
const INTERLEAVE: usize = 4;

/// How a table is measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProfileOptions {
    /// Warm-up and timed runs per architecture.
    pub repeats: Repeats,
    /// Random architectures of the space timed end to end to fit the overhead.
    pub overhead_archs: usize,
    /// Their sampling seed.
    pub seed: u64,
    /// Where to measure.
    pub device: Device,
    /// The noise check's limit (spread of a reference forward, e.g. 0.10); `None`: no check.
    pub max_noise: Option<f64>,
}

impl LookupTable {
    /// Measures every block variant of `space` at `setting` with the robust protocol (see the
    /// module docs) and records where, when and under what load.
    pub fn build(
        space: &SearchSpace,
        setting: &LatencySetting,
        o: &ProfileOptions,
        progress: &mut dyn FnMut(LutProgress),
    ) -> Result<Self, EvalError> {
        let archs = covering_archs(space);
        let load_before = load_average();
        let noise = match o.max_noise {
            Some(limit) => Some(check_noise(
                &archs[0],
                setting,
                o.device,
                limit,
                3,
                &mut |n| progress(LutProgress::Noise { level: n }),
            )?),
            None => None,
        };
        progress(LutProgress::Archs { total: archs.len() });
        let statistic = Statistic::LowerQuartile;
        let mut times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for chunk in archs.chunks(INTERLEAVE) {
            let measured = interleaved_steps(chunk, setting, o.repeats, o.device)?;
            for (arch, steps) in chunk.iter().zip(measured) {
                let plan = arch.plan()?;
                for (step, samples) in plan.steps.iter().zip(steps) {
                    let key = variant_key(&plan.modules[step.module].kind, step, setting);
                    times.entry(key).or_default().extend(samples);
                }
                progress(LutProgress::ArchDone);
            }
        }
        let entry: Vec<LutEntry> = times
            .into_iter()
            .map(|(variant, ms)| {
                let t = Timing::from_samples(ms);
                LutEntry {
                    variant,
                    ms: statistic.of(&t),
                    iqr_ms: t.iqr_ms(),
                }
            })
            .collect();
        let mut table = LookupTable {
            measured: LutProvenance {
                device: o.device.describe(),
                backend: match o.device {
                    Device::Cpu => "burn flex (CPU)".into(),
                    Device::Cuda(_) => "burn cuda".into(),
                },
                burn_version: "0.21.0".into(),
                date: crate::clock::today(),
                space: space.name.clone(),
                repeats: o.repeats,
                overhead_fit_archs: o.overhead_archs,
                statistic,
                noise: noise.map(|n| n.spread),
                reference_ms: noise.map(|n| n.level_ms),
                cpu: cpu_model(),
                threads: (o.device == Device::Cpu).then(rayon_threads),
                load: None,
                validation: None,
            },
            setting: *setting,
            overhead_ms: 0.0,
            entry,
            file: PathBuf::new(),
        };
        // Overhead: the median over sampled architectures of (end to end - sum of entries),
        // both with the lower quartile.
        progress(LutProgress::Overhead {
            total: o.overhead_archs,
        });
        let measured = MeasuredModel {
            device: o.device,
            repeats: o.repeats,
            breakdown: false,
            statistic,
        };
        let mut rng = Rng::seed(o.seed);
        let mut gaps = Vec::with_capacity(o.overhead_archs);
        for _ in 0..o.overhead_archs {
            let arch = space.decode(&space.sample(&mut rng)?);
            let sum = table.predict(&arch, setting)?.total_ms;
            let real = measured.predict(&arch, setting)?.total_ms;
            gaps.push(real - sum);
            progress(LutProgress::OverheadDone);
        }
        gaps.sort_by(f64::total_cmp);
        table.overhead_ms = gaps.get(gaps.len() / 2).copied().unwrap_or(0.0);
        table.measured.load = match (load_before, load_average()) {
            (Some(a), Some(b)) => Some(format!("{a} before, {b} after (1-minute load average)")),
            _ => None,
        };
        Ok(table)
    }
}

/// The CPU model name (`/proc/cpuinfo`), when the OS says.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The CPU backend's worker threads (rayon's pool).
pub fn rayon_threads() -> usize {
    rayon::current_num_threads()
}

/// The 1-minute load average (`/proc/loadavg`), when the OS says.
pub fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    s.split_whitespace().next().map(str::to_string)
}
