//! `unas dashboard`: serves a study's live, read-only view over HTTP (reports' dashboard).

use std::net::SocketAddr;
use std::path::Path;

use clap::Args;
use unas_reports::dashboard::{serve, DashboardError, DashboardOptions};

use super::{CliError, CmdResult};

/// `unas dashboard`.
#[derive(Args)]
pub struct DashboardArgs {
    /// The study's store: a run directory (its study.sqlite), a SQLite file, or a PostgreSQL
    /// URL (`postgres://user:password@host:port/database`, with `--study`).
    store: String,
    /// The study's name: needed when the store holds several (a shared PostgreSQL database).
    #[arg(long)]
    study: Option<String>,
    /// Address to serve on. Loopback by default; another address (e.g. 0.0.0.0:8080) exposes
    /// the study to the network and is only used when given here (with a warning). Port 0
    /// picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: String,
    /// The run directory whose `samples/` holds the front's sample grids (default: STORE
    /// when it is a run directory, or the folder of a SQLite file).
    #[arg(long)]
    run_dir: Option<std::path::PathBuf>,
}

/// Runs the dashboard until Ctrl-C.
pub fn run(a: DashboardArgs) -> CmdResult {
    let bind: SocketAddr = a.bind.parse().map_err(|_| {
        CliError::input(format!(
            "--bind `{}`: not an address and port (e.g. 127.0.0.1:8080)",
            a.bind
        ))
    })?;
    let is_url = a.store.contains("://");
    if !is_url && !Path::new(&a.store).exists() {
        return Err(CliError::input(format!(
            "{}: no such run directory or store file",
            a.store
        )));
    }
    if !bind.ip().is_loopback() {
        eprintln!(
            "warning: serving on {bind}, not a loopback address: anyone who can reach this \
             machine can read the study (no authentication)"
        );
    }
    let run_dir = a.run_dir.or_else(|| {
        let p = Path::new(&a.store);
        match is_url {
            true => None,
            false if p.is_dir() => Some(p.to_path_buf()),
            false => p.parent().map(Path::to_path_buf),
        }
    });
    let options = DashboardOptions {
        store: a.store,
        study: a.study,
        bind,
        run_dir,
    };
    serve(&options, |s| {
        println!(
            "dashboard of study `{}` ({}) at http://{}/ (Ctrl-C stops it)",
            s.study, s.location, s.addr
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })
    .map_err(|e| match e {
        DashboardError::Serve(_) => CliError::failure(e),
        _ => CliError::input(e),
    })
}
