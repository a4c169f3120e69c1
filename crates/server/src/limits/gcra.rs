//! The limit algorithm, pure: GCRA (the generic cell rate algorithm), the "virtual scheduling"
//! form of a token bucket. No I/O, no clock of its own: callers pass `now`, so the in-process
//! backend, the Redis Lua script (`check.lua`, which mirrors this file line for line) and the
//! tests all run the same arithmetic.
//!
//! A limit is a rate (one unit every `interval_us`) and a burst (how many units may be spent at
//! once). The whole state of one key is a single number, the theoretical arrival time (TAT): the
//! moment at which the bucket would be full again. Spending `cost` units moves the TAT forward by
//! `cost × interval`; the spend is allowed while the TAT stays within `burst × interval` of now.
//! A key whose TAT lies in the past is indistinguishable from a fresh one, which is what lets
//! idle keys simply expire.
//!
//! All times are whole microseconds. Integers keep the two implementations in exact agreement
//! (Lua numbers are doubles, exact for integers below 2^53, i.e. for the next ~280 years of
//! microseconds since 1970 plus any charge we allow).

/// One rate limit: `burst` units at once, refilled at one unit per `interval_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub interval_us: u64,
    pub burst: u64,
}

/// Microseconds in a minute: every configured rate is "per minute".
pub const MINUTE_US: u64 = 60_000_000;

impl Quota {
    /// `per_minute` units per minute with a burst of `burst` (at least 1). `None` when the rate
    /// is 0, which means "no limit".
    pub fn per_minute(per_minute: u64, burst: u64) -> Option<Quota> {
        if per_minute == 0 {
            return None;
        }
        Some(Quota {
            // Rounded down: a limit of 7/min allows a hair over 7/min rather than under.
            interval_us: (MINUTE_US / per_minute).max(1),
            burst: burst.max(1),
        })
    }

    /// The delay-variation tolerance: how far ahead of now the TAT may run.
    fn tolerance(&self) -> u64 {
        self.burst.saturating_mul(self.interval_us)
    }

    /// The nominal rate, per minute, for headers.
    pub fn per_minute_rate(&self) -> u64 {
        MINUTE_US / self.interval_us.max(1)
    }
}

/// What a check decided for one limit, with the figures clients see in headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Units still available right after this decision.
    pub remaining: u64,
    /// Microseconds until the bucket is full again.
    pub reset_us: u64,
    /// When refused: microseconds until the same request would be allowed (`u64::MAX` when it
    /// never can be, because it costs more than the burst).
    pub retry_after_us: u64,
}

/// Checks a spend of `cost` units against a key whose stored TAT is `tat` (`None`: never
/// seen or expired). Returns the decision and, when allowed, the TAT to store. A refused
/// check changes nothing: rejected requests are not charged.
pub fn check(tat: Option<u64>, now: u64, quota: Quota, cost: u64) -> (Decision, Option<u64>) {
    let tolerance = quota.tolerance();
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(cost.saturating_mul(quota.interval_us));
    // The earliest moment at which the spend fits: new_tat - tolerance.
    let allow_at = new_tat.saturating_sub(tolerance);
    if cost > quota.burst || allow_at > now {
        let decision = Decision {
            allowed: false,
            remaining: remaining(tat, now, quota),
            reset_us: tat - now,
            retry_after_us: if cost > quota.burst {
                u64::MAX
            } else {
                allow_at - now
            },
        };
        return (decision, None);
    }
    let decision = Decision {
        allowed: true,
        remaining: remaining(new_tat, now, quota),
        reset_us: new_tat - now,
        retry_after_us: 0,
    };
    (decision, Some(new_tat))
}

/// `(remaining, reset_us)` of a key as it stands, without spending: what a refused request's
/// headers show for the limits it did not exceed (an all-or-nothing refusal charges none).
pub fn status(tat: Option<u64>, now: u64, quota: Quota) -> (u64, u64) {
    let tat = tat.unwrap_or(now).max(now);
    (remaining(tat, now, quota), tat - now)
}

/// Units available at `now` for a key at `tat` (with `tat >= now`).
fn remaining(tat: u64, now: u64, quota: Quota) -> u64 {
    (now + quota.tolerance()).saturating_sub(tat) / quota.interval_us
}

