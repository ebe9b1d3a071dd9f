//! The checks of an architecture that need no walk: counts, widths, norms, heads, and the
//! fixed pattern of the diffusers layout.

use crate::arch::{Interleave, Layout, UNetArch};
use crate::error::ArchError;

impl UNetArch {
    /// Checks that need no walk: counts, divisibility, layout rules.
    pub(super) fn check_static(&self) -> Result<(), ArchError> {
        self.check_stem()?;
        if self.down.is_empty() {
            return Err(ArchError::new("down", "needs at least one down stage"));
        }
        if self.up.len() != self.down.len() {
            return Err(ArchError::new(
                "up",
                format!(
                    "has {} stages but `down` has {}; the U-Net is symmetric",
                    self.up.len(),
                    self.down.len()
                ),
            ));
        }
        if self.layout != Layout::Flexible && self.interleave != Interleave::Alternate {
            return Err(ArchError::new(
                "interleave",
                "the diffusers layout only supports `alternate`",
            ));
        }
        self.check_down()?;
        self.check_mid()?;
        self.check_up()
    }

    /// The stem's counts, norms, heads and width.
    fn check_stem(&self) -> Result<(), ArchError> {
        let st = &self.stem;
        let positive = [
            ("stem.in_channels", st.in_channels),
            ("stem.out_channels", st.out_channels),
            ("stem.base_channels", st.base_channels),
            ("stem.time_embed_dim", st.time_embed_dim),
            ("stem.cross_attention_dim", st.cross_attention_dim),
            ("stem.norm_groups", st.norm_groups),
            ("stem.transformer_depth", st.transformer_depth),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(ArchError::new(field, "must be at least 1"));
            }
        }
        for (field, v) in [
            ("stem.norm_eps", st.norm_eps),
            ("stem.attention_norm_eps", st.attention_norm_eps),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(ArchError::new(field, format!("must be in (0, 1), got {v}")));
            }
        }
        if !st.freq_shift.is_finite() {
            return Err(ArchError::new("stem.freq_shift", "must be finite"));
        }
        match (st.heads, st.head_dim) {
            (Some(_), Some(_)) => {
                return Err(ArchError::new(
                    "stem.heads",
                    "set either `heads` or `head_dim`, not both",
                ))
            }
            (None, None) => {
                return Err(ArchError::new(
                    "stem.heads",
                    "missing: set `heads` (attention heads) or `head_dim` (channels per head)",
                ))
            }
            (Some(0), _) => return Err(ArchError::new("stem.heads", "must be at least 1")),
            (_, Some(0)) => return Err(ArchError::new("stem.head_dim", "must be at least 1")),
            _ => {}
        }
        if !st.base_channels.is_multiple_of(st.norm_groups) {
            return Err(ArchError::new(
                "stem.base_channels",
                format!(
                    "{} is not divisible by norm_groups = {}",
                    st.base_channels, st.norm_groups
                ),
            ));
        }
        Ok(())
    }

    /// Each down stage's width, counts and (diffusers layout) its fixed pattern.
    fn check_down(&self) -> Result<(), ArchError> {
        let flexible = self.layout == Layout::Flexible;
        let n = self.down.len();
        for (s, d) in self.down.iter().enumerate() {
            let f = |x: &str| format!("down[{s}].{x}");
            if d.out_channels == 0 {
                return Err(ArchError::new(f("out_channels"), "must be at least 1"));
            }
            self.check_width(&f("out_channels"), d.out_channels, d.attentions > 0)?;
            if d.resnets == 0 {
                return Err(ArchError::new(
                    f("resnets"),
                    "must be at least 1 (a stage starts with a ResNet)",
                ));
            }
            if !flexible {
                if d.attentions != 0 && d.attentions != d.resnets {
                    return Err(ArchError::new(
                        f("attentions"),
                        format!(
                            "the diffusers layout needs 0 or one attention per ResNet ({}), got {}",
                            d.resnets, d.attentions
                        ),
                    ));
                }
                let last = s == n - 1;
                if d.downsample == last {
                    return Err(ArchError::new(
                        f("downsample"),
                        "the diffusers layout downsamples after every stage but the last",
                    ));
                }
                if d.downsample && !d.keep_downsample_skip {
                    return Err(ArchError::new(
                        f("keep_downsample_skip"),
                        "the diffusers layout keeps every downsampled output as a skip",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The mid block's counts and width.
    fn check_mid(&self) -> Result<(), ArchError> {
        let flexible = self.layout == Layout::Flexible;
        let mid = &self.mid;
        if mid.resnets == 0 {
            return Err(ArchError::new("mid.resnets", "must be at least 1"));
        }
        self.check_width("mid", self.mid_channels(), mid.attentions > 0)?;
        if !flexible {
            if mid.attentions + 1 != mid.resnets {
                return Err(ArchError::new(
                    "mid.attentions",
                    format!(
                        "the diffusers layout's mid block is ResNet, (attention, ResNet) x n: \
                         attentions must be resnets - 1 = {}, got {}",
                        mid.resnets.saturating_sub(1),
                        mid.attentions
                    ),
                ));
            }
            if mid.upsample {
                return Err(ArchError::new(
                    "mid.upsample",
                    "the diffusers layout's mid block does not upsample",
                ));
            }
        }
        Ok(())
    }

    /// Each up stage's counts, width and (diffusers layout) its fixed pattern.
    fn check_up(&self) -> Result<(), ArchError> {
        let flexible = self.layout == Layout::Flexible;
        let n = self.down.len();
        for (u, st) in self.up.iter().enumerate() {
            let f = |x: &str| format!("up[{u}].{x}");
            let (_, _, out) = self.up_channels(u);
            if st.resnets == 0 {
                return Err(ArchError::new(
                    f("resnets"),
                    "must be at least 1 (each ResNet consumes one skip)",
                ));
            }
            self.check_width(&f("attentions"), out, st.attentions > 0)?;
            if !flexible {
                if st.attentions != 0 && st.attentions != st.resnets {
                    return Err(ArchError::new(
                        f("attentions"),
                        format!(
                            "the diffusers layout needs 0 or one attention per ResNet ({}), got {}",
                            st.resnets, st.attentions
                        ),
                    ));
                }
                if st.upsample != (u != n - 1) {
                    return Err(ArchError::new(
                        f("upsample"),
                        "the diffusers layout upsamples after every up stage but the last",
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_width(&self, field: &str, channels: usize, attention: bool) -> Result<(), ArchError> {
        let st = &self.stem;
        if !channels.is_multiple_of(st.norm_groups) {
            return Err(ArchError::new(
                field,
                format!(
                    "{channels} channels are not divisible by norm_groups = {}",
                    st.norm_groups
                ),
            ));
        }
        if attention {
            st.heads_divide(channels)
                .map_err(|m| ArchError::new(field, m))?;
        }
        Ok(())
    }
}
