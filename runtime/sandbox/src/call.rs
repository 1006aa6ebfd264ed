//! One operation call: a fresh store from the cached `InstancePre`, limits
//! armed, the typed export invoked, every failure mapped to a kind.
use crate::bindings::wit;
use crate::egress::scanner::SecretScanner;
use crate::egress::{EgressShared, HttpExchange};
use crate::error::SandboxError;
use crate::host_budget::{HostBudget, HostMemoryExceeded};
use crate::host_state::{HostContext, HostState};
use crate::limiter::MemoryLimitExceeded;
use crate::loader::{AdapterExports, LoadedAdapter};
use crate::log_buffer::{LogBuffer, LogEntry, LogLevel};
use crate::output_size::{self, OutputTooLarge, ReturnedSize};
use crate::payload::{self, *};
use panel1_types::{AdapterErrorKind, CallMetrics, Operation};
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Instance, Lift, Lower, TypedFunc,
};
use wasmtime::{Store, Trap};

/// What to run.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub operation: Operation,
    /// Operation input as JSON (see `payload`); `null` for none.
    pub input: Value,
    /// Stable across retries (the task id).
    pub idempotency_key: String,
    pub attempt: u32,
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    /// The adapter succeeded; its result as JSON.
    Ok { result: Value },
    /// The adapter returned a typed error.
    AdapterError {
        kind: AdapterErrorKind,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// The sandbox stopped the call (limit, trap, invalid output).
    SandboxError {
        kind: panel1_types::SandboxErrorKind,
        message: String,
    },
}

/// Everything recorded about one call.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport {
    pub outcome: Outcome,
    pub metrics: CallMetrics,
    pub log: Vec<LogEntry>,
    pub http: Vec<HttpExchange>,
}

impl CallReport {
    pub fn sandbox_error(&self) -> Option<&Outcome> {
        matches!(self.outcome, Outcome::SandboxError { .. }).then_some(&self.outcome)
    }
}

/// The input did not match the operation's shape; nothing ran.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid input for `{operation}`: {message}")]
pub struct InputError {
    pub operation: Operation,
    pub message: String,
}

pub(crate) enum Typed {
    Info,
    Test(wit::TestRequest),
    Provision(wit::ProvisionRequest),
    Service(Operation, wit::ServiceRequest),
    ChangePackage(wit::ChangePackageRequest),
    ChangePassword(wit::ChangePasswordRequest),
    List(wit::ListRequest),
    Backup(crate::call_backups::BackupCall),
}

pub(crate) fn typed(req: &CallRequest, deadline_ms: u64) -> Result<Typed, InputError> {
    let ctx = wit::CallContext {
        idempotency_key: req.idempotency_key.clone(),
        attempt: req.attempt.max(1),
        deadline_ms,
    };
    let err = |message: String| InputError {
        operation: req.operation,
        message,
    };
    Ok(match req.operation {
        Operation::Info => {
            payload::parse::<EmptyInput>(&req.input).map_err(err)?;
            Typed::Info
        }
        Operation::TestConnection => {
            payload::parse::<EmptyInput>(&req.input).map_err(err)?;
            Typed::Test(wit::TestRequest { ctx })
        }
        Operation::Provision => {
            let i: ProvisionInput = payload::parse(&req.input).map_err(err)?;
            Typed::Provision(wit::ProvisionRequest {
                ctx,
                service: i.service.to_wit(),
                password_secret: i.password_secret,
            })
        }
        Operation::Suspend
        | Operation::Unsuspend
        | Operation::Terminate
        | Operation::Status
        | Operation::Usage
        | Operation::LoginUrl => {
            let i: ServiceOpInput = payload::parse(&req.input).map_err(err)?;
            Typed::Service(
                req.operation,
                wit::ServiceRequest {
                    ctx,
                    service: i.service.to_wit(),
                    reason: i.reason,
                },
            )
        }
        Operation::ChangePackage => {
            let i: ChangePackageInput = payload::parse(&req.input).map_err(err)?;
            Typed::ChangePackage(wit::ChangePackageRequest {
                ctx,
                service: i.service.to_wit(),
                plan: i.plan,
            })
        }
        Operation::ChangePassword => {
            let i: ChangePasswordInput = payload::parse(&req.input).map_err(err)?;
            Typed::ChangePassword(wit::ChangePasswordRequest {
                ctx,
                service: i.service.to_wit(),
                password_secret: i.password_secret,
            })
        }
        Operation::ListServices => {
            let i: ListInput = payload::parse(&req.input).map_err(err)?;
            Typed::List(wit::ListRequest {
                ctx,
                cursor: i.cursor,
                limit: i.limit,
            })
        }
        // The `backups` interface (world 0.2.0).
        op => match crate::call_backups::typed(op, &req.input, ctx).map_err(err)? {
            Some(call) => Typed::Backup(call),
            None => return Err(err(format!("`{op}` is not an operation adapters run"))),
        },
    })
}

