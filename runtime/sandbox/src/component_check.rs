//! Validation at load, before compiling: the bytes are a component, it
//! exports the adapter interface of a supported world version, and every
//! import is one the host provides (read from the binary by the structural
//! pass in `structure.rs`). The capabilities it needs are reported to the
//! operator. The types behind the names are checked after compiling, when
//! the component is linked and its adapter exports are resolved.
use crate::error::SandboxError;
use crate::structure::ComponentStructure;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// World versions this host can run (`wit/<version>/`).
pub const SUPPORTED_WORLD_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// The version of the host capabilities and of the `adapter` interface in
/// every world: 0.2.0 takes them from 0.1.0 unchanged.
const BASE_VERSION: &str = "0.1.0";

/// What makes a component a 0.2.0 adapter: it also exports `backups`.
pub const BACKUPS_EXPORT: &str = "panel1:provisioning/backups@0.2.0";

/// What a component asks of the host, derived from its imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Outbound HTTP (`wasi:http/outgoing-handler`), under the egress policy.
    Http,
    /// Secret placeholders (`panel1:provisioning/secrets`).
    Secrets,
    /// Secret plaintext (`secrets-reveal`): must also be granted.
    SecretsReveal,
    Config,
    Log,
    /// stdout/stderr, captured into the operation log.
    Stdio,
    /// Clocks and randomness.
    ClocksRandom,
    /// Filesystem interfaces: linked, but no directory is ever preopened.
    FilesystemNone,
    /// Socket interfaces: linked, every socket operation is denied.
    SocketsDenied,
    /// Environment/arguments/exit: linked, environment is empty.
    Environment,
}

/// The `adapter check` report.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentReport {
    pub world_version: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    pub capabilities: Vec<Capability>,
}

impl ComponentReport {
    pub fn needs(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A cheap check before handing bytes to the compiler.
pub fn ensure_component_bytes(bytes: &[u8]) -> Result<(), SandboxError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(SandboxError::InvalidComponent(
            "not a WebAssembly binary (missing the \\0asm magic number)".into(),
        ));
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(SandboxError::InvalidComponent(
            "this is a core WebAssembly module, not a component; build for wasm32-wasip2 or run `wasm-tools component new`".into(),
        )),
        _ => Err(SandboxError::InvalidComponent("unknown WebAssembly binary version/layer".into())),
    }
}

