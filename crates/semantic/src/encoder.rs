//! The sentence encoder: all-MiniLM-L6-v2 (BERT) in candle on the CPU. Mean pooling over the
//! tokens and L2 normalisation, as the model was trained (its `1_Pooling` config).
//!
//! Long texts are split into windows of [`CHUNK_TOKENS`] tokens ([CLS] and [SEP] included)
//! overlapping by [`CHUNK_OVERLAP`], each encoded on its own: cost is linear in length and
//! nothing is cut off.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokenizers::Tokenizer;

use crate::head::EncoderId;
use crate::{CHUNK_OVERLAP, CHUNK_TOKENS, DIM};

#[derive(Debug, Error)]
pub enum EncoderError {
    #[error("config.json: {0}")]
    Config(String),
    #[error("tokenizer.json: {0}")]
    Tokenizer(String),
    #[error("model.safetensors: {0}")]
    Weights(String),
    #[error("encoding failed: {0}")]
    Encode(String),
}

pub struct Encoder {
    model: BertModel,
    tokenizer: Tokenizer,
    cls: u32,
    sep: u32,
    id: EncoderId,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// Builds the encoder from the bytes of `config.json`, `tokenizer.json` and
    /// `model.safetensors`.
    pub fn from_bytes(
        config: &[u8],
        tokenizer: &[u8],
        weights: Vec<u8>,
    ) -> Result<Encoder, EncoderError> {
        let cfg: Config =
            serde_json::from_slice(config).map_err(|e| EncoderError::Config(e.to_string()))?;
        if cfg.hidden_size != DIM {
            return Err(EncoderError::Config(format!(
                "hidden_size {} (the head reads {DIM})",
                cfg.hidden_size
            )));
        }
        let mut tok =
            Tokenizer::from_bytes(tokenizer).map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        // The shipped tokenizer.json truncates and pads to 128; we window ourselves.
        tok.with_padding(None);
        tok.with_truncation(None)
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        let special = |t: &str| {
            tok.token_to_id(t)
                .ok_or_else(|| EncoderError::Tokenizer(format!("no {t} token")))
        };
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let weights_sha256 = hex::encode(Sha256::digest(&weights));
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| EncoderError::Weights(e.to_string()))?;
        let model = BertModel::load(vb, &cfg).map_err(|e| EncoderError::Weights(e.to_string()))?;
        Ok(Encoder {
            model,
            tokenizer: tok,
            cls,
            sep,
            id: EncoderId {
                name: "sentence-transformers/all-MiniLM-L6-v2".to_string(),
                weights_sha256,
            },
        })
    }

    pub fn id(&self) -> &EncoderId {
        &self.id
    }

    /// Token windows of a text, each wrapped in [CLS] … [SEP] and at most `CHUNK_TOKENS` long.
    /// An empty text gives one window holding only the two markers.
    pub fn windows(&self, text: &str) -> Result<Vec<Vec<u32>>, EncoderError> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EncoderError::Encode(e.to_string()))?;
        let ids = enc.get_ids();
        let body = CHUNK_TOKENS - 2;
        let stride = body - CHUNK_OVERLAP;
        let mut out = Vec::with_capacity(ids.len() / stride + 1);
        let mut start = 0usize;
        loop {
            let end = (start + body).min(ids.len());
            let mut w = Vec::with_capacity(end - start + 2);
            w.push(self.cls);
            w.extend_from_slice(ids.get(start..end).unwrap_or_default());
            w.push(self.sep);
            out.push(w);
            if end >= ids.len() {
                break;
            }
            start += stride;
        }
        Ok(out)
    }

    /// The L2-normalised mean-pooled embedding of one window.
    pub fn embed_window(&self, ids: &[u32]) -> Result<Vec<f32>, EncoderError> {
        let err = |e: candle_core::Error| EncoderError::Encode(e.to_string());
        let input = Tensor::new(ids, &Device::Cpu)
            .map_err(err)?
            .unsqueeze(0)
            .map_err(err)?;
        let types = input.zeros_like().map_err(err)?;
        let hidden = self.model.forward(&input, &types, None).map_err(err)?;
        // Every position is a real token (no padding), so the mean is over all of them.
        let pooled = hidden.mean(1).map_err(err)?.squeeze(0).map_err(err)?;
        let mut v: Vec<f32> = pooled.to_vec1().map_err(err)?;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= norm);
        Ok(v)
    }

    /// Embeddings of every window of a text.
    pub fn embed(&self, text: &str) -> Result<Vec<Vec<f32>>, EncoderError> {
        self.windows(text)?
            .iter()
            .map(|w| self.embed_window(w))
            .collect()
    }
}
