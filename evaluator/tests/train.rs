//! Candidate training objective: recipe schedules and weights, loss falls with training, the
//! same seed gives the same run (and the same draws whatever the arch), the EMA averages a real
//! window, NaN stops the run with an error.

use burn::tensor::{Tensor, TensorData};
use unas_evaluator::quality::train::{
    diffusion_loss, init_seeded, normal, train, EmaWindow, Recipe, MIN_EMA_WINDOW,
};
use unas_runtime::device::Cpu;
use unas_runtime::UNet2DConditionModel;
use unas_space::preset;
use unas_space::rng::Rng;

type Ad = burn::backend::Autodiff<Cpu>;

#[test]
fn recipe_schedules_and_weights_follow_the_reference_formulas() {
    let b = Recipe::decidiffusion().alphas_cumprod();
    // Cosine betas (Nichol & Dhariwal 2021) rescaled to zero terminal SNR (Lin et al. 2024,
    // Alg. 1), as diffusers' `rescale_zero_terminal_snr`: abar_0 ~ 0.99995872, abar_999 = 0.
    assert!((b[0] - 0.99995872).abs() < 1e-8, "{}", b[0]);
    assert_eq!(b[999], 0.0);
    let a = Recipe::sd15().alphas_cumprod();
    assert!((a[0] - (1.0 - 0.00085)).abs() < 1e-12);
    assert!(a.windows(2).all(|w| w[1] < w[0]));
    // Min-SNR-5 for v: min(snr, 5) / (snr + 1); 1 where the SNR is zero.
    let r = Recipe::decidiffusion();
    let abar: f64 = 0.9; // snr 9
    assert!((r.loss_weight(abar) - 5.0 / 10.0).abs() < 1e-12);
    assert_eq!(r.loss_weight(0.0), 1.0);
    let eps = Recipe {
        prediction: unas_evaluator::quality::train::Prediction::Epsilon,
        ..r.clone()
    };
    assert!((eps.loss_weight(abar) - 5.0 / 9.0).abs() < 1e-12);
    assert_eq!(Recipe::sd15().loss_weight(abar), 1.0);
}

