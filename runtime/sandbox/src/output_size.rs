//! A guest's answer is measured as it returned it, before it becomes JSON.
//! Turning a list into JSON costs the host far more per element than the
//! guest paid: a one-byte enum becomes a `Value::String`, an empty
//! key-value pair a map entry with two allocations (tens of host bytes per
//! guest byte). So the output cap (`max_output_bytes`) is applied here first,
//! counting every element the guest returned at the JSON size it would
//! have, and an answer over it is refused before any conversion.
use crate::bindings::v2::wit_backups as bw;
use crate::bindings::wit;

/// An answer over the output cap, found before conversion.
#[derive(Debug, thiserror::Error)]
#[error("the result as returned is at least {size} bytes, over the limit of {limit} bytes")]
pub struct OutputTooLarge {
    pub size: u64,
    pub limit: u64,
}

/// The JSON size an answer would have, element by element (at least).
pub(crate) trait ReturnedSize {
    fn returned_size(&self) -> u64;
}

/// `Ok` when `value` fits `limit`.
pub(crate) fn check<T: ReturnedSize>(value: &T, limit: u64) -> Result<(), OutputTooLarge> {
    let size = value.returned_size();
    if size > limit {
        return Err(OutputTooLarge { size, limit });
    }
    Ok(())
}

/// The answer, if it fits `limit` as the guest returned it (errors pass).
pub(crate) fn measured<T: ReturnedSize, E>(
    r: Result<T, E>,
    limit: u64,
) -> Result<Result<T, E>, OutputTooLarge> {
    if let Ok(v) = &r {
        check(v, limit)?;
    }
    Ok(r)
}

fn text(s: &str) -> u64 {
    s.len() as u64 + 2
}

fn opt(s: &Option<String>) -> u64 {
    s.as_deref().map_or(4, text)
}

fn list<T: ReturnedSize>(items: &[T]) -> u64 {
    2 + items.iter().map(|x| x.returned_size() + 1).sum::<u64>()
}

/// `"key": "value",` (a detail, a label).
impl ReturnedSize for wit::KeyValue {
    fn returned_size(&self) -> u64 {
        text(&self.key) + text(&self.value) + 2
    }
}

impl ReturnedSize for String {
    fn returned_size(&self) -> u64 {
        text(self)
    }
}

impl ReturnedSize for wit::Operation {
    fn returned_size(&self) -> u64 {
        // The shortest name ("usage", "status") and its quotes.
        7
    }
}

impl ReturnedSize for bw::BackupOperation {
    fn returned_size(&self) -> u64 {
        7
    }
}

impl ReturnedSize for wit::AdapterInfo {
    fn returned_size(&self) -> u64 {
        text(&self.name)
            + text(&self.version)
            + text(&self.description)
            + list(&self.operations)
            + text(&self.config_schema)
            + list(&self.egress)
            + list(&self.secrets)
    }
}

impl ReturnedSize for wit::ServiceStatus {
    fn returned_size(&self) -> u64 {
        // The five keys and the state's name.
        40 + text(&self.remote_id) + opt(&self.plan) + opt(&self.domain) + list(&self.details)
    }
}

impl ReturnedSize for wit::ServicePage {
    fn returned_size(&self) -> u64 {
        list(&self.items) + opt(&self.next_cursor)
    }
}

impl ReturnedSize for wit::ConnectionInfo {
    fn returned_size(&self) -> u64 {
        text(&self.server_version) + list(&self.details)
    }
}

impl ReturnedSize for wit::Metric {
    fn returned_size(&self) -> u64 {
        // Three keys and a number.
        20 + text(&self.name) + text(&self.unit)
    }
}

impl ReturnedSize for wit::UsageReport {
    fn returned_size(&self) -> u64 {
        text(&self.remote_id) + list(&self.metrics)
    }
}

impl ReturnedSize for wit::LoginLink {
    fn returned_size(&self) -> u64 {
        text(&self.url)
    }
}

impl ReturnedSize for bw::BackupInfo {
    fn returned_size(&self) -> u64 {
        40 + text(&self.backup_id) + list(&self.details)
    }
}

impl ReturnedSize for Vec<bw::BackupInfo> {
    fn returned_size(&self) -> u64 {
        list(self)
    }
}

impl ReturnedSize for bw::TransferPackage {
    fn returned_size(&self) -> u64 {
        text(&self.kind) + text(&self.reference) + list(&self.details)
    }
}

impl ReturnedSize for () {
    fn returned_size(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_returned_element_counts_even_where_json_would_merge_them() {
        let status = wit::ServiceStatus {
            remote_id: String::new(),
            state: wit::RemoteState::Active,
            plan: None,
            domain: None,
            details: vec![
                wit::KeyValue {
                    key: String::new(),
                    value: String::new(),
                };
                1000
            ],
        };
        // 1000 empty pairs are one JSON key, but the guest returned 1000.
        assert!(status.returned_size() >= 6 * 1000);
        assert!(check(&status, 1 << 20).is_ok());
        let err = check(&status, 1000).unwrap_err();
        assert!(
            err.to_string().contains("over the limit of 1000 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_million_operations_are_over_a_one_mib_cap() {
        let info = wit::AdapterInfo {
            name: "x".into(),
            version: "1".into(),
            description: String::new(),
            operations: vec![wit::Operation::Status; 1_000_000],
            config_schema: String::new(),
            egress: vec![],
            secrets: vec![],
        };
        assert!(check(&info, 1 << 20).is_err());
    }
}
