//! An exponential moving average of a module's weights, and global gradient-norm clipping.

#[allow(unused_imports)]
use super::*;

/// Exponential moving average of a module's float parameters.
pub struct Ema<B: Backend, M: Module<B>> {
    avg: M,
    decay: f64,
    _backend: std::marker::PhantomData<B>,
}

struct Collect<B: Backend>(Vec<Tensor<B, 1>>);

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

struct Blend<B: Backend> {
    src: std::vec::IntoIter<Tensor<B, 1>>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let src = self.src.next().expect("same module structure");
        let decay = self.decay;
        param.map(|avg| {
            let shape = avg.shape();
            avg * decay + src.reshape(shape) * (1.0 - decay)
        })
    }
}

impl<B: Backend, M: Module<B>> Ema<B, M> {
    /// Starts averaging from `start` with `decay` per update.
    pub fn new(start: M, decay: f64) -> Self {
        Self {
            avg: start,
            decay,
            _backend: std::marker::PhantomData,
        }
    }

    /// avg ← decay · avg + (1 − decay) · `current`.
    pub fn update(&mut self, current: &M) {
        let mut collect = Collect(Vec::new());
        current.visit(&mut collect);
        let mut blend = Blend {
            src: collect.0.into_iter(),
            decay: self.decay,
        };
        self.avg = self.avg.clone().map(&mut blend);
    }

    /// The averaged module so far.
    pub fn average(&self) -> &M {
        &self.avg
    }

    /// The averaged module.
    pub fn into_inner(self) -> M {
        self.avg
    }
}

/// Scales `grads` (the gradients of `module`'s parameters) so that their global L2 norm, all
/// parameters together, is at most `max_norm` (`torch.nn.utils.clip_grad_norm_`); returns the
/// norm before clipping.
pub fn clip_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    struct SumSquares<'a, B: AutodiffBackend> {
        grads: &'a GradientsParams,
        total: Option<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SumSquares<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                let n = g.shape().num_elements();
                let s = g.reshape([n]).powi_scalar(2).sum();
                self.total = Some(match self.total.take() {
                    None => s,
                    Some(t) => t + s,
                });
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                self.grads
                    .register::<B::InnerBackend, D>(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let mut sum = SumSquares::<B> { grads, total: None };
    module.visit(&mut sum);
    let norm = sum
        .total
        .map_or(0.0, |t| t.into_scalar().elem::<f64>().sqrt());
    if norm > max_norm {
        // torch's clip_grad_norm_: coefficient max_norm / (norm + 1e-6).
        let factor = max_norm / (norm + 1e-6);
        module.visit(&mut Scale { grads, factor });
    }
    norm
}
