//! The proxy's text encoder: the runtime's CLIP text transformer at a small width, **frozen at
//! a seeded random initialisation** (never trained), over a word-level vocabulary of the
//! dataset's captions. Distinct captions get distinct, deterministic embeddings, and the
//! candidate U-Nets learn to read them through cross-attention exactly as they would read a
//! real CLIP's — the same modules as real runs, without a 123 M-parameter encoder on the CPU.

use std::collections::BTreeSet;

use burn::tensor::{Int, Tensor, TensorData};
use unas_runtime::device::Cpu;
use unas_runtime::text::{ClipTextConfig, ClipTextModel};

use super::train::init_seeded;

/// Token ids: start, end (also the padding), unknown word; words follow.
const START: i64 = 0;
const END: i64 = 1;
const UNKNOWN: i64 = 2;

/// A frozen, seeded CLIP text model over the words of a dataset's captions.
#[derive(Debug)]
pub struct CaptionEncoder {
    words: Vec<String>,
    text_len: usize,
    dim: usize,
    model: ClipTextModel<Cpu>,
}

fn words(caption: &str) -> impl Iterator<Item = String> + '_ {
    caption
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

impl CaptionEncoder {
    /// Builds the encoder: vocabulary = the sorted words of `captions`; width `dim` (the
    /// U-Nets' cross-attention width), 2 layers, 2 heads, `text_len` tokens, weights drawn from
    /// `seed`.
    pub fn new<'a>(
        captions: impl IntoIterator<Item = &'a str>,
        dim: usize,
        text_len: usize,
        seed: u64,
    ) -> Self {
        let vocab: BTreeSet<String> = captions.into_iter().flat_map(words).collect();
        let words: Vec<String> = vocab.into_iter().collect();
        let heads = if dim.is_multiple_of(2) { 2 } else { 1 };
        let config = ClipTextConfig::new()
            .with_vocab_size(words.len() + 3)
            .with_hidden_size(dim)
            .with_intermediate_size(4 * dim)
            .with_num_hidden_layers(2)
            .with_num_attention_heads(heads)
            .with_max_position_embeddings(text_len);
        let device = Default::default();
        let model = init_seeded::<Cpu, _>(&device, seed, || config.init(&device));
        Self {
            words,
            text_len,
            dim,
            model,
        }
    }

    /// Token ids of a caption: start, words (unknown words → one id), end, padded with end to
    /// `text_len` (truncated to it).
    pub fn tokenize(&self, caption: &str) -> Vec<i64> {
        let mut ids = vec![START];
        for w in words(caption) {
            let id = self
                .words
                .binary_search(&w)
                .map_or(UNKNOWN, |i| i as i64 + 3);
            ids.push(id);
        }
        ids.truncate(self.text_len - 1);
        ids.resize(self.text_len, END);
        ids
    }

    /// Embeddings `[n, text_len, dim]` of `captions`, flattened row-major.
    pub fn encode(&self, captions: &[String]) -> Vec<f32> {
        let device = Default::default();
        let mut out = Vec::with_capacity(captions.len() * self.text_len * self.dim());
        for chunk in captions.chunks(256) {
            let ids: Vec<i64> = chunk.iter().flat_map(|c| self.tokenize(c)).collect();
            let ids = Tensor::<Cpu, 2, Int>::from_data(
                TensorData::new(ids, [chunk.len(), self.text_len]),
                &device,
            );
            let emb = self.model.forward(ids).into_data();
            out.extend(emb.to_vec::<f32>().expect("f32 embeddings"));
        }
        out
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Tokens per caption.
    pub fn text_len(&self) -> usize {
        self.text_len
    }

    /// Vocabulary size (words, without the three special ids).
    pub fn vocabulary(&self) -> usize {
        self.words.len()
    }
}
