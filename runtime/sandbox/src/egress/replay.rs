//! Replay: recorded responses served by the host instead of the network.
//! The sender runs every check as live (policy, secret scan, bindings,
//! substitution), then asks the replay set for the first unused recorded
//! exchange, in recorded order, whose method, URL and body match the
//! request the guest built. Nothing connects, nothing is resolved.
//!
//! What does not match fails the guest's request and is kept as a
//! [`ReplayMiss`]: a test names it, a shadow run reports it.
use super::deliver::deliver;
use super::sender::Attempt;
use super::tape::{Fixture, RecordedExchange, RecordedRequest};
use http::header::{HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::Value;
use std::sync::Mutex;
use wasmtime_wasi_http::{Error, WasiBody};

/// A request no recorded exchange answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayMiss {
    pub method: String,
    pub url: String,
    /// `METHOD URL` of the first recorded exchange not used yet.
    pub next_expected: Option<String>,
    /// The whole explanation, as logged.
    pub message: String,
}

/// A request the guest made during a replay, and the index of the recorded
/// exchange that answered it (`None`: a miss). A shadow run compares these.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Served {
    pub request: RecordedRequest,
    pub recorded: Option<usize>,
}

pub struct ReplaySet {
    exchanges: Vec<RecordedExchange>,
    /// Off for adapters whose bodies vary by run (a generated password).
    match_bodies: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    used: Vec<bool>,
    misses: Vec<ReplayMiss>,
    served: Vec<Served>,
}

impl ReplaySet {
    pub fn new(exchanges: Vec<RecordedExchange>) -> ReplaySet {
        let used = vec![false; exchanges.len()];
        ReplaySet {
            exchanges,
            match_bodies: true,
            state: Mutex::new(State {
                used,
                ..State::default()
            }),
        }
    }

    pub fn from_fixture(fixture: &Fixture) -> ReplaySet {
        ReplaySet::new(fixture.exchanges.clone())
    }

