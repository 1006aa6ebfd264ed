//! The Postgres that `panel1 serve` runs for itself when no DATABASE_URL is
//! set: a private cluster in `<data_dir>/pgdata`, listening only on
//! 127.0.0.1 and a unix socket in `<data_dir>/socket`, started with the
//! local Postgres binaries and kept across restarts.
//!
//! Layout of `data_dir`: `pgdata/` (the cluster), `socket/`, `postgres.log`,
//! `port` (the port of the last run, reused while free). Only those belong to
//! the `postgres` user when we run as root; the rest of `data_dir` (e.g. the
//! master key) stays ours.
mod binaries;

pub use binaries::PgBinaries;

use binaries::check;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The database panel1 uses inside the embedded cluster.
pub const DATABASE: &str = "panel1";

/// Longest unix socket path (sun_path is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no Postgres binaries found (looked in {looked}): install them \
         (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL to an existing server"
    )]
    NoBinaries { looked: String },
    #[error("{what} failed ({status}): {detail}")]
    Command {
        what: String,
        status: String,
        detail: String,
    },
    #[error("{context}: {err}")]
    Io {
        context: String,
        err: std::io::Error,
    },
    #[error(
        "the postgres user cannot write to {0} (a parent directory is closed to it): \
         use a data directory it can reach, or set DATABASE_URL to an existing server"
    )]
    NotReachable(PathBuf),
    #[error("embedded Postgres: {0}")]
    Other(String),
}

impl EmbeddedError {
    pub(crate) fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        EmbeddedError::Io {
            context: context.into(),
            err,
        }
    }
}

/// A running embedded cluster. Dropping it stops the server if this value
/// started it; a server found already running is left running.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    port: u16,
    bins: PgBinaries,
    /// We started the postmaster, so Drop stops it.
    owned: bool,
}

