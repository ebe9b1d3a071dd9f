//! `unas worker`: a stateless process that claims a study's pending trials from a shared store
//! (PostgreSQL for several machines), evaluates them and writes the results; and the helpers
//! `unas search --store URL --workers external` uses. See docs/distributed.md.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use unas_reports::{Pick, ReportError, ReportInput};
use unas_runtime::device::Device;
use unas_search::proxy_quality::ProxyQuality;
use unas_search::runner::worker::WorkerEvent;
use unas_search::store::redact_url;
use unas_search::{
    Evaluators, ExternalOptions, Progress, QualityEvaluator, SearchError, Study, TrialStatus,
    Worker, WorkerOptions,
};

use super::{CliError, CmdResult};

/// `unas worker`.
#[derive(Args)]
pub struct WorkerArgs {
    /// Trial store: `postgres://user:password@host:port/database`, or a SQLite file / run
    /// directory (workers on one machine).
    #[arg(long)]
    store: String,
    /// Study name (as in its study file).
    #[arg(long)]
    study: String,
    /// Device the quality evaluator runs on: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Evaluate at most one trial, then exit (exit at once if none is pending).
    #[arg(long)]
    once: bool,
    /// Exit after this many evaluations (default: when the study is complete).
    #[arg(long)]
    max_trials: Option<usize>,
    #[command(flatten)]
    lease: LeaseArgs,
    /// Seconds between lease renewals while evaluating.
    #[arg(long, default_value_t = 10.0)]
    heartbeat: f64,
    /// Worker id stored with its claims (default host:pid:nonce).
    #[arg(long)]
    id: Option<String>,
}

/// Lease settings shared by `unas worker` and `unas search --workers external`.
#[derive(Args, Clone, Debug)]
pub struct LeaseArgs {
    /// Seconds without a heartbeat after which a running trial's worker is considered lost and
    /// the trial is returned to pending.
    #[arg(long, default_value_t = 60.0)]
    pub grace: f64,
    /// Claims of one trial before a lost one is failed (with the reason) instead of requeued.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// Seconds between polls of the store when waiting.
    #[arg(long, default_value_t = 1.0)]
    pub poll: f64,
}

fn seconds(name: &str, s: f64) -> Result<Duration, CliError> {
    if s.is_finite() && s > 0.0 && s < 1e9 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(CliError::input(format!(
            "--{name} must be a positive number of seconds"
        )))
    }
}

impl LeaseArgs {
    /// The library options.
    pub fn options(&self) -> Result<ExternalOptions, CliError> {
        if self.max_attempts == 0 {
            return Err(CliError::input("--max-attempts must be at least 1"));
        }
        Ok(ExternalOptions {
            poll: seconds("poll", self.poll)?,
            grace: seconds("grace", self.grace)?,
            max_attempts: self.max_attempts,
        })
    }
}

/// Store errors: opening (URL, credentials, database, schema) is bad input (exit 2), anything
/// later a failure (exit 1).
pub fn open_err(e: SearchError) -> CliError {
    CliError::input(e)
}

/// The TEST FIXTURE quality evaluator when `UNAS_TEST_SYNTHETIC_QUALITY` is set in a build
/// of the test suite ([`unas_search::test_hook_quality`]), else none.
pub fn test_fixture_quality() -> Result<Option<Box<dyn QualityEvaluator + Sync>>, CliError> {
    let q = unas_search::test_hook_quality().map_err(CliError::input)?;
    if q.is_some() {
        eprintln!(
            "warning: UNAS_TEST_SYNTHETIC_QUALITY is set: quality comes from the synthetic TEST \
             FIXTURE (not a quality metric)"
        );
    }
    Ok(q)
}