    /// Match on method and URL only.
    pub fn ignoring_bodies(mut self) -> ReplaySet {
        self.match_bodies = false;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The recorded exchange answering `request` (now used), or the miss.
    pub fn take(&self, request: &RecordedRequest) -> Result<RecordedExchange, ReplayMiss> {
        let mut state = self.state();
        let mut same_target = None;
        for (i, x) in self.exchanges.iter().enumerate() {
            if state.used[i] || !same_method_and_url(&x.request, request) {
                continue;
            }
            if !self.match_bodies || same_body(&x.request, request) {
                state.used[i] = true;
                state.served.push(Served {
                    request: request.clone(),
                    recorded: Some(i),
                });
                return Ok(x.clone());
            }
            same_target.get_or_insert(i);
        }
        let next = state
            .used
            .iter()
            .position(|u| !u)
            .map(|i| describe(&self.exchanges[i].request));
        let nothing_left = if self.exchanges.is_empty() {
            "nothing (the fixture has no exchanges)"
        } else {
            "nothing (every recorded exchange was used)"
        };
        let mut message = format!(
            "no recorded exchange for {} {}; next expected: {}",
            request.method,
            request.url,
            next.as_deref().unwrap_or(nothing_left)
        );
        if same_target.is_some() {
            message.push_str(" (a recorded request to this URL has a different body)");
        }
        let miss = ReplayMiss {
            method: request.method.clone(),
            url: request.url.clone(),
            next_expected: next,
            message,
        };
        state.misses.push(miss.clone());
        state.served.push(Served {
            request: request.clone(),
            recorded: None,
        });
        Err(miss)
    }

    /// The recorded exchanges this set serves from.
    pub fn recorded(&self) -> &[RecordedExchange] {
        &self.exchanges
    }

    /// Every request asked of this set, in order, with what answered it.
    pub fn served(&self) -> Vec<Served> {
        self.state().served.clone()
    }

    /// Requests that found no recorded exchange, in order.
    pub fn misses(&self) -> Vec<ReplayMiss> {
        self.state().misses.clone()
    }

    /// `METHOD URL` of the recorded exchanges never asked for.
    pub fn unused(&self) -> Vec<String> {
        let state = self.state();
        self.exchanges
            .iter()
            .zip(&state.used)
            .filter(|(_, used)| !**used)
            .map(|(x, _)| describe(&x.request))
            .collect()
    }
}

/// Answer a checked request from the replay set (the sender's live path,
/// from the connection on, replaced by a lookup).
pub(super) fn serve(
    mut attempt: Attempt,
    set: &ReplaySet,
    request: RecordedRequest,
) -> Result<http::Response<WasiBody>, Error> {
    let recorded = match set.take(&request) {
        Ok(x) => x,
        Err(miss) => {
            let code = Error::InternalError(Some(miss.message.clone()));
            return Err(attempt.fail(miss.message, code));
        }
    };
    attempt.exchange.bytes_sent = request.body.body_bytes;
    let Some(response) = recorded.response else {
        let what = recorded
            .error
            .unwrap_or_else(|| "the recorded exchange has no response".into());
        return Err(attempt.fail(format!("{what} (recorded)"), Error::ConnectionRefused));
    };
    let Ok(status) = http::StatusCode::from_u16(response.status) else {
        let why = format!("recorded status {} is not an HTTP status", response.status);
        return Err(attempt.fail(why, Error::HttpProtocolError));
    };
    let mut headers = http::HeaderMap::new();
    for (k, v) in &response.headers {
        // A cut body is served as kept: its recorded length would not hold.
        if response.body.body_truncated && k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    let body = response.body.bytes();
    let shared = attempt.shared.clone();
    let cap = shared.context.limits.http_max_response_bytes;
    if body.len() as u64 > cap {
        let why = format!("response body over {cap} bytes");
        return Err(attempt.fail(why, Error::HttpResponseBodySize(Some(cap))));
    }
    // Held for the guest like a live response body.
    let mut charge = match shared.budget.charge_response(0) {
        Ok(c) => c,
        Err(e) => return Err(attempt.fail(e.to_string(), Error::HttpResponseBodySize(None))),
    };
    if let Err(e) = charge.grow(body.len() as u64) {
        return Err(attempt.fail(e.to_string(), Error::HttpResponseBodySize(None)));
    }
    deliver(attempt, status, &headers, body, charge)
}

fn describe(r: &RecordedRequest) -> String {
    format!("{} {}", r.method, r.url)
}

fn same_method_and_url(recorded: &RecordedRequest, live: &RecordedRequest) -> bool {
    recorded.method.eq_ignore_ascii_case(&live.method) && recorded.url == live.url
}

/// Both bodies went through the same sanitizer (secrets are placeholders on
/// both sides). JSON compares as documents (key order and spacing aside);
/// a truncated recording compares its kept prefix.
fn same_body(recorded: &RecordedRequest, live: &RecordedRequest) -> bool {
    let (want, got) = (recorded.body.bytes(), live.body.bytes());
    if recorded.body.body_truncated {
        return got.starts_with(&want);
    }
    if want == got {
        return true;
    }
    match (
        serde_json::from_slice::<Value>(&want),
        serde_json::from_slice::<Value>(&got),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::tape::{RecordedBody, RecordedResponse};

    fn req(method: &str, url: &str, body: &str) -> RecordedRequest {
        RecordedRequest {
            method: method.into(),
            url: url.into(),
            headers: vec![],
            body: RecordedBody::from_bytes(body.as_bytes(), 1 << 20),
        }
    }

    fn exchange(method: &str, url: &str, body: &str, status: u16) -> RecordedExchange {
        RecordedExchange {
            request: req(method, url, body),
            response: Some(RecordedResponse {
                status,
                headers: vec![],
                body: RecordedBody::default(),
            }),
            error: None,
        }
    }

    fn status(x: &RecordedExchange) -> u16 {
        x.response.as_ref().unwrap().status
    }

    #[test]
    fn serves_in_recorded_order_and_each_exchange_once() {
        let set = ReplaySet::new(vec![
            exchange("GET", "https://h.test/a", "", 200),
            exchange("GET", "https://h.test/a", "", 201),
            exchange("POST", "https://h.test/b", "", 202),
        ]);
        // The second request to the same URL gets the second response.
        assert_eq!(
            status(&set.take(&req("get", "https://h.test/a", "")).unwrap()),
            200
        );
        assert_eq!(
            set.unused(),
            vec!["GET https://h.test/a", "POST https://h.test/b"]
        );
        // Out of order is fine when it matches: the first unused match wins.
        assert_eq!(
            status(&set.take(&req("POST", "https://h.test/b", "")).unwrap()),
            202
        );
        assert_eq!(
            status(&set.take(&req("GET", "https://h.test/a", "")).unwrap()),
            201
        );
        let miss = set.take(&req("GET", "https://h.test/a", "")).unwrap_err();
        assert!(
            miss.message.contains("every recorded exchange was used"),
            "{}",
            miss.message
        );
        assert_eq!(set.misses().len(), 1);
        let served: Vec<Option<usize>> = set.served().iter().map(|s| s.recorded).collect();
        assert_eq!(served, vec![Some(0), Some(2), Some(1), None]);
    }

    #[test]
    fn a_different_url_or_body_is_a_miss_naming_what_was_expected() {
        let set = ReplaySet::new(vec![exchange(
            "POST",
            "https://h.test/json-api/createacct",
            r#"{"user":"a","pw":"{{secret:pw}}"}"#,
            200,
        )]);
        let miss = set
            .take(&req("POST", "https://h.test/json-api/removeacct", ""))
            .unwrap_err();
        assert_eq!(
            miss.message,
            "no recorded exchange for POST https://h.test/json-api/removeacct; next expected: \
             POST https://h.test/json-api/createacct"
        );
        let miss = set
            .take(&req(
                "POST",
                "https://h.test/json-api/createacct",
                r#"{"user":"b"}"#,
            ))
            .unwrap_err();
        assert!(miss.message.contains("different body"), "{}", miss.message);
        // JSON compares as a document: key order and spacing do not matter.
        let ok = set.take(&req(
            "POST",
            "https://h.test/json-api/createacct",
            r#"{ "pw": "{{secret:pw}}", "user": "a" }"#,
        ));
        assert!(ok.is_ok());
        assert_eq!(set.misses().len(), 2);
        assert!(set.unused().is_empty());
        // Bodies that vary by run: method and URL only.
        let set = ReplaySet::new(vec![exchange("POST", "https://h.test/a", "pw=1", 200)])
            .ignoring_bodies();
        assert!(set.take(&req("POST", "https://h.test/a", "pw=2")).is_ok());
    }

    #[test]
    fn a_truncated_recording_matches_on_its_prefix() {
        let mut x = exchange("PUT", "https://h.test/x", "", 200);
        x.request.body = RecordedBody::from_bytes(b"0123456789", 4);
        let set = ReplaySet::new(vec![x]);
        assert!(set.take(&req("PUT", "https://h.test/x", "0124")).is_err());
        assert!(set
            .take(&req("PUT", "https://h.test/x", "0123456789"))
            .is_ok());
    }
}
