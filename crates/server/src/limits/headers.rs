//! The rate-limit headers, and the per-request scope that carries figures from wherever a limit
//! is checked to the response, whatever the response turns out to be (200, 403, 429, 502...).
//!
//! Two spellings are written: OpenAI's (`x-ratelimit-limit-requests`, `...-tokens`, reset as a
//! duration like `1.5s` or `6m0s`), which OpenAI clients read, and the generic
//! `X-RateLimit-Limit/Remaining/Reset` (reset in whole seconds) for the request limit. When
//! several request limits apply (client IP and tenant) the one closest to refusing is shown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::check::{Figures, LimitKind};

tokio::task_local! {
    static SCOPE: Scope;
}

/// Figures recorded while one request is handled. The tenant middleware opens it around the
/// handler (a task-local, so handlers need no extra parameter) and writes it onto the response.
#[derive(Clone, Default)]
pub struct Scope(Arc<Mutex<Vec<Figures>>>);

impl Scope {
    /// Runs `f` with this scope open.
    pub async fn run<F: Future>(&self, f: F) -> F::Output {
        SCOPE.scope(self.clone(), f).await
    }

    pub fn write(&self, headers: &mut HeaderMap) {
        let figures = self.0.lock().map(|f| f.clone()).unwrap_or_default();
        write(headers, &figures);
    }
}

/// Records figures on the current request's scope (a no-op outside one).
pub fn record(figures: &[Figures]) {
    let _ = SCOPE.try_with(|scope| {
        if let Ok(mut held) = scope.0.lock() {
            held.extend_from_slice(figures);
        }
    });
}

/// OpenAI's reset format: `250ms`, `1.5s`, `6m0s`.
pub fn openai_duration(us: u64) -> String {
    let ms = us.div_ceil(1000);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let minutes = ms / 60_000;
    let seconds = (ms % 60_000) as f64 / 1000.0;
    let seconds = format!("{seconds:.3}");
    let seconds = seconds.trim_end_matches('0').trim_end_matches('.');
    if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

fn current_remaining(headers: &HeaderMap, name: &'static str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

/// Writes figures, keeping figures already on the response when they are more restrictive.
pub fn write(headers: &mut HeaderMap, figures: &[Figures]) {
    for f in figures {
        let (limit, remaining, reset) = match f.kind {
            LimitKind::Ip | LimitKind::Requests => (
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ),
            LimitKind::Tokens => (
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ),
            LimitKind::Concurrency => continue,
        };
        if current_remaining(headers, remaining).is_some_and(|r| r <= f.remaining) {
            continue;
        }
        set(headers, limit, f.limit.to_string());
        set(headers, remaining, f.remaining.to_string());
        set(headers, reset, openai_duration(f.reset_us));
        if f.kind != LimitKind::Tokens {
            set(headers, "x-ratelimit-limit", f.limit.to_string());
            set(headers, "x-ratelimit-remaining", f.remaining.to_string());
            set(
                headers,
                "x-ratelimit-reset",
                f.reset_us.div_ceil(1_000_000).to_string(),
            );
        }
    }
}

/// `Retry-After` (whole seconds, rounded up, as RFC 9110 wants) and OpenAI's `retry-after-ms`.
pub fn write_retry_after(headers: &mut HeaderMap, wait: Duration) {
    let ms = (wait.as_micros() as u64).div_ceil(1000).max(1);
    set(headers, "retry-after", ms.div_ceil(1000).to_string());
    set(headers, "retry-after-ms", ms.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openai() {
        assert_eq!(openai_duration(250_000), "250ms");
        assert_eq!(openai_duration(1_500_000), "1.5s");
        assert_eq!(openai_duration(1_000_000), "1s");
        assert_eq!(openai_duration(360_000_000), "6m0s");
        assert_eq!(openai_duration(61_250_000), "1m1.25s");
        assert_eq!(openai_duration(1), "1ms");
    }

    #[test]
    fn the_most_restrictive_request_limit_is_shown() {
        let mut h = HeaderMap::new();
        let tenant = Figures {
            kind: LimitKind::Requests,
            limit: 600,
            remaining: 5,
            reset_us: 9_500_000,
        };
        let ip = Figures {
            kind: LimitKind::Ip,
            limit: 60,
            remaining: 40,
            reset_us: 1_000_000,
        };
        write(&mut h, &[tenant]);
        write(&mut h, &[ip]);
        assert_eq!(h["x-ratelimit-remaining-requests"], "5");
        assert_eq!(h["x-ratelimit-limit"], "600");
        assert_eq!(h["x-ratelimit-reset"], "10");
        assert_eq!(h["x-ratelimit-reset-requests"], "9.5s");
        write_retry_after(&mut h, Duration::from_micros(1_200_001));
        assert_eq!(h["retry-after"], "2");
        assert_eq!(h["retry-after-ms"], "1201");
    }
}
