//! A small tmpfs for disk-trouble tests: a file system that can be filled up (ENOSPC) or
//! mounted read-only (EROFS), as root. Unmounted on drop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a fresh temporary directory.
pub struct Tmpfs {
    dir: tempfile::TempDir,
    filler: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount` takes it: `4m`) with extra `options` (`ro`, or
    /// empty). Panics with what to do when it cannot (the tests need root).
    pub fn mount(size: &str, options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut all = format!("size={size},mode=0755");
        if !options.is_empty() {
            all = format!("{all},{options}");
        }
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &all, "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "mounting a tmpfs failed (these tests run as root): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let filler = dir.path().join("filler");
        Tmpfs { dir, filler }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system: writes a filler file until the write fails with ENOSPC.
    pub fn fill(&self) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .expect("create the filler file");
        let block = vec![0x5a_u8; 4096];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // Partial pages: fill byte by byte up to the last one.
        while let Ok(1) = file.write(&[0x5a]) {}
    }

    /// Frees what [`Tmpfs::fill`] took.
    pub fn free(&self) {
        std::fs::remove_file(&self.filler).expect("remove the filler file");
    }

    /// Remounts read-only (`ro = true`) or read-write.
    pub fn remount(&self, ro: bool) {
        let option = if ro { "remount,ro" } else { "remount,rw" };
        let status = Command::new("mount")
            .args(["-o", option])
            .arg(self.dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {option} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a daemon killed a moment ago may still hold a file open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
