//! The U-Net's heavy layers as single autodiff ops on burn's Flex CPU backend, for training.
//!
//! burn's autodiff records each layer as a dozen generic ops (GroupNorm alone is ~8 passes,
//! attention a matmul, a softmax and reshapes per head), each run again backwards through
//! strided iterators. Here GroupNorm(+SiLU), LayerNorm, GEGLU, multi-head attention and 2-D
//! convolution (upsampling folded in) each record one op whose forward is the fused kernel of
//! [`super::cpu`] and whose backward is the matching kernel of [`super::cpu_grad`]; burn's
//! `Backward` trait wires them into the graph (its custom-kernel pattern). Only
//! `Autodiff<Flex>` with f32 takes these paths; every other backend composes burn ops.

use std::any::{Any, TypeId};
use std::fmt;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData, TensorMetadata, TensorPrimitive};
use burn_flex::FlexTensor;

use super::cpu::{self, AttentionDims, ConvDims};
use super::cpu_grad;

type Ad = Autodiff<Flex>;
type AdTensor = burn::tensor::ops::FloatTensor<Ad>;

/// Whether `B` is burn's autodiff over the Flex CPU backend (the training fast paths apply).
pub(crate) fn is_flex_autodiff<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<Ad>()
}

/// Whether every tensor is an f32 `Autodiff<Flex>` tensor.
pub(crate) fn applies<B: Backend>(dtypes: &[DType]) -> bool {
    is_flex_autodiff::<B>() && dtypes.iter().all(|&d| d == DType::F32)
}

fn to_ad<B: Backend, const D: usize>(t: Tensor<B, D>) -> AdTensor {
    let prim: Box<dyn Any> = Box::new(t.into_primitive().tensor());
    *prim
        .downcast::<AdTensor>()
        .unwrap_or_else(|_| unreachable!("only called when B is Autodiff<Flex>"))
}

fn from_ad<B: Backend, const D: usize>(t: AdTensor) -> Tensor<B, D> {
    let prim: Box<dyn Any> = Box::new(t);
    let prim = *prim
        .downcast::<B::FloatTensorPrimitive>()
        .unwrap_or_else(|_| unreachable!("only called when B is Autodiff<Flex>"));
    Tensor::from_primitive(TensorPrimitive::Float(prim))
}

/// Contiguous values of a Flex tensor (shares the buffer when already contiguous).
#[derive(Clone)]
struct Values(FlexTensor);

impl Values {
    fn of(t: &FlexTensor) -> Self {
        Self(t.to_contiguous())
    }
    fn get(&self) -> &[f32] {
        self.0.as_slice::<f32>().expect("contiguous f32 tensor")
    }
    fn dims(&self) -> Vec<usize> {
        self.0.shape().to_vec()
    }
}

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Values({:?})", self.0.shape().to_vec())
    }
}

