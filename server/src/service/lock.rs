//! One server per data dir: an advisory exclusive lock on `DIR/lock`, held for the
//! server's whole life (the OS drops it when the process dies, even by kill -9).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: File,
}

fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("lock")
}

impl DataDirLock {
    /// Takes the lock, or says which other server holds the folder.
    pub(crate) fn acquire(data_dir: &Path) -> Result<DataDirLock> {
        let path = lock_path(data_dir);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        // Called through the trait: std has an inherent `try_lock` of its own since 1.89.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(Error::Io(format!(
                    "--data-dir {}: in use by another bounced{} ({} is locked); one server per data dir",
                    data_dir.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    },
                    path.display()
                )));
            }
            Err(fs4::TryLockError::Error(e)) => return Err(Error::io(path.display(), e)),
        }
        // The pid is only for the message above; the lock is what counts.
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        let _ = file.sync_all();
        Ok(DataDirLock { _file: file })
    }
}

/// True when another server holds `data_dir` right now (a probe: the answer may be
/// stale by the time it is read).
pub fn data_dir_in_use(data_dir: &Path) -> bool {
    let Ok(file) = File::open(lock_path(data_dir)) else {
        return false;
    };
    match fs4::FileExt::try_lock_shared(&file) {
        Ok(()) => false,
        Err(fs4::TryLockError::WouldBlock) => true,
        Err(fs4::TryLockError::Error(_)) => false,
    }
}
