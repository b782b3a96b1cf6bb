//! A fresh PostgreSQL database per fixture on the machine's server, for `otaas serve
//! --database postgres://...` (replica tests share one). Dropped with the fixture.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::process::{self, Finished};

/// The server's URL (see [`otaas_testkit::pg::pg_url`]).
fn base_url() -> String {
    otaas_testkit::pg::pg_url()
}

/// Runs one SQL statement with `psql` against `url`, stopping at the first error.
pub(crate) fn psql(url: &str, sql: &str) -> Finished {
    process::run(
        Command::new("psql").args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ]),
        Duration::from_secs(60),
    )
}

/// A database created for one test; `url()` is what `Server::start_with` takes.
pub(crate) struct PgDatabase {
    name: String,
    admin_url: String,
    url: String,
}

impl PgDatabase {
    pub(crate) fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "otaas_acc_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let base = base_url();
        // CREATE/DROP DATABASE run from the maintenance database, not from the new one.
        let admin_url = otaas_testkit::pg::with_database(&base, "postgres");
        psql(&admin_url, &format!("CREATE DATABASE {name}")).assert_success();
        let url = otaas_testkit::pg::with_database(&base, &name);
        Self {
            name,
            admin_url,
            url,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // FORCE ends connections a killed server may have left; failures only leak a database.
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
