//! Per-tenant sliding window. Every structure is either a FIFO of entries or a map of plain
//! counters that entries increment on arrival and decrement on expiry, so one check costs
//! O(bands + candidates) regardless of how many queries the window holds.

use std::collections::VecDeque;

use super::assessment::{ExtractionAssessment, ExtractionSignal, count_points, ramp};
use super::config::{MAX_BANDS, NUM_HASHES};
use super::features::{ExtractionDetector, QueryFeatures, estimate_similarity};
use super::hashing::PreHashedMap;
use super::logprobs::LogitBiasSweep;
use super::normality::ShapiroWilk;

/// Most recent entries always compared with a new query, so the nearest-neighbour distance
/// has a finite value even when no LSH band matches.
const RECENT_CANDIDATES: usize = 4;
/// Recompute W every this many new distances; W moves slowly and sorting 256 values each time
/// would dominate the check.
const PRADA_EVERY: u32 = 8;
const MINUTE_MS: u64 = 60_000;
/// EWMA over per-minute counts with a one-hour span: alpha = 2 / (60 + 1).
const EWMA_ALPHA: f64 = 2.0 / 61.0;
/// Floor of the per-minute baseline so that near-idle tenants do not trip on a handful of calls.
const BASELINE_FLOOR: f64 = 1.0;
const DISTILL_RATIO: f64 = 5.0;

struct Entry {
    ts: u64,
    bands: [u64; MAX_BANDS],
    nbands: u8,
    sig: [u8; NUM_HASHES],
    /// `None` for prompts too short for the similarity signals.
    group: Option<u64>,
    template: Option<u64>,
    wrapper: Option<u64>,
    probe: bool,
    single_turn: bool,
    dist: Option<f64>,
}

#[derive(Clone, Copy)]
struct Bucket {
    count: u32,
    last_seq: u64,
}

/// One tenant's extraction state (in memory). Not shared: each tenant gets its own.
pub struct TenantWindow {
    entries: VecDeque<Entry>,
    front_seq: u64,
    buckets: PreHashedMap<Bucket>,
    groups: PreHashedMap<u32>,
    templates: PreHashedMap<u32>,
    wrappers: PreHashedMap<u32>,
    single_turn: u32,
    probes: u32,
    dist_sum: f64,
    dist_n: u32,
    distances: VecDeque<(u64, f64)>,
    since_test: u32,
    last_w: Option<f64>,
    sw: ShapiroWilk,
    sort_buf: Vec<f64>,
    minute: Option<u64>,
    minute_count: u32,
    ewma: f64,
    minutes_seen: u64,
    bias: LogitBiasSweep,
}

impl Default for TenantWindow {
    fn default() -> Self {
        Self::new()
    }
}

fn bump(map: &mut PreHashedMap<u32>, key: u64) -> u32 {
    let c = map.entry(key).or_insert(0);
    *c += 1;
    *c
}

fn drop_one(map: &mut PreHashedMap<u32>, key: u64) {
    if let Some(c) = map.get_mut(&key) {
        *c = c.saturating_sub(1);
        if *c == 0 {
            map.remove(&key);
        }
    }
}

impl TenantWindow {
    pub fn new() -> Self {
        Self {
            entries: VecDeque::new(),
            front_seq: 0,
            buckets: PreHashedMap::default(),
            groups: PreHashedMap::default(),
            templates: PreHashedMap::default(),
            wrappers: PreHashedMap::default(),
            single_turn: 0,
            probes: 0,
            dist_sum: 0.0,
            dist_n: 0,
            distances: VecDeque::new(),
            since_test: 0,
            last_w: None,
            sw: ShapiroWilk::default(),
            sort_buf: Vec::new(),
            minute: None,
            minute_count: 0,
            ewma: 0.0,
            minutes_seen: 0,
            bias: LogitBiasSweep::new(4096),
        }
    }

