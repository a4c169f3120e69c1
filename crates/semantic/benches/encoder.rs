//! Tier-2 cost: one 256-token window through MiniLM and the head (the unit the semantic tier
//! pays per prompt it is asked about), and a 4-window document (linear in length).
//! Run on one core: `RAYON_NUM_THREADS=1 cargo bench -p secureinfer-semantic --features semantic`.
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
    // Prose that tokenises to exactly one full window.
    let sentence =
        "Please review the attached quarterly report and summarise the main risks for the board. ";
    let mut text = String::new();
    while det.encoder().windows(&(text.clone() + sentence)).unwrap()[0].len() < CHUNK_TOKENS
        && det
            .encoder()
            .windows(&(text.clone() + sentence))
            .unwrap()
            .len()
            == 1
    {
        text.push_str(sentence);
    }
    let ids = det.encoder().windows(&text).unwrap();
    eprintln!("window: {} tokens", ids[0].len());
    let mut g = c.benchmark_group("semantic");
    g.sample_size(20);
    g.bench_function("window_256_tokens", |b| {
        b.iter(|| det.score(black_box(&[text.as_str()])))
    });
    let doc = text.repeat(4);
    eprintln!(
        "document: {} windows",
        det.encoder().windows(&doc).unwrap().len()
    );
    g.bench_function("document_4_windows", |b| {
        b.iter(|| det.score(black_box(&[doc.as_str()])))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
