#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] fns abort on setup failure
mod common;

use std::path::PathBuf;

use common::*;
use secureinfer_integrity::{ModelSource, hash_model, sign_path, verify_ignoring};

fn path(p: &std::path::Path) -> ModelSource {
    ModelSource::Path(p.to_path_buf())
}

#[test]
fn untouched_dir_is_valid_and_matches_the_shell_pipeline() {
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    write(&root.join(".git/HEAD"), b"ref: refs/heads/main");
    let r = run(&opts(path(&root)));
    assert!(r.valid, "{r:?}");
    assert_eq!(r.files, 5, "git metadata is not part of the model");
    let script = "find . \\( -path ./.git -o -path ./.github -o -path ./.gitignore -o -path ./.gitattributes \\) -prune \
                  -o -type f -printf '%P\\0' | xargs -0 -r sha256sum | LC_ALL=C sort | sha256sum | cut -d' ' -f1";
    if let Some(out) = shell(script, &root) {
        assert_eq!(out.trim(), r.digest.unwrap());
    }
}

#[test]
fn single_file_matches_sha256sum_of_one_line() {
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("m.gguf"), GGUF);
    let r = run(&opts(path(&d.path().join("m.gguf"))));
    assert!(r.valid);
    if let Some(out) = shell("sha256sum m.gguf | sha256sum | cut -d' ' -f1", d.path()) {
        assert_eq!(out.trim(), r.digest.unwrap());
    }
}

#[test]
fn flipped_byte_fails_the_pinned_hash() {
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    let mut o = opts(path(&root));
    o.expected_hash = run(&o).digest;
    assert!(run(&o).valid);
    flip_byte(&root.join("model.safetensors"), 123_456);
    let r = run(&o);
    assert!(!r.valid);
    assert!(
        r.message.contains("does not match the expected hash"),
        "{}",
        r.message
    );
}

#[cfg(unix)]
#[test]
fn symlinks_inside_count_and_escapes_are_rejected() {
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    std::os::unix::fs::symlink(root.join("config.json"), root.join("alias.json")).unwrap();
    let r = run(&opts(path(&root)));
    assert!(r.valid, "{r:?}");
    assert_eq!(r.files, 6);

    write(&d.path().join("secret"), b"outside");
    std::os::unix::fs::symlink(d.path().join("secret"), root.join("tokenizer/evil.bin")).unwrap();
    let r = run(&opts(path(&root)));
    assert!(!r.valid);
    assert!(
        has_failure(&r, "tokenizer/evil.bin", "symlink escapes"),
        "{r:?}"
    );
}

#[test]
fn ignore_paths_leave_files_out() {
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    let before = run(&opts(path(&root))).digest;
    write(&root.join("logs/run.txt"), b"noise");
    let r = verify_ignoring(&opts(path(&root)), &[PathBuf::from("logs")], &|_, _| {});
    assert_eq!(r.digest, before);
    let abs = verify_ignoring(&opts(path(&root)), &[root.join("logs")], &|_, _| {});
    assert_eq!(abs.digest, before);
}

fn signed(curve: Curve) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    let (sk, pk) = keypair(d.path(), curve, "k");
    let sig = d.path().join("model.sig");
    let out = sign_path(&root, &sk, &sig, &[], &|_, _| {}).unwrap();
    assert_eq!(out.files, 5);
    (d, root, sig, pk)
}

fn with_sig(
    root: &std::path::Path,
    sig: &std::path::Path,
    pk: &std::path::Path,
) -> secureinfer_integrity::VerifyOptions {
    let mut o = opts(path(root));
    o.signature = Some(sig.to_path_buf());
    o.public_key = Some(pk.to_path_buf());
    o.require_signature = true;
    o
}

#[test]
fn sign_verify_roundtrip_p256_and_p384() {
    for curve in [Curve::P256, Curve::P384] {
        let (_d, root, sig, pk) = signed(curve);
        let r = run(&with_sig(&root, &sig, &pk));
        assert!(r.valid, "{r:?}");
        assert!(r.message.contains("signature verified"));
    }
}

#[test]
fn modified_extra_and_missing_files_break_the_signature() {
    let (_d, root, sig, pk) = signed(Curve::P256);
    flip_byte(&root.join("config.json"), 3);
    let r = run(&with_sig(&root, &sig, &pk));
    assert!(has_failure(&r, "config.json", "modified"), "{r:?}");

    let (_d, root, sig, pk) = signed(Curve::P256);
    write(&root.join("backdoor.py"), b"import os");
    let r = run(&with_sig(&root, &sig, &pk));
    assert!(has_failure(&r, "backdoor.py", "not covered"), "{r:?}");

    let (_d, root, sig, pk) = signed(Curve::P256);
    std::fs::remove_file(root.join("tokenizer/tokenizer.json")).unwrap();
    let r = run(&with_sig(&root, &sig, &pk));
    assert!(!r.valid);
    assert!(
        has_failure(&r, "tokenizer/tokenizer.json", "missing"),
        "{r:?}"
    );
}

