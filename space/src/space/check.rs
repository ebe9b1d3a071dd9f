//! The checks of a search-space file: every knob's values, stage counts and constraints.

#[allow(unused_imports)]
use super::*;
use crate::error::ArchError;

impl SearchSpace {
    pub(super) fn check(&self) -> Result<(), ArchError> {
        let err = |f: &str, m: String| Err(ArchError::new(f, m));
        let k = &self.knobs;
        for (f, empty) in [
            ("knobs.stages", k.stages.is_empty()),
            ("knobs.layouts", k.layouts.is_empty()),
            ("knobs.interleave", k.interleave.is_empty()),
            ("knobs.mid_resnets", k.mid_resnets.is_empty()),
            ("knobs.mid_attentions", k.mid_attentions.is_empty()),
        ] {
            if empty {
                return err(f, "needs at least one value".into());
            }
        }
        for (f, list) in [
            ("knobs.stages", &k.stages),
            ("knobs.mid_resnets", &k.mid_resnets),
            ("knobs.mid_attentions", &k.mid_attentions),
        ] {
            if has_duplicates(list) {
                return err(f, "lists a value twice".into());
            }
        }
        if k.stages.contains(&0) {
            return err("knobs.stages", "stage counts must be at least 1".into());
        }
        if k.mid_resnets.contains(&0) {
            return err("knobs.mid_resnets", "must be at least 1".into());
        }
        if has_duplicates(&k.sampling_steps) {
            return err("knobs.sampling_steps", "lists a value twice".into());
        }
        if k.sampling_steps.contains(&0) {
            return err(
                "knobs.sampling_steps",
                "step counts must be at least 1".into(),
            );
        }
        let max_stages = *k.stages.iter().max().unwrap_or(&0);
        if self.stage.len() < max_stages {
            return err(
                "stage",
                format!(
                    "knobs.stages allows {max_stages} stages but only {} [[stage]] entries are given",
                    self.stage.len()
                ),
            );
        }
        for (s, o) in self.stage.iter().enumerate() {
            let f = |x: &str| format!("stage[{s}].{x}");
            for (name, list) in [
                ("out_channels", &o.out_channels),
                ("down_resnets", &o.down_resnets),
                ("down_attentions", &o.down_attentions),
                ("up_attentions", &o.up_attentions),
            ] {
                if list.is_empty() {
                    return err(&f(name), "needs at least one value".into());
                }
                if has_duplicates(list) {
                    return err(&f(name), "lists a value twice".into());
                }
            }
            if o.down_resnets.contains(&0) {
                return err(&f("down_resnets"), "must be at least 1".into());
            }
            for &c in &o.out_channels {
                if c == 0 || c % self.stem.norm_groups != 0 {
                    return err(
                        &f("out_channels"),
                        format!(
                            "{c} is not a positive multiple of stem.norm_groups = {}",
                            self.stem.norm_groups
                        ),
                    );
                }
                if let Err(m) = self.stem.heads_divide(c) {
                    return err(&f("out_channels"), m);
                }
            }
        }
        // The stem itself is checked by building the first architecture of the space.
        let mut rng = Rng::seed(0);
        let g = self
            .sample_structural(&mut rng)
            .ok_or_else(|| ArchError::new("knobs", "the space has no valid architecture"))?;
        self.decode(&g)
            .validate()
            .map_err(|e| ArchError::new(format!("stem ({})", e.field), e.message))?;
        if self.constraints.latent == 0 || self.constraints.batch == 0 {
            return err(
                "constraints.latent",
                "latent and batch must be at least 1".into(),
            );
        }
        Ok(())
    }

    pub(super) fn stage_valid(&self, layout: Layout, s: usize, g: &StageGene) -> bool {
        let o = &self.stage[s];
        if !o.out_channels.contains(&g.out_channels) || !o.down_resnets.contains(&g.down_resnets) {
            return false;
        }
        if !o.down_attentions.contains(&g.down_attentions)
            || !o.up_attentions.contains(&g.up_attentions)
        {
            return false;
        }
        match layout {
            Layout::Flexible => true,
            Layout::Diffusers => {
                (g.down_attentions == 0 || g.down_attentions == g.down_resnets)
                    && (g.up_attentions == 0 || g.up_attentions == g.down_resnets + 1)
            }
        }
    }

    /// Valid (down_resnets, down_attentions, up_attentions) triples of stage `s` under `layout`.
    pub(crate) fn stage_combos(&self, layout: Layout, s: usize) -> Vec<(usize, usize, usize)> {
        let o = &self.stage[s];
        let mut out = Vec::new();
        for &r in &o.down_resnets {
            for &da in &o.down_attentions {
                for &ua in &o.up_attentions {
                    let g = StageGene {
                        out_channels: o.out_channels[0],
                        down_resnets: r,
                        down_attentions: da,
                        up_attentions: ua,
                    };
                    if self.stage_valid(layout, s, &g) {
                        out.push((r, da, ua));
                    }
                }
            }
        }
        out
    }
}

fn has_duplicates(v: &[usize]) -> bool {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.windows(2).any(|w| w[0] == w[1])
}
