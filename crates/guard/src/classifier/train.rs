//! Training the learned detector: logistic regression by AdaGrad over shuffled chunks,
//! deterministic for a given seed and input order (single thread, fixed hashing, a
//! seeded shuffle), then quantised to i8 and calibrated on held-out rows.
//!
//! Long rows are split into chunks exactly as at scoring time. A benign row's chunks are all
//! benign, but only some chunks of an attack row carry the attack (an instruction buried in
//! a document). The first round trains on every chunk; later rounds keep, for each attack
//! row, only the chunk the current model finds most attack-like (multiple-instance
//! learning), which matches the max-over-chunks verdict used when serving.

use serde_json::json;

use super::features::{self, CHUNK_BYTES, CHUNK_OVERLAP, FEATURE_VERSION, dense_names};
use super::model::{self, Calibration, FORMAT, Manifest};
use super::synth::Rng;
use super::{Classifier, ModelError};
use crate::normalize::{Normalized, Normalizer};
use crate::{Guard, GuardConfig};

/// One labelled row, featurised.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub chunks: Vec<Vec<(u32, f32)>>,
    pub dense: Vec<f32>,
    pub label: bool,
    /// Relative importance in the loss (class and source balancing).
    pub weight: f32,
}

/// Turns text into [`Example`]s the way the served model sees it.
pub struct Featurizer {
    guard: Guard,
    norm: Normalizer,
    bits: u32,
}

impl Featurizer {
    pub fn new(bits: u32) -> Result<Featurizer, ModelError> {
        let guard = Guard::new(GuardConfig::default())
            .map_err(|e| ModelError::Incompatible(format!("heuristic catalogue: {e}")))?;
        let norm =
            Normalizer::new().map_err(|e| ModelError::Incompatible(format!("normaliser: {e}")))?;
        if !(model::MIN_BITS..=model::MAX_BITS).contains(&bits) {
            return Err(ModelError::Incompatible(format!(
                "bits must be within {}..={}",
                model::MIN_BITS,
                model::MAX_BITS
            )));
        }
        Ok(Featurizer { guard, norm, bits })
    }

    pub fn example(&self, text: &str, label: bool, weight: f32) -> Example {
        let heuristic = self.guard.score_text(text);
        let mut dense = Vec::with_capacity(features::dense_len());
        features::dense_features(&heuristic, &mut dense);
        let mut buf = Normalized::default();
        let mut budget = 0usize;
        self.norm.run(text, false, &mut budget, &mut buf);
        let chunks = features::chunks(buf.latin_view())
            .map(|c| features::sparse(c, self.bits))
            .collect();
        Example {
            chunks,
            dense,
            label,
            weight,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    pub seed: u64,
    /// log2 of the hash table size.
    pub bits: u32,
    /// Passes over the data per round.
    pub epochs: u32,
    /// Rounds; from the second on, attack rows contribute their most attack-like chunk only.
    pub rounds: u32,
    /// L2 penalty applied to the weights each example touches.
    pub l2: f32,
    /// AdaGrad step size.
    pub rate: f32,
    /// Hashed features seen in fewer training rows than this are left at zero: they can
    /// only memorise single rows (e.g. one table's cells), not generalise.
    pub min_df: u32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 7,
            bits: 18,
            epochs: 6,
            rounds: 3,
            l2: 2e-4,
            rate: 0.2,
            min_df: 3,
        }
    }
}

/// Unquantised weights, as training produces them.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    pub bits: u32,
    pub weights: Vec<f32>,
    pub dense: Vec<f32>,
    pub bias: f32,
}

impl LinearModel {
    fn chunk_logit(&self, chunk: &[(u32, f32)], dense: &[f32]) -> f32 {
        let s: f32 = chunk
            .iter()
            .map(|&(i, v)| self.weights.get(i as usize).copied().unwrap_or(0.0) * v)
            .sum();
        let d: f32 = self.dense.iter().zip(dense).map(|(w, x)| w * x).sum();
        self.bias + s + d
    }

    /// The verdict for a row: its highest chunk logit (as when serving).
    pub fn logit(&self, ex: &Example) -> f32 {
        ex.chunks
            .iter()
            .map(|c| self.chunk_logit(c, &ex.dense))
            .fold(f32::NEG_INFINITY, f32::max)
    }

    fn best_chunk(&self, ex: &Example) -> usize {
        let mut best = (0usize, f32::NEG_INFINITY);
        for (i, c) in ex.chunks.iter().enumerate() {
            let z = self.chunk_logit(c, &ex.dense);
            if z > best.1 {
                best = (i, z);
            }
        }
        best.0
    }
}

struct Adagrad {
    w: Vec<f32>,
    g: Vec<f32>,
}

impl Adagrad {
    fn new(n: usize) -> Self {
        Adagrad {
            w: vec![0.0; n],
            g: vec![0.0; n],
        }
    }

