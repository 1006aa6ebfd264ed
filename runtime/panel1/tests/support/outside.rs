//! What the tests that use Panel1 as an author does, outside the checkout,
//! share: temporary directories that are provably not in the repository,
//! a check that nothing written there points back into it, and a printable
//! command output. Included with `#[path]` by scaffold.rs, sdk_packages.rs
//! and dist.rs.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::Output;

/// The checkout this test was built from.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Exit code, stdout and stderr, for an assertion message.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh directory under the system temp dir, outside the checkout. Left
/// in place (a failing test's files are the clue); see [`TempDir`].
pub fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("panel1-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        !dir.canonicalize().unwrap().starts_with(repo()),
        "temp dir inside the repo"
    );
    dir
}

/// A [`temp`] directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(temp(tag))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// No file under `dir` names the checkout or reaches for its WIT
/// (`../../wit`); directories named in `skip` (installed dependencies,
/// build output) are not read.
pub fn assert_standalone(dir: &Path, skip: &[&str]) {
    let repo = repo().display().to_string();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if skip.iter().any(|n| entry.file_name() == *n) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(body) = std::fs::read_to_string(&path) {
                assert!(
                    !body.contains(&repo),
                    "{} names the checkout",
                    path.display()
                );
                assert!(
                    !body.contains("../../wit"),
                    "{} points at ../../wit",
                    path.display()
                );
            }
        }
    }
}
