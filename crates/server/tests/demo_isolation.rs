//! `secureinfer demo isolation` as a user runs it: every check holds and nothing of tenant A
//! reaches tenant B.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn the_isolation_demo_passes_every_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_secureinfer"))
        .args(["demo", "isolation"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("10 checks held, 0 failed"), "{stdout}");
    // The naive gateway leaks; the isolated one answers B from B's empty history.
    let naive = stdout.split("Without isolation").nth(1).unwrap();
    assert!(naive.contains("123-45-6789"), "{stdout}");
    let isolated = stdout.split("through SecureInfer").nth(1).unwrap();
    let answer = isolated.lines().nth(1).unwrap();
    assert!(answer.contains("Nobody told me"), "{answer}");
    assert!(!answer.contains("123-45"), "{answer}");
}