/// Interfaces the host links, by package; any version 0.2.x of WASI.
const WASI_PROVIDED: &[(&str, &[&str])] = &[
    ("wasi:io", &["error", "poll", "streams"]),
    ("wasi:clocks", &["monotonic-clock", "wall-clock"]),
    ("wasi:random", &["random", "insecure", "insecure-seed"]),
    (
        "wasi:cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("wasi:filesystem", &["types", "preopens"]),
    (
        "wasi:sockets",
        &[
            "network",
            "instance-network",
            "udp",
            "udp-create-socket",
            "tcp",
            "tcp-create-socket",
            "ip-name-lookup",
        ],
    ),
    ("wasi:http", &["types", "outgoing-handler"]),
];

const PANEL1_PROVIDED: &[&str] = &["types", "secrets", "secrets-reveal", "config", "log"];

/// `ns:pkg/iface@ver` → (`ns:pkg`, `iface`, `ver`).
fn split_name(name: &str) -> Option<(&str, &str, &str)> {
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let (pkg, iface) = path.split_once('/')?;
    Some((pkg, iface, version))
}

fn capability_of(import: &str, world_version: &str) -> Result<Option<Capability>, String> {
    let Some((pkg, iface, version)) = split_name(import) else {
        return Err(format!(
            "imports `{import}`, which is not an interface the host provides"
        ));
    };
    if pkg == "panel1:provisioning" {
        // 0.2.0's records for `backups` (types only, nothing to link).
        if iface == "backup-types" && version == "0.2.0" && world_version == "0.2.0" {
            return Ok(None);
        }
        if version != BASE_VERSION || !PANEL1_PROVIDED.contains(&iface) {
            return Err(format!(
                "imports `{import}`, which the host does not provide (world version {world_version} provides {})",
                PANEL1_PROVIDED.join(", ")
            ));
        }
        return Ok(match iface {
            "secrets" => Some(Capability::Secrets),
            "secrets-reveal" => Some(Capability::SecretsReveal),
            "config" => Some(Capability::Config),
            "log" => Some(Capability::Log),
            _ => None,
        });
    }
    let known = WASI_PROVIDED
        .iter()
        .find(|(p, _)| *p == pkg)
        .is_some_and(|(_, ifaces)| ifaces.contains(&iface));
    if !known || !version.starts_with("0.2.") {
        return Err(format!(
            "imports `{import}`, which the host does not provide (the host provides panel1:provisioning and WASI 0.2 io, clocks, random, cli, filesystem, sockets and http/outgoing-handler)"
        ));
    }
    Ok(Some(match (pkg, iface) {
        ("wasi:http", _) => Capability::Http,
        ("wasi:cli", i) if i.starts_with("std") || i.starts_with("terminal") => Capability::Stdio,
        ("wasi:cli", _) => Capability::Environment,
        ("wasi:filesystem", _) => Capability::FilesystemNone,
        ("wasi:sockets", _) => Capability::SocketsDenied,
        ("wasi:clocks" | "wasi:random", _) => Capability::ClocksRandom,
        _ => return Ok(None),
    }))
}

/// A component's world, checked: what it exports and imports, and the
/// capabilities its imports ask for.
#[derive(Debug, Clone)]
pub struct World {
    pub world_version: String,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    pub capabilities: Vec<Capability>,
}

impl World {
    /// The `adapter check` report of the component `bytes` with this world.
    pub fn report(self, bytes: &[u8]) -> ComponentReport {
        ComponentReport {
            world_version: self.world_version,
            sha256: sha256_hex(bytes),
            size_bytes: bytes.len() as u64,
            exports: self.exports,
            imports: self.imports,
            capabilities: self.capabilities,
        }
    }
}

/// The world version of a component that exports `adapter@0.1.0`: 0.2.0
/// when it also exports `backups@0.2.0`; a `backups` of another version is
/// refused by name.
fn world_of(exports: &[String]) -> Result<String, SandboxError> {
    if exports.iter().any(|e| e == BACKUPS_EXPORT) {
        return Ok("0.2.0".into());
    }
    if let Some(other) = exports
        .iter()
        .find(|e| e.starts_with("panel1:provisioning/backups@"))
    {
        return Err(SandboxError::InvalidComponent(format!(
            "exports {other}, but this host runs {BACKUPS_EXPORT} (world versions {})",
            SUPPORTED_WORLD_VERSIONS.join(", ")
        )));
    }
    Ok(BASE_VERSION.into())
}

/// Check the top-level exports and imports of a component (before it is
/// compiled).
pub fn check_world(structure: ComponentStructure) -> Result<World, SandboxError> {
    let ComponentStructure {
        exports, imports, ..
    } = structure;
    let adapter_versions: Vec<&str> = exports
        .iter()
        .filter_map(|e| e.strip_prefix("panel1:provisioning/adapter@"))
        .collect();
    let world_version = match adapter_versions.iter().find(|v| **v == BASE_VERSION) {
        Some(_) => world_of(&exports)?,
        None if !adapter_versions.is_empty() => {
            return Err(SandboxError::InvalidComponent(format!(
                "exports panel1:provisioning/adapter@{}, but this host runs adapter@{BASE_VERSION} (the `adapter` interface of world versions {})",
                adapter_versions.join(", @"),
                SUPPORTED_WORLD_VERSIONS.join(", ")
            )))
        }
        None => {
            return Err(SandboxError::InvalidComponent(format!(
                "does not export the `panel1:provisioning/adapter` interface (it exports: {})",
                if exports.is_empty() {
                    "nothing".to_string()
                } else {
                    exports.join(", ")
                }
            )))
        }
    };
    let mut capabilities = Vec::new();
    for import in &imports {
        match capability_of(import, &world_version) {
            Ok(Some(cap)) if !capabilities.contains(&cap) => capabilities.push(cap),
            Ok(_) => {}
            Err(msg) => return Err(SandboxError::InvalidComponent(msg)),
        }
    }
    capabilities.sort();
    Ok(World {
        world_version,
        exports,
        imports,
        capabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_version_follows_the_backups_export() {
        let ex = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let adapter = "panel1:provisioning/adapter@0.1.0";
        assert_eq!(world_of(&ex(&[adapter])).unwrap(), "0.1.0");
        assert_eq!(world_of(&ex(&[adapter, BACKUPS_EXPORT])).unwrap(), "0.2.0");
        let err = world_of(&ex(&[adapter, "panel1:provisioning/backups@0.3.0"])).unwrap_err();
        assert!(err.to_string().contains("backups@0.3.0"), "{err}");
    }

    #[test]
    fn classifies_imports() {
        assert_eq!(
            capability_of("wasi:http/outgoing-handler@0.2.10", "0.1.0"),
            Ok(Some(Capability::Http))
        );
        assert_eq!(
            capability_of("wasi:cli/stderr@0.2.3", "0.1.0"),
            Ok(Some(Capability::Stdio))
        );
        assert_eq!(
            capability_of("wasi:cli/environment@0.2.3", "0.1.0"),
            Ok(Some(Capability::Environment))
        );
        assert_eq!(
            capability_of("panel1:provisioning/secrets-reveal@0.1.0", "0.1.0"),
            Ok(Some(Capability::SecretsReveal))
        );
        let err = capability_of("evil:extras/raw-sockets@0.1.0", "0.1.0").unwrap_err();
        assert!(err.contains("evil:extras/raw-sockets@0.1.0"));
        assert!(capability_of("wasi:http/incoming-handler@0.2.0", "0.1.0").is_err());
        assert!(capability_of("wasi:keyvalue/store@0.2.0", "0.1.0").is_err());
        assert!(capability_of("panel1:provisioning/log@0.2.0", "0.1.0").is_err());
        // 0.2.0 keeps the 0.1.0 capabilities; only its type-only interface
        // is new, and only in a 0.2.0 world.
        assert_eq!(
            capability_of("panel1:provisioning/log@0.1.0", "0.2.0"),
            Ok(Some(Capability::Log))
        );
        assert!(capability_of("panel1:provisioning/log@0.2.0", "0.2.0").is_err());
        assert_eq!(
            capability_of("panel1:provisioning/backup-types@0.2.0", "0.2.0"),
            Ok(None)
        );
        assert!(capability_of("panel1:provisioning/backup-types@0.2.0", "0.1.0").is_err());
    }

    #[test]
    fn rejects_non_components() {
        assert!(ensure_component_bytes(b"hello world").is_err());
        let core = b"\0asm\x01\0\0\0";
        let e = ensure_component_bytes(core).unwrap_err();
        assert!(e.to_string().contains("core WebAssembly module"));
        assert!(ensure_component_bytes(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
