//! Injected faults: how a real provider (or what sits in front of it)
//! misbehaves. One set for every simulator; each provider renders the pages
//! in its own words ([`Pages`]).

use std::time::Duration;

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

use super::serve::{text, Body, Shutdown};

/// One way to misbehave. Faults apply to authenticated API requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Wait, then handle the request normally.
    Slow(Duration),
    /// Handle the request (the change is made), then hold the answer this
    /// long: the client times out although the call took effect.
    StallAfterApply(Duration),
    /// Answer with this HTTP status and an HTML error page; nothing applied.
    ServerError(u16),
    /// Close the connection without answering; nothing applied.
    ResetConnection,
    /// Answer 200 with a JSON body of the wrong shape (WHM: API 0's format,
    /// as if `api.version=1` had been dropped; Plesk: an object where a list
    /// is due, or the reverse); nothing applied.
    WrongBody,
    /// Answer 200 with the HTML login page (an expired session); nothing
    /// applied.
    LoginPage,
    /// Answer this status with an `application/problem+json` body (RFC 9457),
    /// as a proxy or gateway in front of the provider would; nothing applied.
    ProblemJson(u16),
    /// Answer 429 Too Many Requests with `Retry-After: <retry_after_secs>`
    /// (the provider's rate limit, or a proxy's), in the provider's own
    /// error page; nothing applied.
    RateLimited { retry_after_secs: u32 },
}

/// A provider's own pages for the faults that show one.
pub(crate) trait Pages {
    fn error_page(&self, status: StatusCode) -> Response<Body>;
    fn login_page(&self, status: StatusCode) -> Response<Body>;
}

/// What a fault does before the request is handled.
pub(crate) enum Before {
    /// Handle the request (after any delay).
    Proceed,
    /// Answer this instead; nothing applied.
    Answer(Response<Body>),
    /// Drop the connection unanswered.
    Drop,
}

/// Apply the part of `fault` that comes before handling.
pub(crate) async fn before(
    fault: Option<&Fault>,
    pages: &(dyn Pages + Sync),
    stop: &Shutdown,
) -> Before {
    match fault {
        Some(Fault::Slow(d)) => {
            stop.pause(*d).await;
            Before::Proceed
        }
        Some(Fault::ServerError(code)) => {
            Before::Answer(pages.error_page(
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ))
        }
        Some(Fault::LoginPage) => Before::Answer(pages.login_page(StatusCode::OK)),
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut response = pages.error_page(StatusCode::TOO_MANY_REQUESTS);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            Before::Answer(response)
        }
        Some(Fault::ResetConnection) => Before::Drop,
        Some(Fault::ProblemJson(code)) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_GATEWAY);
            let title = status.canonical_reason().unwrap_or("Error");
            let body = json!({
                "type": "about:blank",
                "title": title,
                "status": status.as_u16(),
                "detail": format!("the gateway in front of the server answered {} {title}", status.as_u16()),
            });
            Before::Answer(text(status, "application/problem+json", body.to_string()))
        }
        Some(Fault::StallAfterApply(_) | Fault::WrongBody) | None => Before::Proceed,
    }
}

/// A fault, optionally limited to one function and to the next `times`
/// matching requests (`None`: until cleared). A function is WHM's
/// `/json-api/<function>` name, or a Plesk operation as `METHOD /path`
/// with the description's template (`POST /clients`, `PUT /domains/{id}/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub function: Option<String>,
    pub fault: Fault,
    pub times: Option<u32>,
}

impl FaultRule {
    /// Every function, until cleared.
    pub fn always(fault: Fault) -> Self {
        FaultRule {
            function: None,
            fault,
            times: None,
        }
    }

    /// The next `times` calls of `function`.
    pub fn next(function: &str, fault: Fault, times: u32) -> Self {
        FaultRule {
            function: Some(function.into()),
            fault,
            times: Some(times),
        }
    }
}

/// Rules in injection order; the first that matches wins.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    rules: Vec<FaultRule>,
}

impl FaultSet {
    pub fn push(&mut self, rule: FaultRule) {
        if rule.times != Some(0) {
            self.rules.push(rule);
        }
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn pending(&self) -> Vec<FaultRule> {
        self.rules.clone()
    }

    /// The fault for a call of `function`, using up one of its turns.
    pub fn take(&mut self, function: &str) -> Option<Fault> {
        let i = self
            .rules
            .iter()
            .position(|r| r.function.as_deref().is_none_or(|f| f == function))?;
        let fault = self.rules[i].fault.clone();
        if let Some(n) = self.rules[i].times.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.rules.remove(i);
            }
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_and_counted() {
        let mut set = FaultSet::default();
        set.push(FaultRule::next("createacct", Fault::WrongBody, 2));
        set.push(FaultRule::always(Fault::LoginPage));
        assert_eq!(set.take("createacct"), Some(Fault::WrongBody));
        assert_eq!(set.take("version"), Some(Fault::LoginPage));
        assert_eq!(set.take("createacct"), Some(Fault::WrongBody));
        assert_eq!(set.take("createacct"), Some(Fault::LoginPage));
        set.clear();
        assert_eq!(set.take("createacct"), None);
    }
}
