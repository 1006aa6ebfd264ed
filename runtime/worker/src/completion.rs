//! How a finished attempt is committed: through the batch completer (many
//! completions per commit), or by its own slot in per-task mode (one commit
//! per task that also claims the slot's next task). Both retry a failed
//! commit and wake the event streams once it is in.
use crate::refused;
use crate::run::{Pending, Worker};
use panel1_store::{Applied, AttemptRecord, ClaimedTask, Handoff, StoreError, TaskOutcome};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// Most completions committed in one transaction.
const COMPLETION_BATCH: usize = 512;

/// Batches committing at once.
const COMPLETERS: usize = 2;

type Item = (ClaimedTask, TaskOutcome, AttemptRecord);

/// How a commit ended.
enum Committed {
    Done((Vec<Applied>, Vec<ClaimedTask>)),
    /// The database was unreachable until the retries ran out.
    GaveUp,
    /// The database refused what the items carry (`refused.rs`).
    Refused(StoreError),
}

/// Connections completions commit on, at most this many at once.
pub const COMMIT_CONNECTIONS: u32 = 6;

/// The worker's own few connections for completions, beside its pool.
/// With 24 slots, per-task commits through the pool opened a backend per
/// committing slot (50 connections for one worker in
/// tests/suite/claim_modes.rs, 13-18 now), and more backends committing at once
/// than the database has cores only queue on its CPU and WAL flush. In the
/// queue benchmark the tasks a second stayed the same within the noise. A
/// pool of their own, not connections kept out of the worker's: workers
/// sharing one pool (tests run four) would starve its claims and
/// heartbeats.
pub(crate) struct CommitConnections {
    pool: PgPool,
}

impl CommitConnections {
    /// Connected on first use, with the worker pool's settings.
    pub(crate) fn beside(pool: &PgPool) -> Self {
        let options = (*pool.connect_options()).clone();
        let pool = PgPoolOptions::new()
            .max_connections(COMMIT_CONNECTIONS)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .test_before_acquire(false)
            .connect_lazy_with(options);
        CommitConnections { pool }
    }

    async fn complete(
        &self,
        items: &[Item],
        handoff: Option<Handoff<'_>>,
    ) -> Result<(Vec<Applied>, Vec<ClaimedTask>), StoreError> {
        panel1_store::complete_and_claim(&self.pool, items, handoff).await
    }
}

impl Worker {
    /// When this worker shares its process with the API (`panel1 serve`):
    /// `wake` wakes that API's event streams as soon as a completion has
    /// committed, a database round trip and a LISTEN hop before the NOTIFY
    /// would. Set once; later calls are ignored.
    pub fn wake_local_streams_with(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.local_streams.set(Box::new(wake));
    }

    /// Commit `items` (claiming up to `handoff` next tasks in the same
    /// transaction), retrying while the database is unreachable for up to
    /// four lease lengths. A retry of a commit that did go through finds its
    /// leases moved on: those items come back stale, and tasks that commit
    /// handed off are left to the rescuer (their leases lapse unheld).
    /// `None` when it gave up: the rescuer retries those tasks.
    pub(crate) async fn commit(
        &self,
        items: &[Item],
        handoff: usize,
    ) -> Option<(Vec<Applied>, Vec<ClaimedTask>)> {
        match self.commit_retrying(items, handoff).await {
            Committed::Done(r) => Some(r),
            Committed::GaveUp => None,
            Committed::Refused(e) => {
                tracing::warn!(error = %e, count = items.len(), "completion refused for its data; committing its items one at a time");
                Some((self.commit_one_by_one(items).await, Vec::new()))
            }
        }
    }

