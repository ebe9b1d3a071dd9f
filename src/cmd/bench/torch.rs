//! The PyTorch eager baseline of `unas bench`: `tools/bench/*.py` run on the same architecture and
//! threads, their timings read back.

#[allow(unused_imports)]
use super::*;

pub(super) fn torch_script(rel: &str) -> Result<PathBuf, CliError> {
    let rel = Path::new(rel);
    if rel.exists() {
        return Ok(rel.to_path_buf());
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if built.exists() {
        return Ok(built);
    }
    Err(CliError::input(format!(
        "--vs-torch needs {}: run from the unas repository root",
        rel.display()
    )))
}

/// Runs a PyTorch baseline script under a spinner with the shapes `[latent, batch, text_len]`
/// and `run`'s warm-up, repeats and interpreter on `threads` threads.
pub(super) fn torch_baseline(
    script: &str,
    message: &str,
    run: &RunArgs,
    arch: &unas_space::UNetArch,
    [latent, batch, text_len]: [usize; 3],
    threads: usize,
) -> Result<serde_json::Value, CliError> {
    let bar = progress::spinner(message);
    if bar.is_hidden() {
        eprintln!("{message}");
    }
    let raw = run_torch(
        script,
        &run.python,
        arch,
        &[
            ("--latent", latent),
            ("--batch", batch),
            ("--text-len", text_len),
            ("--warmup", run.warmup),
            ("--repeats", run.repeats),
            ("--threads", threads),
        ],
    );
    bar.finish_and_clear();
    raw
}

/// Runs a PyTorch baseline script with the architecture as JSON on stdin and `flags`; returns
/// the JSON object it prints.
pub(super) fn run_torch(
    script: &str,
    python: &str,
    arch: &unas_space::UNetArch,
    flags: &[(&str, usize)],
) -> Result<serde_json::Value, CliError> {
    let script = torch_script(script)?;
    let json = serde_json::to_string(arch).expect("UNetArch serialises");
    let mut cmd = Command::new(python);
    cmd.arg(&script).args(["--arch", "-"]);
    for (flag, v) in flags {
        cmd.arg(flag).arg(v.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::input(format!("cannot run {python}: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(json.as_bytes())
        .map_err(|e| CliError::failure(format!("writing to {}: {e}", script.display())))?;
    let out = child
        .wait_with_output()
        .map_err(|e| CliError::failure(format!("{}: {e}", script.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(CliError::failure(format!(
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            tail.join("\n")
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| CliError::failure(format!("{} printed no JSON: {e}", script.display())))
}

/// The timings under `key` of a baseline's JSON (`""`: at the top level).
pub(super) fn timing_of(
    raw: &serde_json::Value,
    key: &str,
    script: &str,
) -> Result<Timing, CliError> {
    let node = if key.is_empty() { raw } else { &raw[key] };
    let samples: Vec<f64> = node["samples_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    if samples.is_empty() {
        return Err(CliError::failure(format!(
            "{script} reported no timings{}",
            if key.is_empty() {
                String::new()
            } else {
                format!(" for `{key}`")
            }
        )));
    }
    Ok(Timing::from_samples(samples))
}