    #[inline]
    fn step(&mut self, i: usize, grad: f32, rate: f32) {
        if let (Some(w), Some(g)) = (self.w.get_mut(i), self.g.get_mut(i)) {
            *g += grad * grad;
            *w -= rate * grad / (g.sqrt() + 1e-6);
        }
    }
}

fn fit(
    examples: &[Example],
    inst: &mut [(usize, usize, f32)],
    cfg: &TrainConfig,
    rng: &mut Rng,
    n: usize,
    nd: usize,
) -> LinearModel {
    let mut sparse = Adagrad::new(n);
    let mut dense = Adagrad::new(nd);
    let mut bias = Adagrad::new(1);
    let live = frequent(examples, n, cfg.min_df);
    for _ in 0..cfg.epochs {
        rng.shuffle(inst);
        for &(e, c, w) in inst.iter() {
            let (Some(ex), true) = (examples.get(e), w > 0.0) else {
                continue;
            };
            let Some(chunk) = ex.chunks.get(c) else {
                continue;
            };
            let mut z = bias.w[0];
            for &(i, v) in chunk {
                // Pruned features stay at zero, so reading them is harmless.
                z += sparse.w.get(i as usize).copied().unwrap_or(0.0) * v;
            }
            for (wd, x) in dense.w.iter().zip(&ex.dense) {
                z += wd * x;
            }
            let p = 1.0 / (1.0 + (-z).exp());
            let y = if ex.label { 1.0 } else { 0.0 };
            let err = (p - y) * w;
            for &(i, v) in chunk {
                let i = i as usize;
                if !live.get(i).copied().unwrap_or(false) {
                    continue;
                }
                let reg = cfg.l2 * sparse.w.get(i).copied().unwrap_or(0.0);
                sparse.step(i, err * v + reg, cfg.rate);
            }
            for (j, x) in ex.dense.iter().enumerate() {
                let reg = cfg.l2 * dense.w.get(j).copied().unwrap_or(0.0);
                dense.step(j, err * x + reg, cfg.rate);
            }
            bias.step(0, err, cfg.rate);
        }
    }
    LinearModel {
        bits: cfg.bits,
        weights: sparse.w,
        dense: dense.w,
        bias: bias.w[0],
    }
}

/// Buckets that occur in at least `min_df` distinct rows.
fn frequent(examples: &[Example], n: usize, min_df: u32) -> Vec<bool> {
    let mut df = vec![0u32; n];
    let mut seen: Vec<u32> = Vec::new();
    for ex in examples {
        seen.clear();
        for c in &ex.chunks {
            seen.extend(c.iter().map(|e| e.0));
        }
        seen.sort_unstable();
        seen.dedup();
        for &i in &seen {
            if let Some(d) = df.get_mut(i as usize) {
                *d += 1;
            }
        }
    }
    df.into_iter().map(|d| d >= min_df).collect()
}

/// Trains on `examples` (which must share the config's `bits`). Deterministic.
pub fn train(examples: &[Example], cfg: &TrainConfig) -> LinearModel {
    let n = 1usize << cfg.bits;
    let nd = features::dense_len();
    let mut rng = Rng(cfg.seed);
    let mut model = LinearModel {
        bits: cfg.bits,
        weights: Vec::new(),
        dense: Vec::new(),
        bias: 0.0,
    };
    for round in 0..cfg.rounds.max(1) {
        // (example, chunk, weight) instances for this round.
        let mut inst: Vec<(usize, usize, f32)> = Vec::new();
        for (e, ex) in examples.iter().enumerate() {
            let k = ex.chunks.len().max(1);
            if ex.label && round > 0 && k > 1 {
                inst.push((e, model.best_chunk(ex), ex.weight));
            } else if ex.label {
                // Before a model exists, an attack row's weight is spread over its chunks.
                let w = ex.weight / k as f32;
                inst.extend((0..ex.chunks.len()).map(|c| (e, c, w)));
            } else {
                // Every benign chunk is truly benign; sqrt keeps long rows from dominating.
                let w = ex.weight / (k as f32).sqrt();
                inst.extend((0..ex.chunks.len()).map(|c| (e, c, w)));
            }
        }
        // Each round starts from zero: the previous model only chose the chunks.
        model = fit(examples, &mut inst, cfg, &mut rng, n, nd);
    }
    model
}