type GuestResult = Result<Value, wit::AdapterError>;

/// An answer as JSON, measured first (see [`crate::output_size`]).
fn map_ok<T: ReturnedSize>(
    limit: u64,
    r: Result<T, wit::AdapterError>,
    f: impl Fn(&T) -> Value,
) -> Result<GuestResult, OutputTooLarge> {
    Ok(output_size::measured(r, limit)?.map(|v| f(&v)))
}

/// Call one export by its resolved index.
pub(crate) async fn invoke<P, R>(
    store: &mut Store<HostState>,
    instance: &Instance,
    index: ComponentExportIndex,
    params: P,
) -> wasmtime::Result<R>
where
    P: ComponentNamedList + Lower + Send + Sync,
    R: ComponentNamedList + Lift + Send + Sync + 'static,
{
    let func = instance
        .get_func(&mut *store, index)
        .ok_or_else(|| wasmtime::format_err!("adapter export missing from the instance"))?;
    // SAFETY: `Sandbox::finish_load` type-checked every adapter export
    // against its world (`ProvisioningPre::new`, for 0.2.0 the `v2` one),
    // with exactly the parameter and result types used at each call site
    // (here and in `call_backups`).
    let typed = unsafe { TypedFunc::<P, R>::new_unchecked(func) };
    typed.call_async(&mut *store, params).await
}

async fn dispatch(
    e: AdapterExports,
    instance: &Instance,
    store: &mut Store<HostState>,
    call: Typed,
) -> wasmtime::Result<GuestResult> {
    type Status = (Result<wit::ServiceStatus, wit::AdapterError>,);
    let limit = store.data().context.limits.max_output_bytes;
    let s = &mut *store;
    let i = instance;
    Ok(match call {
        Typed::Info => {
            let (info,) = invoke::<(), (wit::AdapterInfo,)>(s, i, e.info, ()).await?;
            output_size::check(&info, limit)?;
            let mut json = info_json(&info);
            // A 0.2.0 adapter lists its `backups` functions beside.
            if let Some(b) = e.backups {
                let more = crate::call_backups::operations(b, s, i).await?;
                if let Some(ops) = json["operations"].as_array_mut() {
                    ops.extend(more.into_iter().map(Value::from));
                }
            }
            Ok(json)
        }
        Typed::Backup(c) => match e.backups {
            Some(b) => crate::call_backups::dispatch(b, s, i, c, limit).await?,
            None => Err(crate::call_backups::unsupported_in_v1()),
        },
        Typed::Test(r) => {
            let (res,) = invoke::<_, (Result<wit::ConnectionInfo, wit::AdapterError>,)>(
                s,
                i,
                e.test_connection,
                (&r,),
            )
            .await?;
            map_ok(limit, res, connection_json)?
        }
        Typed::Provision(r) => map_ok(
            limit,
            invoke::<_, Status>(s, i, e.provision, (&r,)).await?.0,
            status_json,
        )?,
        Typed::Service(op, r) => {
            let index = match op {
                Operation::Suspend => e.suspend,
                Operation::Unsuspend => e.unsuspend,
                Operation::Terminate => e.terminate,
                Operation::Status => e.status,
                Operation::Usage => {
                    let (res,) = invoke::<_, (Result<wit::UsageReport, wit::AdapterError>,)>(
                        s,
                        i,
                        e.usage,
                        (&r,),
                    )
                    .await?;
                    return Ok(map_ok(limit, res, usage_json)?);
                }
                _ => {
                    let (res,) = invoke::<_, (Result<wit::LoginLink, wit::AdapterError>,)>(
                        s,
                        i,
                        e.login_url,
                        (&r,),
                    )
                    .await?;
                    return Ok(map_ok(limit, res, login_json)?);
                }
            };
            map_ok(
                limit,
                invoke::<_, Status>(s, i, index, (&r,)).await?.0,
                status_json,
            )?
        }
        Typed::ChangePackage(r) => map_ok(
            limit,
            invoke::<_, Status>(s, i, e.change_package, (&r,)).await?.0,
            status_json,
        )?,
        Typed::ChangePassword(r) => map_ok(
            limit,
            invoke::<_, Status>(s, i, e.change_password, (&r,)).await?.0,
            status_json,
        )?,
        Typed::List(r) => {
            let (res,) = invoke::<_, (Result<wit::ServicePage, wit::AdapterError>,)>(
                s,
                i,
                e.list_services,
                (&r,),
            )
            .await?;
            map_ok(limit, res, page_json)?
        }
    })
}

