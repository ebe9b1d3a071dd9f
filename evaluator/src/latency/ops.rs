//! Kernel-level decomposition of U-Net modules for roofline prediction: each module becomes the
//! list of kernels an eager framework (PyTorch, diffusers' module code) launches for it, with
//! the multiply-accumulates and the bytes each kernel moves.
//!
//! Conventions: activations are read once and written once per kernel; weights are read once
//! per kernel; matmul/convolution kernels run on matrix units (`tensor = true`), everything
//! else is memory-bound. Attention is either fused (one scaled-dot-product kernel whose head
//! dimension is padded to the kernel's tile, as flash-attention kernels do) or materialised
//! (QKᵀ, softmax, AV as three kernels).

use unas_space::{CostQuery, ModuleKind};

/// One kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Op {
    /// What it is (`conv3x3`, `group_norm`, `attention`, ...).
    pub name: &'static str,
    /// Multiply-accumulates (as executed, padding included).
    pub macs: u64,
    /// Bytes read and written.
    pub bytes: u64,
    /// Runs on matrix units.
    pub tensor: bool,
}

/// How attention kernels are modelled.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionModel {
    /// One fused kernel (flash / memory-efficient SDPA) instead of QKᵀ, softmax, AV.
    pub fused: bool,
    /// Head sizes the fused kernels are compiled for; a head dimension is padded up to the next
    /// one (empty: no padding).
    pub head_dim_tiles: Vec<usize>,
}

impl Default for AttentionModel {
    /// Fused attention with flash-attention-2's head-dimension instantiations.
    fn default() -> Self {
        Self {
            fused: true,
            head_dim_tiles: vec![32, 64, 96, 128, 160, 192, 224, 256],
        }
    }
}

impl AttentionModel {
    fn padded(&self, d: usize) -> usize {
        self.head_dim_tiles
            .iter()
            .copied()
            .find(|&t| t >= d)
            .unwrap_or(d)
    }
}

/// Builds kernel lists.
pub struct OpList<'a> {
    /// The kernels so far.
    pub ops: Vec<Op>,
    e: u64,
    attention: &'a AttentionModel,
}

impl<'a> OpList<'a> {
    /// An empty list for `bytes_per_element`-sized data.
    pub fn new(bytes_per_element: u64, attention: &'a AttentionModel) -> Self {
        Self {
            ops: Vec::new(),
            e: bytes_per_element,
            attention,
        }
    }

    /// A matmul of `rows` x `k` by `k` x `n` (weights `k` x `n` read once when `weights`).
    pub fn gemm(&mut self, name: &'static str, rows: u64, k: u64, n: u64, weights: bool) {
        let w = if weights { k * n } else { 0 };
        self.ops.push(Op {
            name,
            macs: rows * k * n,
            bytes: (rows * k + rows * n + w) * self.e,
            tensor: true,
        });
    }

    /// A k x k convolution over `batch` images from `hw_in` to `hw_out` pixels.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        name: &'static str,
        batch: u64,
        hw_in: u64,
        hw_out: u64,
        cin: u64,
        cout: u64,
        k: u64,
    ) {
        self.ops.push(Op {
            name,
            macs: batch * hw_out * cin * cout * k * k,
            bytes: (batch * (hw_in * cin + hw_out * cout) + k * k * cin * cout) * self.e,
            tensor: true,
        });
    }

    /// A memory-bound kernel reading `read` and writing `written` elements.
    pub fn elementwise(&mut self, name: &'static str, read: u64, written: u64) {
        self.ops.push(Op {
            name,
            macs: 0,
            bytes: (read + written) * self.e,
            tensor: false,
        });
    }

    /// Multi-head attention of `n` queries over `m` keys, `heads` heads of size `d`.
    pub fn attention(&mut self, batch: u64, heads: u64, n: u64, m: u64, d: u64) {
        let bh = batch * heads;
        if self.attention.fused {
            let dp = self.attention.padded(d as usize) as u64;
            self.ops.push(Op {
                name: "attention",
                macs: 2 * bh * n * m * dp,
                bytes: bh * (2 * n * d + 2 * m * d) * self.e,
                tensor: true,
            });
        } else {
            self.ops.push(Op {
                name: "attention_qk",
                macs: bh * n * m * d,
                bytes: bh * (n * d + m * d + n * m) * self.e,
                tensor: true,
            });
            self.elementwise("softmax", bh * n * m, bh * n * m);
            self.ops.push(Op {
                name: "attention_av",
                macs: bh * n * m * d,
                bytes: bh * (n * m + m * d + n * d) * self.e,
                tensor: true,
            });
        }
    }

    /// GroupNorm / LayerNorm over `elements` (statistics and normalisation in one kernel).
    pub fn norm(&mut self, elements: u64) {
        self.elementwise("norm", elements, elements);
    }
}

