use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The operations of the `adapter` interface, named as in the WIT.
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
}

impl Operation {
    pub const ALL: [Operation; 12] = [
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
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an operation of the adapter interface.
#[derive(Debug, thiserror::Error)]
#[error("unknown operation `{0}`; expected one of: info, test-connection, provision, suspend, unsuspend, terminate, status, change-package, change-password, list-services, usage, login-url")]
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
