//! Where `unas train` starts from and what it learns from: a search run's pick (`--from-run`),
//! and the teacher or initial weights given as a folder (pipeline, U-Net, supernet, a run).

#[allow(unused_imports)]
use super::*;

/// What `--from-run` takes from a search's run folder.
pub(super) struct FromRun {
    /// The picked trial's architecture.
    pub(super) arch: UNetArch,
    /// `RUN trial N (pick)`, for train.json.
    pub(super) label: String,
    /// The study's data settings (`[quality]`).
    pub(super) quality: ProxyConfig,
    /// The first of the study's supernets (sorted by folder) that holds the arch, if any.
    pub(super) supernet: Option<PathBuf>,
}

/// Reads the study in `dir` and its pick `which`.
pub(super) fn from_run(dir: &Path, which: &str) -> Result<FromRun, CliError> {
    let flag = |e: String| CliError::input(format!("--from-run {}: {e}", dir.display()));
    let pick: Pick = which
        .parse()
        .map_err(|e: unas_reports::ReportError| CliError::input(format!("--pick: {e}")))?;
    let input = unas_reports::ReportInput::from_run_dir(dir).map_err(|e| flag(e.to_string()))?;
    let t = unas_reports::pick(&input, &pick).map_err(|e| flag(e.to_string()))?;
    let arch = unas_reports::export::exported_arch(&input, &t);
    let quality = input.config.quality.clone();
    let mut supernet = None;
    if let Some(root) = &quality.supernets {
        for d in supernet_store::supernet_dirs(root).map_err(|e| flag(e.to_string()))? {
            let info = supernet_store::read_info(&d).map_err(|e| flag(e.to_string()))?;
            if supernet_store::holds(&info, &arch).is_ok() {
                supernet = Some(d);
                break;
            }
        }
    }
    Ok(FromRun {
        label: format!("{} trial {} ({which})", dir.display(), t.number),
        arch,
        quality,
        supernet,
    })
}

/// A U-Net read from a folder: its architecture, role-addressed weights and a label.
pub(super) struct Source {
    pub(super) arch: UNetArch,
    pub(super) weights: RoleWeights,
    pub(super) label: String,
    /// The data it was trained on, when it records it (supernets; `unas train` outputs).
    pub(super) data: Option<String>,
    /// The folder.
    pub(super) dir: PathBuf,
}

/// Whether the U-Net folder `dir` is the pipeline `pipeline`'s (the folder or its `unet/` or
/// `flexible_unet/`).
pub(super) fn pipeline_of(dir: &Path, pipeline: Option<&Path>) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    pipeline.is_some_and(|p| {
        let p = canon(p);
        let d = canon(dir);
        d == p || d == p.join("unet") || d == p.join("flexible_unet")
    })
}

/// Reads `--teacher` / `--init DIR`: a supernet folder, a pipeline folder's `unet/`, or a
/// diffusers U-Net folder.
pub(super) fn read_source(flag: &str, dir: &Path) -> Result<Source, CliError> {
    if !dir.is_dir() {
        return Err(CliError::input(format!(
            "{flag} {}: no such folder",
            dir.display()
        )));
    }
    if dir.join("supernet.json").exists() {
        let (info, unet) = supernet_store::load(dir)
            .map_err(|e| CliError::input(format!("{flag} {}: {e}", dir.display())))?;
        let weights = RoleWeights::from_unet(&info.arch, &unet).map_err(CliError::failure)?;
        let sha = info.weights_sha256.as_deref().unwrap_or("unrecorded");
        let label = format!(
            "supernet {} {} seed {} (weights sha256 {})",
            info.topology,
            info.settings_hash,
            info.settings.seed,
            &sha[..sha.len().min(16)]
        );
        return Ok(Source {
            arch: info.arch,
            weights,
            label,
            data: Some(info.data),
            dir: dir.to_path_buf(),
        });
    }
    // A U-Net folder, or a folder holding one (a pipeline's `unet/`, a `unas train` output's
    // `unet/` or `flexible_unet/`).
    let unet_dir = ["", "unet", "flexible_unet"]
        .iter()
        .map(|sub| dir.join(sub))
        .find(|d| d.join("config.json").is_file())
        .unwrap_or_else(|| dir.join("unet"));
    let (arch, weights, label) = super::super::supernet::read_pretrained(&unet_dir)
        .map_err(|e| CliError::input(format!("{flag}: {}", e.message)))?;
    // A folder written by `unas train` names its data in weights.json.
    let provenance = unet_dir.join("weights.json");
    let data = match std::fs::read_to_string(&provenance) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| CliError::input(format!("{flag}: {}: {e}", provenance.display())))?
            .get("data")
            .and_then(|d| d.as_str())
            .map(str::to_string),
        Err(_) => None,
    };
    Ok(Source {
        arch,
        weights,
        label,
        data,
        dir: unet_dir,
    })
}

/// The student's start: a teacher's or a supernet's weights for `arch`.
pub(super) fn init_weights(
    arch: &UNetArch,
    src: &Source,
    flag: &str,
) -> Result<RoleWeights, CliError> {
    if src.label.starts_with("supernet ") {
        // A candidate of the supernet: exactly the weights a search scored it with.
        if let Ok(sub) = SubNet::new(arch, &src.arch) {
            let device = Default::default();
            let mut cover =
                UNet2DConditionModel::<Cpu>::init(&src.arch, &device).map_err(CliError::failure)?;
            cover = src
                .weights
                .inherit(&src.arch, cover)
                .map_err(CliError::failure)?
                .0;
            return RoleWeights::from_unet(arch, &sub.extract(&cover))
                .map_err(|e| CliError::input(format!("{flag}: {e}")));
        }
    }
    Ok(src.weights.clone())
}

/// Checks that `teacher` can teach `arch` on the data: the same latent channels and text
/// width, and the same latent side.
pub(super) fn check_teacher(arch: &UNetArch, t: &Source, proxy: &Proxy) -> CmdResult {
    // The file that gives the teacher's shapes.
    let file = ["supernet.json", "config.json"]
        .iter()
        .map(|f| t.dir.join(f))
        .find(|f| f.is_file())
        .unwrap_or_else(|| t.dir.clone());
    let what = |m: String| CliError::input(format!("--teacher {}: {m}", file.display()));
    if let Err(e) = proxy.check_arch(&t.arch) {
        return Err(what(format!("does not fit the data: {e}")));
    }
    let (s, ts) = (&arch.stem, &t.arch.stem);
    if (s.in_channels, s.out_channels, s.cross_attention_dim)
        != (ts.in_channels, ts.out_channels, ts.cross_attention_dim)
    {
        return Err(what(format!(
            "channels in/out {}/{} and cross-attention width {} cannot map onto the student's \
             {}/{} and {}",
            ts.in_channels,
            ts.out_channels,
            ts.cross_attention_dim,
            s.in_channels,
            s.out_channels,
            s.cross_attention_dim
        )));
    }
    Ok(())
}
