//! serve.toml and environment parsing.
use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("panel1-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn defaults_without_file_or_env() {
    let cfg = ServeConfig::load_with(None, env_of(&[])).unwrap();
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.database_url, None);
    assert_eq!(cfg.data_dir, PathBuf::from(".panel1"));
    assert_eq!(cfg.master_key_file, None);
    assert_eq!(cfg.worker_slots, 8);
    assert!(cfg.workers);
    assert_eq!(cfg.rate_limit_per_second, 20);
    assert_eq!(cfg.rate_limit_burst, 100);
    assert_eq!(cfg.max_body_bytes, 32 * 1024 * 1024);
    assert_eq!(cfg.builtin_adapters_dir, None);
    assert_eq!(cfg.compile_timeout_ms, 60_000);
    assert_eq!(cfg.compile_memory_mb, 2048);
    assert_eq!(cfg.header_read_timeout_secs, 10);
    assert_eq!(cfg.body_read_timeout_secs, 60);
    assert_eq!(cfg.idle_timeout_secs, 30);
    assert_eq!(cfg.max_connections, 512);
    assert_eq!(cfg.auth_failure_limit, 20);
    assert_eq!(cfg.auth_failure_window_secs, 60);
    let cfg = ServeConfig::load_with(None, env_of(&[("PANEL1_AUTH_FAILURE_LIMIT", "3")])).unwrap();
    assert_eq!(cfg.auth_failure_limit, 3);
}

#[test]
fn compile_budget_from_file_and_env() {
    let dir = Scratch::new();
    let path = dir.0.join("panel1.toml");
    std::fs::write(
        &path,
        "compile_timeout_ms = 5000\ncompile_memory_mb = 512\n",
    )
    .unwrap();
    let cfg = ServeConfig::load_with(Some(&path), env_of(&[])).unwrap();
    assert_eq!((cfg.compile_timeout_ms, cfg.compile_memory_mb), (5000, 512));
    let env = env_of(&[
        ("PANEL1_COMPILE_TIMEOUT_MS", "250"),
        ("PANEL1_COMPILE_MEMORY_MB", "64"),
    ]);
    let cfg = ServeConfig::load_with(Some(&path), env).unwrap();
    assert_eq!((cfg.compile_timeout_ms, cfg.compile_memory_mb), (250, 64));
    let err =
        ServeConfig::load_with(None, env_of(&[("PANEL1_COMPILE_MEMORY_MB", "0")])).unwrap_err();
    assert!(err.to_string().contains("compile_memory_mb"), "{err}");
}

#[test]
fn connection_limits_from_file_and_env() {
    let dir = Scratch::new();
    let path = dir.0.join("panel1.toml");
    std::fs::write(
        &path,
        "header_read_timeout_secs = 3\nbody_read_timeout_secs = 7\nidle_timeout_secs = 5\nmax_connections = 9\n",
    )
    .unwrap();
    let cfg =
        ServeConfig::load_with(Some(&path), env_of(&[("PANEL1_IDLE_TIMEOUT_SECS", "2")])).unwrap();
    let limits = cfg.connection_limits();
    assert_eq!(limits.header_read_timeout.as_secs(), 3);
    assert_eq!(limits.body_read_timeout.as_secs(), 7);
    assert_eq!(limits.idle_timeout.as_secs(), 2, "env wins");
    assert_eq!(limits.max_connections, 9);
    let err = ServeConfig::load_with(None, env_of(&[("PANEL1_MAX_CONNECTIONS", "0")])).unwrap_err();
    assert!(err.to_string().contains("max_connections"), "{err}");
    let err = ServeConfig::load_with(None, env_of(&[("PANEL1_BODY_READ_TIMEOUT_SECS", "0")]))
        .unwrap_err();
    assert!(err.to_string().contains("body_read_timeout_secs"), "{err}");
}

