//! Property tests of search spaces: validity of samples, mutations and crossovers; exactly one
//! knob per mutation; reproducibility; uniformity; stable hashes.

use std::collections::HashMap;

use unas_space::rng::Rng;
use unas_space::{diffusers, preset, Genome, SearchSpace, Source};

fn space(name: &str) -> SearchSpace {
    SearchSpace::load(name).unwrap()
}

/// 10,000 samples and 10,000 mutations per shipped space: all valid, each mutation changes
/// exactly the knob it reports, crossovers stay valid.
#[test]
fn samples_mutations_and_crossovers_are_valid() {
    for name in ["default", "tiny"] {
        let sp = space(name);
        let mut rng = Rng::seed(42);
        let mut prev: Option<Genome> = None;
        let mut knob_kinds = HashMap::new();
        for i in 0..10_000 {
            let g = sp.sample(&mut rng).unwrap();
            assert!(sp.is_valid(&g), "{name} sample {i} invalid: {g:?}");
            let arch = sp.decode(&g);
            arch.validate()
                .unwrap_or_else(|e| panic!("{name} sample {i}: {e}: {arch:?}"));
            assert_eq!(
                sp.encode(&arch).as_ref(),
                Some(&g),
                "encode(decode(g)) != g"
            );

            let (child, knob) = sp.mutate(&g, &mut rng).expect("mutable");
            assert!(sp.is_valid(&child), "{name} mutation {i} invalid");
            sp.decode(&child)
                .validate()
                .unwrap_or_else(|e| panic!("{name} mutation {i} ({knob:?}): {e}"));
            assert_ne!(child, g);
            assert_eq!(
                sp.changed_knobs(&g, &child),
                vec![knob],
                "{name} mutation {i} changed other knobs: {g:?} -> {child:?}"
            );
            *knob_kinds
                .entry(format!("{knob:?}").split('(').next().unwrap().to_string())
                .or_insert(0) += 1;

            if let Some(p) = &prev {
                let c = sp.crossover(&g, p, &mut rng);
                assert!(sp.is_valid(&c), "{name} crossover {i} invalid");
                sp.decode(&c).validate().unwrap();
            }
            prev = Some(g);
        }
        // Every kind of knob was mutated at least once.
        for kind in [
            "Stages",
            "Layout",
            "Width",
            "DownResnets",
            "DownAttentions",
            "UpAttentions",
            "MidResnets",
            "MidAttentions",
        ] {
            assert!(
                knob_kinds.contains_key(kind),
                "{name}: {kind} never mutated"
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_samples() {
    let sp = space("default");
    let draw = |seed| {
        let mut rng = Rng::seed(seed);
        (0..200)
            .map(|_| sp.decode(&sp.sample(&mut rng).unwrap()).hash_id())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

/// Golden values: a change here means ids or samples differ from earlier runs (and from other
/// platforms), which breaks stored studies.
#[test]
fn hashes_and_samples_are_stable() {
    assert_eq!(preset("sd15").hash_id(), "27ef1ad7e7c954a1");
    assert_eq!(preset("decidiffusion").hash_id(), "4f6a6cc5e9764179");
    // The name is not part of the identity.
    let mut renamed = preset("sd15");
    renamed.name = "something else".into();
    assert_eq!(renamed.hash_id(), preset("sd15").hash_id());
    let sp = space("default");
    let mut rng = Rng::seed(0);
    let first: Vec<String> = (0..3)
        .map(|_| sp.decode(&sp.sample(&mut rng).unwrap()).hash_id())
        .collect();
    assert_eq!(
        first,
        ["741dc97eecf1c8c3", "defe4795d1d7c2db", "10e20593fc6840b0"]
    );
}

const SMALL_SPACE: &str = r#"
name = "small"
[stem]
base_channels = 32
time_embed_dim = 128
cross_attention_dim = 64
heads = 2
norm_groups = 8
[knobs]
stages = [2, 3]
layouts = ["diffusers", "flexible"]
interleave = ["alternate", "resnets-first"]
mid_resnets = [1, 2]
mid_attentions = [0, 1]
[[stage]]
out_channels = [32]
down_resnets = [1, 2]
down_attentions = [0, 1]
up_attentions = [0, 2]
[[stage]]
out_channels = [32, 64]
down_resnets = [1]
down_attentions = [0, 1]
up_attentions = [0, 2]
[[stage]]
out_channels = [64]
down_resnets = [1]
down_attentions = [0]
up_attentions = [0]
"#;

fn small_space() -> SearchSpace {
    SearchSpace::from_source(&Source {
        file: "small.toml".into(),
        text: SMALL_SPACE.into(),
    })
    .unwrap()
}

/// The exact size equals the number of distinct architectures found by exhaustive sampling,
/// and sampling is uniform (a chi-square test over all architectures).
#[test]
fn size_is_exact_and_sampling_is_uniform() {
    let sp = small_space();
    // Hand count. Diffusers: stage 0 combos (r, da, ua) with da in {0, r}, ua in {0, r+1}:
    // r=1: da {0,1} x ua {0,2} = 4; r=2: da {0} x ua {0} = 1 -> 5. Stage 1 (2 widths):
    // r=1: 4 -> 8. Stage 2: 1. 2 stages: 5*8 = 40; 3 stages: 40. Flexible: stage 0: 2*2*2 = 8,
    // stage 1: 2*1*2*2 = 8, stage 2: 1; globals 2*2*2 = 8. 2 stages: 512; 3 stages: 512.
    assert_eq!(sp.size(), 40 + 40 + 512 + 512);
    let n = sp.size() as usize;
    let draws = n * 200;
    let mut rng = Rng::seed(3);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..draws {
        let g = sp.sample(&mut rng).unwrap();
        *counts.entry(sp.decode(&g).hash_id()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), n, "distinct architectures != size");
    // Chi-square with n - 1 degrees of freedom: mean n - 1, sd sqrt(2 (n - 1)); allow 5 sd.
    let expected = draws as f64 / n as f64;
    let chi2: f64 = counts
        .values()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    let df = (n - 1) as f64;
    assert!(
        chi2 < df + 5.0 * (2.0 * df).sqrt(),
        "chi-square {chi2:.0} for {df} degrees of freedom: not uniform"
    );
}

#[test]
fn interleave_and_resnets_first_mutate_in_the_small_space() {
    let sp = small_space();
    let mut rng = Rng::seed(5);
    let mut seen_interleave = false;
    for _ in 0..2000 {
        let g = sp.sample(&mut rng).unwrap();
        let (c, knob) = sp.mutate(&g, &mut rng).unwrap();
        assert_eq!(sp.changed_knobs(&g, &c), vec![knob]);
        sp.decode(&c).validate().unwrap();
        seen_interleave |= knob == unas_space::space::Knob::Interleave;
    }
    assert!(seen_interleave);
}

/// Exported configs read back to the same architecture (both forms).
#[test]
fn diffusers_config_round_trips() {
    for name in ["sd15", "decidiffusion", "tiny", "tiny-nas"] {
        let arch = preset(name);
        let v = diffusers::export_config(&arch, 64);
        let mut back = diffusers::import_config(&v).unwrap();
        back.name = arch.name.clone();
        assert_eq!(back, arch, "{name}");
    }
    let sp = space("default");
    let mut rng = Rng::seed(9);
    for _ in 0..500 {
        let arch = sp.decode(&sp.sample(&mut rng).unwrap());
        let back = diffusers::import_config(&diffusers::export_config(&arch, 64)).unwrap();
        assert_eq!(back, arch);
    }
}

/// SD1.5's export equals the official `unet/config.json` field for field (diffusers version
/// metadata aside).
#[test]
fn sd15_export_matches_the_official_config() {
    let official = serde_json::json!({
        "_class_name": "UNet2DConditionModel",
        "act_fn": "silu",
        "attention_head_dim": 8,
        "block_out_channels": [320, 640, 1280, 1280],
        "center_input_sample": false,
        "cross_attention_dim": 768,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                             "CrossAttnDownBlock2D", "DownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": true,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 2,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "out_channels": 4,
        "sample_size": 64,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                           "CrossAttnUpBlock2D"]
    });
    assert_eq!(diffusers::export_config(&preset("sd15"), 64), official);
}

/// diffusers writes per-block `attention_head_dim` lists; equal entries mean constant heads,
/// and entries proportional to the widths mean one head size.
#[test]
fn per_block_head_lists_import() {
    let mut v = diffusers::export_config(&preset("tiny"), 16);
    v["attention_head_dim"] = serde_json::json!([2, 2, 2, 2]);
    let a = diffusers::import_config(&v).unwrap();
    assert_eq!((a.stem.heads, a.stem.head_dim), (Some(2), None));
    v["attention_head_dim"] = serde_json::json!([1, 2, 2, 2]); // widths 32, 64, 64, 64
    let a = diffusers::import_config(&v).unwrap();
    assert_eq!((a.stem.heads, a.stem.head_dim), (None, Some(32)));
    v["attention_head_dim"] = serde_json::json!([1, 2, 4, 2]);
    assert_eq!(
        diffusers::import_config(&v).unwrap_err().field,
        "attention_head_dim"
    );
}

/// `SubnetSampling::TowardsLargest` draws every block's counts in proportion to their rank
/// among the allowed counts, and `Uniform` draws candidates uniformly: measured on the third
/// stage's up-block attentions of `tiny-depth` (0–6 allowed: 1/7 each uniformly, (c + 1)/28
/// towards the largest) and the mid block's attentions (0–2), over 28,000 draws each
/// (frequencies within 4 standard errors).
#[test]
fn towards_largest_draws_counts_in_proportion_to_their_rank() {
    use unas_space::SubnetSampling;
    let sp = space("tiny-depth");
    let t = sp
        .topologies()
        .into_iter()
        .find(|t| t.to_string() == "flexible-32-64-64-64")
        .expect("topology");
    let n = 28_000;
    for sampling in [SubnetSampling::Uniform, SubnetSampling::TowardsLargest] {
        let mut rng = Rng::seed(7);
        let mut up = [0usize; 7];
        let mut mid = [0usize; 3];
        for _ in 0..n {
            let arch = sp.sample_in_with(&t, &mut rng, 10_000, sampling).unwrap();
            let g = sp.encode(&arch).expect("a point of the space");
            up[g.stages[2].up_attentions] += 1;
            mid[g.mid_attentions] += 1;
        }
        let check = |counts: &[usize], p: &dyn Fn(usize) -> f64, what: &str| {
            for (c, &k) in counts.iter().enumerate() {
                let (f, p) = (k as f64 / n as f64, p(c));
                let se = (p * (1.0 - p) / n as f64).sqrt();
                assert!(
                    (f - p).abs() < 4.0 * se,
                    "{sampling:?} {what} = {c}: frequency {f:.4}, expected {p:.4}"
                );
            }
        };
        match sampling {
            SubnetSampling::Uniform => {
                check(&up, &|_| 1.0 / 7.0, "stage-3 up attentions");
                check(&mid, &|_| 1.0 / 3.0, "mid attentions");
            }
            SubnetSampling::TowardsLargest => {
                check(&up, &|c| (c + 1) as f64 / 28.0, "stage-3 up attentions");
                check(&mid, &|c| (c + 1) as f64 / 6.0, "mid attentions");
            }
        }
    }
}

/// The sampling-steps knob of a time-to-image search: drawn (last) into every sample, carried
/// into the architecture and its id, mutated on its own, refused when malformed; a space
/// without it draws the same first network.
#[test]
fn sampling_steps_knob_is_drawn_mutated_and_part_of_the_id() {
    let plain = space("tiny-depth");
    let mut sp = plain.clone();
    sp.knobs.sampling_steps = vec![10, 20, 50];
    let mut rng = Rng::seed(7);
    let mut seen = std::collections::BTreeSet::new();
    let mut steps_mutations = 0;
    for _ in 0..2_000 {
        let g = sp.sample(&mut rng).unwrap();
        let k = g.sampling_steps.expect("a step count is drawn");
        assert!(sp.knobs.sampling_steps.contains(&k));
        seen.insert(k);
        let arch = sp.decode(&g);
        assert_eq!(arch.sampling_steps, Some(k));
        assert_eq!(sp.encode(&arch).as_ref(), Some(&g));
        let (child, knob) = sp.mutate(&g, &mut rng).unwrap();
        assert!(sp.is_valid(&child));
        if knob == unas_space::Knob::SamplingSteps {
            steps_mutations += 1;
            assert_ne!(child.sampling_steps, g.sampling_steps);
            let mut same = child.clone();
            same.sampling_steps = g.sampling_steps;
            assert_eq!(same, g, "only the step count changed");
        }
        let other = sp.sample(&mut rng).unwrap();
        assert!(sp.is_valid(&sp.crossover(&g, &other, &mut rng)));
    }
    assert_eq!(seen.len(), 3);
    assert!(steps_mutations > 0);

    // The step count is part of the id; without one the id is the network's own.
    let g = sp.sample(&mut Rng::seed(1)).unwrap();
    let mut a = sp.decode(&g);
    let with = a.hash_id();
    a.sampling_steps = None;
    assert_ne!(with, a.hash_id());
    let mut g0 = g.clone();
    g0.sampling_steps = None;
    assert!(sp.is_valid(&g0), "no step count is allowed (references)");
    assert_eq!(plain.decode(&g0).hash_id(), a.hash_id());
    g0.sampling_steps = Some(7);
    assert!(!sp.is_valid(&g0), "a step count the space does not offer");
    // The first draw's network is the same with and without the knob (steps drawn last).
    let first = plain.sample(&mut Rng::seed(1)).unwrap();
    assert_eq!(plain.decode(&first), a);

    let toml = |steps: &str| {
        let mut t = toml::to_string(&plain).unwrap();
        t = t.replace("[knobs]", &format!("[knobs]\nsampling_steps = {steps}"));
        SearchSpace::from_source(&Source {
            file: "t.toml".into(),
            text: t,
        })
    };
    assert!(toml("[10, 20]").is_ok());
    for bad in ["[0, 10]", "[10, 10]"] {
        let e = toml(bad).unwrap_err().to_string();
        assert!(e.contains("knobs.sampling_steps"), "{e}");
    }
}

/// The flat categorical view for outside samplers: every sampled genome is reached by the
/// choices of its own values, and any choice of every knob of tiny-depth is a valid genome.
#[test]
fn flat_knobs_reach_every_genome_and_any_choice_is_valid() {
    use std::collections::BTreeMap;
    let mut sp = space("tiny-depth");
    sp.knobs.sampling_steps = vec![10, 50];
    let knobs = sp.flat_knobs();
    assert_eq!(knobs[0].name, "stages");
    assert!(knobs.iter().any(|k| k.name == "stage3.up_attentions"));
    let mut rng = Rng::seed(3);
    for _ in 0..2_000 {
        let g = sp.sample(&mut rng).unwrap();
        let arch = sp.decode(&g);
        let value = |name: &str| -> String {
            match name {
                "stages" => g.stages.len().to_string(),
                "layout" => format!("{:?}", g.layout),
                "interleave" => format!("{:?}", g.interleave),
                "mid_resnets" => g.mid_resnets.to_string(),
                "mid_attentions" => g.mid_attentions.to_string(),
                "sampling_steps" => g.sampling_steps.unwrap().to_string(),
                other => {
                    let (stage, field) = other.split_once('.').unwrap();
                    let s: usize = stage.trim_start_matches("stage").parse().unwrap();
                    match g.stages.get(s) {
                        None => String::new(),
                        Some(st) => match field {
                            "out_channels" => st.out_channels,
                            "down_resnets" => st.down_resnets,
                            "down_attentions" => st.down_attentions,
                            _ => st.up_attentions,
                        }
                        .to_string(),
                    }
                }
            }
        };
        let choices: BTreeMap<String, usize> = knobs
            .iter()
            .map(|k| {
                let v = value(&k.name);
                let i = k.choices.iter().position(|c| *c == v);
                // Inactive knobs (absent stages, the diffusers mid): any choice.
                (k.name.clone(), i.unwrap_or(0))
            })
            .collect();
        assert_eq!(sp.genome_from_flat(&choices).as_ref(), Ok(&g), "{arch:?}");
        let random: BTreeMap<String, usize> = knobs
            .iter()
            .map(|k| (k.name.clone(), rng.below(k.choices.len())))
            .collect();
        let g2 = sp.genome_from_flat(&random).unwrap();
        assert!(sp.is_valid(&g2));
    }
    let mut bad = BTreeMap::new();
    bad.insert("stages".to_string(), 9);
    assert!(sp
        .genome_from_flat(&bad)
        .unwrap_err()
        .contains("out of range"));
}
