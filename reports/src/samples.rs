//! Sample grids of the front's architectures and the reference archs, for people to look at:
//! `RUN_DIR/samples/` holds one PNG per architecture (the same prompts and noise for all, so
//! the grids compare side by side) and `index.json` (prompts, how they were made, which grid is
//! whose). `unas search` writes it; the report and the dashboard show it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ReportError;

/// One architecture's grid.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SampleGrid {
    /// `#12` or the reference's name.
    pub label: String,
    /// The trial's number (`None` for a reference arch).
    pub number: Option<u64>,
    /// The PNG's file name inside `samples/`.
    pub file: String,
    /// The PNG (not in `index.json`).
    #[serde(skip)]
    pub png: Vec<u8>,
}

/// The grids of a study (`samples/index.json` and its PNGs).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SampleGrids {
    /// The prompts, one per image, left to right.
    pub prompts: Vec<String>,
    /// How the images were made (weights, sampler, noise).
    pub how: String,
    /// The grids, front first (by latency), then the references.
    pub grids: Vec<SampleGrid>,
}

impl SampleGrids {
    /// The folder of a run directory's grids.
    pub fn dir_in(run_dir: &Path) -> PathBuf {
        run_dir.join("samples")
    }

    /// Writes `samples/` of `run_dir`, replacing an earlier one whole (written beside it,
    /// then renamed, so a reader never sees half of it).
    pub fn write(&self, run_dir: &Path) -> Result<PathBuf, ReportError> {
        let dir = Self::dir_in(run_dir);
        let tmp = run_dir.join("samples.partial");
        let io = |file: &Path| {
            let file = file.to_path_buf();
            move |source| ReportError::Io { file, source }
        };
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        for g in &self.grids {
            crate::write(&tmp.join(&g.file), &g.png)?;
        }
        let index = serde_json::to_string_pretty(self).expect("grids serialise");
        crate::write(&tmp.join("index.json"), index.as_bytes())?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// Reads `samples/` of `run_dir` with its PNGs; `None` when there is none (or it is
    /// unreadable: the report then goes without).
    pub fn read(run_dir: &Path) -> Option<Self> {
        let mut grids = Self::read_index(run_dir)?;
        for g in &mut grids.grids {
            g.png = Self::png(run_dir, &g.file)?;
        }
        Some(grids)
    }

    /// Reads `samples/index.json` of `run_dir` only (the grids' `png` left empty).
    pub fn read_index(run_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(Self::dir_in(run_dir).join("index.json")).ok()?;
        let grids: Self = serde_json::from_str(&text).ok()?;
        // Only plain file names inside samples/.
        let plain = |f: &str| !f.contains(['/', '\\']) && !f.starts_with('.');
        grids.grids.iter().all(|g| plain(&g.file)).then_some(grids)
    }

    /// The PNG of grid `file` of `run_dir`, when the index lists it.
    pub fn png(run_dir: &Path, file: &str) -> Option<Vec<u8>> {
        std::fs::read(Self::dir_in(run_dir).join(file)).ok()
    }

    /// The grid of trial `number`, if any.
    pub fn of_trial(&self, number: u64) -> Option<&SampleGrid> {
        self.grids.iter().find(|g| g.number == Some(number))
    }
}
