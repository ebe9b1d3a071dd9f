//! The U-Net's heavy layers as single autodiff ops on burn's Flex CPU backend, for training.
//!
//! burn's autodiff records each layer as a dozen generic ops (GroupNorm alone is ~8 passes,
//! attention a matmul, a softmax and reshapes per head), each run again backwards through
//! strided iterators. Here GroupNorm(+SiLU), LayerNorm, GEGLU, multi-head attention, linear
//! layers, 2-D convolution (upsampling folded in) and the transpose around each transformer
//! each record one op whose forward is a fused kernel of [`super::cpu`] or
//! [`super::cpu_grad`] and whose backward is the matching kernel of [`super::cpu_grad`];
//! burn's `Backward` trait wires them into the graph (its custom-kernel pattern). Gradients are
//! computed for every input, also those that need none (the U-Net's data inputs: a small
//! cost). Only `Autodiff<Flex>` with f32 takes these paths; every other backend composes burn
//! ops.

use std::any::{Any, TypeId};
use std::fmt;
use std::marker::PhantomData;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
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

/// A layer's backward pass: from the state saved by its forward and the gradient of its
/// output, the gradient (values, dims) of each of its `N` inputs.
trait Grads<const N: usize>: Clone + Send + fmt::Debug + 'static {
    fn grads(&self, dy: &[f32]) -> [(Vec<f32>, Vec<usize>); N];
}

/// The autodiff op of a layer whose backward is `S::grads`.
#[derive(Debug)]
struct Op<S>(PhantomData<S>);

impl<S: Grads<N>, const N: usize> Backward<Flex, N> for Op<S> {
    type State = S;

    fn backward(self, ops: Ops<S, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = Values::of(&grads.consume::<Flex>(&ops.node));
        let inputs = ops.state.grads(dy.get());
        for (parent, (g, dims)) in ops.parents.iter().zip(inputs) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, flex(g, dims));
            }
        }
    }
}

/// The inputs of a layer as autodiff tensors and their contiguous values.
fn inputs<const N: usize>(tensors: [AdTensor; N]) -> ([AdTensor; N], [Values; N]) {
    let values = tensors.each_ref().map(|t| Values::of(&t.primitive));
    (tensors, values)
}

/// Records a layer's op (`state` saved for its backward, built only when a gradient is
/// needed) with `inputs` as parents and returns its `output` as a tensor of `B`.
fn record<B: Backend, S: Grads<N>, const N: usize, const D: usize>(
    inputs: &[AdTensor; N],
    state: impl FnOnce() -> S,
    output: FlexTensor,
) -> Tensor<B, D> {
    let y = match Op::<S>(PhantomData)
        .prepare::<NoCheckpointing>(inputs.each_ref().map(|t| t.node.clone()))
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state(), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    from_ad(y)
}

// ---------------------------------------------------------------------------------------------
// GroupNorm (+ SiLU)

#[derive(Clone, Debug)]
struct GroupNormState {
    x: Values,
    gamma: Values,
    beta: Values,
    groups: usize,
    eps: f32,
    silu: bool,
}

