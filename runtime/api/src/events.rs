//! Live status: Server-Sent Events read from the outbox (`events` table).
//! One LISTEN connection per process wakes every stream; streams always read
//! the table, so a missed notification only delays an event (a slow poll
//! covers it), and `Last-Event-ID` resumes exactly after the last one seen.
//!
//! Streams read in (writing transaction, id) order, and only events whose
//! transaction is older than every transaction still running (migration
//! 0005): ids are taken at insert but transactions commit in any order, so
//! reading by id alone skipped an event whose transaction committed after a
//! later id's had been read.
use crate::auth::{Principal, Scope};
use crate::input::ApiQuery;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::tenant_slots::TenantSlot;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures::Stream;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

const CHANNEL: &str = "panel1_events";
/// Streams re-read the table at least this often without a notification.
const FALLBACK_POLL: Duration = Duration::from_secs(2);
const BATCH: i64 = 500;
/// How soon a stream reads again when events are written but their
/// transactions' elders are still running (no notification marks the end
/// of a transaction that wrote no event): at first soon, as the elders are
/// usually other completions a commit away, then backing off to the last.
const HELD_BACK_POLLS: [Duration; 5] = [
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(20),
];

/// Wakes event streams; stops them on shutdown.
#[derive(Clone)]
pub struct EventHub {
    wake: watch::Receiver<u64>,
    wake_tx: std::sync::Arc<watch::Sender<u64>>,
    stop: watch::Sender<bool>,
}

impl EventHub {
    pub fn start(pool: PgPool) -> EventHub {
        let (tx, rx) = watch::channel(0u64);
        let tx = std::sync::Arc::new(tx);
        let (stop, _) = watch::channel(false);
        let mut stopped = stop.subscribe();
        let listen_tx = tx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = listen(pool, listen_tx) => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        });
        EventHub {
            wake: rx,
            wake_tx: tx,
            stop,
        }
    }

    /// Wakes every stream to read the table now: for a worker in this
    /// process, after its completions commit (the NOTIFY arrives later).
    pub fn waker(&self) -> impl Fn() + Send + Sync + 'static {
        let tx = self.wake_tx.clone();
        move || tx.send_modify(|n| *n = n.wrapping_add(1))
    }

    /// End every open stream (graceful shutdown).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

async fn listen(pool: PgPool, tx: std::sync::Arc<watch::Sender<u64>>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "event listener cannot connect; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // After a reconnect, streams re-read in case something was missed.
        tx.send_modify(|n| *n += 1);
        loop {
            match listener.recv().await {
                Ok(_) => tx.send_modify(|n| *n += 1),
                Err(e) => {
                    tracing::warn!(error = %e, "event listener lost its connection");
                    break;
                }
            }
        }
    }
}

/// Which events to stream.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    pub task_id: Option<Uuid>,
    pub service_id: Option<Uuid>,
    /// Event kind, e.g. `task.succeeded`, or a prefix ending in `.`: `task.`.
    pub kind: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins).
    pub after: Option<i64>,
}

/// One outbox event, as sent in each SSE `data:` line.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct EventRecord {
    pub id: i64,
    pub kind: String,
    pub task_id: Option<Uuid>,
    pub service_id: Option<Uuid>,
    pub payload: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An event as read by a stream: with its place in commit-safe order and
/// whether every transaction that could still write before it has ended.
#[derive(sqlx::FromRow)]
struct StreamRow {
    #[sqlx(flatten)]
    event: EventRecord,
    tx: i64,
    settled: bool,
}

struct Cursor {
    pool: PgPool,
    tenant: Uuid,
    filter: EventFilter,
    /// The last (tx, id) delivered.
    after: (i64, i64),
    /// A stream started without a cursor skips what had committed by then
    /// (a `pg_snapshot` taken at the start).
    started: Option<String>,
    /// Reads in a row that found events past the cursor not settled yet.
    held_back: usize,
    /// The last read found everything there was (a short page, nothing
    /// held back): once its events are sent, wait for news before reading
    /// again (a read that finds nothing costs the database as much).
    caught_up: bool,
    buffer: VecDeque<(i64, EventRecord)>,
    /// This stream's place among its tenant's (`tenant_slots.rs`).
    _slot: TenantSlot,
    wake: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
}

