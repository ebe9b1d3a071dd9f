//! Picking the final architecture and writing it as a unas arch TOML (`unet-nas.toml`, loadable
//! by `unas space show FILE`) and a diffusers `config.json`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use unas_search::{TrialRecord, TrialStatus};
use unas_space::{diffusers, UNetArch};

use crate::{write, ReportError, ReportInput};

/// Which architecture to export.
#[derive(Clone, Debug, PartialEq)]
pub enum Pick {
    /// The knee of the feasible Pareto front.
    Knee,
    /// The fastest feasible trial on the front.
    Fastest,
    /// The best-quality feasible trial at or under this latency (ms).
    BestUnder(f64),
    /// A trial by number.
    Trial(u64),
}

impl FromStr for Pick {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |m: &str| ReportError::Pick {
            pick: s.to_string(),
            message: m.to_string(),
        };
        match s {
            "knee" => Ok(Pick::Knee),
            "fastest" => Ok(Pick::Fastest),
            _ => {
                if let Some(ms) = s.strip_prefix("best-under:") {
                    let ms: f64 = ms
                        .trim_end_matches("ms")
                        .parse()
                        .map_err(|_| bad("expected best-under:MS with MS a number"))?;
                    if !(ms > 0.0 && ms.is_finite()) {
                        return Err(bad("the latency must be a positive number of ms"));
                    }
                    Ok(Pick::BestUnder(ms))
                } else if let Ok(n) = s.trim_start_matches('#').parse::<u64>() {
                    Ok(Pick::Trial(n))
                } else {
                    Err(bad(
                        "expected knee, fastest, best-under:MS or a trial number",
                    ))
                }
            }
        }
    }
}

/// The trial a pick selects.
pub fn pick(input: &ReportInput, which: &Pick) -> Result<TrialRecord, ReportError> {
    let results = input.results();
    let name = match which {
        Pick::Knee => "knee".to_string(),
        Pick::Fastest => "fastest".to_string(),
        Pick::BestUnder(ms) => format!("best-under:{ms}"),
        Pick::Trial(n) => n.to_string(),
    };
    let fail = |m: String| ReportError::Pick {
        pick: name.clone(),
        message: m,
    };
    let no_feasible = || {
        fail(format!(
            "study `{}` has no feasible trial yet; pick a trial by number",
            input.config.name
        ))
    };
    let by_number = |n: u64| input.trials.iter().find(|t| t.number == n).cloned();
    match which {
        Pick::Knee => {
            let n = results.knee.ok_or_else(no_feasible)?;
            by_number(n).ok_or_else(no_feasible)
        }
        Pick::Fastest => {
            if !results.feasible {
                return Err(no_feasible());
            }
            results.front.first().cloned().ok_or_else(no_feasible)
        }
        Pick::BestUnder(ms) => input
            .trials
            .iter()
            .filter(|t| t.status == TrialStatus::Done && t.duplicate_of.is_none())
            .filter(|t| t.latency_ms.is_some_and(|l| l <= *ms))
            .filter(|t| t.quality.is_some())
            .min_by(|a, b| {
                a.quality
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.quality.unwrap_or(f64::INFINITY))
                    .then(a.number.cmp(&b.number))
            })
            .cloned()
            .ok_or_else(|| {
                fail(format!(
                    "no feasible trial has a latency of at most {ms} ms"
                ))
            }),
        Pick::Trial(n) => by_number(*n).ok_or_else(|| {
            fail(format!(
                "study `{}` has no trial {n} (it has {})",
                input.config.name,
                input.trials.len()
            ))
        }),
    }
}

/// The files [`export`] wrote.
#[derive(Clone, Debug)]
pub struct ExportedFiles {
    /// The trial exported.
    pub trial: u64,
    /// `unet-nas.toml`.
    pub toml: PathBuf,
    /// `config.json`.
    pub config_json: PathBuf,
}

/// The exported architecture: named after the study and trial.
pub fn exported_arch(input: &ReportInput, t: &TrialRecord) -> UNetArch {
    let mut arch = t.arch.clone();
    arch.name = format!("{}-trial-{}", input.config.name, t.number);
    arch
}

