//! What the abuse limits cost per request: the pure GCRA step, an in-process admission (the
//! per-IP check, and a chat admission with requests + tokens + a concurrency slot, settled),
//! prompt token counting, and the same admissions on Redis over loopback (one EVALSHA round
//! trip each) when `redis-server` is installed — the bench starts its own on a free port.
//!
//! Run: `cargo bench -p secureinfer --bench limiter`.

use std::hint::black_box;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use secureinfer::limits::backend::{SlotRelease, TokenAdjust};
use secureinfer::limits::gcra::{self, Quota};
use secureinfer::limits::{
    Check, LimitBackend, LimitKind, MemoryBackend, RedisBackend, Settlement, Slot, Spend,
};
use secureinfer::openai::Message;

fn ip_check(i: u64) -> Check {
    let group = format!("ip:10.0.{}.{}", (i / 256) % 256, i % 256);
    Check {
        spends: vec![Spend {
            kind: LimitKind::Ip,
            key: format!("si:rl:v1:{{{group}}}:requests"),
            quota: Quota::per_minute(60_000_000, 10_000_000).unwrap_or(Quota {
                interval_us: 1,
                burst: 1,
            }),
            cost: 1,
        }],
        group,
        slot: None,
    }
}

fn chat_check(tenant: u64, id: u64) -> (Check, Settlement) {
    let group = format!("t:tenant-{tenant}");
    let key = |what: &str| format!("si:rl:v1:{{{group}}}:{what}");
    let tokens = Quota::per_minute(60_000_000, 60_000_000).unwrap_or(Quota {
        interval_us: 1,
        burst: 1,
    });
    let check = Check {
        group: group.clone(),
        spends: vec![
            Spend {
                kind: LimitKind::Requests,
                key: key("requests"),
                quota: Quota::per_minute(60_000_000, 10_000_000).unwrap_or(tokens),
                cost: 1,
            },
            Spend {
                kind: LimitKind::Tokens,
                key: key("tokens"),
                quota: tokens,
                cost: 1_000,
            },
        ],
        slot: Some(Slot {
            key: key("inflight"),
            cap: 1_000_000,
            id: format!("slot-{id}"),
        }),
    };
    let tokens_key = key("tokens");
    let inflight_key = key("inflight");
    let settle = Settlement {
        group,
        tokens: Some(TokenAdjust {
            key: tokens_key,
            quota: tokens,
            delta: -900,
        }),
        release: Some(SlotRelease {
            key: inflight_key,
            id: format!("slot-{id}"),
        }),
    };
    (check, settle)
}

fn core(c: &mut Criterion) {
    let quota = Quota::per_minute(600, 100).unwrap_or(Quota {
        interval_us: 1,
        burst: 1,
    });
    c.bench_function("gcra::check", |b| {
        let mut now = 1_000_000_000u64;
        b.iter(|| {
            now += 50_000;
            black_box(gcra::check(black_box(Some(now)), now, quota, 1))
        })
    });

    let memory = MemoryBackend::default();
    let mut i = 0u64;
    c.bench_function("in-process: per-IP check (10k addresses)", |b| {
        b.iter(|| {
            i += 1;
            black_box(memory.check_now(&ip_check(i % 10_000)))
        })
    });
    c.bench_function(
        "in-process: chat admission + settlement (requests, tokens, slot)",
        |b| {
            b.iter(|| {
                i += 1;
                let (check, settle) = chat_check(i % 100, i);
                black_box(memory.check_now(&check));
                memory.settle_now(&settle);
            })
        },
    );

    let prompt: Vec<Message> = serde_json::from_value(serde_json::json!([
        {"role": "system", "content": "You are a helpful assistant for a bank."},
        {"role": "user", "content": "Summarise the following in three bullet points. ".repeat(20)}
    ]))
    .unwrap_or_default();
    secureinfer::limits::tokens::warm_up();
    c.bench_function("prompt token count (1 KB, cl100k)", |b| {
        b.iter(|| {
            black_box(secureinfer::limits::tokens::prompt_tokens(black_box(
                &prompt,
            )))
        })
    });
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<(Server, String)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((server, format!("redis://127.0.0.1:{port}")))
}

fn redis(c: &mut Criterion) {
    let Some((_server, url)) = start_redis() else {
        eprintln!("SKIPPED: redis-server not found; Redis benchmarks not run");
        return;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let Ok(backend) = rt.block_on(async {
        RedisBackend::new(&url, Duration::from_secs(2), Duration::from_secs(30))
    }) else {
        return;
    };
    // Loads the scripts (EVAL once; EVALSHA from then on).
    let _ = rt.block_on(backend.check(&ip_check(0)));
    let mut i = 0u64;
    c.bench_function("redis (loopback): per-IP check", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    i += 1;
                    let _ = black_box(backend.check(&ip_check(i % 10_000)).await);
                }
                started.elapsed()
            })
        })
    });
    c.bench_function("redis (loopback): chat admission", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut settles = Vec::with_capacity(iters as usize);
                let started = Instant::now();
                for _ in 0..iters {
                    i += 1;
                    let (check, settle) = chat_check(i % 100, i);
                    let _ = black_box(backend.check(&check).await);
                    settles.push(settle);
                }
                let took = started.elapsed();
                for s in settles {
                    let _ = backend.settle(&s).await;
                }
                took
            })
        })
    });
    c.bench_function("redis (loopback): settlement", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut settles = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    i += 1;
                    let (check, settle) = chat_check(i % 100, i);
                    let _ = backend.check(&check).await;
                    settles.push(settle);
                }
                let started = Instant::now();
                for s in settles {
                    let _ = black_box(backend.settle(&s).await);
                }
                started.elapsed()
            })
        })
    });
}

criterion_group!(benches, core, redis);
criterion_main!(benches);
