//! Helpers shared by the CLI integration tests: run the `unas` binary in a folder with a
//! private proxy cache, and the tiny proxy settings the quality-path tests train at.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `unas ARGS` in `dir`, with the proxy cache under `dir/.unas-cache` (nothing outside the
/// test's folder is read or written).
pub fn unas_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unas"))
        .args(args)
        .current_dir(dir)
        .env("UNAS_CACHE_DIR", dir.join(".unas-cache"))
        .output()
        .expect("run unas")
}

/// Lossy UTF-8 of a process's output.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tiny `[quality]` table: 200 built-in images, 4 training steps, 16 samples, a 20-step VAE
/// and a 1-epoch extractor, no EMA.
pub const QUALITY: &str = r#"
[quality]
data = "builtin"
images = 200
val_items = 24
val_bands = 2
steps = 4
batch = 4
samples = 16
sampling_steps = 4
vae_steps = 20
extractor_images = 300
extractor_epochs = 1

[quality.recipe]
ema_fraction = 0.0
"#;

/// A two-stage flexible space of width 32 at 8x8 latents: its lookup table is profiled in
/// seconds.
pub const ONE_FAMILY: &str = r#"
name = "one-family"
[stem]
base_channels = 32
time_embed_dim = 64
cross_attention_dim = 32
heads = 2
norm_groups = 8
[knobs]
stages = [2]
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
down_resnets = [1]
down_attentions = [0, 1]
up_attentions = [0, 2]
[constraints]
latent = 8
batch = 1
text_len = 4
"#;
