//! Tier-2 cost: the encoder on windows of 32, 128 and 256 tokens, one 256-token prompt
//! through tokenizer, MiniLM and the head (the unit the semantic tier pays per prompt it is
//! asked about), and a document of 4 prompts (5 overlapping windows; cost is linear in windows).
//! Run on one core: `RAYON_NUM_THREADS=1 cargo bench -p secureinfer-semantic --features semantic
//! --bench encoder` (candle's matrix products use RAYON_NUM_THREADS threads, else every core).
//! Needs the encoder files (scripts/fetch-minilm.sh or SEMANTIC_MODEL_DIR).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use secureinfer_guard::SecondTier;
use secureinfer_semantic::{CHUNK_TOKENS, Encoder, Head, SemanticDetector};

fn bench(c: &mut Criterion) {
    let dir = std::env::var_os("SEMANTIC_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/minilm"));
    if !dir.join("model.safetensors").exists() {
        eprintln!("skipping: no encoder in {}", dir.display());
        return;
    }
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let enc = Encoder::from_bytes(
        &read("config.json"),
        &read("tokenizer.json"),
        read("model.safetensors"),
    )
    .unwrap();
    let det = SemanticDetector::new(enc, Head::builtin().unwrap()).unwrap();
    // Prose: the longest whole-sentence prompt that fits one window, and a full window of ids.
    let sentence =
        "Please review the attached quarterly report and summarise the main risks for the board. ";
    let windows = |t: &str| det.encoder().windows(t).unwrap();
    let mut text = String::new();
    while windows(&(text.clone() + sentence)).len() == 1 {
        text.push_str(sentence);
    }
    let ids = windows(&sentence.repeat(40)).remove(0);
    assert_eq!(ids.len(), CHUNK_TOKENS);
    eprintln!("prompt: {} tokens", windows(&text)[0].len());
    let mut g = c.benchmark_group("semantic");
    g.sample_size(20);
    // The encoder alone on windows of 32, 128 and 256 tokens ([CLS] and [SEP] included):
    // what a short, a medium and a full-window prompt cost.
    for n in [32usize, 128, CHUNK_TOKENS] {
        let mut w = ids[..n - 1].to_vec();
        w.push(*ids.last().unwrap());
        g.bench_function(format!("embed_window_{n}_tokens"), |b| {
            b.iter(|| det.encoder().embed_window(black_box(&w)).unwrap())
        });
    }
    // The whole tier on a 256-token prompt: tokenizer, encoder, pooling and head.
    g.bench_function("window_256_tokens", |b| {
        b.iter(|| det.score(black_box(&[text.as_str()])))
    });
    let doc = text.repeat(4);
    g.bench_function(format!("document_{}_windows", windows(&doc).len()), |b| {
        b.iter(|| det.score(black_box(&[doc.as_str()])))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
