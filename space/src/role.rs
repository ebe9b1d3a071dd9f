//! Roles: what a module does in a U-Net, independent of where it sits in the module list.
//!
//! Two architectures of one family share a module when it plays the same role in both: same
//! section (stem, down stage `s`, mid, the up stage mirroring down stage `s`), same kind and the
//! same index among the modules of that kind in that section — the first k ResNets and first m
//! attentions of a block — with one exception: the last ResNet of an up stage, the one that
//! takes the cross-stage skip (the previous stage's downsampled output, or `conv_in`'s), is its
//! own role, so an up stage with fewer ResNets keeps its cross-skip ResNet. Up stages are
//! counted from the top (by the down stage they mirror), so a network with one stage fewer
//! (DeciDiffusion's "two fewer up and down blocks") shares every stage it has with the larger
//! one. Weight inheritance and weight-sharing supernets match modules this way, never by
//! position (`blocks.3` is an attention in one plan and a ResNet in another).

use std::collections::HashMap;
use std::fmt;

use crate::arch::UNetArch;
use crate::error::ArchError;
use crate::plan::{ModuleKind, Plan, Section};

/// Where a role sits; up stages are named by the down stage they mirror (0 = full resolution).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoleSection {
    /// `conv_in`, `time_embedding`, `conv_norm_out` + `conv_out`.
    Stem,
    /// Down stage `s` (0 = highest resolution).
    Down(usize),
    /// The mid block.
    Mid,
    /// The up stage mirroring down stage `s`.
    Up(usize),
}

/// What a module does within its section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoleKind {
    /// `conv_in`.
    ConvIn,
    /// `time_embedding`.
    TimeEmbedding,
    /// `conv_norm_out` + `conv_out`.
    ConvOut,
    /// The `k`-th ResNet of the section (up stages: not the last one).
    Resnet(usize),
    /// The last ResNet of an up stage: it concatenates the cross-stage skip.
    CrossSkipResnet,
    /// The `k`-th attention block of the section.
    Attention(usize),
    /// The section's downsampler.
    Downsample,
    /// The section's upsampler.
    Upsample,
}

/// A module's role; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role {
    /// Section.
    pub section: RoleSection,
    /// Kind and index.
    pub kind: RoleKind,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.section {
            RoleSection::Stem => write!(f, "stem ")?,
            RoleSection::Down(s) => write!(f, "down {s} ")?,
            RoleSection::Mid => write!(f, "mid ")?,
            RoleSection::Up(s) => write!(f, "up (mirrors down {s}) ")?,
        }
        match self.kind {
            RoleKind::ConvIn => write!(f, "conv_in"),
            RoleKind::TimeEmbedding => write!(f, "time_embedding"),
            RoleKind::ConvOut => write!(f, "conv_out"),
            RoleKind::Resnet(k) => write!(f, "resnet {k}"),
            RoleKind::CrossSkipResnet => write!(f, "cross-skip resnet"),
            RoleKind::Attention(k) => write!(f, "attention {k}"),
            RoleKind::Downsample => write!(f, "downsample"),
            RoleKind::Upsample => write!(f, "upsample"),
        }
    }
}

impl Plan {
    /// The role of every module, in [`Plan::modules`] order (`stages` = the architecture's
    /// stage count, to name up stages by the down stage they mirror).
    pub fn roles(&self, stages: usize) -> Vec<Role> {
        let section = |s: Section| match s {
            Section::StemIn | Section::StemOut => RoleSection::Stem,
            Section::Down(s) => RoleSection::Down(s),
            Section::Mid => RoleSection::Mid,
            Section::Up(u) => RoleSection::Up(stages - 1 - u),
        };
        let mut up_resnets: HashMap<RoleSection, usize> = HashMap::new();
        for m in &self.modules {
            if let (Section::Up(_), ModuleKind::Resnet { .. }) = (m.section, m.kind) {
                *up_resnets.entry(section(m.section)).or_default() += 1;
            }
        }
        let mut seen: HashMap<(RoleSection, bool), usize> = HashMap::new();
        self.modules
            .iter()
            .map(|m| {
                let sec = section(m.section);
                let mut next = |is_resnet: bool| {
                    let c = seen.entry((sec, is_resnet)).or_default();
                    *c += 1;
                    *c - 1
                };
                let kind = match m.kind {
                    ModuleKind::ConvIn { .. } => RoleKind::ConvIn,
                    ModuleKind::TimeEmbedding { .. } => RoleKind::TimeEmbedding,
                    ModuleKind::ConvOut { .. } => RoleKind::ConvOut,
                    ModuleKind::Downsample { .. } => RoleKind::Downsample,
                    ModuleKind::Upsample { .. } => RoleKind::Upsample,
                    ModuleKind::Attention { .. } => RoleKind::Attention(next(false)),
                    ModuleKind::Resnet { .. } => {
                        let k = next(true);
                        match up_resnets.get(&sec) {
                            Some(&n) if k + 1 == n => RoleKind::CrossSkipResnet,
                            _ => RoleKind::Resnet(k),
                        }
                    }
                };
                Role { section: sec, kind }
            })
            .collect()
    }
}