fn adapter_error(e: wit::AdapterError) -> Outcome {
    let (kind, message, retry_after_ms) = match e {
        wit::AdapterError::InvalidInput(m) => (AdapterErrorKind::InvalidInput, m, None),
        wit::AdapterError::AuthFailed(m) => (AdapterErrorKind::AuthFailed, m, None),
        wit::AdapterError::NotFound(m) => (AdapterErrorKind::NotFound, m, None),
        wit::AdapterError::Conflict(m) => (AdapterErrorKind::Conflict, m, None),
        wit::AdapterError::Transient(t) => {
            (AdapterErrorKind::Transient, t.message, t.retry_after_ms)
        }
        wit::AdapterError::Permanent(m) => (AdapterErrorKind::Permanent, m, None),
        wit::AdapterError::Unsupported(m) => (AdapterErrorKind::Unsupported, m, None),
    };
    Outcome::AdapterError {
        kind,
        message,
        retry_after_ms,
    }
}

/// Map a wasmtime error from instantiation or the call to a typed kind.
fn classify(e: &wasmtime::Error, budget: u64, timeout_ms: u64, log: &LogBuffer) -> SandboxError {
    if let Some(too_large) = e.downcast_ref::<OutputTooLarge>() {
        return SandboxError::InvalidOutput(too_large.to_string());
    }
    if let Some(host) = e.downcast_ref::<HostMemoryExceeded>() {
        return SandboxError::HostMemoryLimit(host.clone());
    }
    if let Some(limit) = e.downcast_ref::<MemoryLimitExceeded>() {
        return SandboxError::MemoryLimit {
            limit: limit.limit,
            requested: limit.requested,
        };
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => SandboxError::OutOfFuel { budget },
            Trap::Interrupt => SandboxError::Deadline { timeout_ms },
            Trap::StackOverflow => {
                SandboxError::GuestTrap("stack overflow: the guest exhausted its call stack".into())
            }
            Trap::UnreachableCodeReached => {
                // A Rust guest's panic message reaches the log through the
                // SDK's panic hook (or stderr), then the guest aborts.
                let panic = log
                    .entries()
                    .into_iter()
                    .rev()
                    .find(|e| e.source != "host" && e.message.contains("panicked"))
                    .map(|e| e.message.trim().to_string());
                match panic {
                    Some(msg) => SandboxError::GuestTrap(format!("guest panicked: {msg}")),
                    None => SandboxError::GuestTrap(
                        "guest executed `unreachable` (abort or panic)".into(),
                    ),
                }
            }
            other => SandboxError::GuestTrap(other.to_string()),
        };
    }
    let text = format!("{e:#}");
    let lower = text.to_ascii_lowercase();
    let lifting = [
        "utf-8",
        "utf8",
        "discriminant",
        "out of bounds",
        "out-of-bounds",
        "realloc",
        "unaligned",
        "invalid",
    ];
    if lifting.iter().any(|w| lower.contains(w)) {
        SandboxError::InvalidOutput(format!("the guest returned malformed data: {text}"))
    } else {
        SandboxError::GuestTrap(text)
    }
}

pub(crate) struct CallEnv<'a> {
    pub engine: &'a wasmtime::Engine,
    pub resolver: Arc<dyn crate::egress::resolver::Resolver>,
    pub tls: Arc<rustls::ClientConfig>,
    pub epoch_tick: Duration,
    pub tape: Option<crate::egress::tape::HttpTape>,
}

