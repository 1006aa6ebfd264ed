//! The source server's credential for a migration's import (world 0.2.0's
//! `import-request.source-secret`): providers where the target pulls the
//! service from the source (WHM transfer sessions) must hand the target
//! the source's credential.
//!
//! For that call only, each secret of the source server is bound under
//! `source.<name>`, and may go only where the target's own secrets may go
//! (the target's API, which logs in to the source with it). The target's
//! egress policy is unchanged: the call still reaches only the target.
//! The guest sees placeholders, never values. `source_secret` names the
//! one source secret the target does not also have (the source's own
//! login, e.g. WHM's root password), else the only one the source has.
use panel1_sandbox::{HostContext, SecretBinding};
use panel1_store::secret_box::SecretBox;
use panel1_store::{migration, setup, ClaimedTask};
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;

/// The prefix of the source's secrets in the import call.
pub const PREFIX: &str = "source.";

/// `context` with the source's secrets added and `input.source_secret` set,
/// when `task` is a migration's import; else both unchanged.
pub(crate) async fn bind(
    pool: &PgPool,
    secrets: &SecretBox,
    task: &ClaimedTask,
    context: Arc<HostContext>,
    input: &mut Value,
) -> Result<Arc<HostContext>, String> {
    let source = migration::import_source(pool, task.tenant_id, task.id)
        .await
        .map_err(|e| format!("reading the migration of import {}: {e}", task.id))?;
    let Some(source) = source else {
        return Ok(context);
    };
    let rt = setup::server_runtime(pool, secrets, source)
        .await
        .map_err(|e| format!("loading the source server {source}: {e}"))?;
    let (context, chosen) = with_source(&context, &rt.secrets);
    if let Some(obj) = input.as_object_mut() {
        obj.insert(
            "source_secret".into(),
            chosen.map_or(Value::Null, Value::String),
        );
    }
    Ok(Arc::new(context))
}

/// The pure part: the bindings and the chosen name.
pub(crate) fn with_source(
    target: &HostContext,
    source: &[(String, String, Vec<String>)],
) -> (HostContext, Option<String>) {
    let mut destinations: Vec<String> = Vec::new();
    for s in &target.secrets {
        for d in &s.destinations {
            if !destinations.contains(d) {
                destinations.push(d.clone());
            }
        }
    }
    let mut context = target.clone();
    for (name, value, _) in source {
        context.secrets.push(SecretBinding {
            name: format!("{PREFIX}{name}"),
            value: value.clone(),
            destinations: destinations.clone(),
        });
    }
    // The source's own login is the secret the target does not share (a
    // tenant's secret names are unique, so a shared name is the same value,
    // e.g. one API token for both); failing that, the only secret.
    let mut names: Vec<&String> = source.iter().map(|(n, _, _)| n).collect();
    names.sort();
    let own: Vec<&&String> = names
        .iter()
        .filter(|n| !target.secrets.iter().any(|t| &t.name == **n))
        .collect();
    let chosen = match (own.as_slice(), names.as_slice()) {
        ([one], _) => Some(one.to_string()),
        (_, [only]) => Some(only.to_string()),
        _ => None,
    };
    (context, chosen.map(|n| format!("{PREFIX}{n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, dest: &str) -> SecretBinding {
        SecretBinding {
            name: name.into(),
            value: format!("{name}-value"),
            destinations: vec![dest.into()],
        }
    }

    #[test]
    fn source_secrets_go_only_where_the_targets_go() {
        let target = HostContext {
            secrets: vec![binding("whm-token", "whm-b.example:2087")],
            ..HostContext::default()
        };
        let source = vec![
            (
                "whm-root-password".to_string(),
                "ROOT-PW".to_string(),
                vec!["whm-a.example:2087".to_string()],
            ),
            (
                "whm-token".to_string(),
                "A-TOKEN".to_string(),
                vec!["whm-a.example:2087".to_string()],
            ),
        ];
        let (ctx, chosen) = with_source(&target, &source);
        assert_eq!(chosen.as_deref(), Some("source.whm-root-password"));
        let bound = ctx
            .secrets
            .iter()
            .find(|s| s.name == "source.whm-root-password")
            .unwrap();
        assert_eq!(bound.value, "ROOT-PW");
        assert_eq!(bound.destinations, vec!["whm-b.example:2087".to_string()]);
        assert_eq!(ctx.secrets.len(), 3);
        // Two source-only secrets: no guess.
        let (_, none) = with_source(&HostContext::default(), &source);
        assert_eq!(none, None);
        let (_, only) = with_source(&target, &source[1..]);
        assert_eq!(only.as_deref(), Some("source.whm-token"));
    }
}
