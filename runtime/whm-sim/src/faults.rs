//! Injected faults: how a real WHM (or what sits in front of it) misbehaves.

use std::time::Duration;

/// One way to misbehave. Faults apply to authenticated `/json-api/` requests.
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
    /// Answer in WHM API 0's format, as if `api.version=1` had been dropped;
    /// nothing applied.
    Api0,
    /// Answer 200 with the HTML login page (an expired session); nothing
    /// applied.
    LoginPage,
}

/// A fault, optionally limited to one function and to the next `times`
/// matching requests (`None`: until cleared).
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
        set.push(FaultRule::next("createacct", Fault::Api0, 2));
        set.push(FaultRule::always(Fault::LoginPage));
        assert_eq!(set.take("createacct"), Some(Fault::Api0));
        assert_eq!(set.take("version"), Some(Fault::LoginPage));
        assert_eq!(set.take("createacct"), Some(Fault::Api0));
        assert_eq!(set.take("createacct"), Some(Fault::LoginPage));
        set.clear();
        assert_eq!(set.take("createacct"), None);
    }
}
