//! stdout/stderr of the guest, captured into the call's log. Writes always
//! succeed from the guest's point of view (a guest whose `println!` failed
//! would panic); past the log cap they are counted and dropped.
use crate::host_budget::HostBudget;
use crate::log_buffer::{LogBuffer, LogLevel};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

#[derive(Clone)]
pub struct CapturedOutput {
    log: LogBuffer,
    budget: Arc<HostBudget>,
    source: &'static str,
}

impl CapturedOutput {
    pub fn new(log: LogBuffer, budget: Arc<HostBudget>, source: &'static str) -> Self {
        CapturedOutput {
            log,
            budget,
            source,
        }
    }

    fn record(&self, bytes: &[u8]) {
        self.budget.charge_bytes(bytes.len());
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end_matches('\n');
        if !text.is_empty() {
            let level = if self.source == "stderr" {
                LogLevel::Warn
            } else {
                LogLevel::Info
            };
            self.log.push(level, self.source, text, Vec::new());
        }
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.record(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.record(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
