//! Precompiled artifacts: native code produced by `Engine::precompile`,
//! stored under the component's content hash and the engine's compatibility
//! hash, with a keyed BLAKE3 MAC beside it. Deserializing means running
//! native code from disk, so an artifact is only ever loaded after its MAC
//! verifies; a missing or tampered artifact is recompiled from the source
//! bytes.
//!
//! Threat model: the MAC protects against artifacts altered at rest or
//! copied in from elsewhere. The directory must still be writable only by the
//! host user (a concurrent writer with that user's rights is out of scope).
use crate::codegen::CodeGen;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact I/O at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("artifact key: {0}")]
    Key(String),
    #[error("artifact {0} failed MAC verification (tampered or written with another key)")]
    BadMac(PathBuf),
    #[error("artifact {path} could not be loaded: {reason}")]
    Load { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where an artifact lives: content hash + engine compatibility hash (which
/// does not tell Cranelift's code from Winch's: the compiler is hashed in
/// too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactKey {
    pub content_sha256: String,
    pub engine_hash: String,
}

impl ArtifactKey {
    pub fn new(engine: &Engine, codegen: CodeGen, content_sha256: &str) -> Self {
        // DefaultHasher::new() uses fixed keys: stable for a given build,
        // which is all the compatibility hash needs.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        codegen.hash(&mut h);
        ArtifactKey {
            content_sha256: content_sha256.to_string(),
            engine_hash: format!("{:016x}", h.finish()),
        }
    }
    fn stem(&self) -> String {
        format!("{}-{}", self.content_sha256, self.engine_hash)
    }
}

pub struct ArtifactStore {
    dir: PathBuf,
    key: [u8; 32],
}

impl ArtifactStore {
    /// Open (creating) a store. The MAC key comes from `PANEL1_ARTIFACT_KEY`
    /// (64 hex digits) or, failing that, `<dir>/artifact.key`, generated on
    /// first use with mode 0600.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ArtifactError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        restrict(&dir, 0o700)?;
        let key = match std::env::var("PANEL1_ARTIFACT_KEY") {
            Ok(hexkey) => parse_key(hexkey.trim())?,
            Err(_) => key_file(&dir.join("artifact.key"))?,
        };
        Ok(ArtifactStore { dir, key })
    }

    /// A store with an explicit key (tests, embedding).
    pub fn with_key(dir: impl Into<PathBuf>, key: [u8; 32]) -> Result<Self, ArtifactError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(ArtifactStore { dir, key })
    }

    pub fn artifact_path(&self, key: &ArtifactKey) -> PathBuf {
        self.dir.join(format!("{}.cwasm", key.stem()))
    }

    fn mac_path(&self, key: &ArtifactKey) -> PathBuf {
        self.dir.join(format!("{}.mac", key.stem()))
    }

    /// MAC over the name and the bytes, so an artifact cannot be moved under
    /// another component's name either.
    fn mac_file(&self, key: &ArtifactKey, path: &Path) -> Result<[u8; 32], ArtifactError> {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(key.stem().as_bytes());
        h.update(b"\n");
        h.update_mmap_rayon(path).map_err(io(path))?;
        Ok(*h.finalize().as_bytes())
    }

    /// Precompile and write an artifact (atomically: temp file + rename).
    pub fn store(
        &self,
        engine: &Engine,
        codegen: CodeGen,
        content_sha256: &str,
        component: &Component,
    ) -> Result<PathBuf, ArtifactError> {
        let key = ArtifactKey::new(engine, codegen, content_sha256);
        let path = self.artifact_path(&key);
        let bytes = component.serialize().map_err(|e| ArtifactError::Load {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = unique_tmp(&path);
        write_private(&tmp, &bytes)?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        let mac = self.mac_file(&key, &path)?;
        let mac_path = self.mac_path(&key);
        let tmp = unique_tmp(&mac_path);
        write_private(&tmp, hex::encode(mac).as_bytes())?;
        fs::rename(&tmp, &mac_path).map_err(io(&mac_path))?;
        Ok(path)
    }

    /// Load a verified artifact (memory-mapped), `None` if there is none for
    /// this engine, `BadMac` if it does not verify.
    pub fn load(
        &self,
        engine: &Engine,
        codegen: CodeGen,
        content_sha256: &str,
    ) -> Result<Option<Component>, ArtifactError> {
        let key = ArtifactKey::new(engine, codegen, content_sha256);
        let path = self.artifact_path(&key);
        let mac_path = self.mac_path(&key);
        if !path.exists() || !mac_path.exists() {
            return Ok(None);
        }
        let expected = fs::read_to_string(&mac_path).map_err(io(&mac_path))?;
        let expected =
            hex::decode(expected.trim()).map_err(|_| ArtifactError::BadMac(path.clone()))?;
        let actual = self.mac_file(&key, &path)?;
        if !constant_time_eq(&expected, &actual) {
            return Err(ArtifactError::BadMac(path));
        }
        // SAFETY: the bytes were produced by `Component::serialize` with an
        // engine of the same compatibility hash (it is in the name) and the
        // MAC proves they are the bytes this host wrote.
        let component = unsafe { Component::deserialize_file(engine, &path) }.map_err(|e| {
            ArtifactError::Load {
                path: path.clone(),
                reason: format!("{e:#}"),
            }
        })?;
        Ok(Some(component))
    }
}

impl ArtifactStore {
    /// Keep at most `max_bytes` of artifacts: the oldest written go first
    /// (with their MACs). For a developer's cache, which would otherwise
    /// grow by one artifact per edit. Returns the bytes removed.
    pub fn prune(&self, max_bytes: u64) -> Result<u64, ArtifactError> {
        let mut artifacts = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))?.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "cwasm") {
                continue;
            }
            if let Ok(meta) = entry.metadata() {
                let written = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                artifacts.push((written, meta.len(), path));
            }
        }
        let mut total: u64 = artifacts.iter().map(|a| a.1).sum();
        artifacts.sort();
        let mut removed = 0;
        for (_, len, path) in artifacts {
            if total <= max_bytes {
                break;
            }
            // Another process may have removed it already.
            let _ = fs::remove_file(path.with_extension("mac"));
            if fs::remove_file(&path).is_ok() {
                removed += len;
            }
            total -= len;
        }
        Ok(removed)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_key(hexkey: &str) -> Result<[u8; 32], ArtifactError> {
    let bytes = hex::decode(hexkey)
        .map_err(|_| ArtifactError::Key("PANEL1_ARTIFACT_KEY must be 64 hex digits".into()))?;
    bytes.try_into().map_err(|_| {
        ArtifactError::Key("PANEL1_ARTIFACT_KEY must be 32 bytes (64 hex digits)".into())
    })
}

/// Written under a temporary name and hard-linked into place, so two
/// processes starting at once on one data directory cannot both win or read
/// a half-written key.
fn key_file(path: &Path) -> Result<[u8; 32], ArtifactError> {
    if let Ok(text) = fs::read_to_string(path) {
        return parse_key(text.trim());
    }
    let mut key = [0u8; 32];
    let mut urandom = fs::File::open("/dev/urandom").map_err(io(Path::new("/dev/urandom")))?;
    std::io::Read::read_exact(&mut urandom, &mut key).map_err(io(Path::new("/dev/urandom")))?;
    let tmp = unique_tmp(path);
    write_private(&tmp, hex::encode(key).as_bytes())?;
    let published = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match published {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(path).map_err(io(path))?;
            parse_key(text.trim())
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// A temporary name beside `path` that no other process or thread uses:
/// processes sharing the directory may write the same file at once.
fn unique_tmp(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let mut f = fs::File::create(path).map_err(io(path))?;
    restrict(path, 0o600)?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> Result<(), ArtifactError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> Result<(), ArtifactError> {
    Ok(())
}
