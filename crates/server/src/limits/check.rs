//! What one admission asks of a backend, and the all-or-nothing rule both backends apply: every
//! limit of the check must allow the request, otherwise nothing is charged. Pure, like `gcra`.

use super::gcra::{self, Quota};

/// Which limit a figure or a refusal is about. The names are the 429 `code`s' stems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// Requests per minute from one client IP, before authentication.
    Ip,
    /// Requests per minute of one tenant.
    Requests,
    /// Tokens per minute of one tenant (prompt + reserved completion).
    Tokens,
    /// Requests of one tenant in flight at once.
    Concurrency,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Ip => "ip",
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::Concurrency => "concurrency",
        }
    }

    pub const ALL: [LimitKind; 4] = [
        LimitKind::Ip,
        LimitKind::Requests,
        LimitKind::Tokens,
        LimitKind::Concurrency,
    ];
}

/// Spend `cost` units of the rate limit stored under `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    pub kind: LimitKind,
    pub key: String,
    pub quota: Quota,
    pub cost: u64,
}

/// Take one of `cap` concurrency slots stored under `key`, identified by `id` until released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub key: String,
    pub cap: u64,
    pub id: String,
}

/// One admission: any number of rate limits and at most one concurrency slot, all in the same
/// `group` (a tenant or a client address), so one lock or one Redis hash slot covers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub group: String,
    pub spends: Vec<Spend>,
    pub slot: Option<Slot>,
}

/// The figures of one rate limit after a check, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub kind: LimitKind,
    /// Nominal units per minute.
    pub limit: u64,
    pub remaining: u64,
    pub reset_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Admitted {
        figures: Vec<Figures>,
    },
    Refused {
        kind: LimitKind,
        /// `u64::MAX` when the request can never fit (it costs more than the burst).
        retry_after_us: u64,
        figures: Vec<Figures>,
    },
}

/// How long a client refused by a full concurrency cap is told to wait: slots free as soon as
/// any request of the tenant ends, which we cannot predict, so a short constant.
pub const CONCURRENCY_RETRY_US: u64 = 1_000_000;

/// Applies a check to the current state: `tats[i]` is the stored TAT of `spends[i]`,
/// `in_flight` the number of live slots. Returns the verdict and, when admitted, the TATs to
/// store (same order). Nothing is to be written when refused.
pub fn evaluate(
    check: &Check,
    tats: &[Option<u64>],
    in_flight: u64,
    now: u64,
) -> (Verdict, Vec<u64>) {
    let mut figures = Vec::with_capacity(check.spends.len());
    let mut new_tats = Vec::with_capacity(check.spends.len());
    let mut worst: Option<(LimitKind, u64)> = None;
    for (spend, tat) in check.spends.iter().zip(tats) {
        let (decision, new_tat) = gcra::check(*tat, now, spend.quota, spend.cost);
        figures.push(Figures {
            kind: spend.kind,
            limit: spend.quota.per_minute_rate(),
            remaining: decision.remaining,
            reset_us: decision.reset_us,
        });
        match new_tat {
            Some(t) => new_tats.push(t),
            None => {
                if worst.is_none_or(|(_, w)| decision.retry_after_us > w) {
                    worst = Some((spend.kind, decision.retry_after_us));
                }
            }
        }
    }
    if let Some(slot) = &check.slot
        && in_flight >= slot.cap
        && worst.is_none_or(|(_, w)| CONCURRENCY_RETRY_US > w)
    {
        worst = Some((LimitKind::Concurrency, CONCURRENCY_RETRY_US));
    }
    match worst {
        Some((kind, retry_after_us)) => {
            // Nothing is charged: every figure shows the key as it stands.
            for ((figure, spend), tat) in figures.iter_mut().zip(&check.spends).zip(tats) {
                (figure.remaining, figure.reset_us) = gcra::status(*tat, now, spend.quota);
            }
            (
                Verdict::Refused {
                    kind,
                    retry_after_us,
                    figures,
                },
                Vec::new(),
            )
        }
        None => (Verdict::Admitted { figures }, new_tats),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(kind: LimitKind, key: &str, per_minute: u64, burst: u64, cost: u64) -> Spend {
        Spend {
            kind,
            key: key.into(),
            quota: Quota::per_minute(per_minute, burst).unwrap_or(Quota {
                interval_us: 1,
                burst: 1,
            }),
            cost,
        }
    }

    #[test]
    fn all_or_nothing_and_the_longest_wait_names_the_limit() {
        let check = Check {
            group: "t".into(),
            spends: vec![
                spend(LimitKind::Requests, "r", 60, 10, 1),
                spend(LimitKind::Tokens, "k", 600, 600, 500),
            ],
            slot: None,
        };
        let now = 1_000_000_000;
        let (v, tats) = evaluate(&check, &[None, None], 0, now);
        assert!(matches!(v, Verdict::Admitted { .. }));
        assert_eq!(tats.len(), 2);
        // Tokens now lack 400 of 500: refused on tokens, and requests are not charged.
        let (v, tats2) = evaluate(&check, &[Some(tats[0]), Some(tats[1])], 0, now);
        match v {
            Verdict::Refused {
                kind,
                retry_after_us,
                figures,
            } => {
                assert_eq!(kind, LimitKind::Tokens);
                assert_eq!(retry_after_us, 400 * 100_000);
                assert_eq!(figures[0].remaining, 9);
                assert_eq!(figures[1].remaining, 100);
            }
            other => panic!("{other:?}"),
        }
        assert!(tats2.is_empty());
    }

    #[test]
    fn a_full_slot_refuses_with_a_short_wait() {
        let check = Check {
            group: "t".into(),
            spends: vec![spend(LimitKind::Requests, "r", 60, 10, 1)],
            slot: Some(Slot {
                key: "c".into(),
                cap: 2,
                id: "x".into(),
            }),
        };
        assert!(matches!(
            evaluate(&check, &[None], 1, 0).0,
            Verdict::Admitted { .. }
        ));
        assert!(matches!(
            evaluate(&check, &[None], 2, 0).0,
            Verdict::Refused {
                kind: LimitKind::Concurrency,
                retry_after_us: CONCURRENCY_RETRY_US,
                ..
            }
        ));
    }
}
