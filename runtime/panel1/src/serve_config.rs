//! `panel1 serve` configuration: defaults, then an optional TOML file
//! (`--config panel1.toml`), then environment variables, which win. Unknown
//! keys in the file are errors, so a typo does not silently fall back to a
//! default. Relative paths are relative to the working directory.
use anyhow::{bail, Context, Result};
use panel1_sandbox::CompileBudget;
use serde::Deserialize;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// PANEL1_LISTEN.
    pub listen: SocketAddr,
    /// DATABASE_URL. None: the embedded Postgres in `data_dir`.
    pub database_url: Option<String>,
    /// PANEL1_DATA_DIR: embedded Postgres, generated master key.
    pub data_dir: PathBuf,
    /// PANEL1_MASTER_KEY_FILE (PANEL1_MASTER_KEY, hex, wins over it).
    pub master_key_file: Option<PathBuf>,
    /// PANEL1_WORKER_SLOTS: tasks run at once by this process.
    pub worker_slots: usize,
    /// PANEL1_WORKERS: false serves the API only.
    pub workers: bool,
    /// PANEL1_RATE_LIMIT_PER_SECOND, per API key.
    pub rate_limit_per_second: u32,
    /// PANEL1_RATE_LIMIT_BURST, per API key.
    pub rate_limit_burst: u32,
    /// PANEL1_MAX_BODY_BYTES: adapter uploads are the large bodies.
    pub max_body_bytes: usize,
    /// PANEL1_BUILTIN_ADAPTERS: components to install as built-ins.
    pub builtin_adapters_dir: Option<PathBuf>,
    /// PANEL1_COMPILE_TIMEOUT_MS: wall-clock time to compile one uploaded
    /// component (in a child process, stopped past it).
    pub compile_timeout_ms: u64,
    /// PANEL1_COMPILE_MEMORY_MB: resident memory to compile one component.
    pub compile_memory_mb: u64,
    /// PANEL1_HEADER_READ_TIMEOUT_SECS: from a request head's first byte to
    /// its end.
    pub header_read_timeout_secs: u64,
    /// PANEL1_BODY_READ_TIMEOUT_SECS: from a request head to the end of its
    /// body (an upload of max_body_bytes must fit in it).
    pub body_read_timeout_secs: u64,
    /// PANEL1_IDLE_TIMEOUT_SECS: a connection with no request in progress.
    pub idle_timeout_secs: u64,
    /// PANEL1_MAX_CONNECTIONS: open at once; more wait in the backlog.
    pub max_connections: usize,
    /// PANEL1_AUTH_FAILURE_LIMIT: failed authentications per client address
    /// (IPv6: per /64) per window; past it, 429 for the rest of the window.
    pub auth_failure_limit: u32,
    /// PANEL1_AUTH_FAILURE_WINDOW_SECS.
    pub auth_failure_window_secs: u64,
    /// PANEL1_MAX_EVENT_STREAMS_PER_TENANT: `GET /v1/events` streams one
    /// tenant may hold open at once; one more gets 429.
    pub max_event_streams_per_tenant: usize,
    /// PANEL1_MAX_COMPILES_PER_TENANT: uploads one tenant may have compiling
    /// (or queued to) at once; one more gets 429.
    pub max_compiles_per_tenant: usize,
    /// PANEL1_WEBHOOK_ALLOW_INTERNAL: webhook URLs may reach internal
    /// addresses (development only).
    pub webhook_allow_internal: bool,
    /// PANEL1_WEBHOOK_ALLOW_HTTP: webhook URLs may be plain http://.
    pub webhook_allow_http: bool,
    /// PANEL1_CONSOLE_SECURE_COOKIE: the console's session cookie is
    /// `Secure` (set it when users reach Panel1 over https).
    pub console_secure_cookie: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            data_dir: PathBuf::from(".panel1"),
            master_key_file: None,
            worker_slots: 8,
            workers: true,
            rate_limit_per_second: 20,
            rate_limit_burst: 100,
            max_body_bytes: 32 << 20,
            builtin_adapters_dir: None,
            compile_timeout_ms: CompileBudget::default().timeout.as_millis() as u64,
            compile_memory_mb: CompileBudget::default().memory_bytes >> 20,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 60,
            idle_timeout_secs: 30,
            max_connections: 512,
            auth_failure_limit: 20,
            auth_failure_window_secs: 60,
            max_event_streams_per_tenant: 32,
            max_compiles_per_tenant: 2,
            webhook_allow_internal: false,
            webhook_allow_http: false,
            console_secure_cookie: false,
        }
    }
}