#[test]
fn bad_or_missing_signatures_are_invalid() {
    let (d, root, sig, pk) = signed(Curve::P256);
    let (_, other) = keypair(d.path(), Curve::P256, "other");
    assert!(!run(&with_sig(&root, &sig, &other)).valid, "other key");

    let mut b: serde_json::Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    b["verificationMaterial"]["publicKey"]["hint"] = "".into();
    let s = b["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_owned();
    b["dsseEnvelope"]["signatures"][0]["sig"] = s.replacen('M', "N", 1).into();
    let forged = d.path().join("forged.sig");
    std::fs::write(&forged, serde_json::to_vec(&b).unwrap()).unwrap();
    let r = run(&with_sig(&root, &forged, &pk));
    assert!(!r.valid);

    std::fs::write(&forged, b"{not json").unwrap();
    assert!(!run(&with_sig(&root, &forged, &pk)).valid);

    let r = run(&with_sig(&root, &d.path().join("absent.sig"), &pk));
    assert!(!r.valid, "missing signature file");

    let mut o = opts(path(&root));
    o.require_signature = true;
    assert!(!run(&o).valid, "required but not configured");
    o.signature = Some(sig);
    assert!(!run(&o).valid, "no public key");
}

#[test]
fn signature_inside_the_model_is_not_part_of_it() {
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    let (sk, pk) = keypair(d.path(), Curve::P384, "k");
    let sig = root.join("model.sig");
    sign_path(&root, &sk, &sig, &[], &|_, _| {}).unwrap();
    let r = run(&with_sig(&root, &sig, &pk));
    assert!(r.valid, "{r:?}");
}

#[test]
fn hash_lists_every_file() {
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    let h = hash_model(&path(&root), &[], &|_, _| {}).unwrap();
    let names: Vec<_> = h.files.iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"tokenizer/tokenizer.json"));
    assert!(names.contains(&"empty.txt"));
    assert!(h.failures.is_empty());
}

#[test]
fn missing_model_is_a_failure_not_a_panic() {
    let r = run(&opts(ModelSource::Path("/nonexistent/model".into())));
    assert!(!r.valid);
    let d = tempfile::tempdir().unwrap();
    let r = run(&opts(path(d.path())));
    assert!(r.message.contains("no model files"), "{}", r.message);
}

#[test]
fn sec1_private_keys_from_openssl_ecparam_are_accepted() {
    use p256::pkcs8::LineEnding;
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    let sk = p384::SecretKey::random(&mut rand_core::OsRng);
    let pem = sk.to_sec1_pem(LineEnding::LF).unwrap();
    assert!(pem.contains("BEGIN EC PRIVATE KEY"));
    let skp = d.path().join("sec1.pem");
    std::fs::write(&skp, pem.as_bytes()).unwrap();
    let pkp = d.path().join("sec1.pub");
    use p256::pkcs8::EncodePublicKey;
    std::fs::write(
        &pkp,
        sk.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    )
    .unwrap();
    let sig = d.path().join("m.sig");
    sign_path(&root, &skp, &sig, &[], &|_, _| {}).unwrap();
    assert!(run(&with_sig(&root, &sig, &pkp)).valid);
}

#[test]
fn aggregate_definition_known_answer() {
    // Independent of any shell tool: the documented definition, spelled out.
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("b.bin"), b"bee");
    write(&d.path().join("a/x.bin"), b"ex");
    let mut lines = [
        format!("{}  b.bin\n", sha(b"bee")),
        format!("{}  a/x.bin\n", sha(b"ex")),
    ];
    lines.sort();
    let want = sha(lines.concat().as_bytes());
    assert_eq!(
        run(&opts(path(d.path()))).digest.as_deref(),
        Some(want.as_str())
    );
}

#[test]
fn progress_reaches_the_total() {
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    let last = std::cell::Cell::new((0u64, 0u64));
    let r = secureinfer_integrity::verify(&opts(path(&root)), &|done, total| {
        assert!(done <= total);
        last.set((done, total));
    });
    assert!(r.valid);
    let (done, total) = last.get();
    assert_eq!(done, total);
    assert!(total >= 300_000);
}

#[cfg(unix)]
#[test]
fn new_signature_inside_a_symlinked_model_path_is_ignored() {
    let d = tempfile::tempdir().unwrap();
    let root = model_dir(d.path());
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&root, &link).unwrap();
    let (sk, pk) = keypair(d.path(), Curve::P256, "k");
    let sig = link.join("model.sig");
    let out = sign_path(&link, &sk, &sig, &[], &|_, _| {}).unwrap();
    assert_eq!(out.files, 5, "the signature must not sign itself");
    assert!(run(&with_sig(&link, &sig, &pk)).valid);
}
