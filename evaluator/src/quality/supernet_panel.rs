//! The level of a trained supernet: the mean validation loss of a fixed panel of its
//! sub-networks — the covering architecture, the smallest, and [`PANEL_SAMPLES`] more drawn
//! uniformly from the topology with a fixed seed ([`PANEL_SEED`]).
//!
//! Two supernets of one topology trained with different seeds sit at different levels (in
//! docs/calibration/ the twelve candidates' mean zero-shot loss is 0.0805 on supernet seed 1
//! and 0.0921 on seed 2, while the candidates of one supernet spread over ~0.002), so their raw
//! scores disagree as numbers even where they agree as rankings. A candidate's score minus its
//! supernet's level — the `supernet-val-loss-rel` proxy — removes that offset with nothing but
//! the supernet itself, so scores of different supernets of one topology become comparable.

use std::collections::BTreeSet;

use unas_runtime::device::Cpu;
use unas_runtime::UNet2DConditionModel;
use unas_space::rng::Rng;
use unas_space::UNetArch;

use super::supernet_store::{self, SupernetInfo};
use super::val_loss::ValidationSet;
use crate::EvalError;

/// Sampled members of the panel, besides the covering and the smallest architecture.
pub const PANEL_SAMPLES: usize = 6;

/// Seed of the panel's samples (the same panel for every supernet of a topology).
pub const PANEL_SEED: u64 = 0x0070_616e_656c;

/// The reference panel of `info`'s topology: covering architecture, smallest, then up to
/// [`PANEL_SAMPLES`] distinct samples (fewer when the topology has fewer candidates). Needs
/// the space definition recorded in `supernet.json`.
pub fn reference_panel(info: &SupernetInfo) -> Result<Vec<UNetArch>, EvalError> {
    let unsupported = |why: String| EvalError::Unsupported(format!("supernet panel: {why}"));
    let space = info.space_definition.as_ref().ok_or_else(|| {
        unsupported(format!(
            "supernet of `{}` records no space definition (trained by an older unas)",
            info.topology
        ))
    })?;
    let topology = space
        .topologies()
        .into_iter()
        .find(|t| t.to_string() == info.topology)
        .ok_or_else(|| {
            unsupported(format!(
                "`{}` is not a topology of its recorded space",
                info.topology
            ))
        })?;
    let mut panel = vec![info.arch.clone()];
    panel.extend(space.smallest_arch(&topology));
    let mut seen: BTreeSet<String> = panel.iter().map(UNetArch::hash_id).collect();
    let mut rng = Rng::seed(PANEL_SEED);
    let mut drawn = 0;
    // A bounded number of draws: a topology with few candidates gives a smaller panel.
    for _ in 0..PANEL_SAMPLES * 20 {
        if drawn == PANEL_SAMPLES {
            break;
        }
        let Some(arch) = space.sample_in(&topology, &mut rng, 1_000) else {
            break;
        };
        if seen.insert(arch.hash_id()) {
            panel.push(arch);
            drawn += 1;
        }
    }
    Ok(panel)
}

/// The supernet's level: the mean zero-shot validation loss of its [`reference_panel`] on
/// `val` (chunks of `batch`).
pub fn level(
    info: &SupernetInfo,
    unet: &UNet2DConditionModel<Cpu>,
    val: &ValidationSet,
    batch: usize,
) -> Result<f64, EvalError> {
    let panel = reference_panel(info)?;
    let mut sum = 0.0;
    for arch in &panel {
        sum += supernet_store::score(info, unet, arch, val, batch)?.overall;
    }
    Ok(sum / panel.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::supernet_store::testing::{shipped, space_and_topology};

    /// The shipped supernet's recorded hash is what `settings_hash` gives today (settings added
    /// after it was made, at their defaults, stay out of the hash); a non-default sampling
    /// gives another.
    #[test]
    fn the_shipped_supernet_keeps_its_settings_hash() {
        use crate::quality::supernet::{settings_hash, SupernetSettings};
        let info = shipped();
        let (space, topology) = space_and_topology(&info);
        let hash = |s: &SupernetSettings| settings_hash(&space, &topology, s, info.from.as_deref());
        assert_eq!(hash(&info.settings), info.settings_hash);
        assert_eq!(info.settings_hash, "f7a0c0a205bc7cdb");
        let other = SupernetSettings {
            sampling: unas_space::SubnetSampling::TowardsLargest,
            ..info.settings.clone()
        };
        assert_ne!(hash(&other), info.settings_hash);
    }

    #[test]
    fn the_panel_is_fixed_distinct_and_made_of_sub_networks() {
        let info = shipped();
        let panel = reference_panel(&info).unwrap();
        assert_eq!(panel.len(), 2 + PANEL_SAMPLES);
        assert_eq!(panel[0], info.arch, "the covering architecture comes first");
        let (space, topology) = space_and_topology(&info);
        assert_eq!(Some(&panel[1]), space.smallest_arch(&topology).as_ref());
        let ids: BTreeSet<String> = panel.iter().map(UNetArch::hash_id).collect();
        assert_eq!(ids.len(), panel.len(), "no architecture twice");
        for arch in &panel {
            unas_runtime::SubNet::new(arch, &info.arch).unwrap();
        }
        assert_eq!(
            panel,
            reference_panel(&info).unwrap(),
            "the same panel every time"
        );
    }

    #[test]
    fn a_supernet_without_its_space_is_a_clear_error() {
        let mut info = shipped();
        info.space_definition = None;
        let e = reference_panel(&info).unwrap_err().to_string();
        assert!(e.contains("records no space definition"), "{e}");
    }
}