    /// Each item on its own (`refused.rs`): one the database still refuses
    /// is committed as a failure saying why. An item that cannot be
    /// committed even so is left to the rescuer (`Stale` here).
    async fn commit_one_by_one(&self, items: &[Item]) -> Vec<Applied> {
        let mut applied = Vec::with_capacity(items.len());
        for item in items {
            let one = std::slice::from_ref(item);
            let result = match self.commit_retrying(one, 0).await {
                Committed::Refused(e) => {
                    tracing::warn!(task = %item.0.id, error = %e, "completion refused; the task fails");
                    let failed = refused::as_failure(item, &e);
                    self.commit_retrying(std::slice::from_ref(&failed), 0).await
                }
                other => other,
            };
            applied.push(match result {
                Committed::Done((mut a, _)) if a.len() == 1 => a.remove(0),
                Committed::Refused(e) => {
                    tracing::error!(task = %item.0.id, error = %e, "even the failure was refused; the rescuer retries the task");
                    Applied::Stale
                }
                _ => Applied::Stale,
            });
        }
        applied
    }

    /// Commit, retrying while the database is unreachable (see `commit`).
    async fn commit_retrying(&self, items: &[Item], handoff: usize) -> Committed {
        let mut delay = Duration::from_millis(50);
        let give_up = Instant::now() + self.config.lease_ttl * 4;
        loop {
            let handoff = (handoff > 0).then(|| Handoff {
                limit: handoff,
                worker: &self.config.id,
                lease_ttl: self.config.lease_ttl,
            });
            match self.commit_conns.complete(items, handoff).await {
                Ok(r) => {
                    if r.0.iter().any(|a| *a != Applied::Stale) {
                        if let Some(wake) = self.local_streams.get() {
                            wake();
                        }
                        self.events_written.notify_one();
                    }
                    return Committed::Done(r);
                }
                Err(e) if refused::refused_for_its_data(&e) => return Committed::Refused(e),
                Err(e) if Instant::now() < give_up => {
                    tracing::warn!(error = %e, count = items.len(), "completion failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(error = %e, count = items.len(), "completion dropped; the rescuer retries those tasks");
                    return Committed::GaveUp;
                }
            }
        }
    }

    /// The batch completer: whatever completions piled up while earlier
    /// batches were committing go in one transaction (one commit for many
    /// tasks). Up to [`COMPLETERS`] batches commit at once: one batch's
    /// commit (its WAL flush) overlaps the next one's work.
    pub(crate) async fn completer(self: Arc<Self>, mut rx: mpsc::Receiver<Pending>) {
        let in_flight = Arc::new(Semaphore::new(COMPLETERS));
        let mut commits = JoinSet::new();
        while let Some(first) = rx.recv().await {
            // Taken before the batch is gathered: it grows while we wait.
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < COMPLETION_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            let me = self.clone();
            commits.spawn(async move {
                me.commit_batch(batch).await;
                drop(permit);
            });
            while commits.try_join_next().is_some() {}
        }
    }

    async fn commit_batch(&self, batch: Vec<Pending>) {
        // The items move out of the batch (their results can be large JSON
        // documents); the replies wait beside them, in the same order.
        let (items, replies): (Vec<Item>, Vec<_>) = batch
            .into_iter()
            .map(|(t, o, r, reply)| ((t, o, r), reply))
            .unzip();
        let results = self.commit(&items, 0).await.map(|r| r.0);
        for (i, reply) in replies.into_iter().enumerate() {
            let applied = results
                .as_ref()
                .map(|r| r[i].clone())
                .unwrap_or(Applied::Stale);
            let _ = reply.send(applied);
        }
    }

    /// Completions defer the event streams' NOTIFY (it would serialize their
    /// commits); this sends it after they commit. Completions that commit
    /// while one is in flight share the next.
    pub(crate) async fn wake_event_streams(self: Arc<Self>) {
        loop {
            self.events_written.notified().await;
            if let Err(e) = panel1_store::wake_event_streams(&self.pool).await {
                // Streams also poll: a lost wake-up only delays them.
                tracing::debug!(error = %e, "could not wake event streams");
            }
        }
    }
}

/// Log a stale completion; the lease had moved on.
pub(crate) fn note_applied(task: &ClaimedTask, applied: &Applied) {
    if *applied == Applied::Stale {
        tracing::warn!(task = %task.id, "completion was stale");
    }
}
