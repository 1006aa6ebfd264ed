//! The suite for one loaded component: `info` first, then the provider
//! profile (from `--provider` or `info().name`) and its simulator, then the
//! checks in order against it. Without a profile only check 1 runs.
use super::failures;
use super::harness::Harness;
use super::info_check;
use super::lifecycle;
use super::profile::Profile;
use super::provider::Provider;
use super::report::{Check, ComponentResult, ProviderSource, Row};
use super::secrecy;
use panel1_sandbox::{LoadedAdapter, Sandbox};
use std::sync::Arc;

/// Every check after `info`, skipped (or failed) for the same reason.
fn rest(make: impl Fn(Check) -> Row) -> impl Iterator<Item = Row> {
    Check::ALL.into_iter().skip(1).map(make)
}

pub async fn run(
    sandbox: &Sandbox,
    adapter: Arc<LoadedAdapter>,
    file: String,
    forced: Option<Provider>,
) -> ComponentResult {
    let mut h = Harness::new(sandbox, adapter);
    let mut result = ComponentResult {
        file,
        adapter: None,
        provider: None,
        no_profile: None,
        rows: Vec::new(),
    };
    let (info, schema) = match info_check::run(&mut h).await {
        Ok(answer) => answer,
        Err(why) => {
            result.rows.push(Row::fail(Check::Info, why));
            result.rows.extend(rest(|c| {
                Row::skip(c, "`info` failed (check 1): the operations are unknown")
            }));
            result.no_profile = Some("`info` failed".into());
            return result;
        }
    };
    result.adapter = Some((info.name.clone(), info.version.clone()));
    let chosen = match forced {
        Some(p) => Some((p, ProviderSource::Flag)),
        None => Provider::for_adapter(&info.name).map(|p| (p, ProviderSource::InfoName)),
    };
    let Some((provider, source)) = chosen else {
        let why = format!(
            "none for an adapter named `{}` (cpanel → whm, plesk, docker, kubernetes); choose one with --provider",
            info.name
        );
        result.rows.push(info_check::judge(&info, &schema, None));
        result.rows.extend(rest(|c| {
            Row::skip(c, format!("no provider profile: {why}"))
        }));
        result.no_profile = Some(why);
        return result;
    };
    result.provider = Some((provider, source));
    let profile = match Profile::start(provider).await {
        Ok(p) => p,
        Err(e) => {
            result.rows.push(info_check::judge(&info, &schema, None));
            result.rows.extend(rest(|c| Row::fail(c, e.to_string())));
            return result;
        }
    };
    let rows = &mut result.rows;
    rows.push(info_check::judge(
        &info,
        &schema,
        Some((provider.name(), &profile.config)),
    ));
    rows.push(lifecycle::test_connection(&mut h, &profile, &info).await);
    let (row, provisioned) = lifecycle::provision_idempotent(&mut h, &profile, &info).await;
    rows.push(row);
    rows.push(lifecycle::lost_answer(&mut h, &profile, &info).await);
    rows.extend(lifecycle::ensure_lifecycle(&mut h, &profile, &info, provisioned.as_ref()).await);
    rows.push(failures::wrong_credential(&mut h, &profile, &info).await);
    rows.push(failures::server_error(&mut h, &profile, &info).await);
    rows.push(failures::rate_limited(&mut h, &profile, &info).await);
    rows.push(failures::egress_denied(&mut h, &profile, &info).await);
    // Run before the secrecy check so that its report is searched too.
    let deadline = failures::deadline(&mut h, &profile, &info).await;
    rows.push(secrecy::check(&h.reports, &profile.secret_values()));
    rows.push(deadline);
    profile.shutdown().await;
    result
}
