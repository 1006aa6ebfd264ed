//! Turning component bytes into native code, in this process or in a child
//! process under a time and memory budget.
//!
//! The structural pre-check (`structure.rs`) refuses the obvious bombs; what
//! passes it can still be slow or hungry to compile (cranelift's cost is not
//! a simple function of the counts). A child process can be killed when it
//! takes too long or grows too large, and its memory is returned to the
//! system when it dies, so one upload cannot take the server down.
//!
//! The child is any program that calls [`compile_child_main`]: the `panel1`
//! binary runs it as `panel1 internal compile-component`. It reads the
//! component on stdin, compiles it with an engine built from
//! [`compiler_engine`] (the sandbox's code-generation settings) and writes
//! the serialized artifact on stdout.
use crate::codegen::CodeGen;
use crate::error::SandboxError;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::Engine;

/// How `Sandbox::load*` compiles a component.
#[derive(Clone, Debug, Default)]
pub enum Compiler {
    /// In the calling thread, without a budget: for trusted components
    /// (library users, tests). The structural limits still apply.
    #[default]
    InProcess,
    /// In a child process, killed past its time or memory budget.
    ChildProcess(ChildCompiler),
}

/// The budget of one compile in a child process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileBudget {
    /// Wall-clock time for the whole compile. Default 60 s: the slowest
    /// guest of this project (the 14 MB JS guest) took 26 s on a two-core
    /// machine busy with other builds (a componentize-py guest 22 s).
    pub timeout: Duration,
    /// Resident memory of the compiler process. Default 2 GiB: compiling the
    /// JS guest peaks at 580 MiB of RSS, a componentize-py guest at 555 MiB.
    pub memory_bytes: u64,
    /// Compiles running at once (more wait for a turn, outside the timeout):
    /// each may use `memory_bytes`. Default 2.
    pub max_parallel: usize,
    /// Compiles that may wait for a turn; one more is refused at once as
    /// busy (`SandboxError::Busy`), so a flood of uploads cannot hold every
    /// blocking thread of the process (DNS lookups use them too). Default 8.
    pub max_queued: usize,
}

impl Default for CompileBudget {
    fn default() -> Self {
        CompileBudget {
            timeout: Duration::from_secs(60),
            memory_bytes: 2 << 30,
            max_parallel: 2,
            max_queued: 8,
        }
    }
}

/// Address space the child may have beyond `memory_bytes` (RLIMIT_AS).
/// Thread stacks, the allocator's 1 GiB arena and code mappings are reserved
/// before or without being touched (compiling the JS guest: 1.23 GiB of
/// address space for 580 MiB resident), so the address-space limit is only a
/// backstop for growth faster than the RSS poll; the poll is the bound. The
/// allocator adapts to the limit (the JS guest still reached 450 MiB RSS
/// under a 700 MiB RLIMIT_AS).
const ADDRESS_SPACE_SLACK: u64 = 1 << 30;
/// How often the parent samples the child's RSS.
const POLL: Duration = Duration::from_millis(5);
/// Child exit code for a component the compiler rejected.
pub const EXIT_INVALID: i32 = 3;
/// Child exit code for a failure that is not the component's.
pub const EXIT_INTERNAL: i32 = 70;
/// The child's stderr kept for the error message.
const STDERR_KEEP: u64 = 16 << 10;

/// A child-process compiler: `program args…` must run
/// [`compile_child_main`].
#[derive(Clone, Debug)]
pub struct ChildCompiler {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub budget: CompileBudget,
    slots: Arc<Slots>,
}

impl ChildCompiler {
    pub fn new(program: impl Into<PathBuf>, args: Vec<OsString>, budget: CompileBudget) -> Self {
        let slots = Arc::new(Slots::new(budget.max_parallel.max(1), budget.max_queued));
        ChildCompiler {
            program: program.into(),
            args,
            budget,
            slots,
        }
    }

    /// Compile in a child and load the artifact it wrote.
    pub(crate) fn compile(&self, engine: &Engine, bytes: &[u8]) -> Result<Component, SandboxError> {
        let _turn = self.slots.acquire().ok_or_else(|| {
            SandboxError::Busy(format!(
                "the compiler is busy: {} compiles running and {} waiting; try again shortly",
                self.budget.max_parallel.max(1),
                self.budget.max_queued
            ))
        })?;
        let artifact = self.run_child(bytes)?;
        // SAFETY: the artifact was produced by our own compiler child (this
        // program, `compile_child_main`) from the bytes we gave it, with the
        // sandbox's code-generation settings, and came straight from its
        // stdout pipe; wasmtime still checks that it matches this engine.
        unsafe { Component::deserialize(engine, &artifact) }
            .map_err(|e| internal(format!("loading the compiled artifact: {e:#}")))
    }

