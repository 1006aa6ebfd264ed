//! The `backups` interface of world 0.2.0: its export indices, its inputs
//! as JSON (snake_case, like every operation's) turned into WIT records,
//! one call by index, its results as JSON. A 0.1.0 adapter has no such
//! exports: the host answers `unsupported` for it (the older world adapted
//! to the newer one), without calling the guest.
use crate::bindings::v2::wit_backups as bw;
use crate::bindings::wit;
use crate::call::invoke;
use crate::host_state::HostState;
use crate::output_size::measured;
use crate::payload::{self, status_json, ServiceInput};
use panel1_types::Operation;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use wasmtime::component::{Component, ComponentExportIndex, Instance};
use wasmtime::Store;

/// Export indices of `backups@0.2.0`, resolved once at load.
#[derive(Clone, Copy)]
pub(crate) struct BackupExports {
    operations: ComponentExportIndex,
    create_backup: ComponentExportIndex,
    backup_status: ComponentExportIndex,
    list_backups: ComponentExportIndex,
    delete_backup: ComponentExportIndex,
    restore_backup: ComponentExportIndex,
    export_service: ComponentExportIndex,
    import_service: ComponentExportIndex,
}

impl BackupExports {
    pub fn resolve(component: &Component) -> Option<BackupExports> {
        let iface = component.get_export_index(None, crate::component_check::BACKUPS_EXPORT)?;
        let f = |name: &str| component.get_export_index(Some(&iface), name);
        Some(BackupExports {
            operations: f("operations")?,
            create_backup: f("create-backup")?,
            backup_status: f("backup-status")?,
            list_backups: f("list-backups")?,
            delete_backup: f("delete-backup")?,
            restore_backup: f("restore-backup")?,
            export_service: f("export-service")?,
            import_service: f("import-service")?,
        })
    }
}