impl Grads<3> for GroupNormState {
    fn grads(&self, dz: &[f32]) -> [(Vec<f32>, Vec<usize>); 3] {
        let dims = self.x.dims();
        let (dx, dg, db) = cpu_grad::group_norm_backward(
            self.x.get(),
            dz,
            dims[0],
            dims[1],
            self.groups,
            self.gamma.get(),
            self.beta.get(),
            self.eps,
            self.silu,
        );
        [(dx, dims), (dg, self.gamma.dims()), (db, self.beta.dims())]
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
    let (ts, [x, gamma, beta]) = inputs([to_ad(x), to_ad(gamma), to_ad(beta)]);
    let dims = x.dims();
    let mut out = vec![0f32; x.get().len()];
    cpu::group_norm(
        x.get(),
        &mut out,
        dims[0],
        dims[1],
        groups,
        gamma.get(),
        beta.get(),
        eps,
        silu,
    );
    let state = || GroupNormState {
        x,
        gamma,
        beta,
        groups,
        eps,
        silu,
    };
    record(&ts, state, flex(out, dims))
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

#[derive(Clone, Debug)]
struct LayerNormState {
    x: Values,
    gamma: Values,
    eps: f32,
}

impl Grads<3> for LayerNormState {
    fn grads(&self, dy: &[f32]) -> [(Vec<f32>, Vec<usize>); 3] {
        let dims = self.x.dims();
        let d = *dims.last().expect("rank ≥ 1");
        let (dx, dg, db) =
            cpu_grad::layer_norm_backward(self.x.get(), dy, d, self.gamma.get(), self.eps);
        [(dx, dims), (dg, vec![d]), (db, vec![d])]
    }
}

/// LayerNorm over the last axis of `x` `[batch, n, d]` with `gamma`, `beta` `[d]`.
pub(crate) fn layer_norm<B: Backend>(
    x: Tensor<B, 3>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f32,
) -> Tensor<B, 3> {
    let (ts, [x, gamma, beta]) = inputs([to_ad(x), to_ad(gamma), to_ad(beta)]);
    let dims = x.dims();
    let mut out = vec![0f32; x.get().len()];
    cpu_grad::layer_norm(x.get(), &mut out, dims[2], gamma.get(), beta.get(), eps);
    record(&ts, || LayerNormState { x, gamma, eps }, flex(out, dims))
}

// ---------------------------------------------------------------------------------------------
// GEGLU

#[derive(Clone, Debug)]
struct GegluState {
    h: Values,
}

impl Grads<1> for GegluState {
    fn grads(&self, dout: &[f32]) -> [(Vec<f32>, Vec<usize>); 1] {
        let dims = self.h.dims();
        [(
            cpu_grad::geglu_backward(self.h.get(), dout, dims[2] / 2),
            dims,
        )]
    }
}

/// GEGLU of `h` `[batch, n, 2·inner]` → `[batch, n, inner]`.
pub(crate) fn geglu<B: Backend>(h: Tensor<B, 3>) -> Tensor<B, 3> {
    let (ts, [h]) = inputs([to_ad(h)]);
    let dims = h.dims();
    let inner = dims[2] / 2;
    let mut out = vec![0f32; dims[0] * dims[1] * inner];
    cpu::geglu(h.get(), &mut out, inner);
    record(
        &ts,
        || GegluState { h },
        flex(out, vec![dims[0], dims[1], inner]),
    )
}

// ---------------------------------------------------------------------------------------------
// Attention

#[derive(Clone, Debug)]
struct AttentionState {
    q: Values,
    k: Values,
    v: Values,
    heads: usize,
}

impl AttentionState {
    fn dims(&self) -> AttentionDims {
        let (qd, kd) = (self.q.dims(), self.k.dims());
        AttentionDims {
            batch: qd[0],
            n: qd[1],
            m: kd[1],
            channels: qd[2],
            heads: self.heads,
        }
    }
}

impl Grads<3> for AttentionState {
    fn grads(&self, dout: &[f32]) -> [(Vec<f32>, Vec<usize>); 3] {
        let (q, k, v) = (self.q.get(), self.k.get(), self.v.get());
        let (dq, dk, dv) = cpu_grad::attention_backward(q, k, v, dout, self.dims());
        [
            (dq, self.q.dims()),
            (dk, self.k.dims()),
            (dv, self.v.dims()),
        ]
    }
}

/// Multi-head attention on unsplit heads: q `[batch, n, c]`, k and v `[batch, m, c]`.
pub(crate) fn attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
) -> Tensor<B, 3> {
    let (ts, [q, k, v]) = inputs([to_ad(q), to_ad(k), to_ad(v)]);
    let state = AttentionState { q, k, v, heads };
    let mut out = vec![0f32; state.q.get().len()];
    cpu::attention(
        state.q.get(),
        state.k.get(),
        state.v.get(),
        &mut out,
        state.dims(),
    );
    let dims = state.q.dims();
    record(&ts, || state, flex(out, dims))
}

// ---------------------------------------------------------------------------------------------
// Conv2d

#[derive(Clone, Debug)]
struct Conv2dState {
    x: Values,
    weight: Values,
    dims: ConvDims,
}

impl Grads<3> for Conv2dState {
    fn grads(&self, dy: &[f32]) -> [(Vec<f32>, Vec<usize>); 3] {
        let (dx, dw, db) =
            cpu_grad::conv2d_backward(self.x.get(), self.weight.get(), dy, self.dims);
        [
            (dx, self.x.dims()),
            (dw, self.weight.dims()),
            (db, vec![self.dims.c_out]),
        ]
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
    let (ts, [x, weight, bias]) = inputs([to_ad(x), to_ad(weight), to_ad(bias)]);
    let mut out = vec![0f32; d.batch * d.c_out * d.out_h * d.out_w];
    cpu::conv2d(x.get(), weight.get(), Some(bias.get()), &mut out, d);
    let out = flex(out, vec![d.batch, d.c_out, d.out_h, d.out_w]);
    record(&ts, || Conv2dState { x, weight, dims: d }, out)
}

/// The term a fused convolution adds to its output ([`conv2d_plus`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Added {
    /// `[batch, c_out]`, over every pixel of each sample's channel; its gradient is the
    /// per-sample bias gradient.
    Offset,
    /// `[batch, c_out, out_h, out_w]`, element-wise; its gradient is the output's.
    Residual,
}

/// The state of [`conv2d_plus`]: that of the convolution, and what it adds.
#[derive(Clone, Debug)]
struct Conv2dPlusState(Conv2dState, Added);

impl Grads<4> for Conv2dPlusState {
    fn grads(&self, dy: &[f32]) -> [(Vec<f32>, Vec<usize>); 4] {
        let s = &self.0;
        match self.1 {
            Added::Offset => {
                let (dx, dw, db) =
                    cpu_grad::conv2d_backward_per_sample(s.x.get(), s.weight.get(), dy, s.dims);
                let dbias = cpu_grad::sum_rows(&db, s.dims.c_out);
                [
                    (dx, s.x.dims()),
                    (dw, s.weight.dims()),
                    (dbias, vec![s.dims.c_out]),
                    (db, vec![s.dims.batch, s.dims.c_out]),
                ]
            }
            Added::Residual => {
                let [dx, dw, db] = s.grads(dy);
                let d = s.dims;
                let out_dims = vec![d.batch, d.c_out, d.out_h, d.out_w];
                [dx, dw, db, (dy.to_vec(), out_dims)]
            }
        }
    }
}

/// [`conv2d`] plus `term` (shape as [`Added`] says), added as the output is written.
pub(crate) fn conv2d_plus<B: Backend, const D: usize>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    term: Tensor<B, D>,
    added: Added,
    d: ConvDims,
) -> Tensor<B, 4> {
    let (ts, [x, weight, bias, term]) = inputs([to_ad(x), to_ad(weight), to_ad(bias), to_ad(term)]);
    let mut out = vec![0f32; d.batch * d.c_out * d.out_h * d.out_w];
    let mut init = cpu::ConvInit {
        bias: Some(bias.get()),
        ..cpu::ConvInit::default()
    };
    match added {
        Added::Offset => init.offset = Some(term.get()),
        Added::Residual => init.residual = Some(term.get()),
    }
    cpu::conv2d_fused(x.get(), weight.get(), init, &mut out, d);
    let out = flex(out, vec![d.batch, d.c_out, d.out_h, d.out_w]);
    record(
        &ts,
        || Conv2dPlusState(Conv2dState { x, weight, dims: d }, added),
        out,
    )
}