fn flex(values: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

/// Registers `op` with `parents` in the graph and returns its output.
fn record<BO, S, const N: usize>(
    op: BO,
    parents: [&AdTensor; N],
    state: impl FnOnce() -> S,
    output: FlexTensor,
) -> AdTensor
where
    BO: Backward<Flex, N, State = S>,
    S: Clone + Send + fmt::Debug + 'static,
{
    match op
        .prepare::<NoCheckpointing>(parents.map(|p| p.node.clone()))
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state(), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// Registers `grad` (shape `dims`) for `parent`, when it requires a gradient.
fn give(grads: &mut Gradients, parent: Option<NodeId>, grad: Vec<f32>, dims: Vec<usize>) {
    if let Some(id) = parent {
        grads.register::<Flex>(id, flex(grad, dims));
    }
}

/// The gradient of an op's output, contiguous.
fn output_grad<S, const N: usize>(ops: &Ops<S, N>, grads: &mut Gradients) -> Values {
    Values::of(&grads.consume::<Flex>(&ops.node))
}

// ---------------------------------------------------------------------------------------------
// GroupNorm (+ SiLU)

#[derive(Debug)]
struct GroupNormOp;

#[derive(Clone, Debug)]
struct GroupNormState {
    x: Values,
    gamma: Values,
    beta: Values,
    groups: usize,
    eps: f32,
    silu: bool,
}

impl Backward<Flex, 3> for GroupNormOp {
    type State = GroupNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dz = output_grad(&ops, grads);
        let s = ops.state;
        let dims = s.x.dims();
        let (dx, dg, db) = cpu_grad::group_norm_backward(
            s.x.get(),
            dz.get(),
            dims[0],
            dims[1],
            s.groups,
            s.gamma.get(),
            s.beta.get(),
            s.eps,
            s.silu,
        );
        let [px, pg, pb] = ops.parents.map(|p| p.map(|n| n.id));
        give(grads, px, dx, dims);
        give(grads, pg, dg, s.gamma.dims());
        give(grads, pb, db, s.beta.dims());
    }
}

/// GroupNorm (then SiLU when `silu`) of `x` `[batch, c, h, w]` with `gamma`, `beta` `[c]`.
pub(crate) fn group_norm<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    groups: usize,
    eps: f32,
    silu: bool,
) -> Tensor<B, 4> {
    let (x, gamma, beta) = (to_ad(x), to_ad(gamma), to_ad(beta));
    let (xv, gv, bv) = (
        Values::of(&x.primitive),
        Values::of(&gamma.primitive),
        Values::of(&beta.primitive),
    );
    let dims = xv.dims();
    let mut out = vec![0f32; xv.get().len()];
    cpu::group_norm(
        xv.get(),
        &mut out,
        dims[0],
        dims[1],
        groups,
        gv.get(),
        bv.get(),
        eps,
        silu,
    );
    let y = record(
        GroupNormOp,
        [&x, &gamma, &beta],
        || GroupNormState {
            x: xv,
            gamma: gv,
            beta: bv,
            groups,
            eps,
            silu,
        },
        flex(out, dims),
    );
    from_ad(y)
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

#[derive(Debug)]
struct LayerNormOp;

#[derive(Clone, Debug)]
struct LayerNormState {
    x: Values,
    gamma: Values,
    eps: f32,
}

impl Backward<Flex, 3> for LayerNormOp {
    type State = LayerNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = output_grad(&ops, grads);
        let s = ops.state;
        let dims = s.x.dims();
        let d = *dims.last().expect("rank ≥ 1");
        let (dx, dg, db) =
            cpu_grad::layer_norm_backward(s.x.get(), dy.get(), d, s.gamma.get(), s.eps);
        let [px, pg, pb] = ops.parents.map(|p| p.map(|n| n.id));
        give(grads, px, dx, dims);
        give(grads, pg, dg, vec![d]);
        give(grads, pb, db, vec![d]);
    }
}

/// LayerNorm over the last axis of `x` `[batch, n, d]` with `gamma`, `beta` `[d]`.
pub(crate) fn layer_norm<B: Backend>(
    x: Tensor<B, 3>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f32,
) -> Tensor<B, 3> {
    let (x, gamma, beta) = (to_ad(x), to_ad(gamma), to_ad(beta));
    let (xv, gv, bv) = (
        Values::of(&x.primitive),
        Values::of(&gamma.primitive),
        Values::of(&beta.primitive),
    );
    let dims = xv.dims();
    let d = dims[2];
    let mut out = vec![0f32; xv.get().len()];
    cpu_grad::layer_norm(xv.get(), &mut out, d, gv.get(), bv.get(), eps);
    let y = record(
        LayerNormOp,
        [&x, &gamma, &beta],
        || LayerNormState {
            x: xv,
            gamma: gv,
            eps,
        },
        flex(out, dims),
    );
    from_ad(y)
}

// ---------------------------------------------------------------------------------------------
// GEGLU

#[derive(Debug)]
struct GegluOp;

