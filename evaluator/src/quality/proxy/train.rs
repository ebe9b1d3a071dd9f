//! Training a candidate on the cached latents (from scratch, a teacher or a supernet).

#[allow(unused_imports)]
use super::*;

impl Proxy {
    /// Trains `arch` from an initialisation seeded with `seed` and returns the trained model
    /// and the mean loss over the last 10 % of the steps. Every training draw (latent indices
    /// and samples, caption dropout, timesteps, noise) comes from one stream seeded with `seed`
    /// alone, and its number per step depends only on the batch, the latent shape and the
    /// cache, never on the arch: candidates trained with the same seed see the same data,
    /// timesteps and noise (common random numbers).
    pub fn train(
        &self,
        arch: &UNetArch,
        seed: u64,
        steps: usize,
        progress: &mut dyn FnMut(usize, f32),
    ) -> Result<(UNet2DConditionModel<Cpu>, f64), EvalError> {
        self.train_observed(arch, seed, steps, &mut |step, loss, _| progress(step, loss))
    }

    /// [`Proxy::train`], with `observe(steps done, loss, current weights)` after every step.
    pub fn train_observed(
        &self,
        arch: &UNetArch,
        seed: u64,
        steps: usize,
        observe: &mut dyn FnMut(usize, f32, &UNet2DConditionModel<Train>),
    ) -> Result<(UNet2DConditionModel<Cpu>, f64), EvalError> {
        self.check_arch(arch)?;
        let device = Default::default();
        let plan = arch.plan()?;
        let mut unet = init_seeded::<Train, _>(&device, seed, || {
            UNet2DConditionModel::<Train>::from_plan(arch, &plan, &device)
        });
        if let Some(teacher) = &self.teacher {
            unet = teacher.weights.inherit(arch, unet)?.0;
        }
        self.train_from(unet, seed, steps, observe)
    }

    /// Fine-tunes `start` (e.g. a candidate's weights inherited from a supernet) for `steps`
    /// steps with the proxy's recipe; the batches, timesteps and noise come from `seed` alone,
    /// so every candidate sees the same ones (common random numbers). Returns the validation
    /// loss of the result (the EMA, when the recipe keeps one).
    pub fn finetune(
        &self,
        arch: &UNetArch,
        start: UNet2DConditionModel<Cpu>,
        seed: u64,
        steps: usize,
        val: &ValidationSet,
    ) -> Result<ValLoss, EvalError> {
        let model = self.finetuned_model(arch, start, seed, steps)?;
        let device: <Cpu as BackendTypes>::Device = Default::default();
        Ok(
            val.loss::<Cpu>(&self.cfg.recipe, VAL_BATCH, &device, &|x, t, c| {
                model.forward(x, t, c)
            }),
        )
    }

    /// The weights [`Self::finetune`] scores: `start` trained `steps` steps with batches,
    /// timesteps and noise from `seed`.
    pub fn finetuned_model(
        &self,
        arch: &UNetArch,
        start: UNet2DConditionModel<Cpu>,
        seed: u64,
        steps: usize,
    ) -> Result<UNet2DConditionModel<Cpu>, EvalError> {
        self.check_arch(arch)?;
        // `from_inner` keeps each parameter's `require_grad` flag, which a module built on the
        // inner backend may not set (then nothing would train): set it on every parameter.
        struct Trainable;
        impl burn::module::ModuleMapper<Train> for Trainable {
            fn map_float<const D: usize>(
                &mut self,
                param: burn::module::Param<Tensor<Train, D>>,
            ) -> burn::module::Param<Tensor<Train, D>> {
                param.set_require_grad(true)
            }
        }
        let unet = burn::module::Module::map(
            UNet2DConditionModel::<Train>::from_inner(start),
            &mut Trainable,
        );
        let (model, _) = self.train_from(unet, seed, steps, &mut |_, _, _| {})?;
        Ok(model)
    }

    /// Trains `unet` for `steps` steps on the training data, batches, timesteps and noise
    /// drawn from `seed`; returns the model and the mean loss of the last tenth of the steps.
    fn train_from(
        &self,
        unet: UNet2DConditionModel<Train>,
        seed: u64,
        steps: usize,
        observe: &mut dyn FnMut(usize, f32, &UNet2DConditionModel<Train>),
    ) -> Result<(UNet2DConditionModel<Cpu>, f64), EvalError> {
        let device = Default::default();
        let data = self.train_data();
        let (b, dropout) = (self.cfg.batch, self.cfg.cond_dropout);
        let mut next = |rng: &mut Rng| draw_batch::<Train>(&data, b, dropout, rng, &device);
        let mut rng = Rng::seed(seed ^ 0x7472_6169_6e00);
        let (model, log) =
            train_observed(unet, &self.cfg.recipe, steps, &mut rng, &mut next, observe)?;
        let tail = (log.losses.len() / 10).max(1);
        let final_loss = log.losses[log.losses.len() - tail..]
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>()
            / tail as f64;
        Ok((model, final_loss))
    }

    /// The training data: the cache's first [`Proxy::train_items`] latents and the empty
    /// caption. Batches drawn from it know nothing of the arch, so the draws are the same for
    /// every candidate.
    pub fn train_data(&self) -> TrainData<'_> {
        TrainData {
            cache: &self.cache,
            uncond: &self.uncond,
            train_items: self.train_items(),
        }
    }

    /// The ground truth of calibration: trains `arch` from scratch as [`Proxy::train`] does
    /// for `steps` steps, calls `on_point(budget, loss)` with the validation loss of the
    /// current iterate after each step count in `budgets` (a learning curve), and returns
    /// the validation loss of the returned model (the EMA, when the recipe keeps one).
    /// With `covering = Some(space)` the initial weights are those `arch` has as a
    /// sub-network of its topology's covering network initialised from `seed`
    /// ([`covering_init`](crate::quality::covering_init::covering_init)): the architectures of
    /// one seed then share their initial tensors as they share batches, timesteps and noise.
    #[allow(clippy::too_many_arguments)]
    pub fn train_curve(
        &self,
        arch: &UNetArch,
        covering: Option<&unas_space::SearchSpace>,
        seed: u64,
        steps: usize,
        budgets: &[usize],
        val: &ValidationSet,
        on_point: &mut dyn FnMut(usize, ValLoss),
    ) -> Result<ValLoss, EvalError> {
        let device: <Cpu as BackendTypes>::Device = Default::default();
        let score = |unet: &UNet2DConditionModel<Cpu>| {
            val.loss::<Cpu>(&self.cfg.recipe, VAL_BATCH, &device, &|x, t, c| {
                unet.forward(x, t, c)
            })
        };
        let mut observe = |k: usize, _: f32, unet: &UNet2DConditionModel<Train>| {
            if budgets.contains(&k) {
                on_point(k, score(&unet.valid()));
            }
        };
        let (model, _) = match covering {
            None => self.train_observed(arch, seed, steps, &mut observe)?,
            Some(space) => {
                if self.teacher.is_some() {
                    return Err(EvalError::Unsupported(
                        "a covering-network initialisation and a teacher's weights exclude \
                         each other"
                            .into(),
                    ));
                }
                self.check_arch(arch)?;
                let start = crate::quality::covering_init::covering_init::<Train>(
                    space,
                    arch,
                    seed,
                    &Default::default(),
                )?;
                self.train_from(start, seed, steps, &mut observe)?
            }
        };
        Ok(score(&model))
    }
}