// ---------------------------------------------------------------------------------------------
// Linear

#[derive(Clone, Debug)]
struct LinearState {
    x: Values,
    weight: Values,
}

impl Grads<3> for LinearState {
    fn grads(&self, dy: &[f32]) -> [(Vec<f32>, Vec<usize>); 3] {
        let [d_in, d_out] = [self.weight.dims()[0], self.weight.dims()[1]];
        let (dx, dw, db) =
            cpu_grad::linear_backward(self.x.get(), self.weight.get(), dy, d_in, d_out);
        [
            (dx, self.x.dims()),
            (dw, vec![d_in, d_out]),
            (db, vec![d_out]),
        ]
    }
}

/// `x · weight + bias` for `x` `[rows, d_in]`, `weight` `[d_in, d_out]` (burn's layout) and
/// `bias` `[d_out]` (a zero tensor without a gradient when the layer has none).
pub(crate) fn linear<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let (ts, [x, weight, bias]) = inputs([to_ad(x), to_ad(weight), to_ad(bias)]);
    let (rows, d_in, d_out) = (x.dims()[0], weight.dims()[0], weight.dims()[1]);
    let mut out = vec![0f32; rows * d_out];
    cpu_grad::linear(x.get(), weight.get(), bias.get(), &mut out, d_in);
    record(
        &ts,
        || LinearState { x, weight },
        flex(out, vec![rows, d_out]),
    )
}

// ---------------------------------------------------------------------------------------------
// Transpose of the last two axes

/// The input's dims `[batch, rows, cols]`.
#[derive(Clone, Debug)]
struct TransposeState([usize; 3]);

impl Grads<1> for TransposeState {
    fn grads(&self, dy: &[f32]) -> [(Vec<f32>, Vec<usize>); 1] {
        let [b, r, c] = self.0;
        let mut dx = vec![0f32; b * r * c];
        cpu::transpose(dy, &mut dx, b, c, r);
        [(dx, vec![b, r, c])]
    }
}

/// `[batch, rows, cols]` → `[batch, cols, rows]`, materialised.
pub(crate) fn transpose<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let (ts, [x]) = inputs([to_ad(x)]);
    let d = x.dims();
    let [b, r, c] = [d[0], d[1], d[2]];
    let mut out = vec![0f32; b * r * c];
    cpu::transpose(x.get(), &mut out, b, r, c);
    record(&ts, || TransposeState([b, r, c]), flex(out, vec![b, c, r]))
}