impl EmbeddedPostgres {
    /// Initialise the cluster on first use, start it (or adopt the one still
    /// running on this data dir) and make sure the `panel1` database exists.
    /// Blocking: run it before serving or on a blocking thread.
    pub fn start(data_dir: &Path) -> Result<EmbeddedPostgres, EmbeddedError> {
        let bins = PgBinaries::find()?;
        std::fs::create_dir_all(data_dir)
            .map_err(|e| EmbeddedError::io(format!("create {}", data_dir.display()), e))?;
        // pg_ctl runs the server from another directory: paths must be absolute.
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| EmbeddedError::io(format!("resolve {}", data_dir.display()), e))?;
        let mut pg = EmbeddedPostgres {
            data_dir,
            port: 0,
            bins,
            owned: false,
        };
        if let Some(port) = pg.running_port()? {
            pg.port = port;
            pg.wait_ready()?;
        } else {
            pg.prepare()?;
            pg.port = choose_port(&pg.data_dir.join("port"))?;
            pg.pg_ctl_start()?;
            // From here on a failure stops the server again (Drop).
            pg.owned = true;
        }
        pg.ensure_database()?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:<port>/panel1` (trust auth, loopback only).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// True when the server was already running and this value adopted it.
    pub fn reused(&self) -> bool {
        !self.owned
    }

    /// `pg_ctl stop -m fast`, whoever started the server.
    pub fn stop(mut self) -> Result<(), EmbeddedError> {
        self.owned = false;
        self.pg_ctl_stop()
    }

    fn pgdata(&self) -> PathBuf {
        self.data_dir.join("pgdata")
    }

    fn log(&self) -> PathBuf {
        self.data_dir.join("postgres.log")
    }

    fn socket_dir(&self) -> PathBuf {
        self.data_dir.join("socket")
    }

    /// The port of a postmaster alive on this data dir, from postmaster.pid.
    /// A stale pid file counts as not running: the postmaster removes it.
    fn running_port(&self) -> Result<Option<u16>, EmbeddedError> {
        let pidfile = self.pgdata().join("postmaster.pid");
        if !pidfile.exists() {
            return Ok(None);
        }
        let status = self
            .bins
            .command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(self.pgdata())
            .output()
            .map_err(|e| EmbeddedError::io("run pg_ctl status", e))?;
        // 0 = running; 3 = not running (stale or no pid file).
        if !status.status.success() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&pidfile)
            .map_err(|e| EmbeddedError::io(format!("read {}", pidfile.display()), e))?;
        // Line 4 of postmaster.pid is the port.
        text.lines()
            .nth(3)
            .and_then(|l| l.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                EmbeddedError::Other(format!("no port in {}: {text:?}", pidfile.display()))
            })
    }

    /// An adopted postmaster may still be starting: wait for "ready" in its
    /// pid file (line 8) before connecting.
    fn wait_ready(&self) -> Result<(), EmbeddedError> {
        let pidfile = self.pgdata().join("postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&pidfile).unwrap_or_default();
            match text.lines().nth(7).map(str::trim) {
                Some("ready") => return Ok(()),
                // Pre-10 servers don't write a status line.
                None if text.lines().count() >= 6 => return Ok(()),
                _ if Instant::now() > deadline => {
                    return Err(EmbeddedError::Other(format!(
                        "the Postgres already running on {} did not become ready",
                        self.pgdata().display()
                    )))
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Directories and log file owned by the server's user; initdb on first use.
    fn prepare(&self) -> Result<(), EmbeddedError> {
        let (pgdata, socket, log) = (self.pgdata(), self.socket_dir(), self.log());
        let fresh = !pgdata.join("PG_VERSION").exists();
        for dir in [&pgdata, &socket] {
            // Postgres insists the data dir is private.
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| EmbeddedError::io(format!("create {}", dir.display()), e))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| EmbeddedError::io(format!("create {}", log.display()), e))?;
        if fresh {
            self.bins.give_to_postgres(&[&pgdata])?;
        }
        self.bins.give_to_postgres(&[&socket, &log])?;
        self.check_reachable(&socket)?;
        if fresh {
            let out = self
                .bins
                .command("initdb")
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"])
                .arg("-D")
                .arg(&pgdata)
                .output()
                .map_err(|e| EmbeddedError::io("run initdb", e))?;
            check("initdb", &out, None)?;
        }
        Ok(())
    }

    /// Running as root, the server runs as `postgres`, which must be able to
    /// reach the data dir (not the case under a 0700 home directory).
    fn check_reachable(&self, dir: &Path) -> Result<(), EmbeddedError> {
        if !self.bins.as_postgres {
            return Ok(());
        }
        let ok = Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-w"])
            .arg(dir)
            .status()
            .map_err(|e| EmbeddedError::io("run runuser", e))?
            .success();
        if ok {
            Ok(())
        } else {
            Err(EmbeddedError::NotReachable(dir.to_path_buf()))
        }
    }

    fn pg_ctl_start(&self) -> Result<(), EmbeddedError> {
        // pg_ctl hands -o to a shell: quote the path.
        let socket = self.socket_dir().join(format!(".s.PGSQL.{}", self.port));
        let socket_opt = if socket.as_os_str().len() <= MAX_SOCKET_PATH {
            format!(
                "-k {}",
                shell_quote(&self.socket_dir().display().to_string())
            )
        } else {
            // Too long for a unix socket: TCP only rather than fail to start.
            "-c unix_socket_directories=''".to_string()
        };
        let opts = format!(
            "-p {} {socket_opt} -c listen_addresses=127.0.0.1",
            self.port
        );
        let out = self
            .bins
            .command("pg_ctl")
            .arg("-D")
            .arg(self.pgdata())
            .arg("-l")
            .arg(self.log())
            .args(["-o", &opts, "-w", "start"])
            .output()
            .map_err(|e| EmbeddedError::io("run pg_ctl start", e))?;
        check("pg_ctl start", &out, Some(&self.log()))
    }

    fn pg_ctl_stop(&self) -> Result<(), EmbeddedError> {
        let out = self
            .bins
            .command("pg_ctl")
            .arg("-D")
            .arg(self.pgdata())
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .map_err(|e| EmbeddedError::io("run pg_ctl stop", e))?;
        check("pg_ctl stop", &out, Some(&self.log()))
    }

    fn psql(&self, sql: &str) -> Result<String, EmbeddedError> {
        let out = Command::new(self.bins.dir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
            .args(["-p", &self.port.to_string(), "-c", sql])
            .output()
            .map_err(|e| EmbeddedError::io("run psql", e))?;
        check(&format!("psql `{sql}`"), &out, None)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{DATABASE}'");
        if self.psql(&exists)? == "1" {
            return Ok(());
        }
        match self.psql(&format!("CREATE DATABASE {DATABASE}")) {
            Ok(_) => Ok(()),
            // Another process created it between the two statements.
            Err(_) if self.psql(&exists)? == "1" => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if self.owned {
            if let Err(e) = self.pg_ctl_stop() {
                tracing::warn!("stopping the embedded Postgres: {e}");
            }
        }
    }
}

/// The port recorded in `file` if it is still free, else a free one; the
/// choice is recorded for the next run.
fn choose_port(file: &Path) -> Result<u16, EmbeddedError> {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let recorded = std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|&p| p != 0 && free(p));
    let port = match recorded {
        Some(p) => p,
        None => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| EmbeddedError::io("find a free port", e))?
            .port(),
    };
    std::fs::write(file, format!("{port}\n"))
        .map_err(|e| EmbeddedError::io(format!("write {}", file.display()), e))?;
    Ok(port)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_port_is_reused_while_free_and_replaced_when_taken() {
        let dir = std::env::temp_dir().join(format!("panel1-port-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("port");
        let first = choose_port(&file).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().trim(),
            first.to_string()
        );
        assert_eq!(
            choose_port(&file).unwrap(),
            first,
            "a free recorded port is kept"
        );
        let _taken = std::net::TcpListener::bind(("127.0.0.1", first)).unwrap();
        let second = choose_port(&file).unwrap();
        assert_ne!(second, first, "a taken port is replaced");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().trim(),
            second.to_string()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn shell_quote_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
