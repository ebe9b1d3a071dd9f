//! Walking an architecture's blocks in forward order into its plan: the modules with their
//! weight keys, the steps, and the skip connections each up-stage ResNet consumes.

use super::{block_order, BlockEntry, ModuleKind, Plan, PlanModule, Section, Step};
use crate::arch::{Interleave, Layout, UNetArch};
use crate::error::ArchError;

/// Walks `arch` (its static checks passed) into its plan; fails where a skip connection does
/// not fit.
pub(super) fn walk(arch: &UNetArch) -> Result<Plan, ArchError> {
    let mut w = Walk {
        arch,
        plan: Plan {
            modules: Vec::new(),
            steps: Vec::new(),
            max_div: 1,
        },
        div: 1,
        channels: arch.stem.in_channels,
        skips: Vec::new(),
    };
    w.stem_in();
    for s in 0..arch.down.len() {
        w.down_stage(s);
    }
    w.mid_block();
    for u in 0..arch.up.len() {
        w.up_stage(u)?;
    }
    w.stem_out()?;
    Ok(w.plan)
}

/// Builder state while walking the architecture.
struct Walk<'a> {
    arch: &'a UNetArch,
    plan: Plan,
    div: usize,
    channels: usize,
    skips: Vec<(usize, usize, String)>,
}

impl<'a> Walk<'a> {
    fn add(&mut self, key: String, kind: ModuleKind, section: Section, eps: f64) -> usize {
        self.plan.modules.push(PlanModule {
            key,
            kind,
            section,
            norm_eps: eps,
        });
        self.plan.modules.len() - 1
    }

    fn run(&mut self, module: usize, pop_skip: Option<usize>, push_skip: bool, origin: &str) {
        let kind = self.plan.modules[module].kind;
        self.plan.steps.push(Step {
            module,
            input_div: self.div,
            pop_skip,
            push_skip,
        });
        match kind {
            ModuleKind::Downsample { .. } => self.div *= 2,
            ModuleKind::Upsample { .. } => self.div /= 2,
            _ => {}
        }
        self.channels = kind.channels().1;
        self.plan.max_div = self.plan.max_div.max(self.div);
        if push_skip {
            self.skips
                .push((self.channels, self.div, origin.to_string()));
        }
    }

    fn resnet(&self, in_channels: usize, out_channels: usize) -> ModuleKind {
        ModuleKind::Resnet {
            in_channels,
            out_channels,
            temb_channels: self.arch.stem.time_embed_dim,
        }
    }

    fn attention(&self, channels: usize) -> ModuleKind {
        ModuleKind::Attention {
            channels,
            heads: self.arch.heads_for(channels),
            cross_attention_dim: self.arch.stem.cross_attention_dim,
            depth: self.arch.stem.transformer_depth,
        }
    }

    fn eps(&self) -> f64 {
        self.arch.stem.norm_eps
    }

    fn att_eps(&self) -> f64 {
        self.arch.stem.attention_norm_eps
    }

    fn flexible(&self) -> bool {
        self.arch.layout == Layout::Flexible
    }

    /// The time embedding and `conv_in`.
    fn stem_in(&mut self) {
        let (stem, eps) = (&self.arch.stem, self.eps());
        let temb = self.add(
            "time_embedding".into(),
            ModuleKind::TimeEmbedding {
                proj_dim: stem.base_channels,
                embed_dim: stem.time_embed_dim,
            },
            Section::StemIn,
            eps,
        );
        self.plan.steps.push(Step {
            module: temb,
            input_div: 1,
            pop_skip: None,
            push_skip: false,
        });
        let conv_in = self.add(
            "conv_in".into(),
            ModuleKind::ConvIn {
                in_channels: stem.in_channels,
                out_channels: stem.base_channels,
            },
            Section::StemIn,
            eps,
        );
        self.run(conv_in, None, true, "conv_in");
    }

    /// Weight key of entry `j` of block `block` (e.g. `down_blocks.0`): `modules_list.{j}` in
    /// the flexible layout, `resnets.{k}` / `attentions.{k}` in diffusers'.
    fn key(&self, block: &str, j: usize, entry: BlockEntry) -> String {
        match (self.flexible(), entry) {
            (true, _) => format!("{block}.modules_list.{j}"),
            (false, BlockEntry::Resnet(k)) => format!("{block}.resnets.{k}"),
            (false, BlockEntry::Attention(k)) => format!("{block}.attentions.{k}"),
        }
    }