impl ServeConfig {
    /// From `path` (if any) and the process environment.
    pub fn load(path: Option<&Path>) -> Result<ServeConfig> {
        Self::load_with(path, |k| std::env::var(k).ok())
    }

    /// From `path` (if any) and the variables `env` returns. An empty
    /// variable counts as unset.
    pub fn load_with(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut cfg = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Self::parse(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => ServeConfig::default(),
        };
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = env("PANEL1_LISTEN") {
            cfg.listen = parse_var("PANEL1_LISTEN", &v)?;
        }
        if let Some(v) = env("DATABASE_URL") {
            cfg.database_url = Some(v);
        }
        if let Some(v) = env("PANEL1_DATA_DIR") {
            cfg.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("PANEL1_MASTER_KEY_FILE") {
            cfg.master_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env("PANEL1_WORKER_SLOTS") {
            cfg.worker_slots = parse_var("PANEL1_WORKER_SLOTS", &v)?;
        }
        if let Some(v) = env("PANEL1_WORKERS") {
            cfg.workers = parse_bool("PANEL1_WORKERS", &v)?;
        }
        if let Some(v) = env("PANEL1_RATE_LIMIT_PER_SECOND") {
            cfg.rate_limit_per_second = parse_var("PANEL1_RATE_LIMIT_PER_SECOND", &v)?;
        }
        if let Some(v) = env("PANEL1_RATE_LIMIT_BURST") {
            cfg.rate_limit_burst = parse_var("PANEL1_RATE_LIMIT_BURST", &v)?;
        }
        if let Some(v) = env("PANEL1_MAX_BODY_BYTES") {
            cfg.max_body_bytes = parse_var("PANEL1_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = env("PANEL1_BUILTIN_ADAPTERS") {
            cfg.builtin_adapters_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = env("PANEL1_COMPILE_TIMEOUT_MS") {
            cfg.compile_timeout_ms = parse_var("PANEL1_COMPILE_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = env("PANEL1_COMPILE_MEMORY_MB") {
            cfg.compile_memory_mb = parse_var("PANEL1_COMPILE_MEMORY_MB", &v)?;
        }
        if let Some(v) = env("PANEL1_HEADER_READ_TIMEOUT_SECS") {
            cfg.header_read_timeout_secs = parse_var("PANEL1_HEADER_READ_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("PANEL1_BODY_READ_TIMEOUT_SECS") {
            cfg.body_read_timeout_secs = parse_var("PANEL1_BODY_READ_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("PANEL1_IDLE_TIMEOUT_SECS") {
            cfg.idle_timeout_secs = parse_var("PANEL1_IDLE_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("PANEL1_MAX_CONNECTIONS") {
            cfg.max_connections = parse_var("PANEL1_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = env("PANEL1_AUTH_FAILURE_LIMIT") {
            cfg.auth_failure_limit = parse_var("PANEL1_AUTH_FAILURE_LIMIT", &v)?;
        }
        if let Some(v) = env("PANEL1_AUTH_FAILURE_WINDOW_SECS") {
            cfg.auth_failure_window_secs = parse_var("PANEL1_AUTH_FAILURE_WINDOW_SECS", &v)?;
        }
        if let Some(v) = env("PANEL1_MAX_EVENT_STREAMS_PER_TENANT") {
            cfg.max_event_streams_per_tenant =
                parse_var("PANEL1_MAX_EVENT_STREAMS_PER_TENANT", &v)?;
        }
        if let Some(v) = env("PANEL1_MAX_COMPILES_PER_TENANT") {
            cfg.max_compiles_per_tenant = parse_var("PANEL1_MAX_COMPILES_PER_TENANT", &v)?;
        }
        if let Some(v) = env("PANEL1_WEBHOOK_ALLOW_INTERNAL") {
            cfg.webhook_allow_internal = parse_bool("PANEL1_WEBHOOK_ALLOW_INTERNAL", &v)?;
        }
        if let Some(v) = env("PANEL1_WEBHOOK_ALLOW_HTTP") {
            cfg.webhook_allow_http = parse_bool("PANEL1_WEBHOOK_ALLOW_HTTP", &v)?;
        }
        if let Some(v) = env("PANEL1_CONSOLE_SECURE_COOKIE") {
            cfg.console_secure_cookie = parse_bool("PANEL1_CONSOLE_SECURE_COOKIE", &v)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// How this process's worker delivers webhooks.
    pub fn webhooks(&self) -> panel1_worker::WebhookConfig {
        let mut w = panel1_worker::WebhookConfig::default();
        w.reach.allow_internal = self.webhook_allow_internal;
        w.reach.allow_http = self.webhook_allow_http;
        w
    }

    fn parse(text: &str) -> Result<ServeConfig> {
        Ok(toml::from_str(text)?)
    }

    fn validate(&self) -> Result<()> {
        if self.workers && self.worker_slots == 0 {
            bail!("worker_slots must be at least 1 (or set workers = false)");
        }
        if self.rate_limit_per_second == 0 || self.rate_limit_burst == 0 {
            bail!("rate_limit_per_second and rate_limit_burst must be at least 1");
        }
        if self.max_body_bytes == 0 {
            bail!("max_body_bytes must be at least 1");
        }
        if self.compile_timeout_ms == 0 || self.compile_memory_mb == 0 {
            bail!("compile_timeout_ms and compile_memory_mb must be at least 1");
        }
        for (name, secs) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
        ] {
            if secs == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if self.max_connections == 0 {
            bail!("max_connections must be at least 1");
        }
        if self.max_event_streams_per_tenant == 0 {
            bail!("max_event_streams_per_tenant must be at least 1");
        }
        if self.max_compiles_per_tenant == 0 {
            bail!("max_compiles_per_tenant must be at least 1");
        }
        if self.auth_failure_limit == 0 || self.auth_failure_window_secs == 0 {
            bail!("auth_failure_limit and auth_failure_window_secs must be at least 1");
        }
        Ok(())
    }
}

impl ServeConfig {
    /// The API server's timeouts and connection cap.
    pub fn connection_limits(&self) -> panel1_api::server::ConnectionLimits {
        use std::time::Duration;
        panel1_api::server::ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            body_read_timeout: Duration::from_secs(self.body_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
        }
    }
}

fn parse_var<T: std::str::FromStr>(name: &str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{name}={value:?}: {e}"))
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name}={value:?}: expected true or false"),
    }
}

/// The master key that seals secrets: PANEL1_MASTER_KEY (hex) if set, else
/// `master_key_file`, else — with the embedded database only —
/// `<data_dir>/master.key`, generated on first start.
pub fn ensure_master_key(cfg: &ServeConfig) -> Result<[u8; 32]> {
    ensure_master_key_with(cfg, |k| std::env::var(k).ok())
}

fn ensure_master_key_with(
    cfg: &ServeConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<[u8; 32]> {
    if let Some(hex) = env("PANEL1_MASTER_KEY").filter(|v| !v.trim().is_empty()) {
        return decode_key(&hex).context("PANEL1_MASTER_KEY");
    }
    if let Some(file) = &cfg.master_key_file {
        return read_key(file);
    }
    // A key made up here would differ per host: with a shared database
    // every instance must be given the same key explicitly.
    if cfg.database_url.is_some() {
        bail!(
            "no master key: set PANEL1_MASTER_KEY (64 hex digits) or master_key_file; \
             a key is generated only for the embedded database (no DATABASE_URL)"
        );
    }
    let file = cfg.data_dir.join("master.key");
    if file.exists() {
        return read_key(&file);
    }
    generate_key(&file)
}

fn decode_key(hex: &str) -> Result<[u8; 32]> {
    let bytes = hex::decode(hex.trim()).context("not hex")?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("{} bytes, expected 32 (64 hex digits)", b.len()))
}

fn read_key(file: &Path) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the master key file {}", file.display()))?;
    if let Ok(meta) = std::fs::metadata(file) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!("{} is readable by other users", file.display());
        }
    }
    decode_key(&text).with_context(|| format!("master key file {}", file.display()))
}

/// Written under a temporary name and hard-linked into place, so two first
/// starts cannot both win or read a half-written key.
fn generate_key(file: &Path) -> Result<[u8; 32]> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key: [u8; 32] = rand::random();
    let tmp = dir.join(format!(".master.key.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
            f.sync_all()
        });
    let published = written.and_then(|()| std::fs::hard_link(&tmp, file));
    let _ = std::fs::remove_file(&tmp);
    match published {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(file),
        Err(e) => Err(e).with_context(|| format!("creating {}", file.display())),
    }
}

#[cfg(test)]
mod tests;
