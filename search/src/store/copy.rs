//! Copying studies between stores (`unas store copy`).

use super::Store;
use crate::error::SearchError;

/// What [`copy_store`] copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// Studies copied.
    pub studies: Vec<String>,
    /// Trials copied.
    pub trials: usize,
}

/// Copies studies (all when `only` is empty) with every trial, column, lease and rung from one
/// store to another, each study's trials in one transaction (its rungs after them), then reads
/// the copy back and checks it equals the source. Refuses studies that already exist in the
/// target.
pub fn copy_store(
    from: &mut dyn Store,
    to: &mut dyn Store,
    only: &[String],
) -> Result<CopySummary, SearchError> {
    let names = if only.is_empty() {
        from.study_names()?
    } else {
        only.to_vec()
    };
    let mut summary = CopySummary::default();
    for name in &names {
        let study = from.study(name)?.ok_or_else(|| SearchError::Store {
            location: from.location(),
            message: format!("no study named `{name}`"),
        })?;
        if to.study(name)?.is_some() {
            return Err(SearchError::Store {
                location: to.location(),
                message: format!("already holds a study named `{name}`; nothing copied for it"),
            });
        }
        let trials = from.trials(name)?;
        let leases = from.leases(name)?;
        let rungs = from.rungs(name)?;
        to.import_study(&study, &trials, &leases)?;
        // Then the successive-halving rungs (after the trials they reference).
        for r in &rungs {
            to.insert_rung(r)?;
        }
        let (s2, t2, l2) = (to.study(name)?, to.trials(name)?, to.leases(name)?);
        if s2.as_ref() != Some(&study) || t2 != trials || l2 != leases || to.rungs(name)? != rungs {
            return Err(SearchError::Store {
                location: to.location(),
                message: format!("study `{name}`: the copy reads back differently from the source"),
            });
        }
        summary.trials += trials.len();
        summary.studies.push(name.clone());
    }
    Ok(summary)
}
