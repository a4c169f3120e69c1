#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Abuse limits on Redis, against a real `redis-server` each test starts on a free port:
//! one limit shared by two replicas, the failure policies with Redis killed and restarted,
//! the shared HTTP scenarios, and agreement of the Redis and in-process backends.
//! Each test prints SKIPPED and passes only when `redis-server` cannot be found.

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{chat, expect_error, gateway, replica_of};
use reqwest::StatusCode;
use secureinfer::limits::backend::{SlotRelease, TokenAdjust};
use secureinfer::limits::gcra::Quota;
use secureinfer::limits::{
    Check, LimitBackend, LimitKind, MemoryBackend, RedisBackend, Settlement, Slot, Spend, Verdict,
};
use serde_json::Value;

async fn health(gw: &common::Gateway) -> (StatusCode, Value) {
    let resp = gw.get("/health", None).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_limit() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let vars = [
        ("REDIS_URL", redis.url.as_str()),
        ("TENANT_RATE_LIMIT_RPM", "60"),
        ("TENANT_RATE_LIMIT_BURST", "10"),
        ("RATE_LIMIT_RPM", "0"),
    ];
    let a = gateway(&vars).await;
    let b = replica_of(&a, &vars).await;
    assert_eq!(health(&b).await.1["checks"]["redis"], true);
    // A flood of 60 requests, split across both replicas, all at once.
    let started = Instant::now();
    let mut flood = Vec::new();
    for i in 0..60 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let rb = gw.get("/v1/models", Some(&gw.key));
        flood.push(tokio::spawn(
            async move { rb.send().await.unwrap().status() },
        ));
    }
    let mut accepted = [0u64; 2];
    let mut refused = 0;
    for (i, f) in flood.into_iter().enumerate() {
        match f.await.unwrap() {
            StatusCode::OK => accepted[i % 2] += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    let total = accepted[0] + accepted[1];
    // GCRA's bound: the burst, plus one per second of the run (60/min).
    let bound = 10 + started.elapsed().as_secs() + 1;
    assert!(
        (10..=bound).contains(&total),
        "accepted {total} (a {}, b {}), bound {bound}; in-process limits would accept 20",
        accepted[0],
        accepted[1]
    );
    assert_eq!(total + refused, 60);
    // Both replicas now see the spent budget, whichever of them spent it.
    for gw in [&a, &b] {
        let resp = gw.get("/v1/models", Some(&gw.key)).send().await.unwrap();
        expect_error(resp, 429, Some("rate_limit_exceeded")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_failure_policies_and_recovery() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let gateway_with = |policy: &'static str| {
        let url = redis.url.clone();
        async move {
            gateway(&[
                ("REDIS_URL", url.as_str()),
                ("REDIS_TIMEOUT", "200ms"),
                ("RATE_LIMIT_REDIS_FAILURE", policy),
                ("TENANT_RATE_LIMIT_RPM", "60"),
                ("TENANT_RATE_LIMIT_BURST", "3"),
                ("RATE_LIMIT_RPM", "0"),
            ])
            .await
        }
    };
    let closed = gateway_with("closed").await;
    let open = gateway_with("open").await;
    let local = gateway_with("local").await;
    let models = |gw: &common::Gateway| gw.get("/v1/models", Some(&gw.key)).send();
    for gw in [&closed, &open, &local] {
        assert_eq!(models(gw).await.unwrap().status(), StatusCode::OK);
        let (status, h) = health(gw).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h["checks"]["redis"], true);
        assert_eq!(h["rate_limits"]["backend"], "redis");
    }

    redis.kill().await;

    // closed: nothing passes unlimited; health says the gateway cannot serve.
    let resp = models(&closed).await.unwrap();
    assert_eq!(resp.headers()["retry-after"], "1");
    expect_error(resp, 503, Some("rate_limiter_unavailable")).await;
    let resp = closed.chat(&chat("hi")).await;
    expect_error(resp, 503, Some("rate_limiter_unavailable")).await;
    let (status, h) = health(&closed).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["checks"]["redis"], false);
    assert!(h["rate_limits"]["counters"]["redis_fallback_total"]["closed"].as_u64() >= Some(2));
    assert!(h["rate_limits"]["counters"]["redis_errors_total"].as_u64() >= Some(1));

    // open: requests pass, unlimited (well past the burst of 3), without limit headers.
    for _ in 0..6 {
        let resp = models(&open).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            !resp
                .headers()
                .contains_key("x-ratelimit-remaining-requests")
        );
    }
    let (status, h) = health(&open).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["checks"]["redis"], false);

    // local: each replica limits on its own; the fresh local state allows the burst, then 429.
    for _ in 0..3 {
        assert_eq!(models(&local).await.unwrap().status(), StatusCode::OK);
    }
    let resp = models(&local).await.unwrap();
    expect_error(resp, 429, Some("rate_limit_exceeded")).await;
    assert_eq!(health(&local).await.1["status"], "degraded");

    // Redis comes back (empty): every gateway reconnects by itself and limits are shared again.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    for gw in [&closed, &open, &local] {
        loop {
            let (status, h) = health(gw).await;
            if status == StatusCode::OK && h["checks"]["redis"] == true {
                break;
            }
            assert!(Instant::now() < deadline, "no reconnection: {h}");
            // Polling for the reconnection, with a deadline.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for gw in [&closed, &open, &local] {
        let before = health(gw).await.1["rate_limits"]["counters"].clone();
        for _ in 0..3 {
            let resp = models(gw).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert!(
                resp.headers()
                    .contains_key("x-ratelimit-remaining-requests")
            );
        }
        let resp = models(gw).await.unwrap();
        expect_error(resp, 429, Some("rate_limit_exceeded")).await;
        let after = health(gw).await.1["rate_limits"]["counters"].clone();
        assert_eq!(
            before["redis_fallback_total"], after["redis_fallback_total"],
            "decided by Redis again, not by the failure policy"
        );
    }
    // The state lives in Redis: one key per tenant limit.
    let keys = redis.command(&["KEYS", "si:rl:v1:*"]);
    assert!(keys.contains(":requests"), "{keys}");
}