pub(crate) async fn run(
    env: CallEnv<'_>,
    adapter: &LoadedAdapter,
    context: Arc<HostContext>,
    req: &CallRequest,
) -> Result<CallReport, InputError> {
    let limits = context.limits.clone();
    let started = Instant::now();
    let deadline = started + limits.timeout();
    let typed_call = typed(req, limits.timeout_ms)?;

    // Built once per call: every encoded form of every secret of the call.
    let scanner = Arc::new(SecretScanner::new(&context.secrets));
    let log = LogBuffer::new(limits.log_max_bytes, scanner.clone());
    let budget = HostBudget::new(limits.host_memory_budget());
    let mut egress = EgressShared::new(
        context.clone(),
        env.resolver,
        env.tls,
        deadline,
        log.clone(),
        budget.clone(),
        scanner.clone(),
    );
    egress.tape = env.tape;
    let egress = Arc::new(egress);
    let mut store = Store::new(
        env.engine,
        HostState::new(context, log.clone(), egress.clone()),
    );
    store.limiter(|s| &mut s.limiter);
    let fuel_ok = store.set_fuel(limits.fuel).is_ok();
    crate::checkpoints::arm(&mut store, deadline);

    // The checkpoints stop wasm code; this timeout stops host calls (HTTP)
    // that would otherwise keep the call alive past its deadline, and the
    // budget's signal stops a guest blocked in a host wait once a response
    // it is owed has put the call over its host budget.
    let run = async {
        // A 0.1.0 adapter has no `backups`: the host answers, nothing runs.
        if matches!(typed_call, Typed::Backup(_)) && adapter.exports.backups.is_none() {
            return Ok(Err(crate::call_backups::unsupported_in_v1()));
        }
        let instance = adapter.pre.instantiate_async(&mut store).await?;
        dispatch(adapter.exports, &instance, &mut store, typed_call).await
    };
    let result = tokio::time::timeout(limits.timeout() + env.epoch_tick * 2, async {
        tokio::select! {
            r = run => r,
            _ = budget.wait_exceeded() => Err(budget
                .exceeded()
                .map(wasmtime::Error::from)
                .unwrap_or_else(|| wasmtime::format_err!("host budget signalled without a cause"))),
        }
    })
    .await;

    let outcome = match result {
        Err(_elapsed) => Outcome::from(SandboxError::Deadline {
            timeout_ms: limits.timeout_ms,
        }),
        Ok(Err(e)) => Outcome::from(classify(&e, limits.fuel, limits.timeout_ms, &log)),
        Ok(Ok(Err(adapter_err))) => {
            capped_error(adapter_error(adapter_err), limits.max_output_bytes)
        }
        Ok(Ok(Ok(value))) => {
            let size = json_size(&value);
            if size > limits.max_output_bytes {
                Outcome::from(SandboxError::InvalidOutput(format!(
                    "the result is {size} bytes, over the limit of {} bytes",
                    limits.max_output_bytes
                )))
            } else {
                Outcome::Ok { result: value }
            }
        }
    };
    if let Outcome::SandboxError { kind, message } = &outcome {
        log.push_final(
            LogLevel::Error,
            &format!("call stopped: {message}"),
            vec![("kind".into(), kind.to_string())],
        );
    }

    let remaining = if fuel_ok {
        store.get_fuel().unwrap_or(0)
    } else {
        limits.fuel
    };
    let metrics = CallMetrics {
        fuel_consumed: limits.fuel.saturating_sub(remaining),
        wall_us: started.elapsed().as_micros() as u64,
        peak_memory_bytes: store.data().limiter.peak_total,
        peak_host_memory_bytes: budget.peak(),
        http_requests: egress.counters.requests.load(Ordering::Relaxed),
        http_denied: egress.counters.denied.load(Ordering::Relaxed),
        http_bytes_sent: egress.counters.bytes_sent.load(Ordering::Relaxed),
        http_bytes_received: egress.counters.bytes_received.load(Ordering::Relaxed),
        log_bytes_dropped: log.dropped_bytes(),
        trap_kind: match &outcome {
            Outcome::SandboxError { kind, .. } => Some(kind.to_string()),
            _ => None,
        },
    };
    drop(store);
    let mut report = CallReport {
        outcome,
        metrics,
        log: log.entries(),
        http: egress.exchanges(),
    };
    // Output scan: no secret leaves the sandbox in what the call reports.
    crate::redact::redact_report(&scanner, &mut report);
    Ok(report)
}

/// A typed error's message is output like a result: over the cap the call
/// ends with `invalid-output` and the message is not kept.
fn capped_error(outcome: Outcome, max: u64) -> Outcome {
    match &outcome {
        Outcome::AdapterError { message, .. } if message.len() as u64 > max => {
            Outcome::from(SandboxError::InvalidOutput(format!(
                "the error message is {} bytes, over the limit of {max} bytes",
                message.len()
            )))
        }
        _ => outcome,
    }
}

/// The size of `v` encoded as JSON, give or take escapes: cheap enough to
/// run on every result (serializing it would cost more than small calls).
fn json_size(v: &Value) -> u64 {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 20,
        Value::String(s) => s.len() as u64 + 2,
        Value::Array(a) => 2 + a.iter().map(|x| json_size(x) + 1).sum::<u64>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, x)| k.len() as u64 + 4 + json_size(x))
                .sum::<u64>()
        }
    }
}

impl From<SandboxError> for Outcome {
    fn from(e: SandboxError) -> Outcome {
        Outcome::SandboxError {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}