/// Rounds the table to i8 with one scale; returns the stored integers and the model as
/// it will score after loading (calibrate on that one, not on the unrounded weights).
/// One byte per weight keeps the table small enough for the random look-ups of scoring to
/// hit a core's cache; the rounding errors of a chunk's many features average out (a
/// chunk's sum is divided by the square root of their count).
pub fn quantize(m: &LinearModel) -> (Vec<i8>, f32, LinearModel) {
    let max = m.weights.iter().fold(0.0f32, |a, w| a.max(w.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let q: Vec<i8> = m
        .weights
        .iter()
        .map(|w| (w / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let deq = LinearModel {
        bits: m.bits,
        weights: q.iter().map(|&x| f32::from(x) * scale).collect(),
        dense: m.dense.clone(),
        bias: m.bias,
    };
    (q, scale, deq)
}

/// False-positive rates the calibration aims at on held-out benign rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationTargets {
    /// Below this share of benign rows' logits the detector adds no points.
    pub floor_fpr: f64,
    /// The detector alone reaches WARN on at most this share of benign rows.
    pub warn_fpr: f64,
    /// ... and BLOCK on at most this share.
    pub block_fpr: f64,
}

impl Default for CalibrationTargets {
    fn default() -> Self {
        CalibrationTargets {
            floor_fpr: 0.05,
            warn_fpr: 0.005,
            block_fpr: 0.001,
        }
    }
}

/// Cut points from held-out benign logits: each is just above the logit that the target
/// share of benign rows reaches, and they are kept at least 0.5 apart.
pub fn calibrate(benign_logits: &[f32], t: CalibrationTargets) -> Calibration {
    let mut v: Vec<f32> = benign_logits
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    v.sort_by(|a, b| b.total_cmp(a));
    let at = |fpr: f64| -> f32 {
        let k = (fpr * v.len() as f64).floor() as usize;
        v.get(k).map_or(0.0, |x| x + 1e-3)
    };
    let floor = at(t.floor_fpr);
    let warn = at(t.warn_fpr).max(floor + 0.5);
    let block = at(t.block_fpr).max(warn + 0.5);
    Calibration { floor, warn, block }
}

/// Packs a trained model into the file format, with `provenance` in its manifest.
pub fn package(
    quantized: &[i8],
    scale: f32,
    m: &LinearModel,
    calibration: Calibration,
    provenance: serde_json::Value,
) -> Vec<u8> {
    let manifest = Manifest {
        format: FORMAT,
        feature_version: FEATURE_VERSION,
        bits: m.bits,
        chunk_bytes: CHUNK_BYTES,
        chunk_overlap: CHUNK_OVERLAP,
        scale,
        bias: m.bias,
        dense_names: dense_names(),
        dense_weights: m.dense.clone(),
        calibration,
        provenance,
    };
    model::encode(&manifest, quantized)
}

/// A trained, quantised and calibrated model, before it is written out.
#[derive(Debug, Clone)]
pub struct Trained {
    quantized: Vec<i8>,
    scale: f32,
    /// The model exactly as it scores after loading.
    pub model: LinearModel,
    pub calibration: Calibration,
}

impl Trained {
    /// The file bytes, with `provenance` (command, inputs, metrics) in the manifest.
    pub fn to_bytes(&self, provenance: serde_json::Value) -> Vec<u8> {
        package(
            &self.quantized,
            self.scale,
            &self.model,
            self.calibration,
            provenance,
        )
    }

    /// The loaded form, for measuring before writing.
    pub fn classifier(&self) -> Result<Classifier, ModelError> {
        Classifier::from_bytes(&self.to_bytes(json!({})))
    }
}

/// Trains, quantises and calibrates: `held_out_benign` rows (not training rows) set the
/// cut points.
pub fn train_model(
    train_rows: &[Example],
    held_out_benign: &[Example],
    cfg: &TrainConfig,
    targets: CalibrationTargets,
) -> Trained {
    finish(&train(train_rows, cfg), held_out_benign, targets)
}

/// The mean of models trained on different draws of the same data (a bag). Scoring is
/// linear within a chunk, so a chunk's logit under the mean is the mean of its logits:
/// the bag costs nothing to serve, and what one draw learned by chance is averaged away.
/// `None` when the list is empty or the models differ in shape.
pub fn average(models: &[LinearModel]) -> Option<LinearModel> {
    let first = models.first()?;
    if models.iter().any(|m| {
        m.bits != first.bits
            || m.weights.len() != first.weights.len()
            || m.dense.len() != first.dense.len()
    }) {
        return None;
    }
    let n = models.len() as f32;
    let mut out = LinearModel {
        bits: first.bits,
        weights: vec![0.0; first.weights.len()],
        dense: vec![0.0; first.dense.len()],
        bias: 0.0,
    };
    for m in models {
        out.weights
            .iter_mut()
            .zip(&m.weights)
            .for_each(|(a, w)| *a += w / n);
        out.dense
            .iter_mut()
            .zip(&m.dense)
            .for_each(|(a, w)| *a += w / n);
        out.bias += m.bias / n;
    }
    Some(out)
}

/// Quantises a trained model and calibrates it on `held_out_benign` rows.
pub fn finish(
    m: &LinearModel,
    held_out_benign: &[Example],
    targets: CalibrationTargets,
) -> Trained {
    let (quantized, scale, model) = quantize(m);
    let logits: Vec<f32> = held_out_benign.iter().map(|e| model.logit(e)).collect();
    let calibration = calibrate(&logits, targets);
    Trained {
        quantized,
        scale,
        model,
        calibration,
    }
}
