//! World 0.2.0's `backups` records (only in `panel1-sdk-v2`). Implement the
//! backup functions of [`crate::Adapter`] and list them in
//! `backup_operations`; the others answer `unsupported`.
pub use crate::bindings::panel1::provisioning::backup_types::{
    BackupDestination, BackupInfo, BackupListRequest, BackupOperation, BackupRefRequest,
    BackupRequest, BackupState, ExportRequest, ImportRequest, TransferPackage,
};

impl BackupInfo {
    /// A backup with its id, state and time, size and details unknown.
    pub fn new(backup_id: impl Into<String>, state: BackupState, created_at_ms: u64) -> BackupInfo {
        BackupInfo {
            backup_id: backup_id.into(),
            state,
            created_at_ms,
            size_bytes: None,
            details: Vec::new(),
        }
    }
}