impl Cursor {
    async fn fetch(&mut self) -> Result<(), sqlx::Error> {
        let kind_prefix = self.filter.kind.as_deref().filter(|k| k.ends_with('.'));
        let kind_exact = self.filter.kind.as_deref().filter(|k| !k.ends_with('.'));
        let rows: Vec<StreamRow> = sqlx::query_as(
            "SELECT e.id, e.kind, e.task_id, e.service_id, e.payload, e.created_at, e.tx,
                    e.tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS settled
             FROM events e
             WHERE e.tenant_id = $1 AND (e.tx, e.id) > ($2, $3)
               AND ($4::uuid IS NULL OR e.task_id = $4)
               AND ($5::uuid IS NULL OR e.service_id = $5)
               AND ($6::text IS NULL OR e.kind = $6)
               AND ($7::text IS NULL OR starts_with(e.kind, $7))
               AND ($9::text IS NULL OR NOT pg_visible_in_snapshot(e.tx::text::xid8, $9::text::pg_snapshot))
             ORDER BY e.tx, e.id LIMIT $8",
        )
        .bind(self.tenant)
        .bind(self.after.0)
        .bind(self.after.1)
        .bind(self.filter.task_id)
        .bind(self.filter.service_id)
        .bind(kind_exact)
        .bind(kind_prefix)
        .bind(BATCH)
        .bind(self.started.as_deref())
        .fetch_all(&self.pool)
        .await?;
        // Settled rows sort first (their tx is below every unsettled one).
        self.held_back = match rows.iter().any(|r| !r.settled) {
            true => self.held_back + 1,
            false => 0,
        };
        self.caught_up = self.held_back == 0 && (rows.len() as i64) < BATCH;
        self.buffer.extend(
            rows.into_iter()
                .take_while(|r| r.settled)
                .map(|r| (r.tx, r.event)),
        );
        Ok(())
    }

    /// The next event, waiting for one; `None` when the server stops.
    async fn next(&mut self) -> Option<EventRecord> {
        loop {
            if let Some((tx, e)) = self.buffer.pop_front() {
                self.after = (tx, e.id);
                return Some(e);
            }
            if *self.stop.borrow() {
                return None;
            }
            // A wake-up that came during the last read is still marked
            // as a change, so waiting here loses none.
            if !self.caught_up {
                self.wake.mark_unchanged();
                if let Err(e) = self.fetch().await {
                    if !is_transient(&e) {
                        // Retrying a query the database refuses would only
                        // repeat the failure every poll: end the stream.
                        tracing::error!(error = %e, "event stream read failed; ending the stream");
                        return None;
                    }
                    // The database is restarting: keep the stream, try again.
                    tracing::warn!(error = %e, "event stream read failed; retrying");
                }
                if !self.buffer.is_empty() {
                    continue;
                }
            }
            // Sent all there was: the next read waits for news.
            self.caught_up = false;
            let poll = match self.held_back {
                0 => FALLBACK_POLL,
                n => HELD_BACK_POLLS[(n - 1).min(HELD_BACK_POLLS.len() - 1)],
            };
            tokio::select! {
                _ = self.wake.changed() => {}
                _ = self.stop.wait_for(|s| *s) => return None,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

/// A failure that retrying can cure: the connection or the server going away.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // connection_exception (08…), operator_intervention (57…).
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
        _ => false,
    }
}

/// Stream task and service events (SSE).
///
/// Each event has `id` (resume with `Last-Event-ID`), `event` (the kind) and
/// `data` (an `EventRecord` as JSON). Without a cursor, a stream filtered by
/// task or service starts from that object's first event; an unfiltered one
/// starts with the next new event.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(EventFilter, ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "text/event-stream of EventRecord", content_type = "text/event-stream", body = EventRecord),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "Too many open streams for this tenant, or the key's rate limit")),
    security(("api_key" = [])))]
pub async fn stream_events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    ApiQuery(filter): ApiQuery<EventFilter>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let tenant = principal.tenant(Scope::Read)?;
    let slot = state
        .streams
        .take(tenant)
        .ok_or(ApiError::TooManyStreams(state.streams.max_per_tenant()))?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::validation("Last-Event-ID", "must be an event id"))?,
        ),
        None => filter.after,
    };
    let (after, started) = match resume {
        Some(0) => ((0, 0), None),
        // After event `id`: everything later in (tx, id) order. An id that
        // is gone (or never was) resumes after the last transaction that
        // wrote an id up to it.
        Some(id) => {
            let tx: Option<i64> = sqlx::query_scalar(
                "SELECT COALESCE(
                     (SELECT tx FROM events WHERE tenant_id = $1 AND id = $2),
                     (SELECT max(tx) FROM events WHERE tenant_id = $1 AND id <= $2))",
            )
            .bind(tenant)
            .bind(id)
            .fetch_one(&state.pool)
            .await?;
            ((tx.unwrap_or(0), id), None)
        }
        None if filter.task_id.is_some() || filter.service_id.is_some() => ((0, 0), None),
        // Only what commits from now on: past the oldest running
        // transaction, minus what had committed at this snapshot.
        None => {
            let (xmin, snapshot): (i64, String) = sqlx::query_as(
                "SELECT pg_snapshot_xmin(s)::text::bigint, s::text FROM pg_current_snapshot() s",
            )
            .fetch_one(&state.pool)
            .await?;
            ((xmin, 0), Some(snapshot))
        }
    };
    let cursor = Cursor {
        pool: state.pool.clone(),
        tenant,
        filter,
        after,
        started,
        held_back: 0,
        caught_up: false,
        buffer: VecDeque::new(),
        wake: state.events.wake.clone(),
        stop: state.events.stop.subscribe(),
        _slot: slot,
    };
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        let e = c.next().await?;
        let event = Event::default()
            .id(e.id.to_string())
            .event(e.kind.clone())
            .json_data(&e)
            .unwrap_or_else(|_| Event::default().comment("unencodable event"));
        Some((Ok(event), c))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
