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

/// `base` with its database name replaced (query parameters kept): a database created next to
/// the one `base` names.
pub fn with_database(base: &str, database: &str) -> String {
    let (url, query) = base
        .split_once('?')
        .map_or((base, None), |(u, q)| (u, Some(q)));
    let server = url.rsplit_once('/').map_or(url, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn another_database_on_the_same_server_keeps_the_parameters() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/test?sslmode=disable", "b"),
            "postgres://u@h:5432/b?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://h/test", "b"),
            "postgres://h/b"
        );
    }
}
