//! The in-process backend: GCRA state and concurrency counts in sharded maps. One check locks
//! one shard (all keys of a check share its group, which picks the shard), so admission is
//! atomic without a global lock.
//!
//! Memory is bounded: a key whose TAT has passed carries no information (it equals a fresh key)
//! and is swept, and a shard that is still full after a sweep refuses new keys rather than grow.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;

use super::backend::{BackendError, LimitBackend, Settlement};
use super::check::{self, Check, LimitKind, Verdict};
use super::gcra;

const SHARDS: usize = 16;
/// Live keys per shard (so at most 16 × 32 768 ≈ 0.5 M keys, a few tens of MB).
const MAX_KEYS_PER_SHARD: usize = 32_768;

#[derive(Default)]
struct Shard {
    tats: HashMap<String, u64>,
    slots: HashMap<String, u64>,
    /// Sweep expired keys when the map reaches this size (doubles with the live set, so
    /// sweeping costs O(1) amortised per insert).
    sweep_at: usize,
}

impl Shard {
    fn make_room(&mut self, now: u64, new_keys: usize) -> bool {
        if self.tats.len() + new_keys <= self.sweep_at.max(1024) {
            return true;
        }
        self.tats.retain(|_, tat| *tat > now);
        self.sweep_at = (self.tats.len() * 2).min(MAX_KEYS_PER_SHARD);
        self.tats.len() + new_keys <= MAX_KEYS_PER_SHARD
    }
}

pub struct MemoryBackend {
    shards: Vec<Mutex<Shard>>,
    epoch: Instant,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            epoch: Instant::now(),
        }
    }
}

impl MemoryBackend {
    /// Monotonic microseconds. Starts at one hour so that "TAT 0" never reads as the future.
    fn now_us(&self) -> u64 {
        3_600_000_000 + self.epoch.elapsed().as_micros() as u64
    }

    fn shard(&self, group: &str) -> MutexGuard<'_, Shard> {
        let mut h = DefaultHasher::new();
        group.hash(&mut h);
        let index = (h.finish() as usize) % self.shards.len();
        // A poisoned lock only means another thread panicked mid-update of plain integers:
        // the map is still usable, and limiting must not start panicking too.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The synchronous check; the trait method wraps it.
    pub fn check_now(&self, check: &Check) -> Verdict {
        let now = self.now_us();
        let mut shard = self.shard(&check.group);
        let tats: Vec<Option<u64>> = check
            .spends
            .iter()
            .map(|s| shard.tats.get(&s.key).copied())
            .collect();
        let in_flight = check
            .slot
            .as_ref()
            .and_then(|s| shard.slots.get(&s.key).copied())
            .unwrap_or(0);
        let (verdict, new_tats) = check::evaluate(check, &tats, in_flight, now);
        if let Verdict::Admitted { .. } = verdict {
            let new_keys = tats.iter().filter(|t| t.is_none()).count();
            if !shard.make_room(now, new_keys) {
                tracing::warn!("in-process limiter full: refusing new clients until keys expire");
                return Verdict::Refused {
                    kind: check.spends.first().map_or(LimitKind::Ip, |s| s.kind),
                    retry_after_us: check::CONCURRENCY_RETRY_US,
                    figures: Vec::new(),
                };
            }
            for (spend, tat) in check.spends.iter().zip(new_tats) {
                shard.tats.insert(spend.key.clone(), tat);
            }
            if let Some(slot) = &check.slot {
                *shard.slots.entry(slot.key.clone()).or_insert(0) += 1;
            }
        }
        verdict
    }

    /// The synchronous settlement, used inline when a ticket is dropped.
    pub fn settle_now(&self, s: &Settlement) {
        let now = self.now_us();
        let mut shard = self.shard(&s.group);
        if let Some(tokens) = &s.tokens {
            let tat = shard.tats.get(&tokens.key).copied();
            match gcra::adjust(tat, now, tokens.quota, tokens.delta) {
                Some(t) => {
                    shard.tats.insert(tokens.key.clone(), t);
                }
                None => {
                    shard.tats.remove(&tokens.key);
                }
            }
        }
        if let Some(slot) = &s.release
            && let Some(count) = shard.slots.get_mut(&slot.key)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.slots.remove(&slot.key);
            }
        }
    }

    /// Requests of a group in flight (for tests and the demo's report).
    pub fn in_flight(&self, group: &str, key: &str) -> u64 {
        self.shard(group).slots.get(key).copied().unwrap_or(0)
    }
}

#[async_trait]
impl LimitBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn check(&self, check: &Check) -> Result<Verdict, BackendError> {
        Ok(self.check_now(check))
    }

    async fn settle(&self, settlement: &Settlement) -> Result<(), BackendError> {
        self.settle_now(settlement);
        Ok(())
    }

    async fn refresh(&self, _group: &str, _slot_key: &str, _id: &str) -> Result<(), BackendError> {
        // In-process slots cannot outlive their process: no lease to renew.
        Ok(())
    }

    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::backend::{SlotRelease, TokenAdjust};
    use super::super::check::{Slot, Spend};
    use super::super::gcra::Quota;
    use super::*;

    fn chat_check(cap: u64) -> Check {
        Check {
            group: "t:1".into(),
            spends: vec![Spend {
                kind: LimitKind::Tokens,
                key: "tok".into(),
                quota: Quota {
                    interval_us: 1_000_000,
                    burst: 100,
                },
                cost: 60,
            }],
            slot: Some(Slot {
                key: "conc".into(),
                cap,
                id: "a".into(),
            }),
        }
    }

    #[test]
    fn slots_and_tokens_settle() {
        let m = MemoryBackend::default();
        assert!(matches!(
            m.check_now(&chat_check(1)),
            Verdict::Admitted { .. }
        ));
        assert_eq!(m.in_flight("t:1", "conc"), 1);
        // Slot full, tokens short too: refused, nothing charged.
        assert!(matches!(
            m.check_now(&chat_check(1)),
            Verdict::Refused { .. }
        ));
        m.settle_now(&Settlement {
            group: "t:1".into(),
            tokens: Some(TokenAdjust {
                key: "tok".into(),
                quota: Quota {
                    interval_us: 1_000_000,
                    burst: 100,
                },
                delta: -50,
            }),
            release: Some(SlotRelease {
                key: "conc".into(),
                id: "a".into(),
            }),
        });
        assert_eq!(m.in_flight("t:1", "conc"), 0);
        // 10 spent, 90 left: another 60 fits.
        assert!(matches!(
            m.check_now(&chat_check(1)),
            Verdict::Admitted { .. }
        ));
    }

    #[test]
    fn expired_keys_are_swept_and_memory_stays_bounded() {
        let m = MemoryBackend::default();
        let quota = Quota {
            interval_us: 1,
            burst: 1_000,
        };
        for i in 0..(SHARDS * 4096) {
            let c = Check {
                group: format!("ip:{i}"),
                spends: vec![Spend {
                    kind: LimitKind::Ip,
                    key: format!("ip:{i}"),
                    quota,
                    cost: 1,
                }],
                slot: None,
            };
            assert!(matches!(m.check_now(&c), Verdict::Admitted { .. }));
        }
        // Each key expired 1 µs after its request; sweeps keep every shard small.
        let total: usize = m
            .shards
            .iter()
            .map(|s| s.lock().map(|s| s.tats.len()).unwrap_or(0))
            .sum();
        assert!(total < SHARDS * 4096, "{total} keys kept");
    }
}
