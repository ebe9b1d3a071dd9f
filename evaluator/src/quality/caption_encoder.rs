//! The proxy's text encoder: the runtime's CLIP text transformer at a small width, **frozen at
//! a seeded random initialisation** (never trained), over a word-level vocabulary of the
//! dataset's captions. Distinct captions get distinct, deterministic embeddings, and the
//! candidate U-Nets learn to read them through cross-attention exactly as they would read a
//! real CLIP's — the same modules as real runs, without a 123 M-parameter encoder on the CPU.

use std::collections::BTreeSet;

use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData};
use unas_runtime::device::Cpu;
use unas_runtime::text::{ClipTextConfig, ClipTextModel, ClipTokenizer};

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
    config: ClipTextConfig,
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
            config,
            model,
        }
    }

    /// The same encoder as a standard CLIP text model over `tokenizer`'s BPE vocabulary (CLIP's
    /// for a pipeline folder): the same layers, and a token table whose row for each word's
    /// BPE token is that word's row, the start and end tokens' rows the start and end ids',
    /// and every other row the unknown word's. For every caption of `captions` the two give
    /// the same embeddings (an unknown word of several BPE tokens differs: several unknown
    /// rows instead of one). Errors when a word of `captions` is not one BPE token, a caption
    /// tokenizes into other pieces than its words, or the tokenizer pads to another length.
    pub fn to_clip(
        &self,
        tokenizer: &ClipTokenizer,
        captions: &[String],
    ) -> Result<(ClipTextConfig, ClipTextModel<Cpu>), String> {
        if tokenizer.max_length() != self.text_len {
            return Err(format!(
                "the tokenizer pads to {} tokens, the caption encoder reads {}",
                tokenizer.max_length(),
                self.text_len
            ));
        }
        let mut row_of = vec![UNKNOWN as usize; tokenizer.vocab_size()];
        row_of[tokenizer.bos_id() as usize] = START as usize;
        row_of[tokenizer.eos_id() as usize] = END as usize;
        row_of[tokenizer.pad_id() as usize] = END as usize;
        for (i, w) in self.words.iter().enumerate() {
            match tokenizer.tokens(w).as_slice() {
                [t] => row_of[*t as usize] = i + 3,
                pieces => {
                    return Err(format!(
                        "the caption word `{w}` is {} BPE tokens, not one",
                        pieces.len()
                    ))
                }
            }
        }
        for c in captions {
            // Both truncate to `text_len − 2` pieces between the start and end tokens.
            let mut pieces: Vec<usize> = tokenizer
                .tokens(c)
                .iter()
                .map(|&t| row_of[t as usize])
                .collect();
            pieces.truncate(self.text_len - 2);
            let words: Vec<usize> = self.tokenize(c)[1..]
                .iter()
                .map(|&id| id as usize)
                .take_while(|&id| id != END as usize)
                .collect();
            if pieces != words {
                return Err(format!(
                    "the caption `{c}` tokenizes into other pieces than its words"
                ));
            }
        }
        let device = Default::default();
        let small = self
            .model
            .token_embedding
            .weight
            .val()
            .into_data()
            .to_vec::<f32>()
            .expect("f32 weights");
        let dim = self.dim;
        let table: Vec<f32> = row_of
            .iter()
            .flat_map(|&r| small[r * dim..(r + 1) * dim].iter().copied())
            .collect();
        let config = self.config.clone().with_vocab_size(tokenizer.vocab_size());
        let mut model = config.init::<Cpu>(&device);
        model.token_embedding.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(table, [tokenizer.vocab_size(), dim]),
            &device,
        ));
        model.position_embedding = self.model.position_embedding.clone();
        model.layers = self.model.layers.clone();
        model.final_layer_norm = self.model.final_layer_norm.clone();
        Ok((config, model))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::data::shapes::Shapes;

    #[test]
    fn the_clip_form_embeds_every_caption_as_the_encoder_does() {
        let ds = Shapes::new(0, 200, 32);
        let captions: Vec<String> = (0..200).map(|i| Shapes::caption(&ds.labels(i))).collect();
        let enc = CaptionEncoder::new(captions.iter().map(String::as_str), 64, 16, 7);
        let dir = tempfile::tempdir().unwrap();
        unas_runtime::text::write_clip_tokenizer(dir.path(), 16).unwrap();
        let tok = ClipTokenizer::from_dir(dir.path()).unwrap();
        let (config, clip) = enc.to_clip(&tok, &captions).unwrap();
        assert_eq!(config.vocab_size, 49_408);
        let mut all = captions.clone();
        all.push(String::new());
        let ids: Vec<i64> = all
            .iter()
            .flat_map(|c| tok.encode_padded(c).ids.into_iter().map(i64::from))
            .collect();
        let ids = Tensor::<Cpu, 2, Int>::from_data(
            TensorData::new(ids, [all.len(), 16]),
            &Default::default(),
        );
        let got = clip.forward(ids).into_data().to_vec::<f32>().unwrap();
        let want = enc.encode(&all);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "largest difference {worst}");
        // A caption with punctuation is not the encoder's word sequence.
        let bad = vec!["a red, circle".to_string()];
        let e = enc.to_clip(&tok, &bad).unwrap_err();
        assert!(e.contains("a red, circle"), "{e}");
    }
}