/// Kernels of one run of a U-Net module whose input is `h` x `w` pixels.
pub fn module_ops(
    kind: &ModuleKind,
    h: u64,
    w: u64,
    q: &CostQuery,
    e: u64,
    attention: &AttentionModel,
) -> Vec<Op> {
    let b = q.batch as u64;
    let hw = h * w;
    let mut o = OpList::new(e, attention);
    match *kind {
        ModuleKind::ConvIn {
            in_channels,
            out_channels,
        } => o.conv(
            "conv3x3",
            b,
            hw,
            hw,
            in_channels as u64,
            out_channels as u64,
            3,
        ),
        ModuleKind::TimeEmbedding {
            proj_dim,
            embed_dim,
        } => {
            let (p, d) = (proj_dim as u64, embed_dim as u64);
            // arange * freq, exp, sin, cos, cat: small kernels.
            for _ in 0..5 {
                o.elementwise("timestep_proj", b * p, b * p);
            }
            o.gemm("linear", b, p, d, true);
            o.elementwise("silu", b * d, b * d);
            o.gemm("linear", b, d, d, true);
        }
        ModuleKind::Resnet {
            in_channels,
            out_channels,
            temb_channels,
        } => {
            let (i, c, t) = (
                in_channels as u64,
                out_channels as u64,
                temb_channels as u64,
            );
            o.norm(b * hw * i);
            o.elementwise("silu", b * hw * i, b * hw * i);
            o.conv("conv3x3", b, hw, hw, i, c, 3);
            o.elementwise("silu", b * t, b * t);
            o.gemm("linear", b, t, c, true);
            o.elementwise("add", b * hw * c + b * c, b * hw * c);
            o.norm(b * hw * c);
            o.elementwise("silu", b * hw * c, b * hw * c);
            o.conv("conv3x3", b, hw, hw, c, c, 3);
            if i != c {
                o.conv("conv1x1", b, hw, hw, i, c, 1);
            }
            o.elementwise("add", 2 * b * hw * c, b * hw * c);
        }
        ModuleKind::Attention {
            channels,
            heads,
            cross_attention_dim,
            depth,
        } => {
            let (c, n, m) = (channels as u64, hw, q.text_len as u64);
            let heads = heads.max(1) as u64;
            let d = c / heads;
            let tokens = b * n;
            o.norm(tokens * c);
            o.gemm("proj_in", tokens, c, c, true);
            o.elementwise("permute", tokens * c, tokens * c);
            for _ in 0..depth {
                // Self-attention.
                o.norm(tokens * c);
                for _ in 0..3 {
                    o.gemm("qkv", tokens, c, c, true);
                }
                o.attention(b, heads, n, n, d);
                o.gemm("out", tokens, c, c, true);
                o.elementwise("add", 2 * tokens * c, tokens * c);
                // Cross-attention over the text.
                o.norm(tokens * c);
                o.gemm("q", tokens, c, c, true);
                o.gemm("kv", b * m, cross_attention_dim as u64, c, true);
                o.gemm("kv", b * m, cross_attention_dim as u64, c, true);
                o.attention(b, heads, n, m, d);
                o.gemm("out", tokens, c, c, true);
                o.elementwise("add", 2 * tokens * c, tokens * c);
                // GEGLU feed-forward.
                o.norm(tokens * c);
                o.gemm("ff_proj", tokens, c, 8 * c, true);
                o.elementwise("geglu", 8 * tokens * c, 4 * tokens * c);
                o.gemm("ff_out", tokens, 4 * c, c, true);
                o.elementwise("add", 2 * tokens * c, tokens * c);
            }
            o.elementwise("permute", tokens * c, tokens * c);
            o.gemm("proj_out", tokens, c, c, true);
            o.elementwise("add", 2 * tokens * c, tokens * c);
        }
        ModuleKind::Downsample { channels } => {
            let c = channels as u64;
            o.conv("conv3x3_s2", b, hw, h.div_ceil(2) * w.div_ceil(2), c, c, 3);
        }
        ModuleKind::Upsample { channels } => {
            let c = channels as u64;
            o.elementwise("nearest2x", b * hw * c, 4 * b * hw * c);
            o.conv("conv3x3", b, 4 * hw, 4 * hw, c, c, 3);
        }
        ModuleKind::ConvOut {
            in_channels,
            out_channels,
        } => {
            let (i, c) = (in_channels as u64, out_channels as u64);
            o.norm(b * hw * i);
            o.elementwise("silu", b * hw * i, b * hw * i);
            o.conv("conv3x3", b, hw, hw, i, c, 3);
        }
    }
    o.ops
}
