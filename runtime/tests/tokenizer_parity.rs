//! The CLIP tokenizer against Hugging Face's CLIPTokenizer (transformers 5) on the full CLIP
//! vocabulary: ids recorded by tools/fixtures/make_tokenizer_fixtures.py for 240 prompts.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use unas_runtime::text::ClipTokenizer;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/tokenizer")
}

/// Unpacks the gzip'ed vocab.json/merges.txt (plus configs) into a diffusers-style folder.
fn tokenizer_dir(pad: Option<&str>) -> tempfile::TempDir {
    let src = fixtures().join("clip");
    let dir = tempfile::tempdir().unwrap();
    for name in ["vocab.json", "merges.txt"] {
        let gz = std::fs::read(src.join(format!("{name}.gz"))).unwrap();
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut text)
            .unwrap();
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    for name in ["tokenizer_config.json", "special_tokens_map.json"] {
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(src.join(name)).unwrap()).unwrap();
        if let Some(p) = pad {
            v["pad_token"] = Value::from(p);
        }
        std::fs::write(dir.path().join(name), v.to_string()).unwrap();
    }
    dir
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn records() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("ids.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn matches_transformers_clip_tokenizer() {
    let dir = tokenizer_dir(None);
    let tok = ClipTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.vocab_size(), 49408);
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.pad_id()),
        (49406, 49407, 49407)
    );
    let records = records();
    assert!(records.len() >= 200);
    let mut failures = Vec::new();
    let mut truncated = 0;
    for r in &records {
        let prompt = r["prompt"].as_str().unwrap();
        let full = tok.encode(prompt);
        let padded = tok.encode_padded(prompt);
        if full != ids(&r["full"]) || padded.ids != ids(&r["ids"]) {
            failures.push(format!(
                "{prompt:?}\n  ours {full:?}\n  hf   {:?}",
                ids(&r["full"])
            ));
        }
        assert_eq!(padded.truncated_tokens, full.len().saturating_sub(77));
        truncated += usize::from(padded.truncated_tokens > 0);
    }
    assert!(truncated >= 5, "the fixture exercises truncation");
    assert!(
        failures.is_empty(),
        "{} of {} prompts differ:\n{}",
        failures.len(),
        records.len(),
        failures.join("\n")
    );
}

#[test]
fn pad_token_from_config_is_honoured() {
    // SD 2.x folders pad with "!" (id 0); transformers then treats "!" as that special token.
    let dir = tokenizer_dir(Some("!"));
    let tok = ClipTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.pad_id(), 0);
    let mut n = 0;
    for r in records().iter().filter(|r| r.get("ids_pad_bang").is_some()) {
        let prompt = r["prompt"].as_str().unwrap();
        assert_eq!(
            tok.encode_padded(prompt).ids,
            ids(&r["ids_pad_bang"]),
            "{prompt:?}"
        );
        n += 1;
    }
    assert!(n >= 50);
}

#[test]
fn missing_vocab_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = ClipTokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("vocab.json"), "{err}");
}
