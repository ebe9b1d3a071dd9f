//! A small flexible-layout search space and a random latent cache, shared by the training
//! tests (supernet, model).

#![allow(dead_code)]

use std::path::PathBuf;

use unas_evaluator::quality::latent_cache::{LatentCache, Manifest};
use unas_evaluator::quality::train::normal;
use unas_space::load::Source;
use unas_space::rng::Rng;
use unas_space::SearchSpace;

/// A small flexible-layout space (2 or 3 stages of width 32) for fast tests.
pub fn space() -> SearchSpace {
    let text = r#"
name = "test-small"
[stem]
base_channels = 32
time_embed_dim = 64
cross_attention_dim = 16
heads = 2
norm_groups = 8
[knobs]
stages = [2, 3]
layouts = ["flexible"]
mid_resnets = [1, 2]
mid_attentions = [0, 1]
[[stage]]
out_channels = [32]
down_resnets = [1, 2]
down_attentions = [0, 1]
up_attentions = [0, 1]
[[stage]]
out_channels = [32]
down_resnets = [1, 2]
down_attentions = [0, 1]
up_attentions = [0, 1]
[[stage]]
out_channels = [32]
down_resnets = [1]
down_attentions = [0, 1]
up_attentions = [0, 1]
"#;
    SearchSpace::from_source(&Source {
        file: PathBuf::from("test-small.toml"),
        text: text.into(),
    })
    .unwrap()
}

/// 40 random latents (4x8x8) with 4x16 caption embeddings.
pub fn cache() -> LatentCache {
    let n = 40;
    let mut rng = Rng::seed(1);
    LatentCache {
        manifest: Manifest {
            version: 1,
            dataset: "random".into(),
            latent: [4, 8, 8],
            text: [4, 16],
            scaling_factor: 1.0,
            captions: (0..n).map(|i| format!("item {i}")).collect(),
            labels: vec![vec![0]; n],
            shards: Vec::new(),
            provenance: serde_json::Value::Null,
        },
        mean: normal(&mut rng, n * 256),
        logvar: vec![-4.0; n * 256],
        context: normal(&mut rng, n * 64),
    }
}
