#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The semantic head without the encoder: training is deterministic and separates a fixture
//! set, and a damaged head file is refused with a clear error. Runs in the default build.

use secureinfer_semantic::head::EncoderId;
use secureinfer_semantic::train::{HeadConfig, train_head};
use secureinfer_semantic::{DIM, Head, HeadError};

/// Unit vectors around two centres (attacks near `a`, benign near `b`), from a fixed LCG.
fn fixture(n: usize, seed: u64) -> Vec<(Vec<f32>, bool)> {
    let mut s = seed;
    let mut rnd = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    (0..n)
        .map(|i| {
            let label = i % 2 == 0;
            let mut v: Vec<f32> = (0..DIM).map(|_| rnd() * 0.2).collect();
            v[if label { 0 } else { 1 }] += 1.0;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            (v.into_iter().map(|x| x / norm).collect(), label)
        })
        .collect()
}

fn encoder_id() -> EncoderId {
    EncoderId {
        name: "fixture".into(),
        weights_sha256: "00".repeat(32),
    }
}

fn train(seed: u64) -> Head {
    let rows = fixture(400, 1);
    let holdout: Vec<Vec<Vec<f32>>> = fixture(200, 2)
        .into_iter()
        .filter(|(_, y)| !y)
        .map(|(e, _)| vec![e])
        .collect();
    let cfg = HeadConfig {
        seed,
        epochs: 10,
        ..HeadConfig::default()
    };
    train_head(
        &rows,
        &holdout,
        encoder_id(),
        &cfg,
        serde_json::json!({"test": true}),
    )
}

#[test]
fn training_is_deterministic_and_separates_the_fixture() {
    let a = train(11);
    let b = train(11);
    assert_eq!(a.to_bytes(), b.to_bytes(), "same seed, same bytes");
    let c = train(12);
    assert_ne!(a.weights, c.weights, "the seed drives the order");

    let test = fixture(200, 3);
    let correct = test
        .iter()
        .filter(|(e, y)| (a.logit(e) > 0.0) == *y)
        .count();
    assert!(correct >= 195, "{correct}/200 correct");
    // Attacks reach the block calibration point; benign rows stay under the floor mostly.
    let blocked = test
        .iter()
        .filter(|(e, y)| *y && a.points(a.logit(e)) >= 80)
        .count();
    assert!(blocked >= 90, "{blocked}/100 attacks at BLOCK");
}

#[test]
fn a_head_round_trips_and_damage_is_refused() {
    let head = train(5);
    let bytes = head.to_bytes();
    assert_eq!(Head::from_bytes(&bytes).unwrap(), head);

    let mut flipped = bytes.clone();
    let mid = flipped.len() - 100;
    flipped[mid] ^= 0x40;
    let err = Head::from_bytes(&flipped).unwrap_err();
    assert!(matches!(err, HeadError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("corrupted"), "{err}");

    let err = Head::from_bytes(&bytes[..bytes.len() - 10]).unwrap_err();
    assert!(matches!(err, HeadError::Checksum { .. }), "{err}");
    assert_eq!(
        Head::from_bytes(b"SIDETECT-not-a-head"),
        Err(HeadError::BadMagic)
    );
    assert!(matches!(
        Head::from_bytes(b"SISEMHD1"),
        Err(HeadError::Truncated(_))
    ));
}

#[test]
fn the_builtin_head_loads() {
    let head = Head::builtin().unwrap();
    assert_eq!(head.weights.len(), DIM);
    assert_eq!(
        head.manifest.encoder.name,
        "sentence-transformers/all-MiniLM-L6-v2"
    );
}
