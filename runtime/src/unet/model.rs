//! `UNet2DConditionModel`: the whole U-Net, built by walking a [`Plan`] so that any valid
//! [`UNetArch`] (diffusers or flexible layout, any block order) runs.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use unas_space::{ModuleKind, Plan, PlanModule, Step, UNetArch};

use crate::error::RuntimeError;
use crate::nn::{
    Downsample2D, Downsample2DConfig, ResnetBlock2D, ResnetBlock2DConfig, Upsample2D,
    Upsample2DConfig,
};
use crate::ops::conv2d;
use crate::unet::conv_out::{ConvOut, ConvOutConfig};
use crate::unet::time_embedding::{TimestepEmbedding, TimestepEmbeddingConfig};
use crate::unet::transformer_2d::{Transformer2DModel, Transformer2DModelConfig};
use crate::weights::{LoadWeights, Weights};

/// One module of the plan.
// Variants differ in size, but a U-Net holds a few hundred blocks at most.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum UNetBlock<B: Backend> {
    /// `time_embedding`.
    TimeEmbedding(TimestepEmbedding<B>),
    /// `conv_in` (3x3, padding 1).
    ConvIn(Conv2d<B>),
    /// A ResNet.
    Resnet(ResnetBlock2D<B>),
    /// A Transformer2D attention block.
    Attention(Transformer2DModel<B>),
    /// A downsampler.
    Downsample(Downsample2D<B>),
    /// An upsampler.
    Upsample(Upsample2D<B>),
    /// `conv_norm_out` + `conv_out`.
    ConvOut(ConvOut<B>),
}

impl<B: Backend> UNetBlock<B> {
    /// Builds the module of one plan entry with random weights.
    pub fn init(arch: &UNetArch, module: &PlanModule, device: &B::Device) -> Self {
        let st = &arch.stem;
        let groups = st.norm_groups;
        let eps = module.norm_eps;
        match module.kind {
            ModuleKind::TimeEmbedding {
                proj_dim,
                embed_dim,
            } => UNetBlock::TimeEmbedding(
                TimestepEmbeddingConfig::new(proj_dim, embed_dim)
                    .with_flip_sin_to_cos(st.flip_sin_to_cos)
                    .with_freq_shift(st.freq_shift)
                    .init(device),
            ),
            ModuleKind::ConvIn {
                in_channels,
                out_channels,
            } => UNetBlock::ConvIn(
                Conv2dConfig::new([in_channels, out_channels], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device),
            ),
            ModuleKind::Resnet {
                in_channels,
                out_channels,
                temb_channels,
            } => UNetBlock::Resnet(
                ResnetBlock2DConfig::new(in_channels, out_channels)
                    .with_temb_channels(Some(temb_channels))
                    .with_groups(groups)
                    .with_eps(eps)
                    .init(device),
            ),
            ModuleKind::Attention {
                channels,
                heads,
                cross_attention_dim,
                depth,
            } => UNetBlock::Attention(
                Transformer2DModelConfig::new(channels, heads, cross_attention_dim)
                    .with_depth(depth)
                    .with_groups(groups)
                    .with_eps(eps)
                    .with_use_linear_projection(st.use_linear_projection)
                    .init(device),
            ),
            ModuleKind::Downsample { channels } => {
                UNetBlock::Downsample(Downsample2DConfig::new(channels).init(device))
            }
            ModuleKind::Upsample { channels } => {
                UNetBlock::Upsample(Upsample2DConfig::new(channels).init(device))
            }
            ModuleKind::ConvOut {
                in_channels,
                out_channels,
            } => UNetBlock::ConvOut(
                ConvOutConfig::new(in_channels, out_channels)
                    .with_groups(groups)
                    .with_eps(eps)
                    .init(device),
            ),
        }
    }
}

impl<B: Backend> LoadWeights<B> for UNetBlock<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        match self {
            UNetBlock::TimeEmbedding(m) => m.load_weights(weights, prefix, device),
            UNetBlock::ConvIn(m) => m.load_weights(weights, prefix, device),
            UNetBlock::Resnet(m) => m.load_weights(weights, prefix, device),
            UNetBlock::Attention(m) => m.load_weights(weights, prefix, device),
            UNetBlock::Downsample(m) => m.load_weights(weights, prefix, device),
            UNetBlock::Upsample(m) => m.load_weights(weights, prefix, device),
            UNetBlock::ConvOut(m) => m.load_weights(weights, prefix, device),
        }
    }
}

