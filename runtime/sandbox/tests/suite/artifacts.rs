//! Precompiled artifacts: verified by MAC before deserialize; tampered or
//! foreign artifacts are refused and recompiled.

use crate::support::*;
use panel1_sandbox::{
    ArtifactError, ArtifactKey, ArtifactStore, HostContext, Operation, Sandbox, SandboxConfig,
};
use serde_json::Value;
use std::sync::Arc;

#[tokio::test]
async fn store_verify_load_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::with_key(dir.path(), [7; 32]).unwrap();
    let bytes = component("reference");
    let first = Sandbox::new(SandboxConfig::default()).unwrap();
    let a = first.load_with_artifacts(&bytes, &store).unwrap();
    let key = ArtifactKey::new(first.engine(), first.codegen(), &a.report.sha256);
    assert!(
        store.artifact_path(&key).exists(),
        "artifact written on first load"
    );

    // A new process (sandbox) loads the artifact instead of compiling.
    let second = Sandbox::new(SandboxConfig::default()).unwrap();
    let loaded = store
        .load(second.engine(), second.codegen(), &a.report.sha256)
        .unwrap();
    assert!(loaded.is_some());
    let b = second.load_with_artifacts(&bytes, &store).unwrap();
    let r = second
        .call(
            &b,
            Arc::new(HostContext::default()),
            &request(Operation::Info, Value::Null),
        )
        .await
        .unwrap();
    assert_eq!(ok(&r)["name"], "reference");
}

#[tokio::test]
async fn tampered_artifacts_are_refused_then_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::with_key(dir.path(), [7; 32]).unwrap();
    let bytes = component("reference");
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let a = sandbox.load_with_artifacts(&bytes, &store).unwrap();
    let path = store.artifact_path(&ArtifactKey::new(
        sandbox.engine(),
        sandbox.codegen(),
        &a.report.sha256,
    ));

    let mut art = std::fs::read(&path).unwrap();
    let mid = art.len() / 2;
    art[mid] ^= 0xff;
    std::fs::write(&path, &art).unwrap();
    match store.load(sandbox.engine(), sandbox.codegen(), &a.report.sha256) {
        Err(ArtifactError::BadMac(_)) => {}
        Err(other) => panic!("expected BadMac, got {other}"),
        Ok(_) => panic!("tampered artifact was accepted"),
    }

    // A store with another key does not trust this one's artifacts either.
    std::fs::remove_file(&path).unwrap();
    let fresh = Sandbox::new(SandboxConfig::default()).unwrap();
    fresh.load_with_artifacts(&bytes, &store).unwrap();
    let other_key = ArtifactStore::with_key(dir.path(), [9; 32]).unwrap();
    assert!(matches!(
        other_key.load(fresh.engine(), fresh.codegen(), &a.report.sha256),
        Err(ArtifactError::BadMac(_))
    ));

    // Loading through the store after tampering recompiles and rewrites.
    let mut art = std::fs::read(&path).unwrap();
    art[10] ^= 0x01;
    std::fs::write(&path, &art).unwrap();
    let again = Sandbox::new(SandboxConfig::default()).unwrap();
    again.load_with_artifacts(&bytes, &store).unwrap();
    assert!(
        store
            .load(again.engine(), again.codegen(), &a.report.sha256)
            .unwrap()
            .is_some(),
        "rewritten artifact verifies"
    );
}

#[test]
fn prune_keeps_the_newest_artifacts_within_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::with_key(dir.path(), [7; 32]).unwrap();
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let mut paths = Vec::new();
    for name in ["reference", "spin-loop", "mem-bomb"] {
        let a = sandbox
            .load_with_artifacts(&component(name), &store)
            .unwrap();
        paths.push(store.artifact_path(&ArtifactKey::new(
            sandbox.engine(),
            sandbox.codegen(),
            &a.report.sha256,
        )));
        // Distinct write times, oldest first.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sizes: Vec<u64> = paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    // Room for the newest two only.
    let removed = store.prune(sizes[1] + sizes[2]).unwrap();
    assert_eq!(removed, sizes[0]);
    assert!(!paths[0].exists() && !paths[0].with_extension("mac").exists());
    assert!(paths[1].exists() && paths[2].exists());
    // Within the cap: nothing more goes.
    assert_eq!(store.prune(u64::MAX).unwrap(), 0);
    assert!(paths[1].exists() && paths[2].exists());
}

/// The reference adapter with a custom section appended: the same code
/// under another content hash.
fn variant(i: u8) -> Vec<u8> {
    let mut bytes = component("reference");
    // Section id 0 (custom), 3 bytes: a 1-byte name "x" and one byte.
    bytes.extend_from_slice(&[0, 3, 1, b'x', i]);
    bytes
}

#[test]
fn compiled_adapters_kept_for_reuse_are_bounded_least_recently_used_first() {
    let s = Sandbox::new(SandboxConfig {
        max_cached_adapters: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    let one = s.load(&variant(1)).unwrap();
    let two = s.load(&variant(2)).unwrap();
    // A hit returns the kept adapter and makes it the most recently used.
    assert!(Arc::ptr_eq(&one, &s.load(&variant(1)).unwrap()));
    s.load(&variant(3)).unwrap();
    assert_eq!(s.cached_adapters(), 2);
    assert!(
        Arc::ptr_eq(&one, &s.load(&variant(1)).unwrap()),
        "the recently used one was evicted"
    );
    assert!(
        !Arc::ptr_eq(&two, &s.load(&variant(2)).unwrap()),
        "the least recently used one was kept"
    );
    assert_eq!(s.cached_adapters(), 2);
}
