//! Timing that survives a shared, noisy host: a noise check before measuring, the lower
//! quartile of the repeats as the statistic (interference only ever adds time, so the fast
//! runs are the ones that show the block's own cost), and the repeats of the architectures
//! being compared interleaved round by round, so a burst of interference lands on all of them
//! instead of on one.

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use unas_runtime::bench::Timing;
use unas_runtime::device::Device;
use unas_runtime::UNet2DConditionModel;
use unas_space::rng::Rng;
use unas_space::UNetArch;

use super::measured::{on_device, OnBackend, Repeats};
use super::LatencySetting;
use crate::quality::train::{init_seeded, normal};
use crate::EvalError;

/// Which number of the repeats a timing reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Statistic {
    /// The median (tables made before the lower quartile was used).
    #[default]
    Median,
    /// The lower quartile.
    LowerQuartile,
}

impl Statistic {
    /// The statistic of a timing.
    pub fn of(self, t: &Timing) -> f64 {
        match self {
            Statistic::Median => t.median_ms,
            Statistic::LowerQuartile => t.q1_ms,
        }
    }

    /// Whether this is the default (kept out of files written before it existed).
    pub fn is_median(&self) -> bool {
        *self == Statistic::Median
    }
}

/// The spread of a reference forward's repeats: `(q3 - q1) / q1`.
pub fn spread(t: &Timing) -> f64 {
    (t.q3_ms - t.q1_ms) / t.q1_ms.max(1e-9)
}

/// One noise-check reading of the host: a reference forward timed 15 times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseReading {
    /// The spread of the repeats, `(q3 - q1) / q1` (0.05 = 5 %).
    pub spread: f64,
    /// Their lower quartile (ms): the host's speed on the reference, compared across runs.
    pub level_ms: f64,
}

/// The host's noise level for `arch` at `setting` on `device`: 15 forwards (3 warm-up runs
/// first), each the sum of its synchronised steps.
pub fn noise_level(
    arch: &UNetArch,
    setting: &LatencySetting,
    device: Device,
) -> Result<NoiseReading, EvalError> {
    let repeats = Repeats {
        warmup: 3,
        repeats: 15,
    };
    let times = interleaved_steps(std::slice::from_ref(arch), setting, repeats, device)?;
    let totals: Vec<f64> = (0..repeats.repeats)
        .map(|r| times[0].iter().map(|step| step[r]).sum())
        .collect();
    let t = Timing::from_samples(totals);
    Ok(NoiseReading {
        spread: spread(&t),
        level_ms: t.q1_ms,
    })
}

/// Checks the host is quiet enough to time: the noise level of `arch` must be at most
/// `max_noise`; a noisy reading is retried after a pause (`tries` readings in all). Returns the
/// accepted reading, or an error giving every reading.
pub fn check_noise(
    arch: &UNetArch,
    setting: &LatencySetting,
    device: Device,
    max_noise: f64,
    tries: usize,
    progress: &mut dyn FnMut(f64),
) -> Result<NoiseReading, EvalError> {
    let mut seen = Vec::new();
    for attempt in 0..tries.max(1) {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
        let n = noise_level(arch, setting, device)?;
        progress(n.spread);
        if n.spread <= max_noise {
            return Ok(n);
        }
        seen.push(format!("{:.1} %", n.spread * 100.0));
    }
    Err(EvalError::Measure(format!(
        "the host is too noisy to time: the spread of a reference forward's repeats (IQR / \
         lower quartile, 15 runs) was {} in {} readings 5 s apart, above the {:.1} % limit; \
         stop other work on this machine, or raise the limit (--max-noise) and accept a less \
         repeatable table",
        seen.join(", "),
        seen.len(),
        max_noise * 100.0
    )))
}

/// Per-step times of several architectures, interleaved: after the warm-up passes of each,
/// every round runs one pass of every architecture, synchronising before and after each step.
/// Returns `[arch][step][repeat]` milliseconds.
pub fn interleaved_steps(
    archs: &[UNetArch],
    setting: &LatencySetting,
    repeats: Repeats,
    device: Device,
) -> Result<Vec<Vec<Vec<f64>>>, EvalError> {
    let job = Interleaved {
        archs,
        s: setting,
        repeats,
        whole: false,
    };
    on_device(device, setting.dtype, job)
}

/// End-to-end forward times of several architectures, interleaved like
/// [`interleaved_steps`] (warm-up runs first, then one forward of each per round, the device
/// synchronised before every clock read). Returns one [`Timing`] per architecture.
pub fn interleaved_forwards(
    archs: &[UNetArch],
    setting: &LatencySetting,
    repeats: Repeats,
    device: Device,
) -> Result<Vec<Timing>, EvalError> {
    let job = Interleaved {
        archs,
        s: setting,
        repeats,
        whole: true,
    };
    let times = on_device(device, setting.dtype, job)?;
    Ok(times
        .into_iter()
        .map(|mut t| Timing::from_samples(t.pop().unwrap_or_default()))
        .collect())
}

struct Interleaved<'a> {
    archs: &'a [UNetArch],
    s: &'a LatencySetting,
    repeats: Repeats,
    /// Time whole forwards (one sample list per arch) instead of every step.
    whole: bool,
}

