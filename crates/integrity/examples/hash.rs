//! Hashes a model path with the library and prints the aggregate digest and
//! throughput; used by `bench/model-hash.sh`.
//!
//! cargo run --release -p secureinfer-integrity --example hash -- <path>

use std::process::ExitCode;
use std::time::Instant;

use secureinfer_integrity::{ModelSource, hash_model};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: hash <model file or directory>");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    match hash_model(&ModelSource::Path(path.into()), &[], &|_, _| {}) {
        Ok(h) => {
            let secs = start.elapsed().as_secs_f64();
            let bytes: u64 = h.files.iter().map(|f| f.size).sum();
            println!(
                "{} files={} bytes={} seconds={:.3} MB/s={:.0}",
                h.digest.as_deref().unwrap_or("-"),
                h.files.len(),
                bytes,
                secs,
                bytes as f64 / 1e6 / secs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
