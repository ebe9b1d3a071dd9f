//! A space as a fixed list of categorical knobs, for outside samplers (Optuna's NSGA-II in
//! `tools/optuna_nsga2.py`): every knob of the largest stage count is always present, and a
//! choice of each maps onto one valid genome — the stages past the chosen count are ignored,
//! and under the diffusers layout an attention knob is a switch (0: none; else one per ResNet,
//! as the layout requires), as [`SearchSpace::crossover`] treats it.

#[allow(unused_imports)]
use super::*;

/// One categorical knob of [`SearchSpace::flat_knobs`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FlatKnob {
    /// `stages`, `layout`, `interleave`, `mid_resnets`, `mid_attentions`, `sampling_steps`,
    /// `stage{s}.out_channels`, `stage{s}.down_resnets`, `stage{s}.down_attentions`,
    /// `stage{s}.up_attentions`.
    pub name: String,
    /// The values, in the space's order (layouts and orders by name).
    pub choices: Vec<String>,
}

impl SearchSpace {
    /// The space's knobs as fixed categorical lists (see the module docs).
    pub fn flat_knobs(&self) -> Vec<FlatKnob> {
        let k = &self.knobs;
        let nums = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mut out = vec![
            FlatKnob {
                name: "stages".into(),
                choices: nums(&k.stages),
            },
            FlatKnob {
                name: "layout".into(),
                choices: k.layouts.iter().map(|l| format!("{l:?}")).collect(),
            },
            FlatKnob {
                name: "interleave".into(),
                choices: k.interleave.iter().map(|l| format!("{l:?}")).collect(),
            },
            FlatKnob {
                name: "mid_resnets".into(),
                choices: nums(&k.mid_resnets),
            },
            FlatKnob {
                name: "mid_attentions".into(),
                choices: nums(&k.mid_attentions),
            },
        ];
        if !k.sampling_steps.is_empty() {
            out.push(FlatKnob {
                name: "sampling_steps".into(),
                choices: nums(&k.sampling_steps),
            });
        }
        let max_stages = k.stages.iter().copied().max().unwrap_or(0);
        for (s, o) in self.stage.iter().enumerate().take(max_stages) {
            for (name, v) in [
                ("out_channels", &o.out_channels),
                ("down_resnets", &o.down_resnets),
                ("down_attentions", &o.down_attentions),
                ("up_attentions", &o.up_attentions),
            ] {
                out.push(FlatKnob {
                    name: format!("stage{s}.{name}"),
                    choices: nums(v),
                });
            }
        }
        out
    }

    /// The genome a choice of every flat knob stands for (`choices[name]` = an index into that
    /// knob's `choices`); an error names a missing knob or an index out of range.
    pub fn genome_from_flat(
        &self,
        choices: &std::collections::BTreeMap<String, usize>,
    ) -> Result<Genome, String> {
        let knobs = self.flat_knobs();
        let pick = |name: &str| -> Result<usize, String> {
            let knob = knobs
                .iter()
                .find(|k| k.name == name)
                .ok_or_else(|| format!("the space has no knob `{name}`"))?;
            let i = *choices
                .get(name)
                .ok_or_else(|| format!("no choice for knob `{name}`"))?;
            if i >= knob.choices.len() {
                return Err(format!(
                    "knob `{name}`: choice {i} out of range (0..{})",
                    knob.choices.len()
                ));
            }
            Ok(i)
        };
        let k = &self.knobs;
        let n = k.stages[pick("stages")?];
        let layout = k.layouts[pick("layout")?];
        let diffusers = layout == Layout::Diffusers;
        let mut stages = Vec::with_capacity(n);
        for s in 0..n {
            let o = &self.stage[s];
            let at = |x: &str| pick(&format!("stage{s}.{x}"));
            let r = o.down_resnets[at("down_resnets")?];
            let da = o.down_attentions[at("down_attentions")?];
            let ua = o.up_attentions[at("up_attentions")?];
            stages.push(StageGene {
                out_channels: o.out_channels[at("out_channels")?],
                down_resnets: r,
                down_attentions: if diffusers && da > 0 { r } else { da },
                up_attentions: if diffusers && ua > 0 { r + 1 } else { ua },
            });
        }
        let (interleave, (mid_resnets, mid_attentions)) = if diffusers {
            (Interleave::Alternate, DIFFUSERS_MID)
        } else {
            (
                k.interleave[pick("interleave")?],
                (
                    k.mid_resnets[pick("mid_resnets")?],
                    k.mid_attentions[pick("mid_attentions")?],
                ),
            )
        };
        let sampling_steps = if k.sampling_steps.is_empty() {
            None
        } else {
            Some(k.sampling_steps[pick("sampling_steps")?])
        };
        let g = Genome {
            layout,
            interleave,
            stages,
            mid_resnets,
            mid_attentions,
            sampling_steps,
        };
        if self.is_valid(&g) {
            Ok(g)
        } else {
            Err(format!(
                "these choices give no architecture of space `{}` (under the diffusers layout \
                 a stage's attention counts must be one per ResNet, which this space does not \
                 offer)",
                self.name
            ))
        }
    }
}
