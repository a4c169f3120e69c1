#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! SQLite and PostgreSQL must evolve together: every migration exists for both, under the same
//! name, so a replica on PostgreSQL has the same tables as a single gateway on SQLite.

use std::collections::BTreeSet;
use std::path::Path;

fn migrations(dialect: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect()
}

#[test]
fn every_migration_exists_for_sqlite_and_postgres() {
    let sqlite = migrations("sqlite");
    let postgres = migrations("postgres");
    assert!(!sqlite.is_empty());
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "add the missing twin: only in migrations/sqlite {only_sqlite:?}, only in migrations/postgres {only_postgres:?}"
    );
}

/// Two branches that each add "the next" migration collide on its version number, and the
/// database refuses the second at start-up (UNIQUE constraint on `_sqlx_migrations.version`).
#[test]
fn migration_versions_are_unique() {
    for dialect in ["sqlite", "postgres"] {
        let mut seen = std::collections::BTreeMap::new();
        for name in migrations(dialect) {
            let version = name.split('_').next().unwrap().to_string();
            if let Some(other) = seen.insert(version.clone(), name.clone()) {
                panic!("migrations/{dialect}: {other} and {name} share version {version}");
            }
        }
    }
}
