//! `unas search evaluate`: a study's objectives as a JSON-lines server, for outside samplers
//! (ask-and-tell loops such as `tools/optuna_nsga2.py`) to search the same space with the
//! same latency model, budget, constraints and quality evaluations as `unas search
//! benchmark` (the same quality cache file).

#[allow(unused_imports)]
use super::*;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use unas_search::objective::evaluate_candidate;

#[derive(Args)]
pub(super) struct EvaluateArgs {
    /// Study file whose space, objectives and constraints are served.
    #[arg(long)]
    pub(super) config: PathBuf,
    /// Folder of the quality cache (default runs/<study name>-benchmark/, the benchmark's).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
struct Request {
    /// An index into each flat knob's choices.
    choices: BTreeMap<String, usize>,
}

pub(super) fn evaluate(a: EvaluateArgs) -> CmdResult {
    let mut cfg = StudyConfig::load(&a.config).map_err(search_err)?;
    let (out, space, latency) = super::benchmark::setting_up(&mut cfg, &a.config, a.out.clone())?;
    let prepared = Quality::prepare(&cfg, space.stem.cross_attention_dim, true)?;
    let inner = prepared.get();
    let cache = FileCache::open(inner, cache_file(&out, &cfg), None);
    let ev = Evaluators {
        latency: latency.as_ref(),
        quality: &cache,
    };
    let seed = unas_search::engine::eval_seed(cfg.seed);
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let say = |w: &mut std::io::StdoutLock, v: serde_json::Value| -> CmdResult {
        writeln!(w, "{v}")
            .and_then(|_| w.flush())
            .map_err(|e| CliError::failure(format!("stdout: {e}")))
    };
    say(
        &mut w,
        serde_json::json!({
            "space": space.name,
            "knobs": space.flat_knobs(),
            "budget_ms": cfg.latency.budget_ms,
            "latency": latency.describe(),
            "quality": cache.describe(),
        }),
    )?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| CliError::failure(format!("stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Request>(&line)
            .map_err(|e| format!("bad request: {e}"))
            .and_then(|r| space.genome_from_flat(&r.choices))
        {
            Err(e) => serde_json::json!({ "error": e }),
            Ok(g) => {
                let arch = space.decode(&g);
                let o = evaluate_candidate(&arch, seed, &cfg.latency, &cfg.constraints, ev);
                serde_json::json!({
                    "hash": arch.hash_id(),
                    "status": o.status.as_str(),
                    "latency_ms": o.latency_ms,
                    "quality": o.quality.as_ref().map(|q| q.score),
                    "violation": o.violations.total(),
                    "error": o.error,
                })
            }
        };
        say(&mut w, reply)?;
    }
    Ok(())
}