    /// Down stage `s`: its ResNets and attentions in block order, then its downsampler.
    fn down_stage(&mut self, s: usize) {
        let arch = self.arch;
        let (d, sec, flexible) = (&arch.down[s], Section::Down(s), self.flexible());
        let in_ch = arch.down_in_channels(s);
        for (j, entry) in block_order(arch.interleave, d.resnets, d.attentions)
            .into_iter()
            .enumerate()
        {
            let key = self.key(&format!("down_blocks.{s}"), j, entry);
            match entry {
                BlockEntry::Resnet(k) => {
                    let cin = if k == 0 { in_ch } else { d.out_channels };
                    let kind = self.resnet(cin, d.out_channels);
                    let m = self.add(key, kind, sec, self.eps());
                    // Flexible: skip right after each ResNet. Diffusers: after the ResNet
                    // unless its attention follows.
                    let push = flexible || d.attentions == 0;
                    self.run(m, None, push, &format!("down[{s}] resnet {k}"));
                }
                BlockEntry::Attention(k) => {
                    let kind = self.attention(d.out_channels);
                    let m = self.add(key, kind, sec, self.att_eps());
                    self.run(m, None, !flexible, &format!("down[{s}] attention {k}"));
                }
            }
        }
        if d.downsample {
            let m = self.add(
                format!("down_blocks.{s}.downsamplers.0"),
                ModuleKind::Downsample {
                    channels: d.out_channels,
                },
                sec,
                self.eps(),
            );
            let origin = format!("down[{s}] downsample");
            self.run(m, None, d.keep_downsample_skip, &origin);
        }
    }

    /// The mid block: flexible (R0, then (A_i, R_{i+1}) in zip-longest order, R0 run twice,
    /// as the released DeciDiffusion code does) or diffusers' (R, (A, R)…), then its
    /// upsampler.
    fn mid_block(&mut self) {
        let arch = self.arch;
        let (mc, mid, eps, att_eps) = (arch.mid_channels(), &arch.mid, self.eps(), self.att_eps());
        if self.flexible() {
            let mut entries = vec![(true, 0usize)];
            for i in 0..(mid.resnets - 1).max(mid.attentions) {
                if i < mid.attentions {
                    entries.push((false, i));
                }
                if i < mid.resnets - 1 {
                    entries.push((true, i + 1));
                }
            }
            if arch.interleave == Interleave::ResnetsFirst {
                entries.sort_by_key(|&(is_res, _)| !is_res);
            }
            let mut ids = Vec::new();
            for (j, &(is_res, _)) in entries.iter().enumerate() {
                let key = format!("mid_block.modules_list.{j}");
                let (kind, e) = if is_res {
                    (self.resnet(mc, mc), eps)
                } else {
                    (self.attention(mc), att_eps)
                };
                ids.push(self.add(key, kind, Section::Mid, e));
            }
            self.run(ids[0], None, false, "mid");
            for id in ids {
                self.run(id, None, false, "mid");
            }
        } else {
            let r0 = self.resnet(mc, mc);
            let m = self.add("mid_block.resnets.0".into(), r0, Section::Mid, eps);
            self.run(m, None, false, "mid");
            for i in 0..mid.attentions {
                let a = self.attention(mc);
                let key = format!("mid_block.attentions.{i}");
                let ma = self.add(key, a, Section::Mid, att_eps);
                self.run(ma, None, false, "mid");
                let r = self.resnet(mc, mc);
                let key = format!("mid_block.resnets.{}", i + 1);
                let mr = self.add(key, r, Section::Mid, eps);
                self.run(mr, None, false, "mid");
            }
        }
        if mid.upsample {
            let m = self.add(
                "mid_block.upsamplers.0".into(),
                ModuleKind::Upsample { channels: mc },
                Section::Mid,
                eps,
            );
            self.run(m, None, false, "mid");
        }
    }

