//! CLIP's byte-level BPE tokenizer, read from the `vocab.json` + `merges.txt` of a diffusers
//! `tokenizer/` folder and matching Hugging Face's `CLIPTokenizer` (transformers 5) id for id:
//!
//! 1. the special tokens (bos, eos, unk, pad as the folder's configs name them) are split off
//!    the raw text first (leftmost, longest match), exactly as `tokenizers` does for added tokens;
//! 2. every other segment is normalised: Unicode NFC, each whitespace run → one space, each
//!    character lower-cased on its own (no context-dependent final sigma);
//! 3. the CLIP pre-tokenizer regex keeps `<|startoftext|>`, `<|endoftext|>`, the contractions
//!    `'s 't 're 've 'm 'll 'd`, letter runs, single digits and runs of other non-space
//!    characters, and drops the rest (whitespace);
//! 4. each piece's UTF-8 bytes are mapped through GPT-2's byte-to-unicode table, `</w>` is
//!    appended to its last character, and merges are applied lowest rank first.
//!
//! [`ClipTokenizer::encode_padded`] then adds the start and end tokens, truncates to
//! `model_max_length` (77) and pads with the pad token as diffusers calls it
//! (`padding="max_length", truncation=True`).

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::error::RuntimeError;

/// CLIP's pre-tokenizer pattern (the `Split` of transformers' CLIPTokenizer).
const PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// Default sequence length of CLIP text encoders.
pub const DEFAULT_MAX_LENGTH: usize = 77;

/// Token ids of one prompt, padded to the tokenizer's length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoding {
    /// `[bos, tokens…, eos, pad…]`, exactly `max_length` ids.
    pub ids: Vec<u32>,
    /// How many prompt tokens were cut off to fit (0 when nothing was truncated).
    pub truncated_tokens: usize,
}

/// A CLIP BPE tokenizer.
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    pattern: Regex,
    whitespace: Regex,
    /// `(content, id)` of the special tokens, longest first.
    specials: Vec<(String, u32)>,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    unk_id: u32,
    max_length: usize,
}

/// GPT-2 / CLIP's reversible map from bytes to printable characters.
pub fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut n = 0;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(c).expect("valid code point");
    }
    table
}

fn io_err(file: &Path, source: std::io::Error) -> RuntimeError {
    RuntimeError::Io {
        file: file.to_path_buf(),
        source,
    }
}