/// State carried between the steps of one forward pass.
pub struct ForwardState<B: Backend> {
    /// Current hidden states `[batch, c, h, w]`.
    pub hidden: Tensor<B, 4>,
    /// Time embedding `[batch, time_embed_dim]`, once computed.
    pub temb: Option<Tensor<B, 2>>,
    /// Skip connections not yet consumed, most recent last.
    pub skips: Vec<Tensor<B, 4>>,
    timesteps: Tensor<B, 1>,
    context: Tensor<B, 3>,
}

/// A latent-diffusion U-Net conditioned on a timestep and text embeddings.
#[derive(Module, Debug)]
pub struct UNet2DConditionModel<B: Backend> {
    /// The plan's modules, in plan order.
    pub blocks: Vec<UNetBlock<B>>,
    #[module(skip)]
    keys: Vec<String>,
    #[module(skip)]
    steps: Vec<Step>,
    #[module(skip)]
    max_div: usize,
    #[module(skip)]
    in_channels: usize,
    #[module(skip)]
    cross_attention_dim: usize,
}

impl<B: Backend> UNet2DConditionModel<B> {
    /// Builds the U-Net of `arch` with random weights.
    pub fn init(arch: &UNetArch, device: &B::Device) -> Result<Self, RuntimeError> {
        let plan = arch.plan()?;
        Ok(Self::from_plan(arch, &plan, device))
    }