/// `unas report` / `unas export` input: the run directory's study, or with `store` the study
/// named in `RUN_DIR/study.toml` read from that store.
pub fn report_input(store: Option<&str>, dir: &Path) -> Result<ReportInput, SearchError> {
    match store {
        None => ReportInput::from_run_dir(dir),
        Some(_) => Ok(ReportInput {
            samples: unas_reports::SampleGrids::read(dir),
            ..ReportInput::from_study(&mut unas_search::run_dir::open_study(store, dir)?)?
        }),
    }
}

/// `unas search --workers external`: proposes trials into the store and waits for
/// `unas worker`s to evaluate them, logging each result; then writes the report and exports
/// the knee into `dir` like a local search.
pub fn search_external(study: &mut Study, dir: &Path, lease: &LeaseArgs, quiet: bool) -> CmdResult {
    let opts = lease.options()?;
    let cfg = study.config().clone();
    if !cfg.references.is_empty() {
        eprintln!(
            "note: reference archs are evaluated by local searches only; this report will not \
             show them"
        );
    }
    let location = study.store().location();
    eprintln!(
        "study `{}` in {}: {} trials, {} ({}), budget {} ms on {}; waiting for workers \
         (`unas worker --store URL --study {}`)",
        cfg.name,
        location,
        cfg.trials,
        cfg.controller.name(),
        cfg.space,
        cfg.latency.budget_ms,
        cfg.latency.model,
        cfg.name
    );
    let t0 = Instant::now();
    let summary = study
        .run_external(&opts, &mut |p: &Progress<'_>| {
            let t = p.trial;
            let what = match t.status {
                TrialStatus::Done => format!("quality {:.4}", t.quality.unwrap_or(f64::NAN)),
                TrialStatus::Infeasible => "infeasible".into(),
                s => format!("{}: {}", s.as_str(), t.error.as_deref().unwrap_or("")),
            };
            let best = p.best.map_or("none feasible yet".to_string(), |(n, q, l)| {
                format!("best {q:.4} (#{n}, {l:.2} ms)")
            });
            if !quiet || p.finished == p.total {
                eprintln!(
                    "trial {} ({}/{}): {what} | {best}, HV {:.4} | {:.0} s",
                    t.number, p.finished, p.total, p.hypervolume, p.elapsed_s
                );
            }
        })
        .map_err(CliError::failure)?;
    eprintln!(
        "search finished in {:.1} s: {} trials became final ({} by workers, {} duplicates \
         reused, {} infeasible, {} failed, {} returned to pending after a lost worker)",
        t0.elapsed().as_secs_f64(),
        summary.finished,
        summary.evaluated,
        summary.reused,
        summary.infeasible,
        summary.failed,
        summary.requeued
    );
    let mut input = ReportInput::from_study(study).map_err(CliError::failure)?;
    let dim = study.space().stem.cross_attention_dim;
    input.samples = super::search::sample_grids_here(&input, dim, dir, quiet);
    let files = unas_reports::write_report(&input, dir).map_err(CliError::failure)?;
    println!(
        "report: {} and {}",
        files.html.display(),
        files.markdown.display()
    );
    match unas_reports::export(&input, &Pick::Knee, dir) {
        Ok(x) => println!(
            "exported the knee (trial {}): {} and {}",
            x.trial,
            x.toml.display(),
            x.config_json.display()
        ),
        Err(ReportError::Pick { message, .. }) => println!("nothing exported: {message}"),
        Err(e) => return Err(CliError::failure(e)),
    }
    Ok(())
}

