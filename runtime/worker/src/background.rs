//! The worker's background loops, each one task for the worker's life:
//! heartbeats for held leases, adapter inspection,
//! and the periodic upkeep (promotion, rescue, recurring tasks, pruning).
use crate::run::Worker;
use std::sync::Arc;
use std::time::Duration;

impl Worker {
    /// Keep every held lease alive with one statement every third of the
    /// lease; stop the work of those that were lost.
    pub(crate) async fn heartbeats(self: Arc<Self>) {
        let every = self.config.lease_ttl / 3;
        loop {
            tokio::time::sleep(every).await;
            let asked = self.leases.snapshot();
            match panel1_store::heartbeat_many(&self.pool, &asked, self.config.lease_ttl).await {
                Ok(kept) => self.leases.keep_only(&asked, &kept),
                // Database unreachable: keep working; the leases may still hold.
                Err(e) => tracing::warn!(error = %e, count = asked.len(), "heartbeat failed"),
            }
        }
    }

    /// Keep this worker's registered session open for its whole life
    /// (migrations/0011): when the process dies, Postgres ends the session
    /// and other workers' rescuers take its tasks back at once. After the
    /// connection drops (a database restart) it registers again.
    pub(crate) async fn session(self: Arc<Self>) {
        use sqlx::{Connection, PgConnection};
        loop {
            let opts = self.pool.connect_options();
            match PgConnection::connect_with(&opts).await {
                Ok(mut conn) => match panel1_store::register_session(&mut conn, &self.config.id)
                    .await
                {
                    Ok(_) => {
                        while conn.ping().await.is_ok() {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        tracing::warn!(
                            "the worker's session connection dropped; registering again"
                        );
                    }
                    Err(e) => tracing::warn!(error = %e, "could not register the worker's session"),
                },
                Err(e) => tracing::debug!(error = %e, "session connect failed"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Inspect new adapter versions when announced (and on a slow poll).
    pub(crate) async fn inspector(self: Arc<Self>) {
        use panel1_store::inspection::inspect_pending;
        loop {
            let sandbox = self.sandbox.clone();
            let r = inspect_pending(&self.pool, 8, |id, bytes| {
                crate::inspect::inspect(sandbox.clone(), id, bytes)
            })
            .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "adapter inspection failed; retrying");
            }
            tokio::select! {
                _ = self.notices.adapters.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    /// Scheduler, rescuer and cleaner: small periodic jobs, safe to run in
    /// every worker at once (each is one idempotent statement).
    pub(crate) async fn upkeep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut n: u64 = 0;
        let mut queue_vacuum = panel1_store::QueueVacuum::default();
        loop {
            tick.tick().await;
            n += 1;
            if let Ok(k) = panel1_store::promote_due(&self.pool).await {
                if k > 0 {
                    self.wake.notify_one();
                }
            }
            // Bulk progress (store/src/bulk.rs): each unfinished bulk is
            // counted at most once a second whichever worker gets to it.
            if let Err(e) = panel1_store::bulk::upkeep(&self.pool, Duration::from_secs(1)).await {
                tracing::warn!(error = %e, "counting bulk progress failed");
            }
            if n.is_multiple_of(4) {
                let _ = panel1_store::rescue_expired(&self.pool).await;
                // Dead queue entries slow every claim (store/src/queue_vacuum.rs).
                match queue_vacuum.run_if_due(&self.pool).await {
                    Ok(Some(dead)) => tracing::debug!(dead, "vacuumed the task queue"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "vacuuming the task queue failed"),
                }
                if let Ok(k) = panel1_store::enqueue_due_recurring(&self.pool).await {
                    if k > 0 {
                        self.wake.notify_one();
                    }
                }
                // Platform tasks (store/src/platform.rs): usage samples and
                // service sync pages.
                match panel1_store::usage::schedule_due(&self.pool).await {
                    Ok(k) if k > 0 => self.wake.notify_one(),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "scheduling usage collection failed"),
                }
                match panel1_store::sync::schedule_due(&self.pool).await {
                    Ok(k) if k > 0 => self.wake.notify_one(),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "scheduling service sync failed"),
                }
                // Backup policies (store/src/backups/schedule.rs).
                match panel1_store::backups::schedule::schedule_due(&self.pool).await {
                    Ok(k) if k > 0 => self.wake.notify_one(),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "scheduling backups failed"),
                }
            }
            if n.is_multiple_of(240) {
                let _ = panel1_store::prune(&self.pool, self.config.prune_after).await;
                // Recorded attempts (issue 19) are kept 14 days.
                use panel1_store::shadow::{prune_recordings, RECORDING_RETENTION};
                if let Err(e) = prune_recordings(&self.pool, RECORDING_RETENTION).await {
                    tracing::warn!(error = %e, "pruning recorded attempts failed");
                }
            }
        }
    }
}
