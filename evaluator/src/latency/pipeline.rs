//! Kernel lists of the parts of a text-to-image pipeline around the U-Net, for predicting
//! whole-pipeline times (published figures are per image): the CLIP ViT-L/14 text encoder,
//! SD's AutoencoderKL decoder (512 px from a 64x64 latent; the `vae/config.json` of the public
//! SD1.5 release), and the per-step
//! guidance and scheduler arithmetic.

use super::ops::{AttentionModel, Op, OpList};

/// Text-encoder shape (CLIP ViT-L/14 text: 12 layers, width 768, 12 heads, MLP 3072).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextEncoderShape {
    /// Transformer layers.
    pub layers: u64,
    /// Width.
    pub width: u64,
    /// Heads.
    pub heads: u64,
    /// MLP hidden width.
    pub mlp: u64,
}

/// CLIP ViT-L/14's text tower.
pub const CLIP_L: TextEncoderShape = TextEncoderShape {
    layers: 12,
    width: 768,
    heads: 12,
    mlp: 3072,
};

/// Kernels of one text-encoder forward over `batch` prompts of `tokens` tokens.
pub fn text_encoder_ops(
    s: &TextEncoderShape,
    batch: u64,
    tokens: u64,
    e: u64,
    attention: &AttentionModel,
) -> Vec<Op> {
    let mut o = OpList::new(e, attention);
    let t = batch * tokens;
    let c = s.width;
    o.elementwise("embed", t * c, t * c);
    for _ in 0..s.layers {
        o.norm(t * c);
        for _ in 0..3 {
            o.gemm("qkv", t, c, c, true);
        }
        o.attention(batch, s.heads, tokens, tokens, c / s.heads);
        o.gemm("out", t, c, c, true);
        o.elementwise("add", 2 * t * c, t * c);
        o.norm(t * c);
        o.gemm("fc1", t, c, s.mlp, true);
        o.elementwise("quick_gelu", t * s.mlp, t * s.mlp);
        o.gemm("fc2", t, s.mlp, c, true);
        o.elementwise("add", 2 * t * c, t * c);
    }
    o.norm(t * c);
    o.ops
}

/// Kernels of SD's VAE decoder (block_out_channels [128, 256, 512, 512], 2 layers per block,
/// i.e. 3 ResNets per up block, a single-head mid attention) for `images` latents of side
/// `latent`.
pub fn vae_decoder_ops(images: u64, latent: u64, e: u64, attention: &AttentionModel) -> Vec<Op> {
    let mut o = OpList::new(e, attention);
    let b = images;
    let mut side = latent;
    let hw = |s: u64| s * s;
    o.conv("post_quant_conv", b, hw(side), hw(side), 4, 4, 1);
    o.conv("conv_in", b, hw(side), hw(side), 4, 512, 3);
    let resnet = |o: &mut OpList, s: u64, i: u64, c: u64| {
        let p = hw(s);
        o.norm(b * p * i);
        o.elementwise("silu", b * p * i, b * p * i);
        o.conv("conv3x3", b, p, p, i, c, 3);
        o.norm(b * p * c);
        o.elementwise("silu", b * p * c, b * p * c);
        o.conv("conv3x3", b, p, p, c, c, 3);
        if i != c {
            o.conv("conv1x1", b, p, p, i, c, 1);
        }
        o.elementwise("add", 2 * b * p * c, b * p * c);
    };
    // Mid block: ResNet, single-head attention over all pixels, ResNet.
    resnet(&mut o, side, 512, 512);
    let n = hw(side);
    o.norm(b * n * 512);
    for _ in 0..3 {
        o.gemm("qkv", b * n, 512, 512, true);
    }
    o.attention(b, 1, n, n, 512);
    o.gemm("out", b * n, 512, 512, true);
    o.elementwise("add", 2 * b * n * 512, b * n * 512);
    resnet(&mut o, side, 512, 512);
    // Up blocks: widths 512, 512, 256, 128; upsample after all but the last.
    let widths = [512u64, 512, 256, 128];
    let mut cin = 512u64;
    for (i, &c) in widths.iter().enumerate() {
        for r in 0..3 {
            resnet(&mut o, side, if r == 0 { cin } else { c }, c);
        }
        cin = c;
        if i + 1 < widths.len() {
            o.elementwise("nearest2x", b * hw(side) * c, 4 * b * hw(side) * c);
            side *= 2;
            o.conv("conv3x3", b, hw(side), hw(side), c, c, 3);
        }
    }
    let p = hw(side);
    o.norm(b * p * 128);
    o.elementwise("silu", b * p * 128, b * p * 128);
    o.conv("conv_out", b, p, p, 128, 3, 3);
    o.ops
}

/// Per-step kernels outside the U-Net: classifier-free guidance (chunk, sub, mul, add) and a
/// DDIM/PNDM-style update (a handful of scalar-vector kernels) on the latents.
pub fn step_ops(batch: u64, latent: u64, e: u64, attention: &AttentionModel) -> Vec<Op> {
    let mut o = OpList::new(e, attention);
    let x = batch * 4 * latent * latent;
    o.elementwise("cat", x / 2, x);
    for _ in 0..3 {
        o.elementwise("guidance", x, x / 2);
    }
    for _ in 0..6 {
        o.elementwise("scheduler", x, x / 2);
    }
    o.ops
}
