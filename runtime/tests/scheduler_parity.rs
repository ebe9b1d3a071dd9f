//! DDIM, Euler and DPM-Solver++ against diffusers 0.42.1 (fixtures written by
//! tools/fixtures/make_scheduler_fixtures.py): identical timesteps, and every step's
//! `scale_model_input` and `step` output within 1e-5, relative to the largest magnitude among
//! the step's input sample and reference output (at least 1): diffusers computes in float32, so
//! at σ = 4096 (zero terminal SNR) its own rounding is ~1e-7 of the input's magnitude.

use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use serde_json::Value;
use unas_runtime::device::Cpu;
use unas_runtime::scheduler::{SchedulerConfig, SchedulerKind};

type B = Cpu;

fn fixtures() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/scheduler/cases.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn tensor(v: &Value) -> Tensor<B, 4> {
    Tensor::from_data(
        TensorData::new(floats(v), [1, 4, 2, 2]),
        &Default::default(),
    )
}

fn kind(name: &str) -> SchedulerKind {
    name.parse().unwrap()
}

fn config(v: &Value) -> SchedulerConfig {
    SchedulerConfig::from_json(&v.to_string(), Path::new("scheduler_config.json")).unwrap()
}

/// max |a − b| / max(1, max |b|, max |input|).
fn rel_err(a: &Tensor<B, 4>, b: &[f32], input: &[f32]) -> f64 {
    let a: Vec<f32> = a.to_data().to_vec().unwrap();
    let scale = b
        .iter()
        .chain(input)
        .fold(1.0f64, |m, x| m.max(x.abs() as f64));
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn timesteps_match_diffusers() {
    let data = fixtures();
    let mut n = 0;
    for case in data["timesteps_only"]
        .as_array()
        .unwrap()
        .iter()
        .chain(data["cases"].as_array().unwrap())
    {
        let mut s = kind(case["scheduler"].as_str().unwrap())
            .build::<B>(&config(&case["config"]))
            .unwrap();
        let steps = case["num_inference_steps"].as_u64().unwrap() as usize;
        s.set_timesteps(steps).unwrap();
        let expected: Vec<f64> = case["timesteps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        // Euler's linspace timesteps are float32 in diffusers; compare as f32.
        let ours: Vec<f32> = s.timesteps().iter().map(|&t| t as f32).collect();
        let theirs: Vec<f32> = expected.iter().map(|&t| t as f32).collect();
        assert_eq!(
            ours, theirs,
            "{} {} steps {}",
            case["scheduler"], case["config"], steps
        );
        n += 1;
    }
    assert!(n >= 72);
}

#[test]
fn steps_match_diffusers() {
    let data = fixtures();
    let mut worst = (0.0f64, String::new());
    for case in data["cases"].as_array().unwrap() {
        let name = format!(
            "{}/{}/{}",
            case["scheduler"].as_str().unwrap(),
            case["config_name"].as_str().unwrap(),
            case["num_inference_steps"]
        );
        let mut s = kind(case["scheduler"].as_str().unwrap())
            .build::<B>(&config(&case["config"]))
            .unwrap();
        s.set_timesteps(case["num_inference_steps"].as_u64().unwrap() as usize)
            .unwrap();
        let sigma = case["init_noise_sigma"].as_f64().unwrap();
        assert!(
            (s.init_noise_sigma() - sigma).abs() <= 1e-5 * sigma.max(1.0),
            "{name}: init_noise_sigma {} vs {sigma}",
            s.init_noise_sigma()
        );
        for (i, st) in case["steps"].as_array().unwrap().iter().enumerate() {
            let sample = tensor(&st["sample"]);
            let scaled = s.scale_model_input(sample.clone(), i);
            let e = rel_err(&scaled, &floats(&st["scaled"]), &[]);
            assert!(e < 1e-5, "{name} step {i}: scale_model_input error {e:e}");
            let prev = s.step(tensor(&st["model_output"]), i, sample);
            let e = rel_err(&prev, &floats(&st["prev"]), &floats(&st["sample"]));
            if e > worst.0 {
                worst = (e, format!("{name} step {i}"));
            }
            assert!(e < 1e-5, "{name} step {i}: step error {e:e}");
        }
    }
    eprintln!("worst step error {:e} at {}", worst.0, worst.1);
}
