//! The PostgreSQL server tests use, and fresh schemas in it.

/// The PostgreSQL server of the machine (trust auth): `$OTAAS_TEST_DATABASE_URL` (written by
/// scripts/setup.sh), else `$OTAAS_TEST_POSTGRES`, else the machine's default.
pub fn pg_url() -> String {
    std::env::var("OTAAS_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("OTAAS_TEST_POSTGRES"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema name no other test uses.
pub fn fresh_schema() -> String {
    format!("otaas_test_{}", uuid::Uuid::new_v4().simple())
}