#[test]
fn file_overrides_defaults_and_env_overrides_file() {
    let dir = Scratch::new();
    let path = dir.0.join("panel1.toml");
    std::fs::write(
        &path,
        r#"
listen = "0.0.0.0:9000"
database_url = "postgres://file@db/panel1"
data_dir = "/var/lib/panel1"
worker_slots = 4
workers = false
rate_limit_per_second = 5
max_body_bytes = 1024
builtin_adapters_dir = "/opt/adapters"
"#,
    )
    .unwrap();
    let from_file = ServeConfig::load_with(Some(&path), env_of(&[])).unwrap();
    assert_eq!(from_file.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(
        from_file.database_url.as_deref(),
        Some("postgres://file@db/panel1")
    );
    assert_eq!(from_file.data_dir, PathBuf::from("/var/lib/panel1"));
    assert_eq!(from_file.worker_slots, 4);
    assert!(!from_file.workers);
    assert_eq!(from_file.rate_limit_per_second, 5);
    assert_eq!(
        from_file.rate_limit_burst, 100,
        "unset key keeps its default"
    );
    assert_eq!(from_file.max_body_bytes, 1024);
    assert_eq!(
        from_file.builtin_adapters_dir,
        Some(PathBuf::from("/opt/adapters"))
    );

    let env = env_of(&[
        ("PANEL1_LISTEN", "127.0.0.1:7000"),
        ("DATABASE_URL", "postgres://env@db/panel1"),
        ("PANEL1_DATA_DIR", "/srv/panel1"),
        ("PANEL1_MASTER_KEY_FILE", "/etc/panel1.key"),
        ("PANEL1_WORKER_SLOTS", "16"),
        ("PANEL1_WORKERS", "true"),
        ("PANEL1_BUILTIN_ADAPTERS", "/usr/share/panel1"),
    ]);
    let cfg = ServeConfig::load_with(Some(&path), env).unwrap();
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:7000");
    assert_eq!(
        cfg.database_url.as_deref(),
        Some("postgres://env@db/panel1")
    );
    assert_eq!(cfg.data_dir, PathBuf::from("/srv/panel1"));
    assert_eq!(cfg.master_key_file, Some(PathBuf::from("/etc/panel1.key")));
    assert_eq!(cfg.worker_slots, 16);
    assert!(cfg.workers);
    assert_eq!(cfg.rate_limit_per_second, 5, "no env: the file's value");
    assert_eq!(
        cfg.builtin_adapters_dir,
        Some(PathBuf::from("/usr/share/panel1"))
    );

    // An empty variable is unset: the file's value stays.
    let cfg = ServeConfig::load_with(Some(&path), env_of(&[("DATABASE_URL", "")])).unwrap();
    assert_eq!(
        cfg.database_url.as_deref(),
        Some("postgres://file@db/panel1")
    );
}

#[test]
fn unknown_key_is_rejected_by_name() {
    let dir = Scratch::new();
    let path = dir.0.join("panel1.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:1\"\nworker_slot = 4\n").unwrap();
    let err = ServeConfig::load_with(Some(&path), env_of(&[])).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("unknown field `worker_slot`"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn bad_values_name_the_variable() {
    let err = ServeConfig::load_with(None, env_of(&[("PANEL1_WORKER_SLOTS", "many")])).unwrap_err();
    assert!(
        err.to_string().starts_with("PANEL1_WORKER_SLOTS=\"many\""),
        "{err}"
    );
    let err = ServeConfig::load_with(None, env_of(&[("PANEL1_WORKERS", "maybe")])).unwrap_err();
    assert!(err.to_string().contains("PANEL1_WORKERS"), "{err}");
    let err = ServeConfig::load_with(None, env_of(&[("PANEL1_LISTEN", "nowhere")])).unwrap_err();
    assert!(err.to_string().contains("PANEL1_LISTEN"), "{err}");
    let err = ServeConfig::load_with(None, env_of(&[("PANEL1_WORKER_SLOTS", "0")])).unwrap_err();
    assert!(err.to_string().contains("worker_slots"), "{err}");
    let cfg = ServeConfig::load_with(
        None,
        env_of(&[("PANEL1_WORKER_SLOTS", "0"), ("PANEL1_WORKERS", "off")]),
    )
    .unwrap();
    assert!(!cfg.workers, "zero slots is fine when workers are off");
}

#[test]
fn embedded_master_key_is_created_0600_and_reused() {
    let dir = Scratch::new();
    let cfg = ServeConfig {
        data_dir: dir.0.join("data"),
        ..ServeConfig::default()
    };
    let key = ensure_master_key_with(&cfg, env_of(&[])).unwrap();
    let file = dir.0.join("data/master.key");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.trim(), hex::encode(key));
    assert_ne!(key, [0u8; 32]);
    let again = ensure_master_key_with(&cfg, env_of(&[])).unwrap();
    assert_eq!(again, key, "the second start reads the same key");
    let leftovers: Vec<_> = std::fs::read_dir(dir.0.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("master.key")]);
}

#[test]
fn env_key_wins_then_key_file_then_nothing_with_an_external_database() {
    let dir = Scratch::new();
    let key_file = dir.0.join("key");
    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).unwrap();
    let cfg = ServeConfig {
        data_dir: dir.0.join("data"),
        master_key_file: Some(key_file.clone()),
        database_url: Some("postgres://db/panel1".into()),
        ..ServeConfig::default()
    };
    let env = env_of(&[("PANEL1_MASTER_KEY", &"0c".repeat(32))]);
    assert_eq!(ensure_master_key_with(&cfg, env).unwrap(), [0x0c; 32]);
    assert_eq!(
        ensure_master_key_with(&cfg, env_of(&[])).unwrap(),
        [0xab; 32]
    );
    assert!(!dir.0.join("data").exists(), "nothing generated");

    let short = env_of(&[("PANEL1_MASTER_KEY", "abcd")]);
    let err = ensure_master_key_with(&cfg, short).unwrap_err();
    assert!(
        format!("{err:#}").contains("2 bytes, expected 32"),
        "{err:#}"
    );

    let missing = ServeConfig {
        master_key_file: Some(dir.0.join("absent")),
        ..cfg.clone()
    };
    let err = ensure_master_key_with(&missing, env_of(&[])).unwrap_err();
    assert!(format!("{err:#}").contains("absent"), "{err:#}");

    let external = ServeConfig {
        master_key_file: None,
        ..cfg
    };
    let err = ensure_master_key_with(&external, env_of(&[])).unwrap_err();
    assert!(err.to_string().contains("PANEL1_MASTER_KEY"), "{err}");
}