    /// Queries currently in the window.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records the token ids of an accepted `logit_bias` map (for the sweep signal).
    pub fn record_logit_bias<'a>(
        &mut self,
        det: &ExtractionDetector,
        now_ms: u64,
        token_ids: impl IntoIterator<Item = &'a str>,
    ) {
        self.bias.record(now_ms, det.cfg.window_ms, token_ids);
    }

    /// Adds one query and returns the tenant's assessment after it.
    pub fn observe(
        &mut self,
        det: &ExtractionDetector,
        now_ms: u64,
        f: &QueryFeatures,
    ) -> ExtractionAssessment {
        let cfg = &det.cfg;
        self.expire(now_ms.saturating_sub(cfg.window_ms));
        while self.entries.len() >= cfg.max_entries.max(1) {
            self.pop_front();
        }
        let seq = self.front_seq + self.entries.len() as u64;
        let eligible = f.words as usize >= cfg.min_words;
        let mut nbands = 0usize;
        let mut bands = [0u64; MAX_BANDS];
        let (mut group, mut dist) = (None, None);
        if eligible {
            for (slot, key) in bands.iter_mut().zip(f.band_keys.iter()) {
                *slot = *key;
                nbands += 1;
            }
            let (best, best_sim) = self.nearest(&bands[..nbands], &f.signature);
            if let Some(best) = best {
                dist = Some(1.0 - best_sim);
                if best_sim >= cfg.similarity_threshold {
                    group = self.entry(best).and_then(|e| e.group);
                }
            }
            group = group.or(Some(seq));
        }
        let template = (eligible && f.template_slots > 0).then_some(f.template);
        let entry = Entry {
            ts: now_ms,
            bands,
            nbands: nbands as u8,
            sig: f.signature,
            group,
            template,
            wrapper: f.wrapper,
            probe: !f.probes.is_empty(),
            single_turn: f.single_turn,
            dist,
        };
        let similar = group.map_or(0, |g| bump(&mut self.groups, g));
        let repeats = template.map_or(0, |t| bump(&mut self.templates, t));
        let wrapper_count = f.wrapper.map_or(0, |w| bump(&mut self.wrappers, w));
        for key in &bands[..nbands] {
            let b = self.buckets.entry(*key).or_insert(Bucket {
                count: 0,
                last_seq: seq,
            });
            b.count += 1;
            b.last_seq = seq;
        }
        self.single_turn += u32::from(f.single_turn);
        self.probes += u32::from(entry.probe);
        if let Some(d) = dist {
            self.dist_sum += d;
            self.dist_n += 1;
            self.push_distance(cfg.prada_max_samples, now_ms, d);
        }
        self.entries.push_back(entry);
        self.tick_minute(now_ms);
        self.assess(det, now_ms, similar, repeats, wrapper_count)
    }

    /// The tenant's current standing without adding a query: expired entries are dropped and
    /// the count signals report the largest near-duplicate group, template and wrapper still
    /// in the window. For status endpoints; linear in the number of distinct groups.
    pub fn snapshot(&mut self, det: &ExtractionDetector, now_ms: u64) -> ExtractionAssessment {
        self.expire(now_ms.saturating_sub(det.cfg.window_ms));
        let max = |m: &PreHashedMap<u32>| m.values().copied().max().unwrap_or(0);
        let (similar, repeats, wrappers) =
            (max(&self.groups), max(&self.templates), max(&self.wrappers));
        self.assess(det, now_ms, similar, repeats, wrappers)
    }

    fn assess(
        &mut self,
        det: &ExtractionDetector,
        now_ms: u64,
        similar: u32,
        repeats: u32,
        wrapper_count: u32,
    ) -> ExtractionAssessment {
        let cfg = &det.cfg;
        let n = self.entries.len() as u32;
        let budget_ratio = f64::from(n) / f64::from(cfg.velocity_budget.max(1));
        let recent =
            self.entries.len() - self.entries.partition_point(|e| e.ts + MINUTE_MS <= now_ms);
        let warm = self.minutes_seen >= u64::from(cfg.baseline_warmup_minutes);
        let burst = if warm {
            recent as f64 / self.ewma.max(BASELINE_FLOOR)
        } else {
            0.0
        };
        let w = self.prada_w(cfg.prada_min_samples);
        let prada_hit = w.is_some_and(|w| w < cfg.prada_delta);
        let single_share = f64::from(self.single_turn) / f64::from(n.max(1));
        let wrapper_share = f64::from(wrapper_count) / f64::from(n.max(1));
        let mean_dist = if self.dist_n > 0 {
            self.dist_sum / f64::from(self.dist_n)
        } else {
            0.0
        };
        let mut distill = 0u8;
        if burst >= DISTILL_RATIO {
            distill = 1
                + u8::from(single_share >= 0.9)
                + u8::from(wrapper_count >= 20 && wrapper_share >= 0.5)
                + u8::from(self.dist_n >= 20 && mean_dist >= 0.6);
        }
        let distinct_bias = self.bias.distinct(now_ms, cfg.window_ms);
        let signals = vec![
            ExtractionSignal {
                name: "near_duplicates",
                value: f64::from(similar),
                points: count_points(similar, cfg.max_similar, 80),
            },
            ExtractionSignal {
                name: "enumeration",
                value: f64::from(repeats),
                points: count_points(repeats, cfg.max_template_repeats, 85),
            },
            ExtractionSignal {
                name: "velocity_budget",
                value: budget_ratio,
                points: if budget_ratio > 1.0 {
                    25 + ramp(budget_ratio, 1.0, 2.0, 25)
                } else {
                    0
                },
            },
            ExtractionSignal {
                name: "velocity_baseline",
                value: burst,
                points: ramp(burst, 3.0, cfg.baseline_ratio, 20),
            },
            ExtractionSignal {
                name: "training_probes",
                value: f64::from(self.probes),
                points: (self.probes.min(3) * 20) as u8,
            },
            ExtractionSignal {
                name: "prada_normality",
                value: w.unwrap_or(1.0),
                points: if prada_hit { 15 } else { 0 },
            },
            ExtractionSignal {
                name: "distillation",
                value: f64::from(distill),
                points: if distill > 0 { 10 * distill } else { 0 },
            },
            ExtractionSignal {
                name: "logit_bias_sweep",
                value: distinct_bias as f64,
                points: count_points(
                    distinct_bias.min(u32::MAX as usize) as u32,
                    cfg.logit_bias_sweep_threshold,
                    70,
                ),
            },
        ];
        ExtractionAssessment::from_signals(cfg, signals)
    }

    fn entry(&self, seq: u64) -> Option<&Entry> {
        seq.checked_sub(self.front_seq)
            .and_then(|i| self.entries.get(i as usize))
    }

    /// Best MinHash estimate among the newest entry of each matching band bucket plus the most
    /// recent entries: at most `bands + RECENT_CANDIDATES` comparisons.
    fn nearest(&self, bands: &[u64], sig: &[u8; NUM_HASHES]) -> (Option<u64>, f64) {
        let mut best = (None, -1.0);
        let end = self.front_seq + self.entries.len() as u64;
        let recent = (end
            .saturating_sub(RECENT_CANDIDATES as u64)
            .max(self.front_seq))..end;
        let from_bands = bands
            .iter()
            .filter_map(|k| self.buckets.get(k).map(|b| b.last_seq));
        for seq in from_bands.chain(recent) {
            if let Some(e) = self.entry(seq).filter(|e| e.group.is_some()) {
                let s = estimate_similarity(sig, &e.sig);
                if s > best.1 {
                    best = (Some(seq), s);
                }
            }
        }
        (best.0, best.1.max(0.0))
    }

    fn expire(&mut self, cutoff: u64) {
        while self.entries.front().is_some_and(|e| e.ts < cutoff) {
            self.pop_front();
        }
        while self.distances.front().is_some_and(|(ts, _)| *ts < cutoff) {
            self.distances.pop_front();
        }
    }

    fn pop_front(&mut self) {
        let Some(e) = self.entries.pop_front() else {
            return;
        };
        self.front_seq += 1;
        for key in &e.bands[..usize::from(e.nbands)] {
            if let Some(b) = self.buckets.get_mut(key) {
                b.count = b.count.saturating_sub(1);
                if b.count == 0 {
                    self.buckets.remove(key);
                }
            }
        }
        if let Some(g) = e.group {
            drop_one(&mut self.groups, g);
        }
        if let Some(t) = e.template {
            drop_one(&mut self.templates, t);
        }
        if let Some(w) = e.wrapper {
            drop_one(&mut self.wrappers, w);
        }
        self.single_turn -= u32::from(e.single_turn);
        self.probes -= u32::from(e.probe);
        if let Some(d) = e.dist {
            self.dist_sum -= d;
            self.dist_n -= 1;
        }
        if self.entries.is_empty() {
            self.dist_sum = 0.0;
        }
    }

    fn push_distance(&mut self, cap: usize, now_ms: u64, d: f64) {
        if self.distances.len() >= cap.max(3) {
            self.distances.pop_front();
        }
        self.distances.push_back((now_ms, d));
        self.since_test += 1;
    }

    fn prada_w(&mut self, min_samples: usize) -> Option<f64> {
        let n = self.distances.len();
        if n < min_samples.max(3) {
            self.last_w = None;
            return None;
        }
        if self.last_w.is_some() && self.since_test < PRADA_EVERY {
            return self.last_w;
        }
        self.sort_buf.clear();
        self.sort_buf.extend(self.distances.iter().map(|(_, d)| *d));
        self.sort_buf.sort_unstable_by(f64::total_cmp);
        if self.sw.n() != n {
            self.sw = ShapiroWilk::new(n);
        }
        self.since_test = 0;
        self.last_w = Some(self.sw.w(&self.sort_buf));
        self.last_w
    }

    fn tick_minute(&mut self, now_ms: u64) {
        let minute = now_ms / MINUTE_MS;
        match self.minute {
            None => {
                self.minute = Some(minute);
                self.minute_count = 1;
            }
            Some(cur) if minute > cur => {
                let gap = minute - cur;
                self.ewma =
                    EWMA_ALPHA * f64::from(self.minute_count) + (1.0 - EWMA_ALPHA) * self.ewma;
                // Idle minutes decay the baseline; beyond a day it has decayed to nothing anyway.
                self.ewma *= (1.0 - EWMA_ALPHA).powi((gap - 1).min(1440) as i32);
                self.minutes_seen += gap;
                self.minute = Some(minute);
                self.minute_count = 1;
            }
            // Late timestamps are counted in the current minute.
            Some(_) => self.minute_count += 1,
        }
    }
}
