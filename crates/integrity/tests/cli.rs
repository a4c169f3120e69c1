#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] fns abort on setup failure
mod common;

use clap::Parser;
use common::*;
use secureinfer_integrity::cli::{ModelCommand, run};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: ModelCommand,
}

fn code(args: &[&str]) -> String {
    let cli = Cli::try_parse_from(std::iter::once("model").chain(args.iter().copied())).unwrap();
    format!("{:?}", run(cli.cmd).unwrap())
}

fn exit(n: u8) -> String {
    format!("{:?}", std::process::ExitCode::from(n))
}

#[test]
fn exit_codes_follow_the_contract() {
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    let (sk, pk) = keypair(d.path(), Curve::P256, "k");
    let sig = d.path().join("m.sig");
    let r = root.to_str().unwrap();
    assert_eq!(code(&["hash", r, "--json"]), exit(0));
    assert_eq!(
        code(&[
            "sign",
            r,
            "--private-key",
            sk.to_str().unwrap(),
            "--signature",
            sig.to_str().unwrap()
        ]),
        exit(0)
    );
    let verify = [
        "verify",
        r,
        "--signature",
        sig.to_str().unwrap(),
        "--public-key",
        pk.to_str().unwrap(),
        "--require-signature",
    ];
    assert_eq!(code(&verify), exit(0));
    assert_eq!(
        code(&["verify", r, "--expected-hash", &"ab".repeat(32)]),
        exit(1)
    );
    assert_eq!(code(&["verify", "/nonexistent/model"]), exit(2));
    flip_byte(&root.join("config.json"), 0);
    assert_eq!(code(&verify), exit(1));
}

#[test]
fn ollama_flags_and_allowlist_signing() {
    let (d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    let (sk, pk) = keypair(d.path(), Curve::P384, "k");
    let list = d.path().join("allow.json");
    let models = root.to_str().unwrap();
    assert_eq!(
        code(&["hash", "--ollama-models", models, "--model", "tiny"]),
        exit(0)
    );
    assert_eq!(
        code(&[
            "sign",
            "--ollama-models",
            models,
            "--model",
            "tiny",
            "--private-key",
            sk.to_str().unwrap(),
            "--allowlist",
            list.to_str().unwrap()
        ]),
        exit(0)
    );
    let verify = [
        "verify",
        "--ollama-models",
        models,
        "--model",
        "tiny",
        "--allowlist",
        list.to_str().unwrap(),
        "--public-key",
        pk.to_str().unwrap(),
        "--require-signature",
        "--json",
    ];
    assert_eq!(code(&verify), exit(0));
    flip_byte(&blob_path(&root, GGUF), 0);
    assert_eq!(code(&verify), exit(1));
    assert_eq!(
        code(&["hash", "--ollama-models", models, "--model", "tiny"]),
        exit(1)
    );
    assert_eq!(
        code(&[
            "hash",
            "--ollama-models",
            models,
            "--model",
            "a",
            "--model",
            "b"
        ]),
        exit(2)
    );
}
