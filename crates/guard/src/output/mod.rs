//! Output guard: leak canaries, PII and secret detection (see docs/output-guard.md).
