//! Trained supernets on disk: `supernet.mpk` (burn's named MessagePack, full precision) and
//! `supernet.json` (what made it: space, topology, covering architecture, settings and their
//! hash, the pretrained start, the data, the command, the commit, the date, the losses), and
//! scoring a candidate with weights inherited from one.

use std::path::Path;

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use unas_runtime::device::Cpu;
use unas_runtime::{SubNet, UNet2DConditionModel};
use unas_space::{SearchSpace, Topology, UNetArch};

use super::supernet::{SupernetSettings, TrainedSupernet};
use super::val_loss::{ValLoss, ValidationSet};
use crate::EvalError;

/// What made a supernet (`supernet.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupernetInfo {
    /// Space name.
    pub space: String,
    /// The space's definition (absent in folders written before it was recorded): with it,
    /// [`load`] recomputes `settings_hash` and refuses a mismatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_definition: Option<SearchSpace>,
    /// Topology name.
    pub topology: String,
    /// Covering architecture.
    pub arch: UNetArch,
    /// Training settings.
    pub settings: SupernetSettings,
    /// Hash of space, topology, settings and pretrained start ([`super::supernet::settings_hash`]).
    pub settings_hash: String,
    /// Pretrained start, when there was one.
    pub from: Option<String>,
    /// The proxy data it was trained on (dataset, images, VAE, text encoder).
    pub data: String,
    /// Steps trained.
    pub steps: usize,
    /// Mean task loss over the last 10 % of the steps.
    pub final_loss: f64,
    /// Task loss of every 10th step.
    pub loss_curve: Vec<f32>,
    /// The command line that trained it.
    pub command: String,
    /// unas version.
    pub version: String,
    /// Git commit of the working tree it was trained from, when known.
    pub commit: Option<String>,
    /// When it finished (UTC, RFC 3339).
    pub date: String,
    /// SHA-256 of `supernet.mpk` (written by [`save`], checked by [`load`]; absent in folders
    /// written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
}

impl SupernetInfo {
    /// The record of a finished training run.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        space: &SearchSpace,
        topology: &Topology,
        arch: &UNetArch,
        settings: &SupernetSettings,
        settings_hash: &str,
        from: Option<String>,
        data: String,
        losses: &[f32],
        command: String,
    ) -> Self {
        let tail = (losses.len() / 10).max(1).min(losses.len().max(1));
        let final_loss = if losses.is_empty() {
            f64::NAN
        } else {
            losses[losses.len() - tail..]
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>()
                / tail as f64
        };
        Self {
            space: space.name.clone(),
            space_definition: Some(space.clone()),
            topology: topology.to_string(),
            arch: arch.clone(),
            settings: settings.clone(),
            settings_hash: settings_hash.to_string(),
            from,
            data,
            steps: losses.len(),
            final_loss,
            loss_curve: losses.iter().step_by(10).copied().collect(),
            command,
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit: git_commit(),
            date: crate::clock::now_rfc3339(),
            weights_sha256: None,
        }
    }
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn io_err(file: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::File {
        file: file.to_path_buf(),
        message: e.to_string(),
    }
}

type Rec = NamedMpkFileRecorder<FullPrecisionSettings>;

