//! The server's data dir: created 0700 and kept private, as it holds the admin token, the
//! SQLite files and the generated TLS keys.

use std::path::{Path, PathBuf};

/// The data dir could not be created or made private.
#[derive(Debug, thiserror::Error)]
#[error("creating data dir {path}: {source}")]
pub struct DataDirError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Files of the data dir the server creates and keeps secrets in (the SQLite database and its
/// journals hold the endpoint-token key and exporter header values).
const PRIVATE_FILES: &[&str] = &[
    "otaas.db",
    "otaas.db-wal",
    "otaas.db-shm",
    "otaas.db-journal",
    "admin-token",
];

/// Creates the data dir 0700 (it holds the admin token and the SQLite files). An existing
/// dir of ours that others may read is tightened to 0700 (logged), as are the server's own
/// files in it; one owned by another user is left alone with a warning (we may not change it).
pub fn ensure_data_dir(dir: &Path) -> Result<(), DataDirError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let err = |source| DataDirError {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.is_dir() {
        return std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err);
    }
    let me = rustix::process::geteuid().as_raw();
    let tighten = |path: &Path, mode: u32| -> Result<(), DataDirError> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(err(e)),
        };
        let loose = meta.mode() & 0o077;
        if loose == 0 || meta.file_type().is_symlink() {
            return Ok(());
        }
        if meta.uid() != me {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.mode() & 0o777),
                "Data dir entry is accessible to other users and owned by another user; not changed"
            );
            return Ok(());
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
        tracing::warn!(
            path = %path.display(),
            from = format!("{:o}", meta.mode() & 0o777),
            to = format!("{mode:o}"),
            "Tightened permissions: the data dir holds secrets"
        );
        Ok(())
    };
    tighten(dir, 0o700)?;
    for name in PRIVATE_FILES {
        tighten(&dir.join(name), 0o600)?;
    }
    Ok(())
}
