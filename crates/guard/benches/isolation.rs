//! `cargo bench -p secureinfer-guard --bench isolation`
//!
//! The prefix-probe window's cost per request: one pass over the prompt plus one comparison
//! per remembered prompt, with the window full (32 remembered probes).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use secureinfer_guard::isolation::{PrefixProbeConfig, PrefixProbeWindow};

fn prompt(bytes: usize) -> String {
    "the quick brown fox jumps over the lazy dog "
        .chars()
        .cycle()
        .take(bytes)
        .collect()
}

fn probe(c: &mut Criterion) {
    let cfg = PrefixProbeConfig::default();
    let mut group = c.benchmark_group("prefix_probe_observe");
    for size in [1024usize, 10 * 1024, 100 * 1024] {
        let base = prompt(size);
        // A full window of earlier probes that each extend the previous one.
        let mut window = PrefixProbeWindow::new();
        for i in 0..cfg.remember {
            let p = format!("{base}{}", "x".repeat(i));
            window.observe(&p, 1, i as u64, &cfg);
        }
        let next = format!("{base}{}", "x".repeat(cfg.remember));
        group.bench_with_input(BenchmarkId::from_parameter(size), &next, |b, p| {
            b.iter(|| {
                let mut w = window.clone();
                black_box(w.observe(black_box(p), 1, 1_000, &cfg))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, probe);
criterion_main!(benches);
