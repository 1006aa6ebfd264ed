//! Compile bombs against the real binary: `panel1 adapter check` refuses
//! each shape with exit 3 in little time and memory, and a component inside
//! the structural limits that is costly to compile is stopped by the compile
//! budget of its compiler child.
//!
//! Peak RSS is wait4's ru_maxrss: the largest of the process and the
//! children it waited for (its compiler). It also counts the memory a child
//! was forked with, so the runs are serialized, each bomb is generated and
//! dropped before the spawn, and the spawn is a real fork (with `pre_exec`,
//! not vfork, which would pass on this test process's lifetime peak): the
//! figure is then a tight upper bound.

use crate::bombs_kit as bombs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How one `panel1` run ended.
struct Run {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
    /// Largest RSS of the process or any child it waited for (its compiler).
    peak_rss: u64,
}

struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("panel1-bombs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One run at a time (see the module comment).
static SERIAL: Mutex<()> = Mutex::new(());

/// `panel1 adapter check <make()> <args>`, killed past `deadline`.
fn check(make: impl FnOnce() -> Vec<u8>, args: &[&str], deadline: Duration) -> Run {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scratch = Scratch::new();
    let file = scratch.0.join("bomb.wasm");
    std::fs::write(&file, make()).unwrap();
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_panel1"));
    command
        .args(["adapter", "check", file.to_str().unwrap()])
        .args(args)
        .env_remove("PANEL1_COMPILE_TIMEOUT_MS")
        .env_remove("PANEL1_COMPILE_MEMORY_MB")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: nothing runs between fork and exec; the hook only makes std
    // fork instead of vfork.
    unsafe { command.pre_exec(|| Ok(())) };
    // Reaped with wait4 below, for its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = command.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let pid = child.id() as libc::pid_t;
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: zeroed rusage is valid; wait4 on our own unreaped child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("panel1 adapter check still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Run {
        code,
        stderr: reader.join().unwrap(),
        elapsed,
        peak_rss: usage.ru_maxrss as u64 * 1024,
    }
}

const MIB: u64 = 1 << 20;

/// Exit 3 naming `expect`, within `time` and `rss`.
fn assert_refused(run: &Run, expect: &str, time: Duration, rss: u64) {
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(
        run.stderr.contains(expect),
        "expected `{expect}` in: {}",
        run.stderr
    );
    assert!(run.elapsed < time, "took {:?}: {}", run.elapsed, run.stderr);
    assert!(
        run.peak_rss < rss,
        "peak RSS {} MiB: {}",
        run.peak_rss / MIB,
        run.stderr
    );
    eprintln!(
        "exit 3 in {:?}, peak RSS {} MiB: {}",
        run.elapsed,
        run.peak_rss / MIB,
        run.stderr.trim()
    );
}

#[test]
fn every_bomb_shape_exits_3_fast_and_small() {
    type Make = fn() -> Vec<u8>;
    let shapes: Vec<(&str, Make, &str)> = vec![
        (
            "a million empty functions",
            || bombs::empty_functions(1_000_000),
            "functions (all core modules together) is over the limit of 50000",
        ),
        (
            "a million nested blocks",
            || bombs::nested_blocks(1_000_000),
            "a function body's size (bytes) is 3000002",
        ),
        (
            "10 000 nested blocks",
            || bombs::nested_blocks(10_000),
            "control nesting depth in a function is 5001",
        ),
        (
            "a million locals",
            || bombs::many_locals(1_000_000),
            "a function's locals is 1000000",
        ),
        (
            "a 40 MiB data segment",
            || bombs::data(1, 40 << 20),
            "data segment bytes is over the limit",
        ),
        (
            "a 10M-element table",
            || bombs::table(10_000_000),
            "a table's initial size (elements) is 10000000",
        ),
        (
            "a 4 GiB memory minimum",
            || bombs::data(65_536, 0),
            "declared minimum sizes add up to 4294967296 bytes",
        ),
        (
            "1000 core modules",
            || bombs::modules(1_000),
            "core modules is over the limit of 64",
        ),
        (
            "10 000 instances",
            || bombs::instances(10_000),
            "instances is over the limit of 256",
        ),
        (
            "100 000 types",
            || bombs::types(100_000),
            "type definitions is over the limit of 20000",
        ),
        (
            "no adapter export",
            || bombs::no_adapter_export(),
            "does not export the `panel1:provisioning/adapter` interface",
        ),
    ];
    for (what, make, expect) in shapes {
        eprint!("{what}: ");
        let run = check(make, &[], Duration::from_secs(60));
        assert_refused(&run, expect, Duration::from_secs(5), 256 * MIB);
    }
}

/// Inside every structural limit (40 000 functions, 7 MB of code) but
/// seconds of compiling and hundreds of MiB.
fn expensive() -> Vec<u8> {
    bombs::expensive(40_000, 40)
}

#[test]
fn a_costly_compile_is_stopped_by_the_time_budget() {
    let run = check(
        expensive,
        &["--compile-timeout-ms", "300"],
        Duration::from_secs(60),
    );
    assert_refused(
        &run,
        "compile budget: compiling took longer than 300 ms",
        Duration::from_secs(5),
        256 * MIB,
    );
}

#[test]
fn a_costly_compile_is_stopped_by_the_memory_budget() {
    let run = check(
        expensive,
        &["--compile-memory-mb", "64", "--compile-timeout-ms", "60000"],
        Duration::from_secs(90),
    );
    // The child is killed within a poll of passing 64 MiB.
    assert_refused(
        &run,
        "compile budget: compiling needed more than 64 MiB",
        Duration::from_secs(30),
        96 * MIB,
    );
}

#[test]
fn the_budget_comes_from_the_environment_too() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let scratch = Scratch::new();
    let file = scratch.0.join("bomb.wasm");
    std::fs::write(&file, expensive()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_panel1"))
        .args(["adapter", "check", file.to_str().unwrap()])
        .env("PANEL1_COMPILE_TIMEOUT_MS", "250")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("longer than 250 ms"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