fn data(n: usize, latent: usize, ctx: (usize, usize)) -> (Vec<f32>, Vec<f32>) {
    // Smooth blobs as clean latents, a fixed random text embedding per sample.
    let mut rng = Rng::seed(99);
    let mut x = Vec::with_capacity(n * 4 * latent * latent);
    for i in 0..n {
        let (cx, cy) = ((i % 3) as f32 + 2.0, (i % 2) as f32 * 3.0 + 2.0);
        for c in 0..4 {
            for y in 0..latent {
                for xx in 0..latent {
                    let d = (xx as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                    x.push((if c % 2 == 0 { 1.0 } else { -1.0 }) * (-d / 4.0).exp());
                }
            }
        }
    }
    (x, normal(&mut rng, n * ctx.0 * ctx.1))
}

fn run(seed: u64, steps: usize) -> (UNet2DConditionModel<Cpu>, Vec<f32>) {
    let (unet, losses, _) = run_with("tiny-nas", seed, steps, &Recipe::sd15());
    (unet, losses)
}

/// Trains preset `name` for `steps` steps with `recipe` on the blobs; also returns the data
/// indices drawn per step and the next value of the training generator after the run.
fn run_with(
    name: &str,
    seed: u64,
    steps: usize,
    recipe: &Recipe,
) -> (UNet2DConditionModel<Cpu>, Vec<f32>, (Vec<usize>, u64)) {
    let arch = preset(name);
    let device = Default::default();
    let unet = init_seeded::<Ad, _>(&device, seed, || {
        UNet2DConditionModel::<Ad>::init(&arch, &device).unwrap()
    });
    let (latent, len, dim, n, b) = (8, 4, arch.stem.cross_attention_dim, 8, 4);
    let (x, ctx) = data(n, latent, (len, dim));
    let mut drawn = Vec::new();
    let mut next = |rng: &mut Rng| {
        let idx: Vec<usize> = (0..b).map(|_| rng.below(n)).collect();
        drawn.extend_from_slice(&idx);
        let per = 4 * latent * latent;
        let xs: Vec<f32> = idx
            .iter()
            .flat_map(|&i| x[i * per..(i + 1) * per].to_vec())
            .collect();
        let cs: Vec<f32> = idx
            .iter()
            .flat_map(|&i| ctx[i * len * dim..(i + 1) * len * dim].to_vec())
            .collect();
        (
            Tensor::<Ad, 4>::from_data(TensorData::new(xs, [b, 4, latent, latent]), &device),
            Tensor::<Ad, 3>::from_data(TensorData::new(cs, [b, len, dim]), &device),
        )
    };
    let mut rng = Rng::seed(seed);
    let (trained, log) = train(unet, recipe, steps, &mut rng, &mut next, &mut |_, _| {}).unwrap();
    (trained, log.losses, (drawn, rng.next_u64()))
}

/// Every float parameter of `unet`, in module order.
fn params(unet: &UNet2DConditionModel<Cpu>) -> Vec<f32> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct All(Vec<f32>);
    impl ModuleVisitor<Cpu> for All {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Cpu, D>>) {
            self.0.extend(p.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let mut all = All(Vec::new());
    unet.visit(&mut all);
    all.0
}

fn eval_loss(unet: &UNet2DConditionModel<Cpu>) -> f32 {
    let arch = preset("tiny-nas");
    let (latent, len, dim, n) = (8, 4, arch.stem.cross_attention_dim, 8);
    let (x, ctx) = data(n, latent, (len, dim));
    let device = Default::default();
    let x0 = Tensor::<Cpu, 4>::from_data(TensorData::new(x, [n, 4, latent, latent]), &device);
    let c = Tensor::<Cpu, 3>::from_data(TensorData::new(ctx, [n, len, dim]), &device);
    let mut rng = Rng::seed(12345);
    let ts: Vec<usize> = (0..n).map(|i| 100 + 100 * i).collect();
    let noise = normal(&mut rng, n * 4 * latent * latent);
    let r = Recipe::sd15();
    diffusion_loss(unet, x0, c, &ts, noise, &r, &r.alphas_cumprod()).into_scalar()
}

#[test]
fn training_lowers_the_loss_and_is_reproducible() {
    let (untrained, _) = run(1, 0);
    let (trained, losses) = run(1, 40);
    let (before, after) = (eval_loss(&untrained), eval_loss(&trained));
    assert!(
        after < 0.8 * before,
        "held-out loss {before} -> {after}; steps {losses:?}"
    );
    let (_, again) = run(1, 40);
    assert_eq!(losses, again, "same seed, same losses");
}

#[test]
fn the_default_ema_averages_a_real_window() {
    for r in [Recipe::default(), Recipe::sd15()] {
        // The proxy's default budget: the last 30 of 60 iterates (5 % was 3, at decay 0.5).
        let w = r.ema_window(60).unwrap().unwrap();
        assert_eq!(
            w,
            EmaWindow {
                window: 30,
                decay: 1.0 - 2.0 / 31.0
            }
        );
        assert!(w.window >= MIN_EMA_WINDOW);
        // The quickstart's 20 steps: 10 iterates (5 % was the last iterate alone).
        assert_eq!(r.ema_window(20).unwrap().unwrap().window, 10);
        assert_eq!(r.ema_window(19).unwrap().unwrap().window, 10);
        // Fewer steps: refused, saying how many are needed, rather than averaging 1-9.
        for steps in [1, 4, 18] {
            let e = r.ema_window(steps).unwrap_err();
            assert!(
                e.contains("fewer than 10")
                    && e.contains("at least 19 steps")
                    && e.contains("ema_fraction = 0"),
                "{steps}: {e}"
            );
        }
        assert_eq!(r.ema_window(0).unwrap(), None, "nothing trained");
        // 0 = no EMA, whatever the steps.
        let off = Recipe {
            ema_fraction: 0.0,
            ..r.clone()
        };
        assert_eq!(off.ema_window(4).unwrap(), None);
        assert_eq!(off.ema_window(1000).unwrap(), None);
        for f in [-0.1, 1.5, f64::NAN] {
            let bad = Recipe {
                ema_fraction: f,
                ..r.clone()
            };
            assert!(bad.ema_window(100).unwrap_err().contains("[0, 1]"), "{f}");
        }
    }
}

#[test]
fn the_ema_at_the_quickstart_budget_is_not_the_last_iterate() {
    // 20 steps with the default fraction average the last 10 iterates; without EMA the run
    // returns its last iterate. The EMA does not feed back into training: same losses.
    let r = Recipe::sd15();
    let (ema, losses, _) = run_with("tiny-nas", 3, 20, &r);
    let no_ema = Recipe {
        ema_fraction: 0.0,
        ..r.clone()
    };
    let (last, losses_last, _) = run_with("tiny-nas", 3, 20, &no_ema);
    assert_eq!(losses, losses_last);
    let (a, b) = (params(&ema), params(&last));
    assert_eq!(a.len(), b.len());
    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(
        differ > a.len() / 2,
        "{differ} of {} parameters differ from the last iterate",
        a.len()
    );
    // A window below the minimum is refused before any step is taken.
    let arch = preset("tiny-nas");
    let device = Default::default();
    let unet = init_seeded::<Ad, _>(&device, 3, || {
        UNet2DConditionModel::<Ad>::init(&arch, &device).unwrap()
    });
    let mut next = |_: &mut Rng| -> unas_evaluator::quality::train::Batch<Ad> {
        panic!("a refused run draws no batch")
    };
    let Err(err) = train(unet, &r, 4, &mut Rng::seed(0), &mut next, &mut |_, _| {}) else {
        panic!("4 steps at EMA fraction 0.5 are refused");
    };
    let err = err.to_string();
    assert!(
        err.contains("recipe.ema_fraction") && err.contains("fewer than 10"),
        "{err}"
    );
}

#[test]
fn two_archs_trained_with_one_seed_draw_the_same_data_timesteps_and_noise() {
    // Common random numbers: the training draws depend on the seed, the batch and the latent
    // shape, not on the arch. `tiny` (SD1.5-shaped) and `tiny-nas` differ in every block.
    let no_ema = Recipe {
        ema_fraction: 0.0,
        ..Recipe::sd15()
    };
    let (_, la, draws_a) = run_with("tiny-nas", 11, 3, &no_ema);
    let (_, lb, draws_b) = run_with("tiny", 11, 3, &no_ema);
    assert_ne!(la, lb, "different archs, different losses");
    assert_eq!(draws_a.0.len(), 3 * 4);
    // Same data indices, and the generator is at the same place after the timesteps and
    // noise of every step.
    assert_eq!(draws_a, draws_b);
    let (_, _, other_seed) = run_with("tiny-nas", 12, 3, &no_ema);
    assert_ne!(draws_a, other_seed);
}

#[test]
fn ema_averages_parameters() {
    use burn::module::Module;
    use unas_evaluator::quality::train::Ema;
    let device = Default::default();
    let lin = |v: f32| {
        let l = burn::nn::LinearConfig::new(2, 1).init::<Cpu>(&device);
        l.map(&mut Fill(v))
    };
    struct Fill(f32);
    impl burn::module::ModuleMapper<Cpu> for Fill {
        fn map_float<const D: usize>(
            &mut self,
            p: burn::module::Param<Tensor<Cpu, D>>,
        ) -> burn::module::Param<Tensor<Cpu, D>> {
            let v = self.0;
            p.map(|t| t.zeros_like() + v)
        }
    }
    let mut ema = Ema::new(lin(0.0), 0.5);
    ema.update(&lin(1.0));
    ema.update(&lin(1.0));
    // 0 -> 0.5 -> 0.75
    let w: Vec<f32> = ema.into_inner().weight.val().into_data().to_vec().unwrap();
    assert!(w.iter().all(|&x| (x - 0.75).abs() < 1e-6), "{w:?}");
}

#[test]
fn a_nan_loss_stops_the_run_with_an_error() {
    let arch = preset("tiny-nas");
    let device = Default::default();
    // Every module of this test binary is built under `init_seeded`: burn's initialisation
    // generator is process-wide, so an unseeded build on another test thread would interleave.
    let unet = init_seeded::<Ad, _>(&device, 5, || {
        UNet2DConditionModel::<Ad>::init(&arch, &device).unwrap()
    });
    let dim = arch.stem.cross_attention_dim;
    let mut next = |_: &mut Rng| {
        (
            Tensor::<Ad, 4>::from_data(
                TensorData::new(vec![f32::NAN; 4 * 64], [1, 4, 8, 8]),
                &device,
            ),
            Tensor::<Ad, 3>::zeros([1, 4, dim], &device),
        )
    };
    let err = train(
        unet,
        &Recipe::default(),
        20,
        &mut Rng::seed(0),
        &mut next,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("diverged"), "{err}");
}

#[test]
fn cosine_schedule_warms_up_then_decays_to_zero() {
    use unas_evaluator::quality::train::LrSchedule;
    let constant = Recipe::decidiffusion();
    assert!((0..100).all(|k| constant.lr_at(k, 100) == constant.lr));
    let r = Recipe {
        lr_schedule: LrSchedule::Cosine,
        warmup_steps: 10,
        ..Recipe::decidiffusion()
    };
    // Linear warm-up: step k (0-based) gets lr (k + 1) / warmup.
    assert!((r.lr_at(0, 100) - r.lr / 10.0).abs() < 1e-15);
    assert!((r.lr_at(9, 100) - r.lr).abs() < 1e-15);
    // Then 0.5 (1 + cos(pi p)), p = (k - warmup) / (steps - warmup): the peak, half-way, ~0.
    assert!((r.lr_at(10, 100) - r.lr).abs() < 1e-15);
    assert!((r.lr_at(55, 100) - r.lr / 2.0).abs() < 1e-12);
    assert!(r.lr_at(99, 100) < r.lr * 1e-3);
    assert!((10..99).all(|k| r.lr_at(k + 1, 100) < r.lr_at(k, 100)));
}

#[test]
fn default_recipe_serialises_as_before_the_schedule_fields() {
    // Settings hashes (the shipped supernet's among them) serialise the recipe: the new
    // fields must not appear while they hold their defaults.
    let json = serde_json::to_value(Recipe::decidiffusion()).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "betas",
            "ema_fraction",
            "lr",
            "min_snr_gamma",
            "prediction",
            "timesteps",
            "zero_terminal_snr"
        ]
    );
    let r: Recipe =
        toml::from_str("lr_schedule = \"cosine\"\nwarmup_steps = 30\nmax_grad_norm = 1.0\n")
            .unwrap();
    assert_eq!(r.max_grad_norm, Some(1.0));
    assert_eq!(r.warmup_steps, 30);
}