/// Writes the picked trial's architecture into `dir` as `unet-nas.toml` and `config.json`
/// (diffusers, sample size = the study's latent side).
pub fn export(input: &ReportInput, which: &Pick, dir: &Path) -> Result<ExportedFiles, ReportError> {
    let t = pick(input, which)?;
    let arch = exported_arch(input, &t);
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        file: dir.to_path_buf(),
        source,
    })?;
    let mut text = format!(
        "# U-Net found by unas search: study `{}`, trial {} ({}).\n",
        input.config.name,
        t.number,
        t.latency_ms
            .map_or("latency unknown".into(), |l| match t.arch.sampling_steps {
                Some(k) if input.config.latency.per_image() => format!(
                    "{l:.3} ms per image at {k} sampling steps on {}",
                    input.config.latency.model
                ),
                _ => format!("{l:.3} ms per step on {}", input.config.latency.model),
            })
    );
    if let Some(q) = t.quality {
        text.push_str(&format!("# quality {q:.4} ({})\n", input.metric()));
    }
    text.push_str(&toml::to_string(&arch).map_err(|e| ReportError::Pick {
        pick: t.number.to_string(),
        message: format!("cannot write the architecture as TOML: {e}"),
    })?);
    let toml_path = dir.join("unet-nas.toml");
    write(&toml_path, text.as_bytes())?;
    let json = diffusers::export_config(&arch, input.config.latency.latent);
    let json_path = dir.join("config.json");
    write(
        &json_path,
        format!(
            "{}\n",
            serde_json::to_string_pretty(&json).expect("JSON values serialise")
        )
        .as_bytes(),
    )?;
    Ok(ExportedFiles {
        trial: t.number,
        toml: toml_path,
        config_json: json_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::synthetic;

    #[test]
    fn picks_parse_and_bad_ones_are_named() {
        assert_eq!("knee".parse::<Pick>().unwrap(), Pick::Knee);
        assert_eq!("fastest".parse::<Pick>().unwrap(), Pick::Fastest);
        assert_eq!(
            "best-under:12.5".parse::<Pick>().unwrap(),
            Pick::BestUnder(12.5)
        );
        assert_eq!("17".parse::<Pick>().unwrap(), Pick::Trial(17));
        for bad in ["kne", "best-under:x", "best-under:-1", ""] {
            let e = bad.parse::<Pick>().unwrap_err().to_string();
            assert!(e.contains(&format!("pick `{bad}`")), "{e}");
        }
    }

    #[test]
    fn picks_select_the_right_trials() {
        let input = synthetic(0.6);
        let r = input.results();
        let knee = pick(&input, &Pick::Knee).unwrap();
        assert_eq!(Some(knee.number), r.knee);
        let fastest = pick(&input, &Pick::Fastest).unwrap();
        let done = input
            .trials
            .iter()
            .filter(|t| t.status == TrialStatus::Done);
        let min = done
            .clone()
            .filter_map(|t| t.latency_ms)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(fastest.latency_ms, Some(min));
        let best = pick(&input, &Pick::BestUnder(f64::MAX)).unwrap();
        let qmin = done.filter_map(|t| t.quality).fold(f64::INFINITY, f64::min);
        assert_eq!(best.quality, Some(qmin));
        let e = pick(&input, &Pick::BestUnder(1e-9))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most"), "{e}");
        let e = pick(&input, &Pick::Trial(999)).unwrap_err().to_string();
        assert!(e.contains("no trial 999"), "{e}");
        let none = synthetic(0.0);
        let e = pick(&none, &Pick::Knee).unwrap_err().to_string();
        assert!(e.contains("no feasible trial"), "{e}");
        assert_eq!(pick(&none, &Pick::Trial(2)).unwrap().number, 2);
    }

    #[test]
    fn exported_files_load_back_as_the_same_arch() {
        let input = synthetic(0.6);
        let dir = tempfile::tempdir().unwrap();
        let files = export(&input, &Pick::Knee, dir.path()).unwrap();
        let t = pick(&input, &Pick::Knee).unwrap();
        assert_eq!(files.trial, t.number);
        let back = unas_space::load_arch(files.toml.to_str().unwrap()).unwrap();
        assert_eq!(back.hash_id(), t.hash);
        assert_eq!(back.name, format!("synthetic-trial-{}", t.number));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&files.config_json).unwrap()).unwrap();
        let imported = diffusers::import_config(&json).unwrap();
        assert_eq!(imported.hash_id(), t.hash);
    }
}