fn bad_file(file: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::BadFile {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

/// A special-token entry of a tokenizer config: a string or `{"content": …}`.
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Special tokens and length read from `tokenizer_config.json` / `special_tokens_map.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecialTokens {
    /// Start token. Default: `<|startoftext|>`.
    pub bos: String,
    /// End token. Default: `<|endoftext|>`.
    pub eos: String,
    /// Padding token. Default: `<|endoftext|>` (SD 2.x folders use `!`).
    pub pad: String,
    /// Unknown token. Default: `<|endoftext|>`.
    pub unk: String,
    /// Sequence length. Default: 77.
    pub max_length: usize,
}

impl Default for SpecialTokens {
    fn default() -> Self {
        Self {
            bos: "<|startoftext|>".into(),
            eos: "<|endoftext|>".into(),
            pad: "<|endoftext|>".into(),
            unk: "<|endoftext|>".into(),
            max_length: DEFAULT_MAX_LENGTH,
        }
    }
}

impl SpecialTokens {
    /// Reads the folder's `tokenizer_config.json`, then `special_tokens_map.json` (which wins),
    /// keeping the defaults for what neither names. Both files are optional.
    pub fn from_dir(dir: &Path) -> Result<Self, RuntimeError> {
        let mut out = Self::default();
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            let path = dir.join(name);
            if !path.exists() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
            let v: Value =
                serde_json::from_str(&text).map_err(|e| bad_file(&path, e.to_string()))?;
            for (key, slot) in [
                ("bos_token", &mut out.bos),
                ("eos_token", &mut out.eos),
                ("pad_token", &mut out.pad),
                ("unk_token", &mut out.unk),
            ] {
                if let Some(t) = v.get(key).and_then(token_content) {
                    *slot = t;
                }
            }
            if let Some(n) = v.get("model_max_length").and_then(Value::as_u64) {
                // Some folders store a huge sentinel ("no limit"); CLIP encoders need 77.
                if (2..=4096).contains(&n) {
                    out.max_length = n as usize;
                }
            }
        }
        Ok(out)
    }
}

impl ClipTokenizer {
    /// Reads a diffusers `tokenizer/` folder: `vocab.json` and `merges.txt` (or, when they
    /// are absent, the BPE model inside `tokenizer.json`, which is all transformers 5 saves)
    /// and, when present, `tokenizer_config.json` / `special_tokens_map.json` for the special
    /// tokens.
    pub fn from_dir(dir: &Path) -> Result<Self, RuntimeError> {
        let vocab_path = dir.join("vocab.json");
        let merges_path = dir.join("merges.txt");
        let json_path = dir.join("tokenizer.json");
        if !vocab_path.exists() && json_path.exists() {
            return Self::from_tokenizer_json(&json_path, SpecialTokens::from_dir(dir)?);
        }
        let vocab_text =
            std::fs::read_to_string(&vocab_path).map_err(|e| io_err(&vocab_path, e))?;
        let merges_text =
            std::fs::read_to_string(&merges_path).map_err(|e| io_err(&merges_path, e))?;
        let special = SpecialTokens::from_dir(dir)?;
        Self::from_strings(
            &vocab_text,
            &merges_text,
            special,
            (&vocab_path, &merges_path),
        )
    }

    /// Reads the BPE vocabulary and merges of a `tokenizers` `tokenizer.json` file.
    pub fn from_tokenizer_json(path: &Path, special: SpecialTokens) -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| bad_file(path, e.to_string()))?;
        let model = &v["model"];
        if model["type"].as_str() != Some("BPE") {
            return Err(bad_file(path, "field `model.type`: expected a BPE model"));
        }
        let vocab = model["vocab"].to_string();
        let merges = model["merges"]
            .as_array()
            .ok_or_else(|| bad_file(path, "field `model.merges`: expected a list"))?
            .iter()
            .map(|m| match m {
                Value::String(s) => Some(s.clone()),
                Value::Array(p) => match (p.first(), p.get(1)) {
                    (Some(Value::String(a)), Some(Value::String(b))) => Some(format!("{a} {b}")),
                    _ => None,
                },
                _ => None,
            })
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| bad_file(path, "field `model.merges`: expected pairs of tokens"))?
            .join("\n");
        Self::from_strings(&vocab, &merges, special, (path, path))
    }

    /// Builds a tokenizer from the text of `vocab.json` and `merges.txt`; `files` name them in
    /// errors.
    pub fn from_strings(
        vocab_json: &str,
        merges_txt: &str,
        special: SpecialTokens,
        files: (&Path, &Path),
    ) -> Result<Self, RuntimeError> {
        let (vocab_path, merges_path) = files;
        let raw: HashMap<String, u64> = serde_json::from_str(vocab_json).map_err(|e| {
            bad_file(
                vocab_path,
                format!("expected a JSON object of token → id: {e}"),
            )
        })?;
        let vocab: HashMap<String, u32> = raw
            .into_iter()
            .map(|(k, v)| {
                u32::try_from(v)
                    .map(|v| (k.clone(), v))
                    .map_err(|_| bad_file(vocab_path, format!("token `{k}` has id {v}")))
            })
            .collect::<Result<_, _>>()?;
        let mut ranks = HashMap::new();
        for (n, line) in merges_txt.lines().enumerate() {
            if (n == 0 && line.starts_with("#version")) || line.trim().is_empty() {
                continue;
            }
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                    let rank = ranks.len();
                    ranks.entry((a.to_string(), b.to_string())).or_insert(rank);
                }
                _ => {
                    return Err(bad_file(
                        merges_path,
                        format!("line {}: expected two tokens separated by a space", n + 1),
                    ))
                }
            }
        }
        let id_of = |t: &str, what: &str| {
            vocab.get(t).copied().ok_or_else(|| {
                bad_file(
                    vocab_path,
                    format!("the {what} token `{t}` is not in the vocabulary"),
                )
            })
        };
        let bos_id = id_of(&special.bos, "start")?;
        let eos_id = id_of(&special.eos, "end")?;
        let pad_id = id_of(&special.pad, "padding")?;
        let unk_id = id_of(&special.unk, "unknown")?;
        let mut specials: Vec<(String, u32)> = vec![
            (special.bos.clone(), bos_id),
            (special.eos.clone(), eos_id),
            (special.unk.clone(), unk_id),
            (special.pad.clone(), pad_id),
        ];
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        specials.dedup();
        Ok(Self {
            vocab,
            ranks,
            byte_chars: bytes_to_unicode(),
            pattern: Regex::new(PATTERN).expect("valid pattern"),
            whitespace: Regex::new(r"\s+").expect("valid pattern"),
            specials,
            bos_id,
            eos_id,
            pad_id,
            unk_id,
            max_length: special.max_length,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Id of the start token.
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// Id of the end token.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Id of the padding token.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Sequence length of [`Self::encode_padded`] (77 for CLIP).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// `[bos, tokens…, eos]` without truncation or padding.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.bos_id];
        ids.extend(self.tokens(text));
        ids.push(self.eos_id);
        ids
    }

    /// `[bos, tokens…, eos, pad…]` truncated and padded to [`Self::max_length`] ids.
    pub fn encode_padded(&self, text: &str) -> Encoding {
        let mut tokens = self.tokens(text);
        let room = self.max_length.saturating_sub(2);
        let truncated_tokens = tokens.len().saturating_sub(room);
        tokens.truncate(room);
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos_id);
        ids.extend(tokens);
        ids.push(self.eos_id);
        ids.resize(self.max_length, self.pad_id);
        Encoding {
            ids,
            truncated_tokens,
        }
    }

    /// The prompt's token ids (no start/end tokens).
    pub fn tokens(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match self.next_special(rest) {
                Some((at, len, id)) => {
                    self.encode_segment(&rest[..at], &mut out);
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.encode_segment(rest, &mut out);
                    break;
                }
            }
        }
        out
    }

    /// Leftmost (then longest) special token in `text`: (byte offset, byte length, id).
    fn next_special(&self, text: &str) -> Option<(usize, usize, u32)> {
        let mut best: Option<(usize, usize, u32)> = None;
        for (content, id) in &self.specials {
            if content.is_empty() {
                continue;
            }
            if let Some(at) = text.find(content.as_str()) {
                let better = match best {
                    None => true,
                    Some((b_at, b_len, _)) => at < b_at || (at == b_at && content.len() > b_len),
                };
                if better {
                    best = Some((at, content.len(), *id));
                }
            }
        }
        best
    }

    fn encode_segment(&self, segment: &str, out: &mut Vec<u32>) {
        if segment.is_empty() {
            return;
        }
        let nfc: String = segment.nfc().collect();
        let spaced = self.whitespace.replace_all(&nfc, " ");
        let lower: String = spaced.chars().flat_map(char::to_lowercase).collect();
        for piece in self.pattern.find_iter(&lower) {
            let word: Vec<String> = piece
                .as_str()
                .bytes()
                .map(|b| self.byte_chars[b as usize].to_string())
                .collect();
            self.bpe(word, out);
        }
    }

    /// Merges the symbols of one word (its last symbol gets `</w>`) and appends their ids.
    fn bpe(&self, mut word: Vec<String>, out: &mut Vec<u32>) {
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|p| self.ranks.get(&(p[0].clone(), p[1].clone())))
                .min()
                .copied();
            let Some(rank) = best else { break };
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len()
                    && self.ranks.get(&(word[i].clone(), word[i + 1].clone())) == Some(&rank)
                {
                    merged.push(format!("{}{}", word[i], word[i + 1]));
                    i += 2;
                } else {
                    merged.push(std::mem::take(&mut word[i]));
                    i += 1;
                }
            }
            word = merged;
        }
        out.extend(
            word.iter()
                .map(|s| self.vocab.get(s).copied().unwrap_or(self.unk_id)),
        );
    }
}

#[cfg(test)]
mod tests;
