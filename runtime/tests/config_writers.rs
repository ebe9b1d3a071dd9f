//! The config writers of a pipeline folder read back to the configurations they were written
//! from: `scheduler_config.json` (DDIM), `vae/config.json`, `text_encoder/config.json`.

use std::path::Path;

use unas_runtime::scheduler::{
    BetaSchedule, PredictionType, SchedulerConfig, SchedulerKind, TimestepSpacing,
};
use unas_runtime::text::ClipTextConfig;
use unas_runtime::vae::AutoencoderKLConfig;

#[test]
fn ddim_config_reads_back() {
    let config = SchedulerConfig {
        beta_schedule: BetaSchedule::SquaredCosCapV2,
        prediction_type: PredictionType::VPrediction,
        rescale_betas_zero_snr: true,
        timestep_spacing: Some(TimestepSpacing::Trailing),
        set_alpha_to_one: false,
        clip_sample: false,
        ..SchedulerConfig::stable_diffusion()
    };
    let v = config.to_ddim_json();
    assert_eq!(v["_class_name"], "DDIMScheduler");
    let back =
        SchedulerConfig::from_json(&v.to_string(), Path::new("scheduler_config.json")).unwrap();
    assert_eq!(
        back,
        SchedulerConfig {
            class_name: Some("DDIMScheduler".into()),
            ..config
        }
    );
    assert_eq!(
        back.class_name
            .as_deref()
            .and_then(SchedulerKind::from_class_name),
        Some(SchedulerKind::Ddim)
    );
}

#[test]
fn vae_and_text_configs_read_back() {
    let vae = AutoencoderKLConfig::new()
        .with_block_out_channels(vec![16, 32])
        .with_norm_num_groups(8)
        .with_scaling_factor(1.7);
    let v = vae.to_json_value(32);
    assert_eq!(v["sample_size"], 32);
    assert_eq!(
        AutoencoderKLConfig::from_json_value(&v, Path::new("vae/config.json")).unwrap(),
        vae
    );
    let text = ClipTextConfig::new()
        .with_hidden_size(64)
        .with_intermediate_size(256)
        .with_num_hidden_layers(2)
        .with_num_attention_heads(2)
        .with_max_position_embeddings(16);
    let v = text.to_json_value(49406, 49407, 49407);
    assert_eq!(v["eos_token_id"], 49407);
    assert_eq!(
        ClipTextConfig::from_json_value(&v, Path::new("text_encoder/config.json")).unwrap(),
        text
    );
}