impl Backward<Flex, 1> for GegluOp {
    type State = Values;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = output_grad(&ops, grads);
        let h = ops.state;
        let dims = h.dims();
        let dh = cpu_grad::geglu_backward(h.get(), dout.get(), dims[2] / 2);
        let [ph] = ops.parents.map(|p| p.map(|n| n.id));
        give(grads, ph, dh, dims);
    }
}

/// GEGLU of `h` `[batch, n, 2·inner]` → `[batch, n, inner]`.
pub(crate) fn geglu<B: Backend>(h: Tensor<B, 3>) -> Tensor<B, 3> {
    let h = to_ad(h);
    let hv = Values::of(&h.primitive);
    let dims = hv.dims();
    let inner = dims[2] / 2;
    let mut out = vec![0f32; dims[0] * dims[1] * inner];
    cpu::geglu(hv.get(), &mut out, inner);
    let y = record(
        GegluOp,
        [&h],
        || hv,
        flex(out, vec![dims[0], dims[1], inner]),
    );
    from_ad(y)
}

// ---------------------------------------------------------------------------------------------
// Attention

#[derive(Debug)]
struct AttentionOp;

#[derive(Clone, Debug)]
struct AttentionState {
    q: Values,
    k: Values,
    v: Values,
    heads: usize,
}

impl Backward<Flex, 3> for AttentionOp {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = output_grad(&ops, grads);
        let s = ops.state;
        let (qd, kd) = (s.q.dims(), s.k.dims());
        let dims = AttentionDims {
            batch: qd[0],
            n: qd[1],
            m: kd[1],
            channels: qd[2],
            heads: s.heads,
        };
        let (dq, dk, dv) =
            cpu_grad::attention_backward(s.q.get(), s.k.get(), s.v.get(), dout.get(), dims);
        let [pq, pk, pv] = ops.parents.map(|p| p.map(|n| n.id));
        give(grads, pq, dq, qd);
        give(grads, pk, dk, kd.clone());
        give(grads, pv, dv, kd);
    }
}

/// Multi-head attention on unsplit heads: q `[batch, n, c]`, k and v `[batch, m, c]`.
pub(crate) fn attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
) -> Tensor<B, 3> {
    let (q, k, v) = (to_ad(q), to_ad(k), to_ad(v));
    let (qv, kv, vv) = (
        Values::of(&q.primitive),
        Values::of(&k.primitive),
        Values::of(&v.primitive),
    );
    let (qd, kd) = (qv.dims(), kv.dims());
    let dims = AttentionDims {
        batch: qd[0],
        n: qd[1],
        m: kd[1],
        channels: qd[2],
        heads,
    };
    let mut out = vec![0f32; qv.get().len()];
    cpu::attention(qv.get(), kv.get(), vv.get(), &mut out, dims);
    let y = record(
        AttentionOp,
        [&q, &k, &v],
        || AttentionState {
            q: qv,
            k: kv,
            v: vv,
            heads,
        },
        flex(out, qd),
    );
    from_ad(y)
}

// ---------------------------------------------------------------------------------------------
// Conv2d

#[derive(Debug)]
struct Conv2dOp;

#[derive(Clone, Debug)]
struct Conv2dState {
    x: Values,
    weight: Values,
    dims: ConvDims,
}

impl Backward<Flex, 3> for Conv2dOp {
    type State = Conv2dState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = output_grad(&ops, grads);
        let s = ops.state;
        let d = s.dims;
        let (dx, dw, db) = cpu_grad::conv2d_backward(s.x.get(), s.weight.get(), dy.get(), d);
        let [px, pw, pb] = ops.parents.map(|p| p.map(|n| n.id));
        give(grads, px, dx, s.x.dims());
        give(grads, pw, dw, s.weight.dims());
        give(grads, pb, db, vec![d.c_out]);
    }
}

