//! The migrations of each backend, embedded in the binary and applied at open.
//!
//! To add one: put `NNNN_what.sql` under `crates/store/migrations/{sqlite,postgres}/` and add a
//! line to both lists below with the next version number. Never edit an applied migration.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

type Entry = (i64, &'static str, &'static str);

const SQLITE: &[Entry] = &[
    (
        1,
        "core",
        include_str!("../migrations/sqlite/0001_core.sql"),
    ),
    (
        2,
        "agents",
        include_str!("../migrations/sqlite/0002_agents.sql"),
    ),
    (
        3,
        "rollouts",
        include_str!("../migrations/sqlite/0003_rollouts.sql"),
    ),
    (
        4,
        "replicas",
        include_str!("../migrations/sqlite/0004_replicas.sql"),
    ),
    (
        5,
        "token_grace",
        include_str!("../migrations/sqlite/0005_token_grace.sql"),
    ),
    (
        6,
        "object_secrets",
        include_str!("../migrations/sqlite/0006_object_secrets.sql"),
    ),
    (
        7,
        "revision_causes",
        include_str!("../migrations/sqlite/0007_revision_causes.sql"),
    ),
    (
        8,
        "audit",
        include_str!("../migrations/sqlite/0008_audit.sql"),
    ),
];

const POSTGRES: &[Entry] = &[
    (
        1,
        "core",
        include_str!("../migrations/postgres/0001_core.sql"),
    ),
    (
        2,
        "agents",
        include_str!("../migrations/postgres/0002_agents.sql"),
    ),
    (
        3,
        "rollouts",
        include_str!("../migrations/postgres/0003_rollouts.sql"),
    ),
    (
        4,
        "replicas",
        include_str!("../migrations/postgres/0004_replicas.sql"),
    ),
    (
        5,
        "token_grace",
        include_str!("../migrations/postgres/0005_token_grace.sql"),
    ),
    (
        6,
        "object_secrets",
        include_str!("../migrations/postgres/0006_object_secrets.sql"),
    ),
    (
        7,
        "revision_causes",
        include_str!("../migrations/postgres/0007_revision_causes.sql"),
    ),
    (
        8,
        "audit",
        include_str!("../migrations/postgres/0008_audit.sql"),
    ),
];

fn migrator(entries: &[Entry]) -> Migrator {
    let migrations: Vec<Migration> = entries
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}