    fn run_child(&self, bytes: &[u8]) -> Result<Vec<u8>, SandboxError> {
        let budget = &self.budget;
        let address_space = budget.memory_bytes.saturating_add(ADDRESS_SPACE_SLACK);
        // CPU seconds: a backstop that ends the child even if this process
        // dies without killing it (as does PDEATHSIG).
        let cpu_secs = budget.timeout.as_secs().saturating_mul(4).saturating_add(2);
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            // Its own process group: a kill reaches anything it started,
            // so no pipe stays open behind it.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls (setrlimit, prctl) between
        // fork and exec. PDEATHSIG follows the forking thread, which blocks
        // in `watch` until the child is gone.
        unsafe {
            command.pre_exec(move || {
                set_limit(libc::RLIMIT_AS, address_space)?;
                set_limit(libc::RLIMIT_CPU, cpu_secs)?;
                set_limit(libc::RLIMIT_CORE, 0)?;
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| {
            internal(format!(
                "starting the compiler {}: {e}",
                self.program.display()
            ))
        })?;
        let pid = child.id() as libc::pid_t;
        let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(pid);
            let _ = wait(pid, 0);
            return Err(internal("the compiler's pipes were not set up".into()));
        };
        std::thread::scope(|scope| {
            // A child that dies early closes its stdin: the write fails and
            // the exit status says why.
            scope.spawn(move || {
                let _ = stdin.write_all(bytes);
            });
            let out = scope.spawn(move || {
                let mut buf = Vec::new();
                stdout.read_to_end(&mut buf).map(|_| buf)
            });
            let err = scope.spawn(move || {
                let mut stderr = stderr;
                let mut text = String::new();
                let _ = (&mut stderr).take(STDERR_KEEP).read_to_string(&mut text);
                // Drain the rest, or a chatty child blocks on a full pipe.
                let _ = std::io::copy(&mut stderr, &mut std::io::sink());
                text
            });
            let ended = watch(pid, budget, started);
            if ended.is_err() {
                kill_group(pid);
                // Reap it; the kill makes this immediate.
                let _ = wait(pid, 0);
            }
            let out = out.join();
            let stderr_text = err.join().unwrap_or_default();
            let (status, peak_rss) = ended?;
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                peak_rss_mib = peak_rss >> 20,
                status,
                "compiler child finished"
            );
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                return match out {
                    Ok(Ok(artifact)) => Ok(artifact),
                    _ => Err(internal(
                        "reading the compiled artifact from the compiler".into(),
                    )),
                };
            }
            Err(failure(status, budget, stderr_text.trim()))
        })
    }
}

/// Waits for the child, sampling its RSS, and returns its exit status and
/// the largest RSS seen. It kills nothing itself: an `Err` means the budget
/// ran out and the caller kills it. (The RSS comes from /proc, not from
/// wait4's ru_maxrss, which also counts the parent's memory the child was
/// forked with.)
fn watch(
    pid: libc::pid_t,
    budget: &CompileBudget,
    started: Instant,
) -> Result<(i32, u64), SandboxError> {
    let mut peak = 0;
    loop {
        if let Some(status) = wait(pid, libc::WNOHANG) {
            return Ok((status, peak));
        }
        if started.elapsed() > budget.timeout {
            return Err(SandboxError::InvalidComponent(format!(
                "compile budget: compiling took longer than {}; the compiler was stopped",
                show_duration(budget.timeout)
            )));
        }
        if let Some(rss) = resident_bytes(pid) {
            peak = peak.max(rss);
            if rss > budget.memory_bytes {
                return Err(over_memory(budget));
            }
        }
        std::thread::sleep(POLL);
    }
}