/// The supernet folders under `root`: `root` itself when it holds a `supernet.json`, else its
/// sub-folders that do, sorted.
pub fn supernet_dirs(root: &Path) -> Result<Vec<std::path::PathBuf>, EvalError> {
    if root.join("supernet.json").exists() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(root)
        .map_err(|e| io_err(root, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("supernet.json").exists())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// True when `dir` holds a finished supernet with settings hash `hash`.
pub fn is_complete(dir: &Path, hash: &str) -> bool {
    std::fs::read_to_string(dir.join("supernet.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<SupernetInfo>(&t).ok())
        .is_some_and(|i| i.settings_hash == hash && dir.join("supernet.mpk").exists())
}

/// SHA-256 of a file, in hex.
fn file_sha256(file: &Path) -> Result<String, EvalError> {
    let bytes = std::fs::read(file).map_err(|e| io_err(file, e))?;
    Ok(super::hash::sha256_hex(&bytes))
}

/// Writes `supernet.mpk` and then `supernet.json` into `dir` (each written beside its place
/// and renamed: a reader never sees half a file; the JSON, written last, marks completion and
/// records the weights' SHA-256).
pub fn save<B: Backend>(
    dir: &Path,
    info: &SupernetInfo,
    unet: &UNet2DConditionModel<B>,
) -> Result<(), EvalError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    // burn's recorder appends `.mpk`.
    let tmp = dir.join("tmp-supernet");
    unet.clone()
        .save_file(&tmp, &Rec::new())
        .map_err(|e| io_err(&tmp, e))?;
    let file = dir.join("supernet.mpk");
    std::fs::rename(tmp.with_extension("mpk"), &file).map_err(|e| io_err(&file, e))?;
    let info = SupernetInfo {
        weights_sha256: Some(file_sha256(&file)?),
        ..info.clone()
    };
    let json = dir.join("supernet.json");
    let tmp_json = dir.join(".supernet.json.tmp");
    std::fs::write(
        &tmp_json,
        serde_json::to_string_pretty(&info).expect("serialisable"),
    )
    .map_err(|e| io_err(&tmp_json, e))?;
    std::fs::rename(&tmp_json, &json).map_err(|e| io_err(&json, e))
}

/// Reads `supernet.json` of a supernet folder (not its weights).
pub fn read_info(dir: &Path) -> Result<SupernetInfo, EvalError> {
    let json = dir.join("supernet.json");
    let text = std::fs::read_to_string(&json).map_err(|e| io_err(&json, e))?;
    serde_json::from_str(&text).map_err(|e| io_err(&json, e))
}

/// Reads a supernet folder written by [`save`], on the CPU; refuses weights whose SHA-256
/// differs from the one `supernet.json` records.
pub fn load(dir: &Path) -> Result<(SupernetInfo, UNet2DConditionModel<Cpu>), EvalError> {
    let info = read_info(dir)?;
    let json = dir.join("supernet.json");
    let device = Default::default();
    let unet = UNet2DConditionModel::<Cpu>::init(&info.arch, &device)?;
    let file = dir.join("supernet.mpk");
    check_hash(&info, &json)?;
    if let Some(want) = &info.weights_sha256 {
        let got = file_sha256(&file)?;
        if &got != want {
            return Err(io_err(
                &file,
                format!("SHA-256 {got} differs from {want} recorded in supernet.json"),
            ));
        }
    }
    let unet = unet
        .load_file(&file, &Rec::new(), &device)
        .map_err(|e| io_err(&file, e))?;
    Ok((info, unet))
}

/// Recomputes the settings hash from the recorded space definition, topology, settings and
/// pretrained start; also checks that the covering architecture is the topology's.
fn check_hash(info: &SupernetInfo, json: &Path) -> Result<(), EvalError> {
    let Some(space) = &info.space_definition else {
        return Ok(());
    };
    let Some(t) = space
        .topologies()
        .into_iter()
        .find(|t| t.to_string() == info.topology)
    else {
        return Err(io_err(
            json,
            format!(
                "topology: `{}` is not a topology of the recorded space `{}`",
                info.topology, space.name
            ),
        ));
    };
    if space.supernet_arch(&t) != info.arch {
        return Err(io_err(
            json,
            format!("arch: not the covering architecture of `{}`", info.topology),
        ));
    }
    let hash = super::supernet::settings_hash(space, &t, &info.settings, info.from.as_deref());
    if hash != info.settings_hash {
        return Err(io_err(
            json,
            format!(
                "settings_hash: {} recorded, {hash} recomputed from the recorded space, \
                 topology, settings and start",
                info.settings_hash
            ),
        ));
    }
    Ok(())
}

/// The weights of a supernet trained on another backend, on the CPU (through the same file
/// format).
pub fn to_cpu<B: Backend>(t: TrainedSupernet<B>) -> Result<TrainedSupernet<Cpu>, EvalError> {
    let dir = tempdir()?;
    let tmp = dir.join("weights");
    t.unet
        .save_file(&tmp, &Rec::new())
        .map_err(|e| io_err(&tmp, e))?;
    let device = Default::default();
    let unet = UNet2DConditionModel::<Cpu>::init(&t.arch, &device)?
        .load_file(&tmp, &Rec::new(), &device)
        .map_err(|e| io_err(&tmp, e))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(TrainedSupernet {
        arch: t.arch,
        unet,
        losses: t.losses,
        steps_run: t.steps_run,
    })
}

fn tempdir() -> Result<std::path::PathBuf, EvalError> {
    let dir = std::env::temp_dir().join(format!("unas-supernet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    Ok(dir)
}

/// Whether the supernet of `info` scores `arch`: `arch` must be a sub-network of its covering
/// architecture and, when the space it was trained on is recorded, an architecture of that
/// space. The second condition matters for a few-shot split (one supernet per group of one
/// knob's values): a group's supernet holds only its group's architectures, though others of
/// the full space may fit inside its covering architecture.
pub fn holds(info: &SupernetInfo, arch: &UNetArch) -> Result<(), String> {
    SubNet::new(arch, &info.arch).map_err(|e| e.to_string())?;
    // The network alone: a time-to-image candidate's step count is not part of it.
    let mut network = arch.clone();
    network.sampling_steps = None;
    match &info.space_definition {
        Some(space) if space.encode(&network).is_none() => Err(format!(
            "not an architecture of its space `{}` (the space it was trained on)",
            space.name
        )),
        _ => Ok(()),
    }
}

/// The validation loss of `arch` with the weights it inherits from the supernet `unet`
/// (covering architecture `info.arch`), scored on `val` in chunks of `batch`.
pub fn score(
    info: &SupernetInfo,
    unet: &UNet2DConditionModel<Cpu>,
    arch: &UNetArch,
    val: &ValidationSet,
    batch: usize,
) -> Result<ValLoss, EvalError> {
    let sub = SubNet::new(arch, &info.arch)?;
    let device = Default::default();
    Ok(
        val.loss::<Cpu>(&info.settings.recipe, batch, &device, &|x, t, c| {
            sub.forward(unet, x, t, c)
        }),
    )
}

/// Test helpers shared by the supernet modules' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::SupernetInfo;

    /// The record of the supernet shipped in `configs/supernets/tiny-depth/`.
    pub(crate) fn shipped() -> SupernetInfo {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../configs/supernets/tiny-depth/flexible-32-64-64-64-f7a0c0a205bc7cdb/supernet.json"
        );
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }

    /// The recorded space definition and the supernet's topology in it.
    pub(crate) fn space_and_topology(
        info: &SupernetInfo,
    ) -> (unas_space::SearchSpace, unas_space::Topology) {
        let space = info.space_definition.clone().unwrap();
        let topology = space
            .topologies()
            .into_iter()
            .find(|t| t.to_string() == info.topology)
            .unwrap();
        (space, topology)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{shipped, space_and_topology};
    use super::*;

    /// A supernet trained on one group of a few-shot split (the third stage's up block keeping
    /// 3–6 attentions) holds its covering architecture but not the full space's smallest
    /// architecture (0 there), which still fits inside that covering architecture; the full
    /// space's supernet holds both, and nothing holds an architecture of another width.
    #[test]
    fn a_group_supernet_holds_only_its_groups_architectures() {
        let full = shipped();
        let (space, topology) = space_and_topology(&full);
        let smallest = space.smallest_arch(&topology).unwrap();
        assert_eq!(smallest.up[1].attentions, 0);
        let mut group = full.clone();
        let group_space = group.space_definition.as_mut().unwrap();
        group_space.name = "tiny-depth-up2attn-3-6".into();
        group_space.stage[2].up_attentions = vec![3, 4, 5, 6];
        assert_eq!(group_space.supernet_arch(&topology), full.arch);
        assert_eq!(holds(&full, &full.arch), Ok(()));
        assert_eq!(holds(&full, &smallest), Ok(()));
        assert_eq!(holds(&group, &full.arch), Ok(()));
        SubNet::new(&smallest, &group.arch).expect("fits inside the covering architecture");
        let e = holds(&group, &smallest).unwrap_err();
        assert!(e.contains("tiny-depth-up2attn-3-6"), "{e}");
        let mut wider = smallest.clone();
        wider.down[0].out_channels = 48;
        assert!(holds(&full, &wider).is_err());
        // A time-to-image candidate's step count is not part of the network it holds.
        let mut with_steps = smallest.clone();
        with_steps.sampling_steps = Some(20);
        assert_eq!(holds(&full, &with_steps), Ok(()));
        assert!(holds(&group, &with_steps).is_err());
    }
}
