//! `lut:auto`: this machine's own lookup table for a space, profiled on first use and cached
//! under a key of the CPU model, its thread count, the backend, the setting and the space's
//! block variants; checked against end-to-end measurements of a few architectures before each
//! use and profiled again when they disagree by more than 10 %.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use unas_runtime::device::Device;
use unas_space::rng::Rng;
use unas_space::SearchSpace;

use super::lut::{covering_archs, variant_key, LookupTable};
use super::lut_build::{cpu_model, rayon_threads, ProfileOptions};
use super::measured::{MeasuredModel, Repeats};
use super::robust::{check_noise, noise_level, Statistic};
use super::{LatencyModel, LatencySetting};
use crate::quality::hash::sha16;
use crate::EvalError;

/// Architectures checked end to end before a table is used.
const CHECK_ARCHS: usize = 5;
/// Of those, how many must be within ±10 % of the table.
const CHECK_WITHIN: usize = 4;
/// The noise check's limit while profiling (a noisier host still gets a table, with a
/// warning and its noise recorded).
const MAX_NOISE: f64 = 0.10;

/// How a table was checked before use.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Archs within ±10 %.
    pub within: usize,
    /// Relative errors (table − measured) / measured.
    pub errors: Vec<f64>,
}

impl Check {
    /// Whether the table may be used as it is.
    pub fn passed(&self) -> bool {
        self.within >= CHECK_WITHIN
    }

    /// One line for logs and the table's provenance.
    pub fn describe(&self) -> String {
        let e: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("{:+.1} %", e * 100.0))
            .collect();
        format!(
            "{} of {} sampled archs within ±10 % end to end ({}; {})",
            self.within,
            self.errors.len(),
            e.join(", "),
            crate::clock::today()
        )
    }
}

/// The cache file of this machine's table for `space` at `setting` (CPU).
pub fn auto_file(space: &SearchSpace, setting: &LatencySetting, cache_root: &Path) -> PathBuf {
    let variants: BTreeSet<String> = covering_archs(space)
        .iter()
        .filter_map(|a| a.plan().ok())
        .flat_map(|plan| {
            plan.steps
                .iter()
                .map(|s| variant_key(&plan.modules[s.module].kind, s, setting))
                .collect::<Vec<_>>()
        })
        .collect();
    let key = serde_json::json!({
        "cpu": cpu_model(),
        "threads": rayon_threads(),
        "backend": "burn flex (CPU) 0.21.0",
        "setting": setting,
        "variants": variants,
    });
    let name: String = space
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache_root.join("lut").join(format!(
        "{name}-{}.lut.toml",
        sha16(key.to_string().as_bytes())
    ))
}

/// End-to-end lower quartiles of `CHECK_ARCHS` sampled archs against the table.
pub fn check(
    table: &LookupTable,
    space: &SearchSpace,
    setting: &LatencySetting,
) -> Result<Check, EvalError> {
    let measured = MeasuredModel {
        device: Device::Cpu,
        repeats: Repeats::default(),
        breakdown: false,
        statistic: Statistic::LowerQuartile,
    };
    let mut rng = Rng::seed(0x6c75_7463);
    let mut errors = Vec::with_capacity(CHECK_ARCHS);
    for _ in 0..CHECK_ARCHS {
        let arch = space.decode(&space.sample(&mut rng)?);
        let p = table.predict(&arch, setting)?.total_ms;
        let m = measured.predict(&arch, setting)?.total_ms;
        errors.push((p - m) / m);
    }
    let within = errors.iter().filter(|e| e.abs() <= 0.10).count();
    Ok(Check { within, errors })
}

/// Profiles the table of `space` at `setting` on this CPU and writes it to `file`.
fn profile(
    space: &SearchSpace,
    setting: &LatencySetting,
    file: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<LookupTable, EvalError> {
    let reference = &covering_archs(space)[0];
    let noisy = check_noise(reference, setting, Device::Cpu, MAX_NOISE, 3, &mut |n| {
        progress(&format!(
            "host noise {:.1} % (limit {:.1} %)",
            n * 100.0,
            MAX_NOISE * 100.0
        ))
    });
    if let Err(e) = &noisy {
        progress(&format!(
            "warning: {e}; profiling anyway, the table records the noise and is checked before use"
        ));
    }
    progress("profiling this machine's lookup table (block variants, then the overhead fit)");
    let options = ProfileOptions {
        repeats: Repeats::default(),
        overhead_archs: 6,
        seed: 1000,
        device: Device::Cpu,
        max_noise: None,
    };
    let mut table = LookupTable::build(space, setting, &options, &mut |_| {})?;
    let reading = match noisy {
        Ok(n) => n,
        Err(_) => noise_level(reference, setting, Device::Cpu)?,
    };
    table.measured.noise = Some(reading.spread);
    table.measured.reference_ms = Some(reading.level_ms);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::File {
            file: dir.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    table.file = file.to_path_buf();
    table.save(file)?;
    Ok(table)
}

/// This machine's table for `space` at `setting` (CPU, f32): the cached one when it passes the
/// end-to-end check, else a new one (profiled, checked, cached). The check's result is written
/// into the table's provenance (`validation`); a table that fails again after profiling is
/// used with a warning saying so. `progress` gets one line per stage.
pub fn auto_table(
    space: &SearchSpace,
    setting: &LatencySetting,
    cache_root: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<LookupTable, EvalError> {
    let file = auto_file(space, setting, cache_root);
    let mut table = match file.exists() {
        true => {
            progress(&format!(
                "using this machine's lookup table {}",
                file.display()
            ));
            LookupTable::load(&file)?
        }
        false => profile(space, setting, &file, progress)?,
    };
    let mut result = check(&table, space, setting)?;
    progress(&format!("check: {}", result.describe()));
    if !result.passed() {
        progress("the table disagrees with this machine now: profiling it again");
        table = profile(space, setting, &file, progress)?;
        result = check(&table, space, setting)?;
        progress(&format!("check: {}", result.describe()));
        if !result.passed() {
            progress(
                "warning: the new table fails its check too (a noisy host?); it is used, and its \
                 provenance and the report say so",
            );
        }
    }
    table.measured.validation = Some(result.describe());
    table.save(&file)?;
    Ok(table)
}
