//! One LISTEN connection for all of a worker's wake-ups. Postgres signals
//! every backend that listens in the database on each NOTIFY, whichever
//! channel it names: with a connection per loop, every new task woke four
//! backends of each worker (and each one's client) where one will do.
use crate::run::Worker;
use panel1_store::inspection::ADAPTERS_CHANNEL;
use panel1_store::shadow::SHADOW_RUNS_CHANNEL;
use panel1_store::webhooks::WEBHOOKS_CHANNEL;
use panel1_store::TASKS_CHANNEL;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The wake-ups of the worker's loops other than the task loop's own
/// (`Worker::wake`), by what they announce.
#[derive(Default)]
pub(crate) struct Notices {
    /// An adapter version waits for inspection.
    pub adapters: Notify,
    /// A shadow run was requested.
    pub shadow_runs: Notify,
    /// Webhook deliveries were written.
    pub webhooks: Notify,
}

impl Worker {
    /// LISTEN on every channel this worker acts on, for its life. After the
    /// connection is lost (a database restart) it listens again, and every
    /// loop looks once: what was announced in between reached no one.
    pub(crate) async fn listen(self: Arc<Self>) {
        let mut channels = vec![TASKS_CHANNEL, ADAPTERS_CHANNEL, SHADOW_RUNS_CHANNEL];
        if self.config.webhooks.enabled {
            channels.push(WEBHOOKS_CHANNEL);
        }
        loop {
            match self.listener(&channels).await {
                Ok(mut listener) => {
                    self.wake_all();
                    // `Ok(None)`: the connection was lost; the next call
                    // connects and listens again, or fails (then a new
                    // listener after a pause).
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(n)) => self.announce(n.channel()),
                            Ok(None) => self.wake_all(),
                            Err(e) => {
                                tracing::debug!(error = %e, "listener lost");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "could not LISTEN"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn listener(&self, channels: &[&str]) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(listener)
    }

    fn announce(&self, channel: &str) {
        match channel {
            TASKS_CHANNEL => self.wake.notify_one(),
            ADAPTERS_CHANNEL => self.notices.adapters.notify_one(),
            SHADOW_RUNS_CHANNEL => self.notices.shadow_runs.notify_one(),
            WEBHOOKS_CHANNEL => self.notices.webhooks.notify_one(),
            _ => {}
        }
    }

    fn wake_all(&self) {
        self.wake.notify_one();
        self.notices.adapters.notify_one();
        self.notices.shadow_runs.notify_one();
        self.notices.webhooks.notify_one();
    }
}
