//! What a completion writes for one task, in the two shapes the queue's
//! functions take it: one jsonb object (`complete_one`, migrations/0007 and 0009)
//! or a column of typed arrays per field (`complete_batch`, 0008).
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// One item: the task's new state and outcome, the attempt's record, the
/// service's move. Field names are the functions' column names.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CompletionRow {
    pub id: Uuid,
    pub lease: i64,
    pub state: &'static str,
    pub run_at: Option<DateTime<Utc>>,
    pub result: Option<Value>,
    pub error: Option<Value>,
    /// `None` for a platform task's bookkeeping: no task event (0014).
    pub event_kind: Option<&'static str>,
    pub event_payload: Value,
    pub worker: String,
    pub started_at: Option<DateTime<Utc>>,
    pub outcome: &'static str,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub fuel: i64,
    pub wall_us: i64,
    pub peak_memory: i64,
    pub http_requests: i32,
    pub http_denied: i32,
    /// Nothing captured is stored as NULL, not as an empty JSON array.
    pub log: Option<Value>,
    pub http: Option<Value>,
    pub service_touch: bool,
    pub service_state: Option<&'static str>,
    pub remote_id: Option<String>,
    pub plan: Option<String>,
    pub reason: Option<String>,
}

impl CompletionRow {
    /// Postgres text and jsonb cannot hold U+0000; an adapter's message,
    /// result or log may. Replaced (with U+FFFD) rather than failing the
    /// completion.
    pub fn without_nul(mut self) -> Self {
        for v in [
            &mut self.result,
            &mut self.error,
            &mut self.log,
            &mut self.http,
        ]
        .into_iter()
        .flatten()
        {
            replace_nul(v);
        }
        replace_nul(&mut self.event_payload);
        replace_nul_in(&mut self.worker);
        for s in [
            &mut self.error_kind,
            &mut self.error_message,
            &mut self.remote_id,
            &mut self.plan,
            &mut self.reason,
        ]
        .into_iter()
        .flatten()
        {
            replace_nul_in(s);
        }
        self
    }
}

/// The items as one array per column, for `complete_batch`.
#[derive(Default)]
pub(crate) struct CompletionColumns {
    id: Vec<Uuid>,
    lease: Vec<i64>,
    state: Vec<&'static str>,
    run_at: Vec<Option<DateTime<Utc>>>,
    result: Vec<Option<Value>>,
    error: Vec<Option<Value>>,
    event_kind: Vec<Option<&'static str>>,
    event_payload: Vec<Value>,
    worker: Vec<String>,
    started_at: Vec<Option<DateTime<Utc>>>,
    outcome: Vec<&'static str>,
    error_kind: Vec<Option<String>>,
    error_message: Vec<Option<String>>,
    fuel: Vec<i64>,
    wall_us: Vec<i64>,
    peak_memory: Vec<i64>,
    http_requests: Vec<i32>,
    http_denied: Vec<i32>,
    log: Vec<Option<Value>>,
    http: Vec<Option<Value>>,
    service_touch: Vec<bool>,
    service_state: Vec<Option<&'static str>>,
    remote_id: Vec<Option<String>>,
    plan: Vec<Option<String>>,
    reason: Vec<Option<String>>,
}

/// `complete_batch`'s call: the 25 columns, then hand-off, claimer, lease.
pub(crate) const COMPLETE_BATCH_SQL: &str = "SELECT * FROM complete_batch(
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
    $21, $22, $23, $24, $25, $26, $27, $28)";

impl CompletionColumns {
    pub fn from_rows(rows: Vec<CompletionRow>) -> Self {
        let mut c = CompletionColumns::default();
        for r in rows {
            c.id.push(r.id);
            c.lease.push(r.lease);
            c.state.push(r.state);
            c.run_at.push(r.run_at);
            c.result.push(r.result);
            c.error.push(r.error);
            c.event_kind.push(r.event_kind);
            c.event_payload.push(r.event_payload);
            c.worker.push(r.worker);
            c.started_at.push(r.started_at);
            c.outcome.push(r.outcome);
            c.error_kind.push(r.error_kind);
            c.error_message.push(r.error_message);
            c.fuel.push(r.fuel);
            c.wall_us.push(r.wall_us);
            c.peak_memory.push(r.peak_memory);
            c.http_requests.push(r.http_requests);
            c.http_denied.push(r.http_denied);
            c.log.push(r.log);
            c.http.push(r.http);
            c.service_touch.push(r.service_touch);
            c.service_state.push(r.service_state);
            c.remote_id.push(r.remote_id);
            c.plan.push(r.plan);
            c.reason.push(r.reason);
        }
        c
    }

    /// Bind the columns as `$1..$25` of [`COMPLETE_BATCH_SQL`].
    pub fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        q.bind(self.id)
            .bind(self.lease)
            .bind(self.state)
            .bind(self.run_at)
            .bind(self.result)
            .bind(self.error)
            .bind(self.event_kind)
            .bind(self.event_payload)
            .bind(self.worker)
            .bind(self.started_at)
            .bind(self.outcome)
            .bind(self.error_kind)
            .bind(self.error_message)
            .bind(self.fuel)
            .bind(self.wall_us)
            .bind(self.peak_memory)
            .bind(self.http_requests)
            .bind(self.http_denied)
            .bind(self.log)
            .bind(self.http)
            .bind(self.service_touch)
            .bind(self.service_state)
            .bind(self.remote_id)
            .bind(self.plan)
            .bind(self.reason)
    }
}

/// A counter or size as Postgres' bigint (a u64 past its range saturates).
pub(crate) fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn replace_nul_in(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{fffd}");
    }
}

fn replace_nul(v: &mut Value) {
    match v {
        Value::String(s) => replace_nul_in(s),
        Value::Array(a) => a.iter_mut().for_each(replace_nul),
        Value::Object(o) => {
            if o.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(o);
                o.extend(
                    old.into_iter()
                        .map(|(k, v)| (k.replace('\0', "\u{fffd}"), v)),
                );
            }
            o.values_mut().for_each(replace_nul);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_characters_are_replaced_everywhere() {
        let mut v = json!({"a\u{0}": ["x\u{0}y", {"k": "\u{0}"}], "n": 1});
        replace_nul(&mut v);
        assert_eq!(
            v,
            json!({"a\u{fffd}": ["x\u{fffd}y", {"k": "\u{fffd}"}], "n": 1})
        );
    }
}