/// Where backups go when not on the provider itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationInput {
    kind: String,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupInput {
    service: ServiceInput,
    #[serde(default)]
    destination: Option<DestinationInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupRefInput {
    service: ServiceInput,
    backup_id: String,
    #[serde(default)]
    destination: Option<DestinationInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportInput {
    service: ServiceInput,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferInput {
    kind: String,
    reference: String,
    #[serde(default)]
    details: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportInput {
    service: ServiceInput,
    transfer: TransferInput,
    source_address: String,
    #[serde(default)]
    source_secret: Option<String>,
}

/// One typed call of the `backups` interface.
pub(crate) enum BackupCall {
    Create(bw::BackupRequest),
    Status(bw::BackupRefRequest),
    List(bw::BackupListRequest),
    Delete(bw::BackupRefRequest),
    Restore(bw::BackupRefRequest),
    Export(bw::ExportRequest),
    Import(bw::ImportRequest),
}

fn pairs(m: BTreeMap<String, String>) -> Vec<wit::KeyValue> {
    m.into_iter()
        .map(|(key, value)| wit::KeyValue { key, value })
        .collect()
}

fn destination(d: Option<DestinationInput>) -> Option<bw::BackupDestination> {
    d.map(|d| bw::BackupDestination {
        kind: d.kind,
        settings: pairs(d.settings),
        secret: d.secret,
    })
}

/// The typed call of a `backups` operation (`None` for any other).
pub(crate) fn typed(
    op: Operation,
    input: &Value,
    ctx: wit::CallContext,
) -> Result<Option<BackupCall>, String> {
    let by_ref = |input: &Value, ctx| -> Result<bw::BackupRefRequest, String> {
        let i: BackupRefInput = payload::parse(input)?;
        Ok(bw::BackupRefRequest {
            ctx,
            service: i.service.to_wit(),
            backup_id: i.backup_id,
            destination: destination(i.destination),
        })
    };
    Ok(Some(match op {
        Operation::CreateBackup => {
            let i: BackupInput = payload::parse(input)?;
            BackupCall::Create(bw::BackupRequest {
                ctx,
                service: i.service.to_wit(),
                destination: destination(i.destination),
            })
        }
        Operation::ListBackups => {
            let i: BackupInput = payload::parse(input)?;
            BackupCall::List(bw::BackupListRequest {
                ctx,
                service: i.service.to_wit(),
                destination: destination(i.destination),
            })
        }
        Operation::BackupStatus => BackupCall::Status(by_ref(input, ctx)?),
        Operation::DeleteBackup => BackupCall::Delete(by_ref(input, ctx)?),
        Operation::RestoreBackup => BackupCall::Restore(by_ref(input, ctx)?),
        Operation::ExportService => {
            let i: ExportInput = payload::parse(input)?;
            BackupCall::Export(bw::ExportRequest {
                ctx,
                service: i.service.to_wit(),
            })
        }
        Operation::ImportService => {
            let i: ImportInput = payload::parse(input)?;
            BackupCall::Import(bw::ImportRequest {
                ctx,
                service: i.service.to_wit(),
                transfer: bw::TransferPackage {
                    kind: i.transfer.kind,
                    reference: i.transfer.reference,
                    details: pairs(i.transfer.details),
                },
                source_address: i.source_address,
                source_secret: i.source_secret,
            })
        }
        _ => return Ok(None),
    }))
}

type GuestResult = Result<Value, wit::AdapterError>;
type Answer<T> = (Result<T, wit::AdapterError>,);

/// What the host answers for a `backups` call to a 0.1.0 adapter (which has
/// no such exports), without instantiating it.
pub(crate) fn unsupported_in_v1() -> wit::AdapterError {
    wit::AdapterError::Unsupported(
        "this adapter is built against panel1:provisioning@0.1.0, which has no backups; \
         build it against 0.2.0 to offer backups and moves"
            .into(),
    )
}

/// Run one `backups` call of a 0.2.0 adapter.
pub(crate) async fn dispatch(
    e: BackupExports,
    store: &mut Store<HostState>,
    instance: &Instance,
    call: BackupCall,
    limit: u64,
) -> wasmtime::Result<GuestResult> {
    let (s, i) = (store, instance);
    Ok(match call {
        BackupCall::Create(r) => measured(
            invoke::<_, Answer<bw::BackupInfo>>(s, i, e.create_backup, (&r,))
                .await?
                .0,
            limit,
        )?
        .map(|b| backup_json(&b)),
        BackupCall::Status(r) => measured(
            invoke::<_, Answer<bw::BackupInfo>>(s, i, e.backup_status, (&r,))
                .await?
                .0,
            limit,
        )?
        .map(|b| backup_json(&b)),
        BackupCall::List(r) => measured(
            invoke::<_, Answer<Vec<bw::BackupInfo>>>(s, i, e.list_backups, (&r,))
                .await?
                .0,
            limit,
        )?
        .map(|l| json!({ "items": l.iter().map(backup_json).collect::<Vec<_>>() })),
        BackupCall::Delete(r) => invoke::<_, Answer<()>>(s, i, e.delete_backup, (&r,))
            .await?
            .0
            .map(|()| json!({ "deleted": r.backup_id })),
        BackupCall::Restore(r) => measured(
            invoke::<_, Answer<wit::ServiceStatus>>(s, i, e.restore_backup, (&r,))
                .await?
                .0,
            limit,
        )?
        .map(|st| status_json(&st)),
        BackupCall::Export(r) => measured(
            invoke::<_, Answer<bw::TransferPackage>>(s, i, e.export_service, (&r,))
                .await?
                .0,
            limit,
        )?
        .map(|t| {
            json!({
                "kind": t.kind,
                "reference": t.reference,
                "details": payload::kv_map(&t.details),
            })
        }),
        BackupCall::Import(r) => measured(
            invoke::<_, Answer<wit::ServiceStatus>>(s, i, e.import_service, (&r,))
                .await?
                .0,
            limit,
        )?
        .map(|st| status_json(&st)),
    })
}

/// The `backups` functions a 0.2.0 adapter says it implements (for `info`).
pub(crate) async fn operations(
    exports: BackupExports,
    store: &mut Store<HostState>,
    instance: &Instance,
) -> wasmtime::Result<Vec<&'static str>> {
    let (ops,) =
        invoke::<(), (Vec<bw::BackupOperation>,)>(store, instance, exports.operations, ()).await?;
    Ok(payload::distinct(ops.into_iter().map(operation_name)))
}

fn operation_name(op: bw::BackupOperation) -> &'static str {
    use bw::BackupOperation as B;
    match op {
        B::CreateBackup => Operation::CreateBackup.as_str(),
        B::BackupStatus => Operation::BackupStatus.as_str(),
        B::ListBackups => Operation::ListBackups.as_str(),
        B::DeleteBackup => Operation::DeleteBackup.as_str(),
        B::RestoreBackup => Operation::RestoreBackup.as_str(),
        B::ExportService => Operation::ExportService.as_str(),
        B::ImportService => Operation::ImportService.as_str(),
    }
}

pub(crate) fn backup_json(b: &bw::BackupInfo) -> Value {
    json!({
        "backup_id": b.backup_id,
        "state": match b.state {
            bw::BackupState::Pending => "pending",
            bw::BackupState::Complete => "complete",
            bw::BackupState::Failed => "failed",
        },
        "created_at_ms": b.created_at_ms,
        "size_bytes": b.size_bytes,
        "details": payload::kv_map(&b.details),
    })
}