/// SIGKILL to the child's process group (the child itself leads it).
fn kill_group(pid: libc::pid_t) {
    // SAFETY: a plain syscall; the group is the child's own (process_group(0)).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

fn over_memory(budget: &CompileBudget) -> SandboxError {
    SandboxError::InvalidComponent(format!(
        "compile budget: compiling needed more than {} MiB of memory; the compiler was stopped",
        budget.memory_bytes >> 20
    ))
}

/// Why a child that exited on its own failed.
fn failure(status: i32, budget: &CompileBudget, stderr: &str) -> SandboxError {
    // Past its address-space limit the allocator fails and the child
    // aborts ("memory allocation of N bytes failed").
    if stderr.contains("memory allocation of") {
        return over_memory(budget);
    }
    if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        let message = stderr.lines().last().unwrap_or("no message");
        return if code == EXIT_INVALID {
            SandboxError::InvalidComponent(message.to_string())
        } else {
            internal(format!("the compiler exited with code {code}: {message}"))
        };
    }
    let signal = libc::WTERMSIG(status);
    if signal == libc::SIGXCPU {
        return SandboxError::InvalidComponent(format!(
            "compile budget: compiling used more CPU time than allowed (the limit for a {} budget)",
            show_duration(budget.timeout)
        ));
    }
    SandboxError::InvalidComponent(format!(
        "the compiler process crashed (signal {signal}) compiling this component{}",
        if stderr.is_empty() {
            String::new()
        } else {
            format!(": {}", stderr.lines().last().unwrap_or_default())
        }
    ))
}

fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn internal(msg: String) -> SandboxError {
    SandboxError::Internal(msg)
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: a plain syscall on a valid struct.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `waitpid` on one child: its status, or `None` while it runs (with
/// `WNOHANG`).
fn wait(pid: libc::pid_t, flags: libc::c_int) -> Option<i32> {
    let mut status = 0;
    loop {
        // SAFETY: a valid pointer to a local; `pid` is our unreaped child.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            return Some(status);
        }
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

/// Resident set size of a process, from `/proc/<pid>/statm`.
fn resident_bytes(pid: libc::pid_t) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some(pages * page)
}

/// A counting semaphore for blocking threads, with a bounded queue.
#[derive(Debug)]
struct Slots {
    state: Mutex<SlotState>,
    freed: Condvar,
    max_waiting: usize,
}

#[derive(Debug)]
struct SlotState {
    free: usize,
    waiting: usize,
}

struct Turn<'a>(&'a Slots);

impl Slots {
    fn new(n: usize, max_waiting: usize) -> Self {
        Slots {
            state: Mutex::new(SlotState {
                free: n,
                waiting: 0,
            }),
            freed: Condvar::new(),
            max_waiting,
        }
    }

    /// A turn, waiting for one if the queue has room; `None` if it has not.
    fn acquire(&self) -> Option<Turn<'_>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.free == 0 {
            if state.waiting >= self.max_waiting {
                return None;
            }
            state.waiting += 1;
            while state.free == 0 {
                state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            state.waiting -= 1;
        }
        state.free -= 1;
        Some(Turn(self))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner()).free += 1;
        self.0.freed.notify_one();
    }
}

/// An engine with the sandbox's code-generation settings and no instance
/// pool (it only compiles): its artifacts load into a [`crate::Sandbox`].
pub fn compiler_engine(codegen: CodeGen) -> Result<Engine, SandboxError> {
    Engine::new(&crate::codegen::codegen_config(codegen))
        .map_err(|e| internal(format!("creating the compiler engine: {e}")))
}

/// The body of the compiler child: component bytes on stdin, the serialized
/// artifact on stdout. Returns the process exit code: 0, [`EXIT_INVALID`]
/// (the component does not compile; the reason is on stderr) or
/// [`EXIT_INTERNAL`].
pub fn compile_child_main(codegen: CodeGen) -> i32 {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut bytes) {
        eprintln!("reading the component from stdin: {e}");
        return EXIT_INTERNAL;
    }
    let engine = match compiler_engine(codegen) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INTERNAL;
        }
    };
    let artifact = match engine.precompile_component(&bytes) {
        Ok(a) => a,
        Err(e) => {
            // One line: the parent keeps the last line as the reason.
            eprintln!("{}", format!("{e:#}").replace('\n', " "));
            return EXIT_INVALID;
        }
    };
    drop(bytes);
    let mut out = std::io::stdout().lock();
    match out.write_all(&artifact).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("writing the artifact to stdout: {e}");
            EXIT_INTERNAL
        }
    }
}

/// Compile in this process (no budget).
pub(crate) fn compile_in_process(engine: &Engine, bytes: &[u8]) -> Result<Component, SandboxError> {
    Component::from_binary(engine, bytes)
        .map_err(|e| SandboxError::InvalidComponent(format!("{e:#}")))
}
