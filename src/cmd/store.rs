//! `unas store`: trial stores (SQLite files, PostgreSQL databases): list their studies, copy
//! studies between them (`unas store copy runs/quick postgres://…`).

use std::collections::BTreeMap;

use clap::Subcommand;
use unas_search::open_store;
use unas_search::store::{copy_store, redact_url};

use super::worker::open_err;
use super::{CliError, CmdResult};

/// `unas store …`.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy studies with every trial, column and id from one store to another (SQLite →
    /// PostgreSQL and back), then verify the copy reads back identical. Studies that already
    /// exist in the target are refused.
    Copy {
        /// Source: a SQLite file or run directory, or `postgres://user:password@host:port/db`.
        from: String,
        /// Target (created if a new SQLite file; a PostgreSQL database must exist).
        to: String,
        /// Copy only this study (repeatable; default: all).
        #[arg(long = "study")]
        studies: Vec<String>,
    },
    /// List the studies of a store with their trials per status.
    List {
        /// A SQLite file or run directory, or a PostgreSQL URL.
        store: String,
    },
}

/// Runs the subcommand.
pub fn run(c: StoreCommand) -> CmdResult {
    match c {
        StoreCommand::Copy { from, to, studies } => {
            let mut src = open_store(&from).map_err(open_err)?;
            let mut dst = open_store(&to).map_err(open_err)?;
            let s = copy_store(src.as_mut(), dst.as_mut(), &studies).map_err(CliError::failure)?;
            println!(
                "copied {} stud{} ({} trials) from {} to {}; verified",
                s.studies.len(),
                if s.studies.len() == 1 { "y" } else { "ies" },
                s.trials,
                redact_url(&from),
                redact_url(&to)
            );
            for name in &s.studies {
                println!("  {name}");
            }
            Ok(())
        }
        StoreCommand::List { store } => {
            let mut s = open_store(&store).map_err(open_err)?;
            let names = s.study_names().map_err(CliError::failure)?;
            println!(
                "{} (schema version {}): {} stud{}",
                s.location(),
                s.schema_version().map_err(CliError::failure)?,
                names.len(),
                if names.len() == 1 { "y" } else { "ies" }
            );
            for name in names {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                let trials = s.trials(&name).map_err(CliError::failure)?;
                for t in &trials {
                    *counts.entry(t.status.as_str()).or_default() += 1;
                }
                let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
                println!("  {name}: {} trials ({})", trials.len(), counts.join(", "));
            }
            Ok(())
        }
    }
}
