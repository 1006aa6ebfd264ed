//! Finding the Postgres server binaries and running them as the `postgres`
//! user when we are root (initdb and postgres refuse to run as root).
use super::EmbeddedError;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The programs a private cluster needs; a directory missing any of them is
/// skipped (e.g. a `pg_config` from libpq-dev without the server).
const REQUIRED: [&str; 4] = ["initdb", "pg_ctl", "postgres", "psql"];

/// A directory holding the Postgres server binaries, and whether they must
/// run as `postgres`.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub dir: PathBuf,
    pub as_postgres: bool,
}

impl PgBinaries {
    /// `pg_config --bindir`, then `/usr/lib/postgresql/<newest>/bin`, then
    /// each directory of `PATH`.
    pub fn find() -> Result<PgBinaries, EmbeddedError> {
        let dir = pick(&candidates())?;
        Ok(PgBinaries {
            dir,
            as_postgres: is_root(),
        })
    }

    /// `program` from the bin dir, through `runuser -u postgres --` when
    /// running as root.
    pub fn command(&self, program: &str) -> Command {
        let path = self.dir.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Hand `paths` (recursively) to the `postgres` user when running as
    /// root; a no-op otherwise.
    pub fn give_to_postgres(&self, paths: &[&Path]) -> Result<(), EmbeddedError> {
        if !self.as_postgres {
            return Ok(());
        }
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .args(paths)
            .output()
            .map_err(|e| EmbeddedError::io("run chown", e))?;
        check("chown to postgres", &out, None)
    }
}

/// An `Err` carrying stderr (and the tail of `log`, if given) unless `out`
/// succeeded.
pub(super) fn check(what: &str, out: &Output, log: Option<&Path>) -> Result<(), EmbeddedError> {
    if out.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    if let Some(log) = log {
        let tail = log_tail(log, 20);
        if !tail.is_empty() {
            detail.push_str(&format!("\n--- {} (last lines) ---\n{tail}", log.display()));
        }
    }
    Err(EmbeddedError::Command {
        what: what.to_string(),
        status: out.status.to_string(),
        detail,
    })
}

pub(super) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    dirs.extend(versioned_dirs(Path::new("/usr/lib/postgresql")));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// `<root>/<version>/bin`, newest version first ("15" before "9.6").
fn versioned_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let key: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((key?, e.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// The first candidate holding every required program.
fn pick(candidates: &[PathBuf]) -> Result<PathBuf, EmbeddedError> {
    candidates
        .iter()
        .find(|dir| REQUIRED.iter().all(|p| dir.join(p).is_file()))
        .cloned()
        .ok_or_else(|| EmbeddedError::NoBinaries {
            looked: candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("panel1-bins-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn picks_the_first_directory_with_every_program() {
        let root = scratch();
        let partial = root.join("partial");
        let full = root.join("full");
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::create_dir_all(&full).unwrap();
        std::fs::write(partial.join("pg_ctl"), "").unwrap();
        for p in REQUIRED {
            std::fs::write(full.join(p), "").unwrap();
        }
        let got = pick(&[root.join("missing"), partial.clone(), full.clone()]).unwrap();
        assert_eq!(got, full);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn no_binaries_says_where_it_looked_and_what_to_do() {
        let err = pick(&[PathBuf::from("/nowhere/a"), PathBuf::from("/nowhere/b")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no Postgres binaries found (looked in /nowhere/a, /nowhere/b): install them \
             (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL to an existing server"
        );
    }

    #[test]
    fn versions_sort_newest_first() {
        let root = scratch();
        for v in ["9.6", "15", "13", "notaversion"] {
            std::fs::create_dir_all(root.join(v)).unwrap();
        }
        let dirs = versioned_dirs(&root);
        assert_eq!(
            dirs,
            vec![
                root.join("15/bin"),
                root.join("13/bin"),
                root.join("9.6/bin")
            ]
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
