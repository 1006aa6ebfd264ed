use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The operations an adapter runs, named as in the WIT: those of the
/// `adapter` interface (every world version), then those of `backups`
/// (world 0.2.0; a 0.1.0 adapter answers `unsupported` for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Info,
    TestConnection,
    Provision,
    Suspend,
    Unsuspend,
    Terminate,
    Status,
    ChangePackage,
    ChangePassword,
    ListServices,
    Usage,
    LoginUrl,
    CreateBackup,
    BackupStatus,
    ListBackups,
    DeleteBackup,
    RestoreBackup,
    ExportService,
    ImportService,
}

impl Operation {
    pub const ALL: [Operation; 19] = [
        Operation::Info,
        Operation::TestConnection,
        Operation::Provision,
        Operation::Suspend,
        Operation::Unsuspend,
        Operation::Terminate,
        Operation::Status,
        Operation::ChangePackage,
        Operation::ChangePassword,
        Operation::ListServices,
        Operation::Usage,
        Operation::LoginUrl,
        Operation::CreateBackup,
        Operation::BackupStatus,
        Operation::ListBackups,
        Operation::DeleteBackup,
        Operation::RestoreBackup,
        Operation::ExportService,
        Operation::ImportService,
    ];

    /// The WIT name (`test-connection`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Info => "info",
            Operation::TestConnection => "test-connection",
            Operation::Provision => "provision",
            Operation::Suspend => "suspend",
            Operation::Unsuspend => "unsuspend",
            Operation::Terminate => "terminate",
            Operation::Status => "status",
            Operation::ChangePackage => "change-package",
            Operation::ChangePassword => "change-password",
            Operation::ListServices => "list-services",
            Operation::Usage => "usage",
            Operation::LoginUrl => "login-url",
            Operation::CreateBackup => "create-backup",
            Operation::BackupStatus => "backup-status",
            Operation::ListBackups => "list-backups",
            Operation::DeleteBackup => "delete-backup",
            Operation::RestoreBackup => "restore-backup",
            Operation::ExportService => "export-service",
            Operation::ImportService => "import-service",
        }
    }

    /// An operation of the `backups` interface (world 0.2.0).
    pub fn is_backup(self) -> bool {
        matches!(
            self,
            Operation::CreateBackup
                | Operation::BackupStatus
                | Operation::ListBackups
                | Operation::DeleteBackup
                | Operation::RestoreBackup
                | Operation::ExportService
                | Operation::ImportService
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an operation an adapter runs.
#[derive(Debug, thiserror::Error)]
#[error("unknown operation `{0}`; expected one of: {names}", names = Operation::ALL.map(Operation::as_str).join(", "))]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == s || op.as_str().replace('-', "_") == s)
            .ok_or_else(|| UnknownOperation(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(op.as_str().parse::<Operation>().unwrap(), op);
        }
        assert!("drop-tables".parse::<Operation>().is_err());
    }
}
