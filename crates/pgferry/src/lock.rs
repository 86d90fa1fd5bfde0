//! One lock file per job in the state dir, so a job never overlaps itself (guarantee 8).
//! The lock is an OS file lock: it goes away with the process, even after `kill -9`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Another run of the same job holds the lock: exit 75.
#[derive(Debug, thiserror::Error)]
#[error("job {job} is already running (lock {path} is held); this run is skipped")]
pub struct LockHeld {
    pub job: String,
    pub path: PathBuf,
}

/// Held while the job runs; released on drop.
#[derive(Debug)]
pub struct JobLock {
    _file: File,
    pub path: PathBuf,
}

impl JobLock {
    /// Takes the lock of `job` in `state_dir/locks`, or fails with [`LockHeld`].
    pub fn acquire(state_dir: &Path, job: &str) -> anyhow::Result<JobLock> {
        let dir = state_dir.join("locks");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("create the lock directory {}", dir.display()))?;
        let path = dir.join(format!("{job}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(JobLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockHeld {
                job: job.to_string(),
                path,
            }
            .into()),
            Err(std::fs::TryLockError::Error(err)) => {
                Err(err).with_context(|| format!("lock {}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_of_the_same_job_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = JobLock::acquire(dir.path(), "load").unwrap();
        let err = JobLock::acquire(dir.path(), "load").unwrap_err();
        assert!(err.downcast_ref::<LockHeld>().is_some());
        assert!(JobLock::acquire(dir.path(), "prune").is_ok());
        drop(first);
        // Another test's fork may briefly hold a copy of the descriptor until its exec.
        let reacquired = (0..200).any(|_| {
            JobLock::acquire(dir.path(), "load").is_ok() || {
                std::thread::sleep(std::time::Duration::from_millis(10));
                false
            }
        });
        assert!(reacquired);
    }
}