    /// Builds the U-Net of `arch` with random weights, initialised now rather than lazily on
    /// first use (burn defers random initialisation until a parameter is read).
    pub fn init_materialized(arch: &UNetArch, device: &B::Device) -> Result<Self, RuntimeError> {
        let model = Self::init(arch, device)?;
        struct Touch;
        impl<B: Backend> ModuleVisitor<B> for Touch {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let _ = param.val();
            }
        }
        model.visit(&mut Touch);
        Ok(model)
    }

    /// Builds the U-Net of an already computed plan of `arch` with random weights.
    pub fn from_plan(arch: &UNetArch, plan: &Plan, device: &B::Device) -> Self {
        let blocks = plan
            .modules
            .iter()
            .map(|m| UNetBlock::init(arch, m, device))
            .collect();
        Self::from_blocks(arch, plan, blocks)
    }

    /// Assembles the U-Net of `plan` from existing modules, one per plan module in plan order
    /// (the caller guarantees their kinds and shapes; a supernet's sub-network uses this).
    pub fn from_blocks(arch: &UNetArch, plan: &Plan, blocks: Vec<UNetBlock<B>>) -> Self {
        debug_assert_eq!(blocks.len(), plan.modules.len());
        Self {
            blocks,
            keys: plan.modules.iter().map(|m| m.key.clone()).collect(),
            steps: plan.steps.clone(),
            max_div: plan.max_div,
            in_channels: arch.stem.in_channels,
            cross_attention_dim: arch.stem.cross_attention_dim,
        }
    }

    /// Builds the U-Net of `arch` and loads a diffusers safetensors file (f32, f16 or bf16).
    /// Every parameter must be in the file with its exact shape and the file must hold nothing
    /// else.
    pub fn load(arch: &UNetArch, path: &Path, device: &B::Device) -> Result<Self, RuntimeError> {
        let mut model = Self::init(arch, device)?;
        let mut weights = Weights::open(path)?;
        model.load_weights_from(&mut weights, device)?;
        weights.finish()?;
        Ok(model)
    }

    /// Writes the parameters as a diffusers safetensors file, under the keys [`Self::load`]
    /// reads (through its loader: [`crate::save`]); `load` on the file gives them back bit for
    /// bit.
    pub fn save(&self, path: &Path) -> Result<(), RuntimeError> {
        crate::save::save_safetensors(self, Self::load_weights_from, path)
    }

    /// Loads every module's parameters from `weights` under its plan key (does not check for
    /// left-over tensors; see [`Weights::finish`]).
    pub fn load_weights_from(
        &mut self,
        weights: &mut Weights,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        for (block, key) in self.blocks.iter_mut().zip(&self.keys) {
            block.load_weights(weights, key, device)?;
        }
        Ok(())
    }

    /// The forward steps (plan order).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Checks input shapes: latent `[b, in_channels, h, w]` with h, w divisible by the
    /// U-Net's downsampling factor; timesteps `[b]` or `[1]`; context `[b, len, cross_dim]`.
    pub fn check_inputs(
        &self,
        sample: [usize; 4],
        timesteps: [usize; 1],
        context: [usize; 3],
    ) -> Result<(), RuntimeError> {
        let [b, c, h, w] = sample;
        if c != self.in_channels {
            return Err(RuntimeError::Input(format!(
                "latent has {c} channels, the U-Net expects {}",
                self.in_channels
            )));
        }
        if h % self.max_div != 0 || w % self.max_div != 0 || h == 0 || w == 0 {
            return Err(RuntimeError::Input(format!(
                "a {h}x{w} latent is not divisible by the U-Net's downsampling factor {}",
                self.max_div
            )));
        }
        if timesteps[0] != b && timesteps[0] != 1 {
            return Err(RuntimeError::Input(format!(
                "{} timesteps for a batch of {b}",
                timesteps[0]
            )));
        }
        if context[0] != b || context[2] != self.cross_attention_dim {
            return Err(RuntimeError::Input(format!(
                "text embeddings have shape {context:?}, expected [{b}, len, {}]",
                self.cross_attention_dim
            )));
        }
        Ok(())
    }

    /// Starts a forward pass (see [`Self::step`]).
    pub fn start(
        &self,
        sample: Tensor<B, 4>,
        timesteps: Tensor<B, 1>,
        context: Tensor<B, 3>,
    ) -> ForwardState<B> {
        let batch = sample.dims()[0];
        let timesteps = if timesteps.dims()[0] == 1 && batch > 1 {
            timesteps.expand([batch])
        } else {
            timesteps
        };
        ForwardState {
            hidden: sample,
            temb: None,
            skips: Vec::new(),
            timesteps,
            context,
        }
    }

    /// Runs forward step `i` of the plan on `state`.
    pub fn step(&self, i: usize, state: &mut ForwardState<B>) {
        self.run_step(&self.steps[i], state);
    }

    /// Runs `step` (whose `module` indexes [`Self::blocks`]) on `state`: a sub-network of a
    /// supernet runs its own steps over the supernet's modules this way.
    pub fn run_step(&self, step: &Step, state: &mut ForwardState<B>) {
        let h = state.hidden.clone();
        let temb = || state.temb.clone().expect("time embedding runs first");
        state.hidden = match &self.blocks[step.module] {
            UNetBlock::TimeEmbedding(m) => {
                state.temb = Some(m.forward(state.timesteps.clone()));
                h
            }
            UNetBlock::ConvIn(m) => conv2d(m, h),
            UNetBlock::Resnet(m) => {
                let h = match step.pop_skip {
                    Some(_) => {
                        let skip = state.skips.pop().expect("plan guarantees a skip");
                        Tensor::cat(vec![h, skip], 1)
                    }
                    None => h,
                };
                m.forward(h, Some(temb()))
            }
            UNetBlock::Attention(m) => m.forward(h, state.context.clone()),
            UNetBlock::Downsample(m) => m.forward(h),
            UNetBlock::Upsample(m) => m.forward(h),
            UNetBlock::ConvOut(m) => m.forward(h),
        };
        if step.push_skip {
            state.skips.push(state.hidden.clone());
        }
    }

    /// Predicts the noise (or v) for a noisy latent.
    ///
    /// - sample: `[batch, in_channels, h, w]` (h, w divisible by the downsampling factor)
    /// - timesteps: `[batch]` or `[1]` (float timesteps)
    /// - context: `[batch, text_len, cross_attention_dim]`
    /// - output: `[batch, out_channels, h, w]`
    ///
    /// Panics on inconsistent shapes; call [`Self::check_inputs`] first for an error instead.
    pub fn forward(
        &self,
        sample: Tensor<B, 4>,
        timesteps: Tensor<B, 1>,
        context: Tensor<B, 3>,
    ) -> Tensor<B, 4> {
        let mut state = self.start(sample, timesteps, context);
        for i in 0..self.steps.len() {
            self.step(i, &mut state);
        }
        state.hidden
    }
}
