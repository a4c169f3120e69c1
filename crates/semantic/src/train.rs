//! Training the head: L2-regularised logistic regression over embeddings, by stochastic
//! gradient descent in a seeded order (same rows, seed and options give the same bits), with
//! the classes weighted to count equally. Calibration reuses the first tier's rule: cut
//! points at target false-positive rates of held-out benign rows.

use secureinfer_guard::classifier::train::{CalibrationTargets, calibrate};

use crate::head::{EncoderId, FORMAT, Head, HeadManifest};
use crate::{CHUNK_OVERLAP, CHUNK_TOKENS, DIM};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadConfig {
    pub seed: u64,
    pub epochs: u32,
    pub learning_rate: f32,
    pub l2: f32,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            seed: 7,
            epochs: 40,
            learning_rate: 0.5,
            l2: 1e-4,
        }
    }
}

/// splitmix64: a tiny, well-mixed generator; enough for a reproducible shuffle.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Trains weights and bias on `(embedding, is_attack)` rows. Embeddings of the wrong width
/// are skipped.
pub fn train_weights(rows: &[(Vec<f32>, bool)], cfg: &HeadConfig) -> (Vec<f32>, f32) {
    let rows: Vec<&(Vec<f32>, bool)> = rows.iter().filter(|(e, _)| e.len() == DIM).collect();
    let pos = rows.iter().filter(|(_, y)| *y).count().max(1) as f32;
    let neg = rows.iter().filter(|(_, y)| !*y).count().max(1) as f32;
    let total = pos + neg;
    // Each class weighs half of the total, whatever the mix of the data.
    let (wpos, wneg) = (total / (2.0 * pos), total / (2.0 * neg));
    let mut w = vec![0.0f32; DIM];
    let mut b = 0.0f32;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut rng = Rng(cfg.seed);
    for epoch in 0..cfg.epochs {
        for i in (1..order.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let lr = cfg.learning_rate / (1.0 + epoch as f32);
        for &i in &order {
            let (x, y) = rows[i];
            let z = b + w.iter().zip(x).map(|(a, c)| a * c).sum::<f32>();
            let p = 1.0 / (1.0 + (-z).exp());
            let g = (p - if *y { 1.0 } else { 0.0 }) * if *y { wpos } else { wneg };
            for (wk, xk) in w.iter_mut().zip(x) {
                *wk -= lr * (g * xk + cfg.l2 * *wk);
            }
            b -= lr * g;
        }
    }
    (w, b)
}

/// Trains a head and calibrates it on held-out benign rows (each a list of window
/// embeddings; a row's logit is its highest window's, as at scoring time).
pub fn train_head(
    rows: &[(Vec<f32>, bool)],
    benign_holdout: &[Vec<Vec<f32>>],
    encoder: EncoderId,
    cfg: &HeadConfig,
    provenance: serde_json::Value,
) -> Head {
    let (weights, bias) = train_weights(rows, cfg);
    let mut head = Head {
        manifest: HeadManifest {
            format: FORMAT,
            dim: DIM,
            chunk_tokens: CHUNK_TOKENS,
            chunk_overlap: CHUNK_OVERLAP,
            encoder,
            bias,
            calibration: secureinfer_guard::classifier::Calibration {
                floor: 0.0,
                warn: 1.0,
                block: 2.0,
            },
            provenance,
        },
        weights,
    };
    let logits: Vec<f32> = benign_holdout
        .iter()
        .map(|row| {
            row.iter()
                .map(|e| head.logit(e))
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .collect();
    head.manifest.calibration = calibrate(&logits, CalibrationTargets::default());
    head
}