/// 2-D convolution (groups 1, dilation 1; `d.upsample`: nearest 2x upsampling first) of `x`
/// `[batch, c_in, h, w]` with `weight` `[c_out, c_in, kh, kw]` and `bias` `[c_out]`.
pub(crate) fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    d: ConvDims,
) -> Tensor<B, 4> {
    let (x, weight, bias) = (to_ad(x), to_ad(weight), to_ad(bias));
    let (xv, wv, bv) = (
        Values::of(&x.primitive),
        Values::of(&weight.primitive),
        Values::of(&bias.primitive),
    );
    let mut out = vec![0f32; d.batch * d.c_out * d.out_h * d.out_w];
    cpu::conv2d(xv.get(), wv.get(), Some(bv.get()), &mut out, d);
    let y = record(
        Conv2dOp,
        [&x, &weight, &bias],
        || Conv2dState {
            x: xv,
            weight: wv,
            dims: d,
        },
        flex(out, vec![d.batch, d.c_out, d.out_h, d.out_w]),
    );
    from_ad(y)
}

// ---------------------------------------------------------------------------------------------
// Linear

#[derive(Debug)]
struct LinearOp;

#[derive(Clone, Debug)]
struct LinearState {
    x: Values,
    weight: Values,
}

impl Backward<Flex, 3> for LinearOp {
    type State = LinearState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = output_grad(&ops, grads);
        let s = ops.state;
        let [d_in, d_out] = [s.weight.dims()[0], s.weight.dims()[1]];
        let (dx, dw, db) =
            cpu_grad::linear_backward(s.x.get(), s.weight.get(), dy.get(), d_in, d_out);
        let [px, pw, pb] = ops.parents.map(|p| p.map(|n| n.id));
        give(grads, px, dx, s.x.dims());
        give(grads, pw, dw, vec![d_in, d_out]);
        give(grads, pb, db, vec![d_out]);
    }
}

/// `x · weight + bias` for `x` `[rows, d_in]`, `weight` `[d_in, d_out]` (burn's layout) and
/// `bias` `[d_out]` (a zero tensor without a gradient when the layer has none).
pub(crate) fn linear<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let (x, weight, bias) = (to_ad(x), to_ad(weight), to_ad(bias));
    let (xv, wv, bv) = (
        Values::of(&x.primitive),
        Values::of(&weight.primitive),
        Values::of(&bias.primitive),
    );
    let (rows, d_in, d_out) = (xv.dims()[0], wv.dims()[0], wv.dims()[1]);
    let mut out = vec![0f32; rows * d_out];
    cpu_grad::linear(xv.get(), wv.get(), bv.get(), &mut out, d_in);
    let y = record(
        LinearOp,
        [&x, &weight, &bias],
        || LinearState { x: xv, weight: wv },
        flex(out, vec![rows, d_out]),
    );
    from_ad(y)
}

// ---------------------------------------------------------------------------------------------
// Transpose of the last two axes

#[derive(Debug)]
struct TransposeOp;

impl Backward<Flex, 1> for TransposeOp {
    /// The input's dims `[batch, rows, cols]`.
    type State = [usize; 3];

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = output_grad(&ops, grads);
        let [b, r, c] = ops.state;
        let mut dx = vec![0f32; b * r * c];
        cpu::transpose(dy.get(), &mut dx, b, c, r);
        let [px] = ops.parents.map(|p| p.map(|n| n.id));
        give(grads, px, dx, vec![b, r, c]);
    }
}

/// `[batch, rows, cols]` → `[batch, cols, rows]`, materialised.
pub(crate) fn transpose<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let x = to_ad(x);
    let xv = Values::of(&x.primitive);
    let d = xv.dims();
    let [b, r, c] = [d[0], d[1], d[2]];
    let mut out = vec![0f32; b * r * c];
    cpu::transpose(xv.get(), &mut out, b, r, c);
    let y = record(TransposeOp, [&x], || [b, r, c], flex(out, vec![b, c, r]));
    from_ad(y)
}
