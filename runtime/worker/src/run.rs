use crate::adapter_cells::AdapterCells;
use crate::completion::note_applied;
use crate::context::ServerSettings;
use crate::leases::{Held, Leases};
use crate::recording::{taped, Taped};
use crate::source_secret;
use panel1_sandbox::{
    CallRequest, HttpTape, LoadedAdapter, Operation, Outcome, Recording, Sandbox,
};
use panel1_store::secret_box::SecretBox;
use panel1_store::{setup, Applied, AttemptRecord, ClaimedTask, StoreError, TaskOutcome};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

pub use crate::config::WorkerConfig;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Worker {
    pub(crate) pool: PgPool,
    pub(crate) sandbox: Arc<Sandbox>,
    pub(crate) secrets: Arc<SecretBox>,
    pub(crate) config: WorkerConfig,
    /// Loaded adapters by version (`adapter_cells.rs`).
    adapters: AdapterCells,
    /// New tasks were announced (or promoted): claim.
    pub(crate) wake: Notify,
    /// The other loops' wake-ups (`notices.rs`: one LISTEN for all).
    pub(crate) notices: crate::notices::Notices,
    /// A slot was freed (an attempt ended; its completion may still be
    /// committing): start the next queued task.
    freed: Notify,
    pub(crate) leases: Leases,
    /// Server settings for a short while (`settings_cache.rs`).
    servers: crate::settings_cache::SettingsCache,
    /// The connection that claims one statement at a time. A pooled one
    /// is the least recently used (sqlx hands idle connections out in
    /// turn), and its idle backend's first statement ran about twice as
    /// slow as a warm one's: the claim is what pickup latency waits on.
    claim_conn: tokio::sync::Mutex<Option<PoolConnection<Postgres>>>,
    completions: mpsc::Sender<Pending>,
    completions_rx: Mutex<Option<mpsc::Receiver<Pending>>>,
    /// Completions committed events: wake the event streams.
    pub(crate) events_written: Notify,
    /// Wakes an in-process API's event streams (`wake_local_streams_with`).
    pub(crate) local_streams: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Shutdown began: finished slots take no next task.
    stopping: AtomicBool,
    /// The connections completions commit on (`completion.rs`).
    pub(crate) commit_conns: crate::completion::CommitConnections,
    pub(crate) metrics: Option<Arc<crate::WorkerMetrics>>,
}

/// A finished attempt waiting for the batch completer.
pub(crate) type Pending = (
    ClaimedTask,
    TaskOutcome,
    AttemptRecord,
    oneshot::Sender<Applied>,
);

/// Single-task claims in flight at once in per-task mode.
const PARALLEL_CLAIMS: usize = 4;

impl Worker {
    pub fn new(
        pool: PgPool,
        sandbox: Arc<Sandbox>,
        secrets: Arc<SecretBox>,
        config: WorkerConfig,
    ) -> Arc<Worker> {
        Worker::with_metrics(pool, sandbox, secrets, config, None)
    }

    /// A worker that records into `metrics` (see [`crate::WorkerMetrics`]).
    pub fn with_metrics(
        pool: PgPool,
        sandbox: Arc<Sandbox>,
        secrets: Arc<SecretBox>,
        config: WorkerConfig,
        metrics: Option<Arc<crate::WorkerMetrics>>,
    ) -> Arc<Worker> {
        let (tx, rx) = mpsc::channel(4096);
        let commit_conns = crate::completion::CommitConnections::beside(&pool);
        Arc::new(Worker {
            pool,
            sandbox,
            secrets,
            config,
            adapters: AdapterCells::default(),
            wake: Notify::new(),
            notices: Default::default(),
            freed: Notify::new(),
            leases: Leases::default(),
            servers: Default::default(),
            claim_conn: tokio::sync::Mutex::new(None),
            completions: tx,
            completions_rx: Mutex::new(Some(rx)),
            events_written: Notify::new(),
            local_streams: std::sync::OnceLock::new(),
            stopping: AtomicBool::new(false),
            commit_conns,
            metrics,
        })
    }

