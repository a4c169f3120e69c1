//! `cargo bench -p secureinfer-guard --bench extraction`
//!
//! observe() must cost the same with 100, 1,000 or 10,000 queries in the window.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use secureinfer_guard::extraction::{
    ExtractionConfig, ExtractionDetector, QueryFeatures, TenantWindow,
};

const TOPICS: [&str; 16] = [
    "capital",
    "recipe",
    "protocol",
    "poem",
    "vaccine",
    "interest",
    "planet",
    "history",
    "bridge",
    "python",
    "garden",
    "orchestra",
    "mortgage",
    "glacier",
    "chess",
    "bakery",
];

fn prompt(i: usize) -> String {
    format!(
        "Question {i}: explain the {} of the {} in relation to {} for a {} audience",
        TOPICS[i % 16],
        TOPICS[(i / 16) % 16],
        TOPICS[(i / 256) % 16],
        TOPICS[(i * 7) % 16]
    )
}

fn bench(c: &mut Criterion) {
    let det = ExtractionDetector::new(ExtractionConfig::default());
    let probes: Vec<QueryFeatures> = (0..4096)
        .map(|i| det.features(&prompt(1_000_000 + i), true))
        .collect();
    let mut group = c.benchmark_group("observe");
    for size in [100usize, 1_000, 10_000] {
        let mut window = TenantWindow::new();
        // Spread `size` queries over 30 minutes so none expire while measuring.
        let step = 1_800_000 / size as u64;
        for i in 0..size {
            window.observe(&det, i as u64 * step, &det.features(&prompt(i), true));
        }
        let cfg = ExtractionConfig {
            max_entries: size,
            ..ExtractionConfig::default()
        };
        let det_capped = ExtractionDetector::new(cfg);
        let mut now = 1_800_000u64;
        let mut k = 0usize;
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                now += 1;
                k = (k + 1) % probes.len();
                // The cap keeps the window at `size`: each observe also drops the oldest entry.
                black_box(window.observe(&det_capped, now, &probes[k]))
            })
        });
    }
    group.finish();

    let text: String = (0..)
        .map(prompt)
        .take_while(|_| true)
        .take(20)
        .collect::<Vec<_>>()
        .join(" ");
    let kb = &text[..text
        .char_indices()
        .map(|(i, _)| i)
        .take_while(|i| *i <= 1024)
        .last()
        .unwrap_or(0)];
    c.bench_function("features_1kb", |b| {
        b.iter(|| black_box(det.features(black_box(kb), true)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
