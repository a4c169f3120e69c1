#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Keeps `.env.example` (at the repository root) in step with the settings the gateway reads.
//!
//! Every variable in `SettingArgs::ALL` must appear in `.env.example` as a `NAME=` line
//! (commented out or not), and `.env.example` must not document a variable the code does not
//! read. When a setting is added to `config/settings.rs`, this test fails until it is documented.

use std::collections::BTreeSet;
use std::path::PathBuf;

use secureinfer::config::SettingArgs;

/// The variable a line assigns, if it is `NAME=...` or `# NAME=...` with an upper-case name.
fn assigned_name(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let line = line.strip_prefix('#').map(str::trim_start).unwrap_or(line);
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (name, _) = line.split_once('=')?;
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    valid.then_some(name)
}

#[test]
fn env_example_lists_exactly_the_settings_the_code_reads() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.env.example");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));

    let documented: BTreeSet<&str> = text.lines().filter_map(assigned_name).collect();
    let in_code: BTreeSet<&str> = SettingArgs::ALL.iter().map(|(name, _)| *name).collect();

    let missing: Vec<&str> = in_code.difference(&documented).copied().collect();
    let unknown: Vec<&str> = documented.difference(&in_code).copied().collect();

    let mut problems = Vec::new();
    if !missing.is_empty() {
        let help: Vec<String> = missing
            .iter()
            .map(|name| {
                let help = SettingArgs::ALL
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, h)| *h)
                    .unwrap_or("");
                format!("  {name}  ({help})")
            })
            .collect();
        problems.push(format!(
            "read by the code (crates/server/src/config/settings.rs) but missing from .env.example:\n{}",
            help.join("\n")
        ));
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "documented in .env.example but not a setting in crates/server/src/config/settings.rs:\n  {}",
            unknown.join("\n  ")
        ));
    }
    assert!(
        problems.is_empty(),
        ".env.example is out of step with the code ({}):\n{}\n\
         Add each missing variable with a comment line (meaning, accepted values, default) and its \
         default value; remove or rename the unknown ones.",
        path.display(),
        problems.join("\n")
    );
}

#[test]
fn assigned_name_reads_plain_commented_and_exported_lines() {
    assert_eq!(assigned_name("API_PORT=8000"), Some("API_PORT"));
    assert_eq!(assigned_name("# REDIS_URL="), Some("REDIS_URL"));
    assert_eq!(assigned_name("#UPSTREAM=mock"), Some("UPSTREAM"));
    assert_eq!(assigned_name("export LOG_LEVEL=info"), Some("LOG_LEVEL"));
    assert_eq!(assigned_name("# Copy this file to .env"), None);
    assert_eq!(assigned_name("# e.g. a=b"), None);
    assert_eq!(assigned_name(""), None);
}
