//! Text conditioning: CLIP's BPE tokenizer and text transformer.

pub mod clip_encoder_layer;
pub mod clip_mlp;
pub mod clip_text_model;
pub mod clip_vocab;
pub mod tokenizer;

pub use clip_text_model::{ClipTextConfig, ClipTextModel};
pub use clip_vocab::{write_clip_tokenizer, CLIP_VOCAB_SIZE};
pub use tokenizer::{ClipTokenizer, Encoding, SpecialTokens};