/// Settles a charge after the fact: `delta > 0` charges more units (without a check: the work
/// is done, so the key may go into debt and later requests wait longer), `delta < 0` gives
/// units back. Returns the TAT to store, or `None` when the key is back to full (delete it).
pub fn adjust(tat: Option<u64>, now: u64, quota: Quota, delta: i64) -> Option<u64> {
    let tat = tat.unwrap_or(now).max(now);
    let moved = delta.unsigned_abs().saturating_mul(quota.interval_us);
    let new_tat = if delta >= 0 {
        tat.saturating_add(moved)
    } else {
        tat.saturating_sub(moved)
    };
    (new_tat > now).then_some(new_tat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000;

    fn q(per_minute: u64, burst: u64) -> Quota {
        Quota::per_minute(per_minute, burst).unwrap_or(Quota {
            interval_us: 1,
            burst: 1,
        })
    }

    #[test]
    fn zero_rate_means_no_limit() {
        assert_eq!(Quota::per_minute(0, 10), None);
    }

    #[test]
    fn burst_then_steady_rate() {
        let quota = q(60, 3); // one per second, three at once
        let mut tat = None;
        let now = 1_000 * SEC;
        for expected_remaining in [2, 1, 0] {
            let (d, t) = check(tat, now, quota, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            tat = t;
        }
        let (d, t) = check(tat, now, quota, 1);
        assert!(!d.allowed);
        assert_eq!(t, None, "a refused request is not charged");
        assert_eq!(d.retry_after_us, SEC);
        assert_eq!(d.reset_us, 3 * SEC);
        // One second later exactly one more fits.
        let (d, t) = check(tat, now + SEC, quota, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        tat = t;
        assert!(!check(tat, now + SEC, quota, 1).0.allowed);
    }

    #[test]
    fn cost_above_burst_never_fits() {
        let (d, t) = check(None, 5 * SEC, q(600, 100), 101);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, u64::MAX);
        assert_eq!(d.remaining, 100);
        assert_eq!(t, None);
    }

    #[test]
    fn weighted_spend_and_refund() {
        let quota = q(6_000, 6_000); // tokens: 100/s, 6000 at once
        let now = 10 * SEC;
        let (d, tat) = check(None, now, quota, 5_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1_000);
        // The request used 1_200 of its 5_000: 3_800 come back.
        let tat = adjust(tat, now, quota, -3_800);
        let (d, _) = check(tat, now, quota, 4_800);
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.remaining, 0);
        // Refunding more than was spent just empties the key.
        assert_eq!(adjust(tat, now, quota, -1_000_000), None);
    }

    #[test]
    fn debt_delays_later_requests() {
        let quota = q(60, 1);
        let now = 100 * SEC;
        let (_, tat) = check(None, now, quota, 1);
        let tat = adjust(tat, now, quota, 2); // two more units than reserved
        let (d, _) = check(tat, now, quota, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, 3 * SEC);
    }

    proptest! {
        /// Over any window, GCRA admits at most burst + elapsed/interval units: the bound the
        /// multi-replica test also checks across two gateways.
        #[test]
        fn never_admits_more_than_burst_plus_rate(
            per_minute in 1u64..100_000,
            burst in 1u64..500,
            steps in prop::collection::vec((0u64..2 * SEC, 1u64..20), 1..300),
        ) {
            let quota = q(per_minute, burst);
            let start = 1_000_000 * SEC;
            let mut now = start;
            let mut tat = None;
            let mut admitted = 0u64;
            for (gap, cost) in steps {
                now += gap;
                let (d, t) = check(tat, now, quota, cost);
                if d.allowed {
                    admitted += cost;
                    tat = t;
                } else {
                    prop_assert!(t.is_none());
                    prop_assert!(d.retry_after_us > 0);
                }
                prop_assert!(d.remaining <= quota.burst);
                let bound = quota.burst + (now - start) / quota.interval_us;
                prop_assert!(admitted <= bound, "admitted {admitted} > bound {bound}");
            }
        }

        /// Waiting exactly the advertised Retry-After always gets the request through.
        #[test]
        fn retry_after_is_exact(
            per_minute in 1u64..100_000,
            burst in 1u64..50,
            spent in 0u64..50,
            cost in 1u64..50,
        ) {
            let quota = q(per_minute, burst);
            let now = 42 * SEC;
            let mut tat = None;
            for _ in 0..spent.min(burst) {
                tat = check(tat, now, quota, 1).1.or(tat);
            }
            let (d, _) = check(tat, now, quota, cost);
            if !d.allowed && cost <= burst {
                prop_assert!(check(tat, now + d.retry_after_us, quota, cost).0.allowed);
                prop_assert!(!check(tat, now + d.retry_after_us - 1, quota, cost).0.allowed);
            }
        }

        /// A reservation followed by a full refund leaves the key as it was.
        #[test]
        fn full_refund_restores(per_minute in 1u64..100_000, burst in 1u64..1000, cost in 1u64..1000) {
            let quota = q(per_minute, burst);
            let now = 7 * SEC;
            let (d, tat) = check(None, now, quota, cost);
            if d.allowed {
                prop_assert_eq!(adjust(tat, now, quota, -(cost as i64)), None);
            }
        }
    }
}
