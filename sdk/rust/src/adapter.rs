use crate::errors::unsupported;
use crate::*;

/// A provisioning adapter. Only `info` is required; every other operation
/// answers `unsupported` until you implement it. Operations are "ensure"
/// operations: repeating one after a success (or a timeout) must succeed
/// without doing the work twice; `req.ctx.idempotency_key` is stable across
/// retries.
pub trait Adapter {
    fn info() -> AdapterInfo;

    fn test_connection(_req: TestRequest) -> Result<ConnectionInfo, AdapterError> {
        Err(unsupported("test-connection"))
    }
    fn provision(_req: ProvisionRequest) -> Result<ServiceStatus, AdapterError> {
        Err(unsupported("provision"))
    }
    fn suspend(_req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        Err(unsupported("suspend"))
    }
    fn unsuspend(_req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        Err(unsupported("unsuspend"))
    }
    fn terminate(_req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        Err(unsupported("terminate"))
    }
    fn status(_req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        Err(unsupported("status"))
    }
    fn change_package(_req: ChangePackageRequest) -> Result<ServiceStatus, AdapterError> {
        Err(unsupported("change-package"))
    }
    fn change_password(_req: ChangePasswordRequest) -> Result<ServiceStatus, AdapterError> {
        Err(unsupported("change-password"))
    }
    fn list_services(_req: ListRequest) -> Result<ServicePage, AdapterError> {
        Err(unsupported("list-services"))
    }
    fn usage(_req: ServiceRequest) -> Result<UsageReport, AdapterError> {
        Err(unsupported("usage"))
    }
    fn login_url(_req: ServiceRequest) -> Result<LoginLink, AdapterError> {
        Err(unsupported("login-url"))
    }

    // World 0.2.0 (`panel1-sdk-v2`): backups and moves.

    /// The backup functions this adapter implements (shown by `info`).
    #[cfg(panel1_world_v2)]
    fn backup_operations() -> Vec<BackupOperation> {
        Vec::new()
    }
    #[cfg(panel1_world_v2)]
    fn create_backup(_req: BackupRequest) -> Result<BackupInfo, AdapterError> {
        Err(unsupported("create-backup"))
    }
    #[cfg(panel1_world_v2)]
    fn backup_status(_req: BackupRefRequest) -> Result<BackupInfo, AdapterError> {
        Err(unsupported("backup-status"))
    }
    #[cfg(panel1_world_v2)]
    fn list_backups(_req: BackupListRequest) -> Result<Vec<BackupInfo>, AdapterError> {
        Err(unsupported("list-backups"))
    }
    #[cfg(panel1_world_v2)]
    fn delete_backup(_req: BackupRefRequest) -> Result<(), AdapterError> {
        Err(unsupported("delete-backup"))
    }
    #[cfg(panel1_world_v2)]
    fn restore_backup(_req: BackupRefRequest) -> Result<ServiceStatus, AdapterError> {
        Err(unsupported("restore-backup"))
    }
    #[cfg(panel1_world_v2)]
    fn export_service(_req: ExportRequest) -> Result<TransferPackage, AdapterError> {
        Err(unsupported("export-service"))
    }
    #[cfg(panel1_world_v2)]
    fn import_service(_req: ImportRequest) -> Result<ServiceStatus, AdapterError> {
        Err(unsupported("import-service"))
    }
}

impl AdapterInfo {
    /// An info record with a name and version and everything else empty.
    pub fn named(name: &str, version: &str) -> AdapterInfo {
        AdapterInfo {
            name: name.to_string(),
            version: version.to_string(),
            description: String::new(),
            operations: Vec::new(),
            config_schema: "{}".to_string(),
            egress: Vec::new(),
            secrets: Vec::new(),
        }
    }
}

impl ServiceStatus {
    /// A status with only the remote id and state set.
    pub fn new(remote_id: impl Into<String>, state: RemoteState) -> ServiceStatus {
        ServiceStatus {
            remote_id: remote_id.into(),
            state,
            plan: None,
            domain: None,
            details: Vec::new(),
        }
    }
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}