/// Where each module of `sub` sits in `sup`, matched by role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleMap {
    /// For every module of `sub`'s plan, the index of the module of `sup`'s plan with the same
    /// role, when `sup` has one.
    pub to_super: Vec<Option<usize>>,
    /// Roles of `sub`'s modules, in plan order.
    pub roles: Vec<Role>,
}

impl RoleMap {
    /// Matches the modules of `sub` to those of `sup` by role (see the module docs).
    pub fn new(sub: &UNetArch, sup: &UNetArch) -> Result<Self, ArchError> {
        let (sp, pp) = (sub.plan()?, sup.plan()?);
        let roles = sp.roles(sub.stages());
        let index: HashMap<Role, usize> = pp
            .roles(sup.stages())
            .into_iter()
            .enumerate()
            .map(|(i, r)| (r, i))
            .collect();
        let to_super = roles.iter().map(|r| index.get(r).copied()).collect();
        Ok(Self { to_super, roles })
    }

    /// Checks that every module of `sub` has a counterpart in `sup` of exactly the same kind
    /// and shape (and norm epsilon): `sub` is then a sub-network of `sup` that can run on its
    /// modules. The error names the first module that does not match.
    pub fn check_subnetwork(&self, sub: &UNetArch, sup: &UNetArch) -> Result<(), ArchError> {
        // A layout wires the same modules differently (where the stage's resampling sits, what
        // each skip carries): a supernet trains only its own layout's wiring.
        if sub.layout != sup.layout {
            return Err(ArchError::new(
                "layout",
                format!(
                    "`{:?}` here but `{:?}` in the supernet: another topology, not a sub-network",
                    sub.layout, sup.layout
                ),
            ));
        }
        let (sp, pp) = (sub.plan()?, sup.plan()?);
        for ((m, role), target) in sp.modules.iter().zip(&self.roles).zip(&self.to_super) {
            let Some(j) = *target else {
                return Err(ArchError::new(
                    "arch",
                    format!("{role} (`{}`) has no counterpart in the supernet", m.key),
                ));
            };
            let s = &pp.modules[j];
            if s.kind != m.kind || s.norm_eps != m.norm_eps {
                return Err(ArchError::new(
                    "arch",
                    format!(
                        "{role} (`{}`) is {:?} here but {:?} in the supernet (`{}`): not a \
                         sub-network of it",
                        m.key, m.kind, s.kind, s.key
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::preset;

    #[test]
    fn up_stage_last_resnet_is_the_cross_skip_role() {
        let arch = preset("tiny-nas");
        let plan = arch.plan().unwrap();
        let roles = plan.roles(arch.stages());
        // up_blocks.0 mirrors down stage 2 and has 2 ResNets: resnet 0, then the cross-skip one.
        let of = |key: &str| roles[plan.modules.iter().position(|m| m.key == key).unwrap()];
        let up0: Vec<Role> = plan
            .modules
            .iter()
            .zip(&roles)
            .filter(|(m, _)| m.key.starts_with("up_blocks.0.") && m.kind.type_name() == "resnet")
            .map(|(_, r)| *r)
            .collect();
        assert_eq!(
            up0,
            vec![
                Role {
                    section: RoleSection::Up(2),
                    kind: RoleKind::Resnet(0)
                },
                Role {
                    section: RoleSection::Up(2),
                    kind: RoleKind::CrossSkipResnet
                }
            ]
        );
        assert_eq!(
            of("conv_in"),
            Role {
                section: RoleSection::Stem,
                kind: RoleKind::ConvIn
            }
        );
        // Roles are unique within one plan.
        let unique: std::collections::HashSet<_> = roles.iter().collect();
        assert_eq!(unique.len(), roles.len());
    }

    #[test]
    fn shallower_arch_maps_to_the_same_roles_not_positions() {
        let big = preset("tiny-nas");
        let mut small = big.clone();
        small.down[1].resnets = 1; // down 1: R A -> fewer modules before every later one
        small.up[1].resnets = 2;
        small.up[1].attentions = 1;
        let map = RoleMap::new(&small, &big).unwrap();
        map.check_subnetwork(&small, &big).unwrap();
        let (sp, bp) = (small.plan().unwrap(), big.plan().unwrap());
        let big_roles = bp.roles(big.stages());
        let mut shifted = 0;
        for (i, j) in map.to_super.iter().enumerate() {
            let j = j.unwrap();
            assert_eq!(map.roles[i], big_roles[j]);
            assert_eq!(sp.modules[i].kind, bp.modules[j].kind);
            shifted += usize::from(i != j);
        }
        assert!(shifted > 0, "positions differ, roles match");
    }

    #[test]
    fn narrower_width_is_not_a_subnetwork() {
        let big = preset("tiny-nas");
        let mut small = big.clone();
        small.down[1].out_channels = 32;
        let map = RoleMap::new(&small, &big).unwrap();
        let err = map.check_subnetwork(&small, &big).unwrap_err();
        assert!(err.to_string().contains("not a sub-network"), "{err}");
    }
}
