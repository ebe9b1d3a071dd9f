//! CLIP's byte-level BPE vocabulary — 49,408 tokens, the `vocab.json` and `merges.txt` of
//! Stable Diffusion 1.5's `tokenizer/`, derived from OpenAI CLIP's merges list by
//! `tools/fixtures/make_tokenizer_fixtures.py` — embedded gzip-compressed, and a writer of a
//! diffusers `tokenizer/` folder over it.

use std::io::Read;
use std::path::Path;

use crate::error::RuntimeError;

const VOCAB_GZ: &[u8] = include_bytes!("../../../tools/fixtures/tokenizer/clip/vocab.json.gz");
const MERGES_GZ: &[u8] = include_bytes!("../../../tools/fixtures/tokenizer/clip/merges.txt.gz");

/// Tokens in CLIP's vocabulary.
pub const CLIP_VOCAB_SIZE: usize = 49_408;

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("the embedded CLIP vocabulary is valid gzip UTF-8");
    text
}

/// `(vocab.json, merges.txt)` of CLIP's tokenizer.
pub fn clip_vocab_files() -> (String, String) {
    (gunzip(VOCAB_GZ), gunzip(MERGES_GZ))
}

/// Writes a diffusers `tokenizer/` folder of CLIP's BPE tokenizer into `dir` (created):
/// `vocab.json`, `merges.txt`, and `tokenizer_config.json` + `special_tokens_map.json` as
/// SD 1.5's, except `model_max_length` (the text encoder's sequence length; SD: 77).
pub fn write_clip_tokenizer(dir: &Path, model_max_length: usize) -> Result<(), RuntimeError> {
    let io = |source| RuntimeError::Io {
        file: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let (vocab, merges) = clip_vocab_files();
    let special = serde_json::json!({
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    });
    let mut config = serde_json::json!({
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "do_lower_case": true,
        "errors": "replace",
    });
    for (k, v) in special.as_object().expect("an object") {
        config[k] = v.clone();
    }
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("JSON") + "\n";
    for (name, text) in [
        ("vocab.json", vocab),
        ("merges.txt", merges),
        ("tokenizer_config.json", pretty(&config)),
        ("special_tokens_map.json", pretty(&special)),
    ] {
        std::fs::write(dir.join(name), text).map_err(|source| RuntimeError::Io {
            file: dir.join(name),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::ClipTokenizer;

    #[test]
    fn the_written_folder_is_clips_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        write_clip_tokenizer(dir.path(), 16).unwrap();
        let t = ClipTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(t.vocab_size(), CLIP_VOCAB_SIZE);
        assert_eq!((t.bos_id(), t.eos_id(), t.pad_id()), (49406, 49407, 49407));
        assert_eq!(t.max_length(), 16);
        // "a photo of a cat" in SD 1.5's tokenizer (transformers' CLIPTokenizer).
        assert_eq!(
            t.tokens("a photo of a cat"),
            vec![320, 1125, 539, 320, 2368]
        );
    }
}