#[tokio::test]
async fn token_budget_reserves_and_settles_on_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    common::limits::token_budget_reserves_and_settles(&[("REDIS_URL", redis.url.as_str())]).await;
}

#[tokio::test]
async fn abandoned_stream_is_charged_what_it_used_on_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    common::limits::abandoned_stream_is_charged_what_it_used(&[("REDIS_URL", redis.url.as_str())])
        .await;
}

#[tokio::test]
async fn concurrency_slot_released_on_every_ending_on_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    common::limits::concurrency_slot_released_on_every_ending(
        &[("REDIS_URL", redis.url.as_str())],
        false,
    )
    .await;
    // Every slot was given back: no lease is left in Redis.
    let left = redis.command(&["EVAL", "local n = 0 for _, k in ipairs(redis.call('KEYS', 'si:rl:v1:*:inflight')) do n = n + redis.call('ZCARD', k) end return n", "0"]);
    assert_eq!(left.trim(), ":0", "{left}");
}

/// A small deterministic generator, so a failing sequence can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// The Lua scripts and the in-process backend run the same algorithm: over random sequences of
/// checks (several limits and a slot), refunds, debts and releases, they decide alike and report
/// the same figures. Rates are one unit per minute, so the seconds the run takes cannot refill
/// anything and the two clocks (Redis' and ours) do not matter.
#[tokio::test]
async fn redis_and_in_process_backends_agree() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let shared =
        RedisBackend::new(&redis.url, Duration::from_secs(2), Duration::from_secs(60)).unwrap();
    let local = MemoryBackend::default();
    let mut rng = Lcg(0x5eed);
    let quotas = [
        Quota::per_minute(1, 60).unwrap(),
        Quota::per_minute(1, 300).unwrap(),
    ];
    let mut live_slots: Vec<(String, String, String)> = Vec::new();
    let mut decisions = [0u32; 2];
    for step in 0..400 {
        let group = format!("g{}", rng.next(3));
        let key = |what: &str| format!("si:rl:v1:{{{group}}}:{what}");
        match rng.next(10) {
            0..=6 => {
                let slot = (rng.next(2) == 0).then(|| Slot {
                    key: key("inflight"),
                    cap: 1 + rng.next(3),
                    id: format!("s{step}"),
                });
                let check = Check {
                    group: group.clone(),
                    spends: vec![
                        Spend {
                            kind: LimitKind::Requests,
                            key: key("requests"),
                            quota: quotas[0],
                            cost: 1,
                        },
                        Spend {
                            kind: LimitKind::Tokens,
                            key: key("tokens"),
                            quota: quotas[1],
                            cost: 1 + rng.next(60),
                        },
                    ],
                    slot: slot.clone(),
                };
                let a = shared.check(&check).await.unwrap();
                let b = local.check(&check).await.unwrap();
                match (&a, &b) {
                    (Verdict::Admitted { figures: fa }, Verdict::Admitted { figures: fb }) => {
                        decisions[0] += 1;
                        for (x, y) in fa.iter().zip(fb) {
                            assert_eq!(
                                (x.kind, x.limit, x.remaining),
                                (y.kind, y.limit, y.remaining),
                                "step {step}"
                            );
                        }
                        if let Some(s) = slot {
                            live_slots.push((group.clone(), s.key, s.id));
                        }
                    }
                    (
                        Verdict::Refused {
                            kind: ka,
                            retry_after_us: ra,
                            figures: fa,
                        },
                        Verdict::Refused {
                            kind: kb,
                            retry_after_us: rb,
                            figures: fb,
                        },
                    ) => {
                        decisions[1] += 1;
                        assert_eq!(ka, kb, "step {step}");
                        // Same wait, up to the time that passed between the two calls.
                        let (ra, rb) = (*ra as i128, *rb as i128);
                        assert!(
                            (ra - rb).abs() < 2_000_000 || ra == rb,
                            "step {step}: {ra} vs {rb}"
                        );
                        for (x, y) in fa.iter().zip(fb) {
                            assert_eq!(x.remaining, y.remaining, "step {step}");
                        }
                    }
                    _ => panic!("step {step}: redis {a:?} vs in-process {b:?}"),
                }
            }
            7 | 8 => {
                // Settle: a refund or a debt on tokens, maybe releasing a slot.
                let release = if live_slots.is_empty() || rng.next(2) == 0 {
                    None
                } else {
                    let (g, k, id) =
                        live_slots.swap_remove(rng.next(live_slots.len() as u64) as usize);
                    Some((g, SlotRelease { key: k, id }))
                };
                let (group, release) = match release {
                    Some((g, r)) => (g, Some(r)),
                    None => (group.clone(), None),
                };
                let s = Settlement {
                    tokens: Some(TokenAdjust {
                        key: format!("si:rl:v1:{{{group}}}:tokens"),
                        quota: quotas[1],
                        delta: rng.next(50) as i64 - 40,
                    }),
                    group,
                    release,
                };
                shared.settle(&s).await.unwrap();
                local.settle(&s).await.unwrap();
            }
            _ => {}
        }
    }
    assert!(decisions[0] > 20 && decisions[1] > 20, "{decisions:?}");
}