    /// Run until `shutdown` resolves; then stop claiming, let running
    /// operations finish within the grace period and release the rest.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        let slots = Arc::new(Semaphore::new(self.config.slots));
        let session = tokio::spawn(self.clone().session());
        let listener = tokio::spawn(self.clone().listen());
        let upkeep = tokio::spawn(self.clone().upkeep());
        let inspector = tokio::spawn(self.clone().inspector());
        // A run cut short keeps its lease until it lapses; then another worker runs it.
        let shadow_runs = tokio::spawn(self.clone().shadow_runs());
        let completer = match self
            .completions_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(rx) => tokio::spawn(self.clone().completer(rx)),
            None => tokio::spawn(async {}),
        };
        let heartbeats = tokio::spawn(self.clone().heartbeats());
        let streams = tokio::spawn(self.clone().wake_event_streams());
        // In-flight deliveries stop with it; their leases run out and
        // another worker sends them again.
        let webhooks = tokio::spawn(self.clone().webhooks());
        // A check cut short settles nothing; its lease lapses.
        let health = tokio::spawn(self.clone().health_checks());
        // Tasks held at most: one per slot plus the local queue. With batched
        // claims, wait until a quarter of that is free (or nothing is held)
        // before claiming: fewer, larger claims.
        let capacity = self.config.slots + self.config.queue;
        let min_claim = if self.config.claim_batch > 1 {
            (capacity / 4).clamp(1, self.config.claim_batch)
        } else {
            1
        };
        let mut queue: VecDeque<(ClaimedTask, Arc<Held>)> = VecDeque::new();
        let mut running = tokio::task::JoinSet::new();
        // Claim rounds in a row that took all they asked for.
        let mut full_rounds = 0;
        // Whether a claim may find something: a round that came back short
        // found all there was, and what becomes claimable after it comes
        // with a wake-up (a NOTIFY, a promotion), a task of ours ending (its
        // service's next operation, its server's room) or the poll. A freed
        // slot alone is reason only while a backlog was left: an empty
        // claim there costs a statement on the path of the completion that
        // freed it.
        let mut look = true;
        tokio::pin!(shutdown);
        loop {
            // A task of ours that ended since the last claim: look now.
            while running.try_join_next().is_some() {
                look = true;
            }
            self.start_queued(&mut queue, &slots, &mut running);
            let held = queue.len() + (self.config.slots - slots.available_permits());
            // Per-task mode takes up to PARALLEL_CLAIMS tasks a round, one
            // claim statement each, once a backlog shows (two full rounds):
            // a wake-up on an idle queue is usually one new task, and
            // parallel claims for it slow down the one that finds it and
            // then come back empty.
            let per_round = match self.config.claim_batch {
                0 | 1 if full_rounds >= 2 => PARALLEL_CLAIMS,
                0 | 1 => 1,
                n => n,
            };
            let want = capacity.saturating_sub(held).min(per_round);
            let (mut claimed, mut asked) = (0, 0);
            if look && want > 0 && (want >= min_claim || held == 0) {
                (asked, claimed) = self
                    .claim_into(want, &mut queue, &slots, &mut running)
                    .await;
            }
            let full = claimed > 0 && claimed == asked;
            if asked > 0 {
                full_rounds = if full { full_rounds + 1 } else { 0 };
                look = full;
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => look = true,
                _ = self.freed.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => look = true,
                Some(_) = running.join_next(), if !running.is_empty() => look = true,
            }
        }
        self.stopping.store(true, Ordering::SeqCst);
        listener.abort();
        upkeep.abort();
        inspector.abort();
        shadow_runs.abort();
        webhooks.abort();
        health.abort();
        // Queued tasks never started: back to the queue for other workers.
        let unstarted: Vec<(Uuid, i64)> = queue
            .drain(..)
            .map(|(t, h)| {
                self.leases.remove(&t.id);
                (t.id, h.lease)
            })
            .collect();
        if let Err(e) = panel1_store::unclaim(&self.pool, &unstarted).await {
            tracing::warn!(error = %e, count = unstarted.len(), "could not give back queued tasks; the rescuer will");
        }
        let grace = tokio::time::sleep(self.config.shutdown_grace);
        tokio::pin!(grace);
        while !running.is_empty() {
            tokio::select! {
                _ = running.join_next() => {}
                _ = &mut grace => break,
            }
        }
        running.abort_all();
        completer.abort();
        heartbeats.abort();
        streams.abort();
        for (id, lease) in self.leases.drain() {
            let _ = panel1_store::release(&self.pool, id, lease).await;
        }
        session.abort();
        if let Err(e) = panel1_store::end_sessions(&self.pool, &self.config.id).await {
            tracing::warn!(error = %e, "could not remove this worker's session");
        }
        Ok(())
    }

    /// Claim up to `want` tasks into the local queue and start what fits
    /// on free slots: one claim statement, or in per-task mode (a
    /// `claim_batch` of one) up to [`PARALLEL_CLAIMS`] single-task claims in
    /// flight at once, each its own transaction (claims on one busy server
    /// take turns in Postgres instead of waiting on this loop), each started
    /// as soon as it returns. Returns how many tasks the claims that ran
    /// asked for and how many they claimed.
    async fn claim_into(
        self: &Arc<Self>,
        want: usize,
        queue: &mut VecDeque<(ClaimedTask, Arc<Held>)>,
        slots: &Arc<Semaphore>,
        running: &mut tokio::task::JoinSet<()>,
    ) -> (usize, usize) {
        let ttl = self.config.lease_ttl;
        let (per_claim, n) = if self.config.claim_batch > 1 {
            (want, 1)
        } else {
            (1, want.min(PARALLEL_CLAIMS))
        };
        let mut claims = tokio::task::JoinSet::new();
        for _ in 0..n {
            let me = self.clone();
            claims.spawn(async move {
                if n == 1 {
                    me.claim_on_own_connection(per_claim, ttl).await
                } else {
                    panel1_store::claim(&me.pool, &me.config.id, per_claim as i64, ttl).await
                }
            });
        }
        let (mut claimed, mut failed) = (0, 0);
        while let Some(r) = claims.join_next().await {
            match r {
                Ok(Ok(tasks)) => {
                    claimed += tasks.len();
                    if let Some(m) = &self.metrics {
                        m.claimed(tasks.len());
                    }
                    for task in tasks {
                        let held = self.leases.insert(task.id, task.lease);
                        queue.push_back((task, held));
                    }
                    self.start_queued(queue, slots, running);
                }
                // A lost claim race or a database restart: try again soon.
                Ok(Err(e)) => {
                    failed += 1;
                    tracing::warn!(error = %e, "claim failed");
                }
                Err(e) => {
                    failed += 1;
                    tracing::error!(error = %e, "claim task failed");
                }
            }
        }
        // A failed claim asked nothing: it says nothing about what waits.
        (per_claim * (n - failed), claimed)
    }

    /// One claim statement on the worker's own connection. After an error
    /// (a database restart) the connection goes back to the pool, which
    /// drops it if broken; the next claim takes a fresh one.
    async fn claim_on_own_connection(
        &self,
        limit: usize,
        ttl: Duration,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        let mut kept = self.claim_conn.lock().await;
        let mut conn = match kept.take() {
            Some(c) => c,
            None => self.pool.acquire().await?,
        };
        let r = panel1_store::claim(&mut *conn, &self.config.id, limit as i64, ttl).await;
        if r.is_ok() {
            *kept = Some(conn);
        }
        r
    }

    /// Start queued tasks on free slots (skipping any whose lease was lost
    /// while it waited).
    fn start_queued(
        self: &Arc<Self>,
        queue: &mut VecDeque<(ClaimedTask, Arc<Held>)>,
        slots: &Arc<Semaphore>,
        running: &mut tokio::task::JoinSet<()>,
    ) {
        while !queue.is_empty() {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            let Some((task, held)) = queue.pop_front() else {
                break;
            };
            if held.is_lost() {
                self.leases.remove(&task.id);
                continue;
            }
            let me = self.clone();
            running.spawn(async move { me.execute(task, held, permit).await });
        }
    }

    /// Compile an adapter version ahead of its first task (a warm start;
    /// benchmarks keep the one-off compile out of what they time).
    pub async fn preload(&self, version: Uuid) -> Result<(), String> {
        self.adapter(version).await.map(|_| ())
    }

    pub(crate) async fn adapter(&self, version: Uuid) -> Result<Arc<LoadedAdapter>, String> {
        let cell = self.adapters.cell(version);
        // A failed load leaves the cell empty: the next task tries again.
        cell.get_or_try_init(|| async {
            let bytes = setup::adapter_component(&self.pool, version)
                .await
                .map_err(|e| e.to_string())?;
            let sandbox = self.sandbox.clone();
            tokio::task::spawn_blocking(move || sandbox.load(&bytes))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        })
        .await
        .cloned()
    }

    pub(crate) async fn server_settings(
        &self,
        server: Uuid,
    ) -> Result<Arc<ServerSettings>, StoreError> {
        self.servers.get(&self.pool, &self.secrets, server).await
    }

    /// Run a claimed task on its slot. In per-task mode (`claim_batch` 1)
    /// the slot commits its own completion, and that commit claims the
    /// slot's next task on the same server, which it then runs: one commit
    /// per task. Otherwise the slot is freed when the operation ends and the
    /// batch completer commits it.
    async fn execute(
        self: Arc<Self>,
        task: ClaimedTask,
        held: Arc<Held>,
        slot: OwnedSemaphorePermit,
    ) {
        let per_task = self.config.claim_batch <= 1;
        let mut slot = Some(slot);
        let mut next = Some((task, held));
        while let Some((task, held)) = next.take() {
            let started = chrono::Utc::now();
            let (outcome, record, taped) = tokio::select! {
                r = self.attempt(&task) => r,
                // The lease was lost (rescued elsewhere or cancelled): stop.
                _ = held.lost() => {
                    self.leases.remove(&task.id);
                    break;
                }
            };
            let record = AttemptRecord {
                worker: self.config.id.clone(),
                started_at: Some(started),
                ..record
            };
            let taped = taped.map(|t| (crate::recording::outcome_summary(&outcome), t));
            let observed = self.metrics.as_ref().map(|_| {
                (
                    crate::WorkerMetrics::error_kind(&outcome),
                    record.metrics.clone(),
                )
            });
            let applied = if per_task {
                let handoff = usize::from(!self.stopping.load(Ordering::SeqCst));
                let items = [(task.clone(), outcome, record)];
                let committed = self.commit(&items, handoff).await;
                let (applied, claimed) = committed.unwrap_or((vec![Applied::Stale], vec![]));
                if let Some(t) = claimed.into_iter().next() {
                    if let Some(m) = &self.metrics {
                        m.claimed(1);
                    }
                    let h = self.leases.insert(t.id, t.lease);
                    next = Some((t, h));
                }
                applied.into_iter().next()
            } else {
                // The slot is free as soon as the operation ends; the task
                // stays running (and counted against its server's cap) until
                // its completion commits.
                slot.take();
                self.freed.notify_one();
                self.complete_in_batch(&task, outcome, record).await
            };
            if let Some(applied) = applied {
                note_applied(&task, &applied);
                if let Some((summary, t)) = taped {
                    self.store_recording(&task, summary, t, &applied).await;
                }
                if let (Some(m), Some((kind, cost))) = (&self.metrics, observed) {
                    m.completed(&task.operation, kind, &cost, &applied);
                }
            }
            self.leases.remove(&task.id);
            if !per_task {
                break;
            }
        }
        drop(slot);
        self.freed.notify_one();
    }

    /// Hand a finished attempt to the batch completer and wait for its commit.
    async fn complete_in_batch(
        &self,
        task: &ClaimedTask,
        outcome: TaskOutcome,
        record: AttemptRecord,
    ) -> Option<Applied> {
        let (reply, applied) = oneshot::channel();
        self.completions
            .send((task.clone(), outcome, record, reply))
            .await
            .ok()?;
        applied.await.ok()
    }

    /// Run one attempt: its outcome, its record, and its exchanges when the
    /// server records them.
    pub(crate) async fn attempt(
        &self,
        task: &ClaimedTask,
    ) -> (TaskOutcome, AttemptRecord, Option<Taped>) {
        let internal = |message: String| {
            (
                TaskOutcome::Internal { message },
                AttemptRecord::default(),
                None,
            )
        };
        // The task itself is unusable (bad operation, input or server
        // settings): fail it, no retry.
        let invalid = |message: String| {
            let o = TaskOutcome::AdapterError {
                kind: "invalid-input".into(),
                message,
                retry_after_ms: None,
            };
            (o, AttemptRecord::default(), None)
        };
        let operation: Operation = match task.operation.parse() {
            Ok(op) => op,
            Err(e) => return invalid(e.to_string()),
        };
        let runtime = match self.server_settings(task.server_id).await {
            Ok(r) => r,
            Err(e) => return internal(format!("loading server: {e}")),
        };
        let context = match &runtime.context {
            Ok(c) => c.clone(),
            Err(e) => return invalid(e.clone()),
        };
        let adapter = match self.adapter(runtime.adapter_version_id).await {
            Ok(a) => a,
            Err(e) => return internal(format!("loading adapter: {e}")),
        };
        let mut input = task.input.clone();
        // A migration's import carries the source's credential (this call only).
        let context = if operation == Operation::ImportService {
            let bound =
                source_secret::bind(&self.pool, &self.secrets, task, context, &mut input).await;
            match bound {
                Ok(c) => c,
                Err(e) => return internal(e),
            }
        } else {
            context
        };
        let request = CallRequest {
            operation,
            input,
            idempotency_key: task.id.to_string(),
            attempt: task.attempt.max(1) as u32,
        };
        let recording = runtime.record_exchanges.then(Recording::new);
        let tape = recording.clone().map(HttpTape::Record);
        let report = match self
            .sandbox
            .call_with_tape(&adapter, context, &request, tape)
            .await
        {
            Ok(r) => r,
            Err(e) => return invalid(e.to_string()),
        };
        let taped = recording.map(|r| taped(runtime.adapter_version_id, r.exchanges()));
        let record = AttemptRecord {
            log: serde_json::to_value(&report.log).unwrap_or_default(),
            http: serde_json::to_value(&report.http).unwrap_or_default(),
            metrics: report.metrics,
            ..AttemptRecord::default()
        };
        // The outcome moves out of the report: a result can be a large
        // JSON document.
        let outcome = match report.outcome {
            Outcome::Ok { result } => TaskOutcome::Succeeded { result },
            Outcome::AdapterError {
                kind,
                message,
                retry_after_ms,
            } => TaskOutcome::AdapterError {
                kind: kind.to_string(),
                message,
                retry_after_ms,
            },
            Outcome::SandboxError { kind, message } => TaskOutcome::SandboxError {
                kind: kind.to_string(),
                message,
            },
        };
        (outcome, record, taped)
    }
}
