//! Checkpoints of a training run (a supernet's or a model's): the weights, the optimiser
//! state, the EMA when it has started, and a JSON state (step, per-step losses, the settings
//! hash) in `DIR/step-K/` + `DIR/latest.json`. Each is written beside its place and renamed,
//! so a kill at any moment leaves the previous checkpoint whole. The random state is not
//! stored: every step's draws come from a generator seeded with (seed, step), so the step
//! number is the random state.

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// The JSON part of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Steps done.
    pub step: usize,
    /// The loss of every step done.
    pub losses: Vec<f32>,
    /// Hash of the run's settings: a checkpoint of other settings is refused.
    pub settings_hash: String,
}

/// The checkpoint folder of one run.
pub struct Checkpoints {
    /// The folder.
    pub dir: PathBuf,
    /// The run's settings hash.
    pub hash: String,
}

type Rec = NamedMpkFileRecorder<FullPrecisionSettings>;

/// The first 8 bytes of the SHA-256 of `key`'s JSON text, in hex: a run's settings hash.
pub(crate) fn settings_hash_of(key: &serde_json::Value) -> String {
    super::hash::sha16(key.to_string().as_bytes())
}

fn io_err(file: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::File {
        file: file.to_path_buf(),
        message: e.to_string(),
    }
}

/// A run's state restored from its latest checkpoint.
pub struct Restored<M, O, E> {
    /// The JSON state.
    pub state: CheckpointState,
    /// The weights.
    pub model: M,
    /// The optimiser.
    pub optimizer: O,
    /// The EMA, when the checkpoint has one.
    pub ema: Option<E>,
}

impl Checkpoints {
    /// `dir/latest.json`.
    pub fn latest(&self) -> PathBuf {
        self.dir.join("latest.json")
    }

    /// The latest checkpoint's state and folder, `None` when there is none; an error naming the
    /// file when it is unreadable or of other settings.
    pub fn read(&self) -> Result<Option<(CheckpointState, PathBuf)>, EvalError> {
        let file = self.latest();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&file, e)),
        };
        let state: CheckpointState = serde_json::from_str(&text)
            .map_err(|e| io_err(&file, format!("not a checkpoint state ({e})")))?;
        if state.settings_hash != self.hash {
            return Err(io_err(
                &file,
                format!(
                    "checkpoint of other settings (hash {}, these are {}); use another \
                     directory or delete it",
                    state.settings_hash, self.hash
                ),
            ));
        }
        let dir = self.dir.join(format!("step-{}", state.step));
        Ok(Some((state, dir)))
    }

    /// Restores the latest checkpoint into `model` and `optimizer` (their shapes and types);
    /// the EMA is read when `ema_started(step)` says the run had one by then.
    pub fn restore<B, M, O>(
        &self,
        model: M,
        optimizer: O,
        ema_started: impl Fn(usize) -> bool,
        device: &B::Device,
    ) -> Result<Option<Restored<M, O, M::InnerModule>>, EvalError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let Some((state, cdir)) = self.read()? else {
            return Ok(None);
        };
        let rec = Rec::new();
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            io_err(
                &cdir.join(what),
                format!(
                    "unreadable checkpoint ({e}); delete {} to start over",
                    self.dir.display()
                ),
            )
        };
        let ema = if ema_started(state.step) {
            let avg = model
                .valid()
                .load_file(cdir.join("ema"), &rec, device)
                .map_err(|e| bad("ema.mpk", &e))?;
            Some(avg)
        } else {
            None
        };
        let model = model
            .load_file(cdir.join("weights"), &rec, device)
            .map_err(|e| bad("weights.mpk", &e))?;
        let record = rec
            .load(cdir.join("optimizer"), device)
            .map_err(|e| bad("optimizer.mpk", &e))?;
        let optimizer = optimizer.load_record(record);
        Ok(Some(Restored {
            state,
            model,
            optimizer,
            ema,
        }))
    }

    /// Writes a checkpoint of `state` and removes the older ones.
    pub fn write<B, M, O>(
        &self,
        state: &CheckpointState,
        model: &M,
        optimizer: &O,
        ema: Option<&M::InnerModule>,
    ) -> Result<(), EvalError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let tmp = self.dir.join(format!(".step-{}.tmp", state.step));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        let rec = Rec::new();
        model
            .clone()
            .save_file(tmp.join("weights"), &rec)
            .map_err(|e| io_err(&tmp, e))?;
        rec.record(optimizer.to_record(), tmp.join("optimizer"))
            .map_err(|e| io_err(&tmp, e))?;
        if let Some(ema) = ema {
            ema.clone()
                .save_file(tmp.join("ema"), &rec)
                .map_err(|e| io_err(&tmp, e))?;
        }
        let dir = self.dir.join(format!("step-{}", state.step));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| io_err(&dir, e))?;
        let latest_tmp = self.dir.join(".latest.json.tmp");
        std::fs::write(&latest_tmp, serde_json::to_string(state).expect("json"))
            .map_err(|e| io_err(&latest_tmp, e))?;
        std::fs::rename(&latest_tmp, self.latest()).map_err(|e| io_err(&self.latest(), e))?;
        // Older checkpoints are no longer needed.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("step-") && name != format!("step-{}", state.step) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }
}
