//! Interoperability with the reference OpenSSF `model_signing` tool
//! (`pip install model-signing pyopenssl`). Skipped, with a printed reason,
//! when it is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] fns abort on setup failure

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use secureinfer_integrity::{ModelSource, sign_path};

fn python_tool() -> bool {
    let out = Command::new("python3")
        .args(["-c", "import model_signing._cli, model_signing.signing"])
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "SKIPPED: python3 cannot import model_signing ({}); run `pip install model-signing pyopenssl`",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED: python3 not runnable: {e}");
            false
        }
    }
}

fn py(args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new("python3")
        .arg("-m")
        .arg("model_signing")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn our_signatures_verify_with_model_signing() {
    if !python_tool() {
        return;
    }
    for (curve, name) in [(Curve::P256, "p256"), (Curve::P384, "p384")] {
        let d = tempfile::tempdir().unwrap();
        let root = model_dir(d.path());
        let (sk, pk) = keypair(d.path(), curve, name);
        let sig = d.path().join("ours.sig");
        sign_path(&root, &sk, &sig, &[], &|_, _| {}).unwrap();
        let (ok, out) = py(
            &[
                "verify",
                "key",
                s(&root),
                "--public_key",
                s(&pk),
                "--signature",
                s(&sig),
            ],
            d.path(),
        );
        assert!(ok, "{name}: model_signing rejected our signature:\n{out}");

        flip_byte(&root.join("model.safetensors"), 99);
        let (ok, _) = py(
            &[
                "verify",
                "key",
                s(&root),
                "--public_key",
                s(&pk),
                "--signature",
                s(&sig),
            ],
            d.path(),
        );
        assert!(!ok, "{name}: model_signing accepted a tampered model");
    }
}

#[test]
fn model_signing_signatures_verify_here() {
    if !python_tool() {
        return;
    }
    for (curve, name) in [(Curve::P256, "p256"), (Curve::P384, "p384")] {
        let d = tempfile::tempdir().unwrap();
        let root = model_dir(d.path());
        let (sk, pk) = keypair(d.path(), curve, name);
        let sig = d.path().join("theirs.sig");
        let (ok, out) = py(
            &[
                "sign",
                "key",
                s(&root),
                "--private_key",
                s(&sk),
                "--signature",
                s(&sig),
            ],
            d.path(),
        );
        assert!(ok, "{name}: model_signing sign failed:\n{out}");
        let mut o = opts(ModelSource::Path(root.clone()));
        o.signature = Some(sig);
        o.public_key = Some(pk);
        o.require_signature = true;
        let r = run(&o);
        assert!(r.valid, "{name}: {r:?}");

        write(&root.join("extra.bin"), b"smuggled");
        let r = run(&o);
        assert!(has_failure(&r, "extra.bin", "not covered"), "{name}: {r:?}");
    }
}

#[test]
fn model_signing_shard_signatures_verify_here() {
    if !python_tool() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    let (sk, pk) = keypair(d.path(), Curve::P256, "k");
    let sig = d.path().join("shards.sig");
    let script = format!(
        "import pathlib, model_signing\n\
         c = model_signing.signing.Config().use_elliptic_key_signer(private_key=pathlib.Path({sk:?}))\n\
         c.set_hashing_config(model_signing.hashing.Config().use_shard_serialization(shard_size=65536))\n\
         c.sign(pathlib.Path({root:?}), pathlib.Path({sig:?}))\n",
        sk = s(&sk),
        root = s(&root),
        sig = s(&sig)
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut o = opts(ModelSource::Path(root.clone()));
    o.signature = Some(sig);
    o.public_key = Some(pk);
    let r = run(&o);
    assert!(r.valid, "{r:?}");

    flip_byte(&root.join("model.safetensors"), 200_000);
    let r = run(&o);
    assert!(
        has_failure(&r, "model.safetensors:196608:262144", "modified"),
        "{r:?}"
    );
}

#[test]
fn single_file_models_interoperate() {
    if !python_tool() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("tiny.gguf");
    write(&file, GGUF);
    let (sk, pk) = keypair(d.path(), Curve::P256, "k");
    let ours = d.path().join("ours.sig");
    sign_path(&file, &sk, &ours, &[], &|_, _| {}).unwrap();
    let (ok, out) = py(
        &[
            "verify",
            "key",
            s(&file),
            "--public_key",
            s(&pk),
            "--signature",
            s(&ours),
        ],
        d.path(),
    );
    assert!(ok, "{out}");
    let theirs = d.path().join("theirs.sig");
    let (ok, out) = py(
        &[
            "sign",
            "key",
            s(&file),
            "--private_key",
            s(&sk),
            "--signature",
            s(&theirs),
        ],
        d.path(),
    );
    assert!(ok, "{out}");
    let mut o = opts(ModelSource::Path(file));
    o.signature = Some(theirs);
    o.public_key = Some(pk);
    assert!(run(&o).valid);
}
