use super::OPERATIONS_SCHEMA;
use crate::bindings::v2::wit_backups as bw;
use crate::bindings::wit;
use crate::call::{typed, CallRequest};
use crate::payload;
use panel1_types::Operation;
use serde_json::{json, Value};

fn document() -> Value {
    serde_json::from_str(OPERATIONS_SCHEMA).expect("the schema is JSON")
}

/// A validator for one `$defs` entry of the document.
fn validator(def: &str) -> jsonschema::Validator {
    let mut doc = document();
    assert!(doc["$defs"].get(def).is_some(), "no $defs/{def}");
    doc["$ref"] = json!(format!("#/$defs/{def}"));
    jsonschema::validator_for(&doc).unwrap_or_else(|e| panic!("$defs/{def}: {e}"))
}

fn kv(k: &str, v: &str) -> wit::KeyValue {
    wit::KeyValue {
        key: k.into(),
        value: v.into(),
    }
}

fn status() -> wit::ServiceStatus {
    wit::ServiceStatus {
        remote_id: "alice".into(),
        state: wit::RemoteState::Suspended,
        plan: None,
        domain: Some("alice.example.com".into()),
        details: vec![kv("ip", "10.0.0.1")],
    }
}

#[test]
fn every_operation_has_an_input_and_an_output_shape() {
    let doc = document();
    assert_eq!(
        doc["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    for op in Operation::ALL {
        validator(&format!("{op}.input"));
        validator(&format!("{op}.output"));
    }
}

/// Accepted by the schema exactly when the sandbox's parser accepts it.
#[test]
fn the_input_schemas_agree_with_the_parser() {
    let svc = json!({"service_id": "s1", "username": "alice", "params": {"k": "v"}});
    let cases: Vec<(Operation, Value)> = vec![
        (Operation::Info, Value::Null),
        (Operation::Info, json!({})),
        (Operation::Info, json!({"x": 1})),
        (Operation::TestConnection, json!({"service": svc})),
        (Operation::Provision, json!({"service": svc})),
        (
            Operation::Provision,
            json!({"service": svc, "password_secret": "pw"}),
        ),
        (
            Operation::Provision,
            json!({"service": svc, "password_secret": null}),
        ),
        (Operation::Provision, json!({"service": {}})),
        (
            Operation::Provision,
            json!({"service": {"service_id": null}}),
        ),
        (
            Operation::Provision,
            json!({"service": {"remote_id": null}}),
        ),
        (Operation::Provision, json!({"service": {"service_id": 7}})),
        (
            Operation::Provision,
            json!({"service": {"params": {"k": 1}}}),
        ),
        (Operation::Provision, json!({"service": {"plans": "x"}})),
        (Operation::Provision, json!({})),
        (Operation::Provision, Value::Null),
        (Operation::Provision, json!([])),
        (
            Operation::Suspend,
            json!({"service": svc, "reason": "late"}),
        ),
        (Operation::Suspend, json!({"service": svc, "reason": null})),
        (Operation::Terminate, json!({"service": svc, "extra": true})),
        (Operation::LoginUrl, json!({"service": svc})),
        (
            Operation::ChangePackage,
            json!({"service": svc, "plan": "gold"}),
        ),
        (Operation::ChangePackage, json!({"service": svc})),
        (
            Operation::ChangePassword,
            json!({"service": svc, "password_secret": "pw"}),
        ),
        (
            Operation::ChangePassword,
            json!({"service": svc, "password_secret": null}),
        ),
        (Operation::ListServices, Value::Null),
        (Operation::ListServices, json!({"cursor": "c", "limit": 5})),
        (Operation::ListServices, json!({"limit": -1})),
        (Operation::ListServices, json!({"limit": 5_000_000_000u64})),
        (Operation::ListServices, json!({"limit": null})),
        (Operation::CreateBackup, json!({"service": svc})),
        (
            Operation::CreateBackup,
            json!({"service": svc, "destination": null}),
        ),
        (
            Operation::CreateBackup,
            json!({"service": svc, "destination": {"kind": "s3", "settings": {"bucket": "b"}, "secret": "k"}}),
        ),
        (
            Operation::CreateBackup,
            json!({"service": svc, "destination": {"settings": {}}}),
        ),
        (Operation::ListBackups, json!({"service": svc})),
        (
            Operation::BackupStatus,
            json!({"service": svc, "backup_id": "b1"}),
        ),
        (Operation::DeleteBackup, json!({"service": svc})),
        (
            Operation::RestoreBackup,
            json!({"service": svc, "backup_id": 3}),
        ),
        (Operation::ExportService, json!({"service": svc})),
        (
            Operation::ImportService,
            json!({"service": svc, "transfer": {"kind": "whm-transfer", "reference": "r"}, "source_address": "10.0.0.2:2087"}),
        ),
        (
            Operation::ImportService,
            json!({"service": svc, "transfer": {"kind": "k", "reference": "r", "details": {"a": "b"}}, "source_address": "h", "source_secret": "source.whm"}),
        ),
        (
            Operation::ImportService,
            json!({"service": svc, "transfer": {"kind": "k"}, "source_address": "h"}),
        ),
    ];
    let (mut accepted, mut refused) = (0, 0);
    for (op, input) in cases {
        let req = CallRequest {
            operation: op,
            input: input.clone(),
            idempotency_key: "k".into(),
            attempt: 1,
        };
        let parsed = typed(&req, 1000).map(drop);
        let valid = validator(&format!("{op}.input")).is_valid(&input);
        assert_eq!(
            parsed.is_ok(),
            valid,
            "{op} {input}: parser {parsed:?}, schema says valid={valid}"
        );
        if valid {
            accepted += 1
        } else {
            refused += 1
        }
    }
    assert!(accepted > 15 && refused > 15, "{accepted} / {refused}");
}

/// What the result builders make validates against each `.output`.
#[test]
fn the_output_schemas_hold_what_the_builders_make() {
    let info = wit::AdapterInfo {
        name: "acme".into(),
        version: "1.0.0".into(),
        description: "d".into(),
        operations: vec![wit::Operation::Provision, wit::Operation::LoginUrl],
        config_schema: "{}".into(),
        egress: vec!["https://x/".into()],
        secrets: vec!["token".into()],
    };
    let page = wit::ServicePage {
        items: vec![status(), status()],
        next_cursor: None,
    };
    let usage = wit::UsageReport {
        remote_id: "alice".into(),
        metrics: vec![
            wit::Metric {
                name: "disk_used".into(),
                value: 1.5,
                unit: "bytes".into(),
            },
            wit::Metric {
                name: "odd".into(),
                value: f64::NAN,
                unit: "count".into(),
            },
        ],
    };
    let backup = bw::BackupInfo {
        backup_id: "b1".into(),
        state: bw::BackupState::Complete,
        created_at_ms: 1_700_000_000_000,
        size_bytes: None,
        details: vec![kv("where", "local")],
    };
    let shapes: Vec<(&str, Value)> = vec![
        ("info", payload::info_json(&info)),
        (
            "test-connection",
            payload::connection_json(&wit::ConnectionInfo {
                server_version: "WHM 11".into(),
                details: vec![],
            }),
        ),
        ("provision", payload::status_json(&status())),
        ("terminate", payload::status_json(&status())),
        ("list-services", payload::page_json(&page)),
        ("usage", payload::usage_json(&usage)),
        (
            "login-url",
            payload::login_json(&wit::LoginLink {
                url: "https://x/sso".into(),
                expires_at: Some(1_700_000_000),
            }),
        ),
        ("create-backup", crate::call_backups::backup_json(&backup)),
    ];
    for (op, value) in shapes {
        let v = validator(&format!("{op}.output"));
        let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{op}: {value}: {errors:?}");
    }
    // And it refuses what no builder makes.
    let mut bad = payload::status_json(&status());
    bad["state"] = json!("gone");
    assert!(!validator("status.output").is_valid(&bad));
}