#[test]
fn gradient_clipping_scales_the_global_norm() {
    use burn::optim::GradientsParams;
    use unas_evaluator::quality::train::clip_grad_norm;
    let device = Default::default();
    let arch = preset("tiny-nas");
    let dim = arch.stem.cross_attention_dim;
    let unet = init_seeded::<Ad, _>(&device, 3, || {
        UNet2DConditionModel::<Ad>::init(&arch, &device).unwrap()
    });
    let (x, c) = data(2, 8, (4, dim));
    let x0 = Tensor::<Ad, 4>::from_data(TensorData::new(x, [2, 4, 8, 8]), &device);
    let ctx = Tensor::<Ad, 3>::from_data(TensorData::new(c, [2, 4, dim]), &device);
    let r = Recipe::decidiffusion();
    let acp = r.alphas_cumprod();
    let loss = diffusion_loss(
        &unet,
        x0,
        ctx,
        &[500, 900],
        normal(&mut Rng::seed(1), 512),
        &r,
        &acp,
    );
    let mut g = GradientsParams::from_grads(loss.backward(), &unet);
    // With an infinite threshold clip_grad_norm only measures the global norm.
    let before = clip_grad_norm(&unet, &mut g, f64::INFINITY);
    assert!(before > 0.0 && before.is_finite());
    let max = before / 4.0;
    assert_eq!(clip_grad_norm(&unet, &mut g, max), before);
    let after = clip_grad_norm(&unet, &mut g, f64::INFINITY);
    assert!((after - max).abs() < 1e-4 * max, "{after} vs {max}");
    // Below the threshold nothing changes.
    assert!((clip_grad_norm(&unet, &mut g, 10.0 * max) - after).abs() < 1e-6 * after);
    assert!((clip_grad_norm(&unet, &mut g, f64::INFINITY) - after).abs() < 1e-6 * after);
}