/// One architecture's model and inputs on a backend.
pub(crate) struct Prepared<B: Backend> {
    /// The model (random weights).
    pub model: UNet2DConditionModel<B>,
    /// Its plan's step count.
    pub steps: usize,
    /// Sample, timesteps and context.
    pub inputs: (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 3>),
}

/// `arch`'s model with seeded random weights (built under [`init_seeded`]'s lock, so timing
/// never draws from burn's process-wide generator while another thread seeds it) and seeded
/// inputs at `s`.
pub(crate) fn prepare<B: Backend>(
    arch: &UNetArch,
    s: &LatencySetting,
    device: &B::Device,
) -> Result<Prepared<B>, EvalError> {
    let plan = arch.plan()?;
    let model = init_seeded::<B, _>(device, 0, || {
        UNet2DConditionModel::<B>::from_plan(arch, &plan, device)
    });
    let st = &arch.stem;
    model.check_inputs(
        [s.batch, st.in_channels, s.latent, s.latent],
        [s.batch],
        [s.batch, s.text_len, st.cross_attention_dim],
    )?;
    let mut rng = Rng::seed(0x7469_6d65);
    let x = [s.batch, st.in_channels, s.latent, s.latent];
    let c = [s.batch, s.text_len, st.cross_attention_dim];
    let data = |shape: Vec<usize>, rng: &mut Rng| {
        let n = shape.iter().product();
        TensorData::new(normal(rng, n), shape)
    };
    let sample = Tensor::<B, 4>::from_data(data(x.to_vec(), &mut rng), device);
    let context = Tensor::<B, 3>::from_data(data(c.to_vec(), &mut rng), device);
    let timesteps = Tensor::<B, 1>::from_floats(vec![500.0f32; s.batch].as_slice(), device);
    Ok(Prepared {
        model,
        steps: plan.steps.len(),
        inputs: (sample, timesteps, context),
    })
}

impl OnBackend for Interleaved<'_> {
    type Out = Vec<Vec<Vec<f64>>>;
    fn run<B: Backend>(self, device: &B::Device) -> Result<Self::Out, EvalError> {
        let s = self.s;
        let sync = || B::sync(device).map_err(|e| EvalError::Measure(format!("{e:?}")));
        let mut prepared = Vec::with_capacity(self.archs.len());
        for arch in self.archs {
            prepared.push(prepare::<B>(arch, s, device)?);
        }
        let whole = self.whole;
        let pass = |p: &Prepared<B>, times: Option<&mut Vec<Vec<f64>>>| -> Result<(), EvalError> {
            let (x, t, c) = p.inputs.clone();
            if whole {
                sync()?;
                let t0 = Instant::now();
                let out = p.model.forward(x, t, c);
                sync()?;
                drop(out);
                if let Some(times) = times {
                    times[0].push(t0.elapsed().as_secs_f64() * 1e3);
                }
                return Ok(());
            }
            let mut state = p.model.start(x, t, c);
            let mut times = times;
            for i in 0..p.steps {
                sync()?;
                let t0 = Instant::now();
                p.model.step(i, &mut state);
                sync()?;
                if let Some(times) = times.as_deref_mut() {
                    times[i].push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            Ok(())
        };
        for p in &prepared {
            for _ in 0..self.repeats.warmup {
                pass(p, None)?;
            }
        }
        let lists = |p: &Prepared<B>| if whole { 1 } else { p.steps };
        let mut out: Vec<Vec<Vec<f64>>> = prepared
            .iter()
            .map(|p| vec![Vec::new(); lists(p)])
            .collect();
        for _ in 0..self.repeats.repeats {
            for (p, times) in prepared.iter().zip(out.iter_mut()) {
                pass(p, Some(times))?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statistics_and_the_spread_read_the_quartiles() {
        let t = Timing::from_samples(vec![10.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(Statistic::Median.of(&t), 3.0);
        assert_eq!(Statistic::LowerQuartile.of(&t), 2.0);
        assert!((spread(&t) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn interleaved_steps_time_every_step_of_every_arch() {
        let a = unas_space::preset("tiny");
        let b = unas_space::preset("tiny-nas");
        let s = LatencySetting {
            latent: 8,
            batch: 1,
            text_len: 4,
            dtype: super::super::Dtype::F32,
        };
        let r = Repeats {
            warmup: 1,
            repeats: 3,
        };
        let t = interleaved_steps(&[a.clone(), b.clone()], &s, r, Device::Cpu).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].len(), a.plan().unwrap().steps.len());
        assert_eq!(t[1].len(), b.plan().unwrap().steps.len());
        assert!(t
            .iter()
            .flatten()
            .all(|step| step.len() == 3 && step.iter().all(|&ms| ms > 0.0)));
        let f = interleaved_forwards(&[a.clone(), b.clone()], &s, r, Device::Cpu).unwrap();
        assert!(f.iter().all(|t| t.samples_ms.len() == 3 && t.q1_ms > 0.0));
        // On the CPU f16 is refused, naming the dtype.
        let f16 = LatencySetting {
            dtype: super::super::Dtype::F16,
            ..s
        };
        let e = interleaved_steps(&[a], &f16, r, Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("f16"), "{e}");
    }
}
