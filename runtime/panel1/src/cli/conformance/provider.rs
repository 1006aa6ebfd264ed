//! The providers the simulator family covers, and which one an adapter is
//! for when `--provider` does not say.
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// cPanel's WHM API 1.
    #[value(alias = "cpanel")]
    Whm,
    /// Plesk's REST API v2.
    Plesk,
    /// The Docker Engine API over mutual TLS.
    Docker,
    /// A Kubernetes API server.
    #[value(alias = "kube")]
    Kubernetes,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Whm => "whm",
            Provider::Plesk => "plesk",
            Provider::Docker => "docker",
            Provider::Kubernetes => "kubernetes",
        }
    }

    /// The profile for an adapter by the name its `info` gives.
    pub fn for_adapter(name: &str) -> Option<Provider> {
        match name.trim().to_ascii_lowercase().as_str() {
            "cpanel" | "whm" => Some(Provider::Whm),
            "plesk" => Some(Provider::Plesk),
            "docker" => Some(Provider::Docker),
            "kubernetes" | "kube" => Some(Provider::Kubernetes),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_map_to_their_provider() {
        assert_eq!(Provider::for_adapter("cpanel"), Some(Provider::Whm));
        assert_eq!(Provider::for_adapter("Plesk"), Some(Provider::Plesk));
        assert_eq!(Provider::for_adapter("docker"), Some(Provider::Docker));
        assert_eq!(
            Provider::for_adapter("kubernetes"),
            Some(Provider::Kubernetes)
        );
        assert_eq!(Provider::for_adapter("reference"), None);
    }
}
