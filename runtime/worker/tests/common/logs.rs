//! Everything the worker (and the store, sqlx, hyper ...) logs in a test
//! binary, captured at debug level and up, to search for leaked secrets.
use std::sync::{Mutex, OnceLock};

/// Everything the worker (and the store, sqlx, hyper ...) logged in this
/// test binary, at debug level and up.
pub static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

pub struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::new(
            "debug,panel1_worker=trace,panel1_store=trace,panel1_sandbox=trace,\
             cranelift_codegen=warn,cranelift_frontend=warn,wasmtime=info,\
             wasmtime_cranelift=warn,regalloc2=warn",
        );
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(|| LogSink)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}
