//! `secureinfer model hash|verify|sign`, mounted by the server binary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{
    ModelSource, VerificationReport, VerifyOptions, hash_model, sign_allowlist, sign_path,
    verify_ignoring,
};

const EXIT_INVALID: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// Which model to work on: a path, or an Ollama store and model name.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Model file or directory (GGUF, safetensors, ...).
    #[arg(conflicts_with_all = ["ollama_models", "model"], required_unless_present = "model")]
    pub path: Option<PathBuf>,
    /// Ollama models directory [default: $OLLAMA_MODELS, else ~/.ollama/models].
    #[arg(long, value_name = "DIR")]
    pub ollama_models: Option<PathBuf>,
    /// Ollama model name, e.g. `llama3:latest` (repeatable for `sign`).
    #[arg(long, value_name = "NAME")]
    pub model: Vec<String>,
    /// Path inside a model directory to leave out (relative to it, or absolute); repeatable.
    #[arg(long = "ignore-paths", value_name = "PATH")]
    pub ignore_paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ModelCommand {
    /// Hash every file of a model and print the aggregate hash to pin.
    Hash {
        #[command(flatten)]
        target: Target,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check a model: per-file digests, pinned hash, signature, allowlist.
    Verify {
        #[command(flatten)]
        target: Target,
        /// Aggregate hash (or, for Ollama, manifest digest) the model must have.
        #[arg(long, value_name = "HEX")]
        expected_hash: Option<String>,
        /// `model_signing` bundle to verify.
        #[arg(long, value_name = "BUNDLE")]
        signature: Option<PathBuf>,
        /// PEM public key (P-256 or P-384) for --signature and --allowlist.
        #[arg(long, value_name = "PEM")]
        public_key: Option<PathBuf>,
        /// Fail unless a signature or allowlist entry verifies.
        #[arg(long)]
        require_signature: bool,
        /// Signed allowlist (Ollama stores).
        #[arg(long, value_name = "FILE")]
        allowlist: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Sign a model directory (model_signing bundle) or allowlist Ollama models.
    Sign {
        #[command(flatten)]
        target: Target,
        /// PEM private key (P-256 or P-384, PKCS#8 or SEC1, unencrypted).
        #[arg(long, value_name = "PEM")]
        private_key: PathBuf,
        /// Where to write the bundle when signing a path.
        #[arg(long, value_name = "BUNDLE")]
        signature: Option<PathBuf>,
        /// Where to write the signed allowlist when signing Ollama models.
        #[arg(long, value_name = "FILE")]
        allowlist: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

enum Resolved {
    Path(PathBuf),
    Ollama(PathBuf, Vec<String>),
}

fn resolve(t: &Target) -> Result<Resolved, String> {
    if let Some(p) = &t.path {
        return Ok(Resolved::Path(p.clone()));
    }
    if t.model.is_empty() {
        return Err("give a model path or --model".into());
    }
    let dir = match &t.ollama_models {
        Some(d) => d.clone(),
        None => match std::env::var_os("OLLAMA_MODELS").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".ollama/models"))
                .ok_or("set --ollama-models (no OLLAMA_MODELS or HOME)")?,
        },
    };
    Ok(Resolved::Ollama(dir, t.model.clone()))
}

fn single(r: Resolved) -> Result<ModelSource, String> {
    match r {
        Resolved::Path(p) => Ok(ModelSource::Path(p)),
        Resolved::Ollama(dir, mut models) if models.len() == 1 => Ok(ModelSource::OllamaStore {
            models_dir: dir,
            model: models.remove(0),
        }),
        Resolved::Ollama(..) => Err("give exactly one --model".into()),
    }
}

fn must_exist(paths: &[Option<&Path>]) -> Result<(), String> {
    for p in paths.iter().flatten() {
        if !p.exists() {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(())
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// Runs a model subcommand. Exit code 0: valid; 1: invalid (tampered,
/// mismatched, unsigned); 2: usage or I/O error.
pub fn run(cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    let pb = progress_bar();
    let progress = |done: u64, total: u64| {
        pb.set_length(total);
        pb.set_position(done);
    };
    let code = match cmd {
        ModelCommand::Hash { target, json } => {
            let source = match resolve(&target).and_then(single) {
                Ok(s) => s,
                Err(e) => return Ok(usage(e)),
            };
            let h = match hash_model(&source, &target.ignore_paths, &progress) {
                Ok(h) => h,
                Err(e) => return Ok(usage(e)),
            };
            pb.finish_and_clear();
            if json {
                print_json(&h);
            } else {
                for f in &h.files {
                    println!("{}  {}", f.sha256, f.name);
                }
                if let Some(m) = &h.manifest_digest {
                    println!("manifest digest: {m}");
                }
                for f in &h.failures {
                    eprintln!("FAIL {}: {}", f.path, f.reason);
                }
                match &h.digest {
                    Some(d) => println!("aggregate: {d}  {}", h.model),
                    None => eprintln!("no aggregate hash: the model failed its own checks"),
                }
            }
            if h.digest.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INVALID)
            }
        }
        ModelCommand::Verify {
            target,
            expected_hash,
            signature,
            public_key,
            require_signature,
            allowlist,
            json,
        } => {
            let source = match resolve(&target).and_then(single) {
                Ok(s) => s,
                Err(e) => return Ok(usage(e)),
            };
            let root = match &source {
                ModelSource::Path(p) => p.as_path(),
                ModelSource::OllamaStore { models_dir, .. } => models_dir.as_path(),
            };
            if let Err(e) = must_exist(&[
                Some(root),
                signature.as_deref(),
                public_key.as_deref(),
                allowlist.as_deref(),
            ]) {
                return Ok(usage(e));
            }
            let opts = VerifyOptions {
                source,
                expected_hash,
                signature,
                public_key,
                require_signature,
                allowlist,
            };
            let r = verify_ignoring(&opts, &target.ignore_paths, &progress);
            pb.finish_and_clear();
            print_report(&r, json);
            if r.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INVALID)
            }
        }
        ModelCommand::Sign {
            target,
            private_key,
            signature,
            allowlist,
            json,
        } => {
            let r = match resolve(&target) {
                Ok(r) => r,
                Err(e) => return Ok(usage(e)),
            };
            let result = match (r, signature, allowlist) {
                (Resolved::Path(p), Some(out), None) => {
                    sign_path(&p, &private_key, &out, &target.ignore_paths, &progress)
                        .map(|o| serde_json::to_value(o).unwrap_or_default())
                }
                (Resolved::Ollama(dir, models), None, Some(out)) => {
                    sign_allowlist(&dir, &models, &private_key, &out, &progress)
                        .map(|o| serde_json::to_value(o).unwrap_or_default())
                }
                _ => {
                    return Ok(usage(
                        "sign a path with --signature OUT, or Ollama models with --allowlist OUT",
                    ));
                }
            };
            pb.finish_and_clear();
            match result {
                Ok(v) if json => {
                    print_json(&v);
                    ExitCode::SUCCESS
                }
                Ok(v) => {
                    println!("signed: {v}");
                    ExitCode::SUCCESS
                }
                Err(e) => usage(e),
            }
        }
    };
    Ok(code)
}

fn print_report(r: &VerificationReport, json: bool) {
    if json {
        print_json(r);
        return;
    }
    println!("{}", if r.valid { "VALID" } else { "INVALID" });
    println!("model: {}", r.model);
    if let Some(m) = &r.manifest_digest {
        println!("manifest digest: {m}");
    }
    if let Some(d) = &r.digest {
        println!("aggregate: {d}");
    }
    println!("files: {}", r.files);
    for f in &r.failures {
        println!("FAIL {}: {}", f.path, f.reason);
    }
    println!("{}", r.message);
}
