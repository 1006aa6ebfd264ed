//! What the suite reports: the named checks, one row per check (pass, FAIL
//! with the reason, skipped with why), a component's rows with its summary,
//! and how they are printed (a table, or JSON).
use super::provider::Provider;
use serde::Serialize;
use serde_json::{json, Value};

/// Every check of the suite, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    Info,
    TestConnection,
    ProvisionIdempotent,
    LostAnswer,
    SuspendTwice,
    UnsuspendTwice,
    TerminateTwice,
    TerminateUnknown,
    WrongCredential,
    ServerError,
    RateLimited,
    EgressDenied,
    NoSecretInOutput,
    Deadline,
}

impl Check {
    pub const ALL: [Check; 14] = [
        Check::Info,
        Check::TestConnection,
        Check::ProvisionIdempotent,
        Check::LostAnswer,
        Check::SuspendTwice,
        Check::UnsuspendTwice,
        Check::TerminateTwice,
        Check::TerminateUnknown,
        Check::WrongCredential,
        Check::ServerError,
        Check::RateLimited,
        Check::EgressDenied,
        Check::NoSecretInOutput,
        Check::Deadline,
    ];

    /// The stable name (JSON `id`).
    pub fn id(self) -> &'static str {
        match self {
            Check::Info => "info",
            Check::TestConnection => "test-connection",
            Check::ProvisionIdempotent => "provision-idempotent",
            Check::LostAnswer => "lost-answer",
            Check::SuspendTwice => "suspend-twice",
            Check::UnsuspendTwice => "unsuspend-twice",
            Check::TerminateTwice => "terminate-twice",
            Check::TerminateUnknown => "terminate-unknown",
            Check::WrongCredential => "wrong-credential",
            Check::ServerError => "server-error",
            Check::RateLimited => "rate-limited",
            Check::EgressDenied => "egress-denied",
            Check::NoSecretInOutput => "no-secret-in-output",
            Check::Deadline => "deadline",
        }
    }

    /// The number in the suite's description (docs/adapters.md).
    pub fn number(self) -> &'static str {
        match self {
            Check::Info => "1",
            Check::TestConnection => "2",
            Check::ProvisionIdempotent => "3",
            Check::LostAnswer => "4",
            Check::SuspendTwice => "5a",
            Check::UnsuspendTwice => "5b",
            Check::TerminateTwice => "5c",
            Check::TerminateUnknown => "5d",
            Check::WrongCredential => "6",
            Check::ServerError => "7a",
            Check::RateLimited => "7b",
            Check::EgressDenied => "8",
            Check::NoSecretInOutput => "9",
            Check::Deadline => "10",
        }
    }

    /// What is expected, in a few words.
    pub fn title(self) -> &'static str {
        match self {
            Check::Info => "info names itself, lists operations, a valid config schema",
            Check::TestConnection => "test-connection succeeds",
            Check::ProvisionIdempotent => {
                "provision, then attempt 2 with the same key: one account"
            }
            Check::LostAnswer => {
                "an answer lost after the provider applied it, then a retry: one account"
            }
            Check::SuspendTwice => "suspend twice: both succeed",
            Check::UnsuspendTwice => "unsuspend twice: both succeed",
            Check::TerminateTwice => "terminate twice: both succeed, status is terminated",
            Check::TerminateUnknown => "terminate a service that never existed: succeeds",
            Check::WrongCredential => "a wrong credential: auth-failed (not retried)",
            Check::ServerError => "HTTP 503: transient",
            Check::RateLimited => "HTTP 429 with Retry-After: 7: transient, retry after ~7000 ms",
            Check::EgressDenied => "egress denied: permanent, nothing reached the provider",
            Check::NoSecretInOutput => "no secret value in any report of the run",
            Check::Deadline => {
                "a provider slower than the call's deadline: transient before the host stops it"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Skipped,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Skipped => "skipped",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Row {
    pub check: Check,
    pub verdict: Verdict,
    pub detail: String,
}

impl Row {
    pub fn pass(check: Check, detail: impl Into<String>) -> Row {
        Row {
            check,
            verdict: Verdict::Pass,
            detail: detail.into(),
        }
    }

    pub fn fail(check: Check, detail: impl Into<String>) -> Row {
        Row {
            check,
            verdict: Verdict::Fail,
            detail: detail.into(),
        }
    }

    pub fn skip(check: Check, why: impl Into<String>) -> Row {
        Row {
            check,
            verdict: Verdict::Skipped,
            detail: why.into(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "number": self.check.number(),
            "id": self.check.id(),
            "title": self.check.title(),
            "result": self.verdict,
            "detail": self.detail,
        })
    }
}

/// How the provider profile was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ProviderSource {
    #[serde(rename = "--provider")]
    Flag,
    #[serde(rename = "info().name")]
    InfoName,
}

/// Everything the suite found about one component.
#[derive(Debug, Clone)]
pub struct ComponentResult {
    pub file: String,
    /// `(name, version)` from `info`, when it answered.
    pub adapter: Option<(String, String)>,
    pub provider: Option<(Provider, ProviderSource)>,
    /// Why there is no profile, when there is none.
    pub no_profile: Option<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}

impl ComponentResult {
    pub fn counts(&self) -> Counts {
        let n = |v| self.rows.iter().filter(|r| r.verdict == v).count();
        Counts {
            passed: n(Verdict::Pass),
            failed: n(Verdict::Fail),
            skipped: n(Verdict::Skipped),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "file": self.file,
            "adapter": self.adapter.as_ref().map(|(n, v)| json!({"name": n, "version": v})),
            "provider": self.provider.map(|(p, _)| p.name()),
            "provider_from": self.provider.map(|(_, s)| s),
            "no_profile": self.no_profile,
            "checks": self.rows.iter().map(Row::json).collect::<Vec<_>>(),
            "summary": self.counts(),
        })
    }

    /// The table a person reads: a heading, one line per check, a summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let adapter = match &self.adapter {
            Some((name, version)) => format!("adapter `{name}` {version}"),
            None => "adapter unknown (`info` failed)".to_string(),
        };
        let provider = match (&self.provider, &self.no_profile) {
            (Some((p, ProviderSource::Flag)), _) => format!("provider {} (--provider)", p.name()),
            (Some((p, ProviderSource::InfoName)), _) => {
                format!("provider {} (from info().name)", p.name())
            }
            (None, Some(why)) => format!("no provider profile: {why}"),
            (None, None) => "no provider profile".to_string(),
        };
        out.push_str(&format!("{}: {adapter}, {provider}\n", self.file));
        let width = Check::ALL.iter().map(|c| c.id().len()).max().unwrap_or(0);
        out.push_str(&format!(
            "  {:<3} {:<width$}  {:<7}  detail\n",
            "#", "check", "result"
        ));
        for row in &self.rows {
            let detail = row.detail.replace(['\n', '\r'], " ");
            out.push_str(&format!(
                "  {:<3} {:<width$}  {:<7}  {detail}\n",
                row.check.number(),
                row.check.id(),
                row.verdict.label(),
            ));
        }
        let c = self.counts();
        out.push_str(&format!(
            "  summary: {} passed, {} failed, {} skipped\n",
            c.passed, c.failed, c.skipped
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_has_a_distinct_id_and_number() {
        let ids: std::collections::BTreeSet<_> = Check::ALL.iter().map(|c| c.id()).collect();
        let numbers: std::collections::BTreeSet<_> =
            Check::ALL.iter().map(|c| c.number()).collect();
        assert_eq!(ids.len(), Check::ALL.len());
        assert_eq!(numbers.len(), Check::ALL.len());
    }

    #[test]
    fn the_table_counts_its_rows() {
        let result = ComponentResult {
            file: "x.wasm".into(),
            adapter: Some(("x".into(), "1.0.0".into())),
            provider: None,
            no_profile: Some("none for `x`".into()),
            rows: vec![
                Row::pass(Check::Info, "fine"),
                Row::fail(Check::TestConnection, "broken\nbadly"),
                Row::skip(Check::Deadline, "why"),
            ],
        };
        let table = result.table();
        assert!(table.contains("FAIL"), "{table}");
        assert!(table.contains("broken badly"), "{table}");
        assert!(table.contains("1 passed, 1 failed, 1 skipped"), "{table}");
        assert_eq!(result.json()["checks"][1]["result"], "fail");
    }
}
