#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] fns abort on setup failure
mod common;

use common::*;
use secureinfer_integrity::{ModelRef, ModelSource, hash_model, sign_allowlist, sign_path};

#[test]
fn model_names_resolve_with_ollama_defaults() {
    let r = ModelRef::parse("phi3.5:3.8b-mini-instruct-q4_K_M").unwrap();
    assert_eq!(
        r.canonical(),
        "registry.ollama.ai/library/phi3.5:3.8b-mini-instruct-q4_K_M"
    );
    let r = ModelRef::parse("library/llama3:latest").unwrap();
    assert_eq!(r.canonical(), "registry.ollama.ai/library/llama3:latest");
    let r = ModelRef::parse("myreg.io:5000/ns/model:tag").unwrap();
    assert_eq!(r.canonical(), "myreg.io:5000/ns/model:tag");
    assert_eq!(ModelRef::parse("llama3").unwrap().tag, "latest");
}

#[test]
fn traversal_and_absolute_names_are_rejected() {
    let (_d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    for bad in [
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../x",
        "..:latest",
        "ns/model:../../x",
        "a\\b",
        "a/b/c/d",
    ] {
        let r = run(&opts(ollama(&root, bad)));
        assert!(!r.valid, "{bad} accepted");
        assert!(
            r.message.contains("invalid model name"),
            "{bad}: {}",
            r.message
        );
    }
}

#[test]
fn untouched_store_is_valid_and_matches_the_shell_pipeline() {
    let (_d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    let r = run(&opts(ollama(&root, "tiny")));
    assert!(r.valid, "{r:?}");
    assert_eq!(r.model, "registry.ollama.ai/library/tiny:latest");
    assert_eq!(r.files, 3);
    let digest = r.digest.clone().unwrap();
    assert_eq!(
        r.manifest_digest.as_deref(),
        Some(sha(&std::fs::read(&m).unwrap()).as_str())
    );

    let script = "cd blobs && grep -o 'sha256:[0-9a-f]\\{64\\}' ../manifests/registry.ollama.ai/library/tiny/latest \
                  | sed 's/:/-/' | sort -u | xargs sha256sum | LC_ALL=C sort | sha256sum | cut -d' ' -f1";
    if let Some(out) = shell(script, &root) {
        assert_eq!(out.trim(), digest);
    }
}

#[test]
fn flipped_byte_names_the_blob() {
    let (_d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    let blob = blob_path(&root, GGUF);
    flip_byte(&blob, 10);
    let r = run(&opts(ollama(&root, "tiny")));
    assert!(!r.valid);
    assert!(r.digest.is_none());
    let name = blob.file_name().unwrap().to_str().unwrap();
    assert!(has_failure(&r, name, "tampered"), "{r:?}");
}

#[test]
fn missing_blob_and_size_change_are_reported() {
    let (_d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    std::fs::remove_file(blob_path(&root, b"{{ .Prompt }}")).unwrap();
    let mut gguf = GGUF.to_vec();
    gguf.push(0);
    std::fs::write(blob_path(&root, GGUF), gguf).unwrap();
    let r = run(&opts(ollama(&root, "tiny")));
    assert!(!r.valid);
    assert!(has_failure(&r, &sha(b"{{ .Prompt }}"), "missing"), "{r:?}");
    assert!(has_failure(&r, &sha(GGUF), "size"), "{r:?}");
}

#[test]
fn expected_hash_pins_aggregate_or_manifest_digest() {
    let (_d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    let good = run(&opts(ollama(&root, "tiny")));
    let mut o = opts(ollama(&root, "tiny"));
    o.expected_hash = Some(format!(
        "sha256:{}",
        good.digest.clone().unwrap().to_uppercase()
    ));
    assert!(run(&o).valid);
    o.expected_hash = good.manifest_digest.clone();
    assert!(run(&o).valid);
    o.expected_hash = Some("0".repeat(64));
    let r = run(&o);
    assert!(!r.valid);
    assert!(
        r.message.contains("does not match the expected hash"),
        "{}",
        r.message
    );
    o.expected_hash = Some("not-a-hash".into());
    assert!(run(&o).message.contains("malformed"));
}

#[test]
fn malformed_digest_in_manifest_is_rejected() {
    for bad in [
        "sha256:ABC",
        "sha512:00",
        "sha256:../../../../etc/passwd",
        &format!("sha256:{}", "A".repeat(64)),
    ] {
        let (_d, m) = store();
        let root = m.ancestors().nth(5).unwrap().to_path_buf();
        let text = std::fs::read_to_string(&m).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let good = v["layers"][0]["digest"].as_str().unwrap().to_owned();
        std::fs::write(&m, text.replace(&good, bad)).unwrap();
        let r = run(&opts(ollama(&root, "tiny")));
        assert!(!r.valid);
        assert!(
            r.message.contains("malformed digest"),
            "{bad}: {}",
            r.message
        );
    }
}

#[test]
fn oversized_manifest_is_rejected() {
    let (_d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    std::fs::write(&m, vec![b' '; (1 << 20) + 10]).unwrap();
    let r = run(&opts(ollama(&root, "tiny")));
    assert!(!r.valid);
    assert!(r.message.contains("larger than"), "{}", r.message);
}

#[cfg(unix)]
#[test]
fn blob_and_manifest_symlink_escapes_are_rejected() {
    let (d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    let outside = d.path().join("evil.gguf");
    std::fs::write(&outside, GGUF).unwrap();
    let blob = blob_path(&root, GGUF);
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&outside, &blob).unwrap();
    let r = run(&opts(ollama(&root, "tiny")));
    assert!(!r.valid);
    assert!(has_failure(&r, &sha(GGUF), "symlink escapes"), "{r:?}");

    let (d2, m2) = store();
    let root2 = m2.ancestors().nth(5).unwrap().to_path_buf();
    let fake = d2.path().join("manifest");
    std::fs::copy(&m2, &fake).unwrap();
    std::fs::remove_file(&m2).unwrap();
    std::os::unix::fs::symlink(&fake, &m2).unwrap();
    let r = run(&opts(ollama(&root2, "tiny")));
    assert!(!r.valid);
    assert!(r.message.contains("symlink escapes"), "{}", r.message);
}

#[test]
fn allowlist_pins_manifest_and_layers() {
    let (d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    let (sk, pk) = keypair(d.path(), Curve::P256, "op");
    let list = d.path().join("allowlist.json");
    let l = sign_allowlist(&root, &["tiny".into()], &sk, &list, &|_, _| {}).unwrap();
    assert_eq!(l.models[0].name, "registry.ollama.ai/library/tiny:latest");

    let mut o = opts(ollama(&root, "tiny"));
    o.allowlist = Some(list.clone());
    o.public_key = Some(pk.clone());
    o.require_signature = true;
    let r = run(&o);
    assert!(r.valid, "{r:?}");
    assert!(r.message.contains("allowlist entry verified"));

    // Wrong key.
    let (_, other_pk) = keypair(d.path(), Curve::P384, "other");
    o.public_key = Some(other_pk);
    assert!(!run(&o).valid);
    o.public_key = Some(pk);

    // A model that is not listed.
    add_model(
        &root,
        "registry.ollama.ai/library/other/latest",
        &[("c", b"cfg2"), (MODEL_TYPE, b"other weights")],
    );
    o.source = ollama(&root, "other");
    let r = run(&o);
    assert!(!r.valid);
    assert!(
        r.message.contains("not in the signed allowlist"),
        "{}",
        r.message
    );

    // The tag re-pointed to different (internally consistent) content.
    add_model(
        &root,
        "registry.ollama.ai/library/tiny/latest",
        &[("c", b"cfg2"), (MODEL_TYPE, b"other weights")],
    );
    o.source = ollama(&root, "tiny");
    let r = run(&o);
    assert!(!r.valid);
    assert!(has_failure(&r, "tiny", "re-pointed"), "{r:?}");

    // Tampered allowlist payload.
    let (d3, m3) = store();
    let root3 = m3.ancestors().nth(5).unwrap().to_path_buf();
    let mut b: serde_json::Value = serde_json::from_slice(&std::fs::read(&list).unwrap()).unwrap();
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let forged = String::from_utf8(payload).unwrap().replace("tiny", "tinx");
    b["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
        .encode(forged)
        .into();
    let forged_path = d3.path().join("forged.json");
    std::fs::write(&forged_path, serde_json::to_vec(&b).unwrap()).unwrap();
    let mut o3 = opts(ollama(&root3, "tiny"));
    o3.allowlist = Some(forged_path);
    o3.public_key = o.public_key.clone();
    let r = run(&o3);
    assert!(!r.valid);
    assert!(r.message.contains("does not verify"), "{}", r.message);
}

#[test]
fn required_signature_missing_is_invalid() {
    let (_d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    let mut o = opts(ollama(&root, "tiny"));
    o.require_signature = true;
    let r = run(&o);
    assert!(!r.valid);
    assert!(r.message.contains("required"), "{}", r.message);
}

#[test]
fn model_signing_bundle_over_the_gguf_covers_the_ollama_layer() {
    let (d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    let (sk, pk) = keypair(d.path(), Curve::P256, "op");
    let src = d.path().join("src");
    write(&src.join("tiny.gguf"), GGUF);
    let sig = d.path().join("tiny.sig");
    sign_path(&src, &sk, &sig, &[], &|_, _| {}).unwrap();

    let mut o = opts(ollama(&root, "tiny"));
    o.signature = Some(sig.clone());
    o.public_key = Some(pk);
    o.require_signature = true;
    let r = run(&o);
    assert!(r.valid, "{r:?}");

    write(&src.join("tiny.gguf"), b"different weights");
    sign_path(&src, &sk, &sig, &[], &|_, _| {}).unwrap();
    let r = run(&o);
    assert!(!r.valid);
    assert!(r.message.contains("does not cover"), "{}", r.message);
}

#[test]
fn hash_model_reports_per_blob_digests() {
    let (_d, m) = store();
    let root = m.ancestors().nth(5).unwrap().to_path_buf();
    let h = hash_model(
        &ollama(&root, "registry.ollama.ai/library/tiny:latest"),
        &[],
        &|_, _| {},
    )
    .unwrap();
    assert!(
        h.files
            .iter()
            .any(|f| f.sha256 == sha(GGUF) && f.name == format!("sha256-{}", sha(GGUF)))
    );
    let _ = ModelSource::Path(root);
}