    /// Up stage `u`: its ResNets (each concatenating the next skip) and attentions in block
    /// order, then its upsampler.
    fn up_stage(&mut self, u: usize) -> Result<(), ArchError> {
        let arch = self.arch;
        let (st, sec) = (&arch.up[u], Section::Up(u));
        let (prev, in_ch, out_ch) = arch.up_channels(u);
        for (j, entry) in block_order(arch.interleave, st.resnets, st.attentions)
            .into_iter()
            .enumerate()
        {
            let key = self.key(&format!("up_blocks.{u}"), j, entry);
            match entry {
                BlockEntry::Resnet(k) => {
                    let skip_ch = if k == st.resnets - 1 { in_ch } else { out_ch };
                    let cur = if k == 0 { prev } else { out_ch };
                    self.check_up_resnet(u, k, skip_ch, cur)?;
                    self.skips.pop();
                    let kind = self.resnet(cur + skip_ch, out_ch);
                    let m = self.add(key, kind, sec, self.eps());
                    self.run(m, Some(skip_ch), false, "");
                }
                BlockEntry::Attention(_) => {
                    let kind = self.attention(out_ch);
                    let m = self.add(key, kind, sec, self.att_eps());
                    self.run(m, None, false, "");
                }
            }
        }
        if st.upsample {
            if self.div == 1 {
                return Err(ArchError::new(
                    format!("up[{u}].upsample"),
                    "upsamples above the latent resolution",
                ));
            }
            let m = self.add(
                format!("up_blocks.{u}.upsamplers.0"),
                ModuleKind::Upsample { channels: out_ch },
                sec,
                self.eps(),
            );
            self.run(m, None, false, "");
        }
        Ok(())
    }

    /// ResNet `k` of up stage `u` needs a next skip (the last one pushed) with `skip_ch`
    /// channels at the current resolution, and `cur` channels coming in.
    fn check_up_resnet(
        &self,
        u: usize,
        k: usize,
        skip_ch: usize,
        cur: usize,
    ) -> Result<(), ArchError> {
        let field = format!("up[{u}].resnets");
        let Some((ch, div, origin)) = self.skips.last() else {
            return Err(ArchError::new(
                field,
                format!(
                    "resnet {k} of up stage {u} needs a skip connection but all skips from the \
                     down path are used up (the down path keeps {} in all)",
                    self.plan.steps.iter().filter(|s| s.push_skip).count()
                ),
            ));
        };
        if *ch != skip_ch || *div != self.div {
            return Err(ArchError::new(
                field,
                format!(
                    "resnet {k} of up stage {u} is built for a {skip_ch}-channel skip at 1/{} \
                     resolution, but the next skip ({origin}) has {ch} channels at 1/{div}; an \
                     up stage needs one ResNet more than its mirrored down stage",
                    self.div
                ),
            ));
        }
        if self.channels != cur {
            return Err(ArchError::new(
                field,
                format!(
                    "resnet {k} of up stage {u} expects {cur} input channels but receives {}",
                    self.channels
                ),
            ));
        }
        Ok(())
    }

    /// Checks that every skip was consumed at full resolution, then `conv_out`.
    fn stem_out(&mut self) -> Result<(), ArchError> {
        if let Some((ch, div, origin)) = self.skips.last() {
            return Err(ArchError::new(
                "up",
                format!(
                    "{} skip connection(s) from the down path are never consumed (the last is \
                     {origin}, {ch} channels at 1/{div}); up stages need one ResNet more than \
                     their mirrored down stages",
                    self.skips.len()
                ),
            ));
        }
        if self.div != 1 {
            return Err(ArchError::new(
                "up",
                format!(
                    "the up path ends at 1/{} of the latent resolution, not at full resolution",
                    self.div
                ),
            ));
        }
        let stem = &self.arch.stem;
        let out = self.add(
            String::new(),
            ModuleKind::ConvOut {
                in_channels: stem.base_channels,
                out_channels: stem.out_channels,
            },
            Section::StemOut,
            self.eps(),
        );
        if self.channels != stem.base_channels {
            return Err(ArchError::new(
                "up",
                format!(
                    "the up path ends with {} channels but conv_out expects base_channels = {}",
                    self.channels, stem.base_channels
                ),
            ));
        }
        self.run(out, None, false, "");
        Ok(())
    }
}
