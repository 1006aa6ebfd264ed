//! The whole process stays within a hostile call's limits: `panel1 adapter
//! run --memory-mb 32` of each host-memory attack (the `host-hoard` fixture)
//! peaks at most 64 MiB above the same command running a call that does
//! nothing, measured on the real binary as a child process (its peak RSS
//! from `wait4`).
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const MIB: u64 = 1 << 20;

fn component(name: &str) -> String {
    let dir = std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `just adapters` first",
        path.display()
    );
    path.display().to_string()
}

struct Run {
    code: Option<i32>,
    peak_rss: u64,
    stdout: String,
}

/// Run `panel1 args…` and read its peak RSS (and its children's) from
/// `wait4`'s resource usage.
// Reaped by `wait4` below, which `Child::wait` cannot replace (no rusage).
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[String]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_panel1"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run panel1");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 fills it for our own
    // child, which `child` never waits for itself afterwards.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    let status = std::process::ExitStatus::from_raw(status);
    Run {
        code: status.code(),
        peak_rss: usage.ru_maxrss as u64 * 1024,
        stdout,
    }
}

fn hoard_args(params: &str, extra: &[&str]) -> Vec<String> {
    let input = format!(r#"{{"service":{{"service_id":"s1","params":{params}}}}}"#);
    let mut args: Vec<String> = [
        "adapter",
        "run",
        &component("host-hoard"),
        "--op",
        "provision",
        "--input",
        &input,
        "--memory-mb",
        "32",
        "--timeout-ms",
        "30000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A loopback server answering every request with `bytes` bytes.
fn big_server(bytes: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {bytes}\r\n\r\n");
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&vec![b'x'; bytes]);
            });
        }
    });
    port
}

#[test]
fn host_memory_attacks_stay_within_the_call_budget_in_process_rss() {
    // The same command, with an attack that stops at once: the baseline
    // (binary, engine, compiled component, one instance).
    let base = run_measured(&hoard_args(r#"{"mode":"fields","count":"0"}"#, &[]));
    assert_eq!(base.code, Some(0), "baseline: {}", base.stdout);
    let bound = base.peak_rss + 64 * MIB;

    let port = big_server(4 << 20);
    let url = format!("http://127.0.0.1:{port}/big");
    let allow = format!("http://127.0.0.1:{port}");
    let attacks: Vec<(String, Vec<&str>)> = vec![
        (r#"{"mode":"fields","value_kb":"60"}"#.into(), vec![]),
        (r#"{"mode":"requests"}"#.into(), vec![]),
        (r#"{"mode":"bodies"}"#.into(), vec![]),
        (
            format!(r#"{{"mode":"responses","url":"{url}","count":"64"}}"#),
            vec!["--allow", &allow],
        ),
    ];
    for (params, extra) in &attacks {
        let r = run_measured(&hoard_args(params, extra));
        eprintln!(
            "{params}: peak RSS {} MiB (baseline {} MiB)",
            r.peak_rss / MIB,
            base.peak_rss / MIB
        );
        assert_eq!(r.code, Some(2), "{params}: {}", r.stdout);
        assert!(
            r.stdout.contains("memory-limit") && r.stdout.contains("host side"),
            "{params}: {}",
            r.stdout
        );
        assert!(
            r.peak_rss <= bound,
            "{params}: peak RSS {} MiB, baseline {} MiB, bound {} MiB",
            r.peak_rss / MIB,
            base.peak_rss / MIB,
            bound / MIB
        );
    }

    // `info` listing one operation 12 million times (12 MB in the guest):
    // refused as over the output cap before any of it becomes JSON, where
    // converting it as returned peaked at 724 MB RSS (31 MB without it).
    let ops = run_measured(&[
        "adapter".to_string(),
        "run".into(),
        component("output-bomb"),
        "--op".into(),
        "info".into(),
        "--config".into(),
        "mode=info-ops".into(),
        "--memory-mb".into(),
        "32".into(),
    ]);
    eprintln!("info-ops: peak RSS {} MiB", ops.peak_rss / MIB);
    assert_eq!(ops.code, Some(2), "info-ops: {}", ops.stdout);
    assert!(
        ops.stdout.contains("invalid-output") && ops.stdout.contains("as returned"),
        "info-ops: {}",
        ops.stdout
    );
    assert!(
        ops.peak_rss <= bound,
        "info-ops: peak RSS {} MiB, bound {} MiB",
        ops.peak_rss / MIB,
        bound / MIB
    );

    // 5 000 denied requests with 60 KB URLs: bounded records, small output.
    let denied = run_measured(&hoard_args(
        r#"{"mode":"denied","url":"http://127.0.0.1:9/nope/","count":"5000"}"#,
        &[],
    ));
    assert!(
        denied.peak_rss <= bound,
        "denied: {} MiB",
        denied.peak_rss / MIB
    );
    assert!(
        denied.stdout.len() < 2 << 20,
        "denied: the report is {} bytes",
        denied.stdout.len()
    );
}