/// Runs the subcommand.
pub fn run(a: WorkerArgs) -> CmdResult {
    let device: Device = a.device.parse().map_err(CliError::input)?;
    device.check().map_err(CliError::input)?;
    let lease = a.lease.options()?;
    let heartbeat = seconds("heartbeat", a.heartbeat)?;
    if heartbeat >= lease.grace {
        return Err(CliError::input(
            "--heartbeat must be shorter than --grace (a few heartbeats per grace period)",
        ));
    }
    if a.max_trials == Some(0) {
        return Err(CliError::input("--max-trials must be at least 1"));
    }
    let mut worker = Worker::open(&a.store, &a.study).map_err(open_err)?;
    let cfg = worker.config().clone();
    let latency = cfg
        .latency
        .build_for(worker.space(), &mut |l| eprintln!("latency: {l}"))
        .map_err(CliError::input)?;
    let fixture = test_fixture_quality()?;
    let proxy;
    let quality: &(dyn QualityEvaluator + Sync) = match &fixture {
        Some(q) => q.as_ref(),
        None => {
            if device != Device::Cpu {
                return Err(CliError::input(format!(
                    "--device {device}: the proxy-quality evaluator runs on the CPU in this build; \
                     use --device cpu"
                )));
            }
            let cross_attention_dim = worker.space().stem.cross_attention_dim;
            proxy = ProxyQuality::prepare(&cfg.quality, cross_attention_dim, &mut |line| {
                eprintln!("quality proxy: {line}")
            })
            .map_err(CliError::input)?;
            &proxy
        }
    };
    let opts = WorkerOptions {
        id: a
            .id
            .unwrap_or_else(unas_search::runner::worker::default_worker_id),
        heartbeat,
        lease,
        once: a.once,
        max_trials: a.max_trials,
    };
    eprintln!(
        "worker {} on study `{}` in {} ({}; quality: {}; latency: {})",
        opts.id,
        cfg.name,
        redact_url(&a.store),
        device,
        quality.describe(),
        cfg.latency.model
    );
    let mut idle_said = false;
    let summary = worker
        .run(
            &opts,
            Evaluators {
                latency: latency.as_ref(),
                quality,
            },
            &mut |e| match e {
                WorkerEvent::Claimed(t) => {
                    idle_said = false;
                    eprintln!("trial {}: claimed (attempt {})", t.number, t.attempts)
                }
                WorkerEvent::Finished(t) => {
                    let lat = t.latency_ms.map_or("–".into(), |l| format!("{l:.3} ms"));
                    let what = match t.status {
                        TrialStatus::Done => {
                            format!("done, {lat}, quality {:.4}", t.quality.unwrap_or(f64::NAN))
                        }
                        TrialStatus::Infeasible => format!("infeasible, {lat}"),
                        s => format!(
                            "{}: {}",
                            s.as_str(),
                            t.error.as_deref().unwrap_or("no reason given")
                        ),
                    };
                    eprintln!(
                        "trial {}: {what} ({:.1} s)",
                        t.number,
                        t.latency_s.unwrap_or(0.0) + t.quality_s.unwrap_or(0.0)
                    );
                }
                WorkerEvent::ClaimedRung(r) => {
                    idle_said = false;
                    eprintln!(
                        "trial {} rung {}: claimed (attempt {})",
                        r.number, r.rung, r.attempts
                    )
                }
                WorkerEvent::FinishedRung(r) => match (r.score, &r.error) {
                    (Some(q), _) => eprintln!("trial {} rung {}: quality {q:.4}", r.number, r.rung),
                    (None, e) => eprintln!(
                        "trial {} rung {}: failed: {}",
                        r.number,
                        r.rung,
                        e.as_deref().unwrap_or("no score")
                    ),
                },
                WorkerEvent::Discarded(n) => eprintln!(
                    "trial {n}: result discarded: the lease was lost (the trial was given to \
                     another worker)"
                ),
                WorkerEvent::Requeued(r) => eprintln!(
                    "lost workers: {} trial(s) returned to pending, {} failed at the retry limit",
                    r.pending, r.failed
                ),
                WorkerEvent::HeartbeatError(err) => eprintln!("heartbeat failed: {err}"),
                WorkerEvent::Idle => {
                    if !idle_said {
                        eprintln!("waiting for the controller to propose trials");
                        idle_said = true;
                    }
                }
            },
        )
        .map_err(CliError::failure)?;
    eprintln!(
        "worker done: {} trial(s) evaluated, {} discarded",
        summary.evaluated, summary.discarded
    );
    Ok(())
}
