//! The CLI gateway (`POST /cli/{id}/call`): the few `plesk bin` utilities
//! the REST API has no endpoint for. Passwords travel in the call's `env`
//! (`PSA_PASSWORD` with `-passwd ""`, as Plesk's utilities read them), never
//! in `params`.

use serde_json::{json, Value};

use super::routes::{error, Answer, Env};
use super::state::{digest, PleskState};

/// What `GET /cli/commands` lists.
pub(crate) const COMMANDS: &[&str] = &["login", "subscription"];

fn done(code: i64, stdout: &str, stderr: &str) -> Answer {
    (
        200,
        json!({"code": code, "stdout": stdout, "stderr": stderr}),
    )
}

fn args(body: &Value) -> Vec<String> {
    body.get("params")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The value after `flag`.
fn after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

pub(crate) fn call(command: &str, body: &Value, state: &mut PleskState, env: &Env) -> Answer {
    let args = args(body);
    match command {
        "subscription" => subscription(&args, body, state),
        "login" => login(&args, state, env),
        other => error(404, format!("Command \"{other}\" is not found")),
    }
}

fn subscription(args: &[String], body: &Value, state: &mut PleskState) -> Answer {
    let (action, name) = match args {
        [a, n, ..] => (a.as_str(), n.to_ascii_lowercase()),
        _ => {
            return done(
                1,
                "",
                "subscription: a command and a subscription name are required\n",
            )
        }
    };
    let Some(id) = state.domain_by_name(&name).map(|d| d.id) else {
        return done(1, "", &format!("Unable to find subscription \"{name}\"\n"));
    };
    match action {
        "--switch-subscription" => {
            let Some(plan) = after(args, "-service-plan") else {
                return done(1, "", "-service-plan is required\n");
            };
            if !state.plans.contains_key(plan) {
                return done(1, "", &format!("Unable to find service plan \"{plan}\"\n"));
            }
            state.domains.get_mut(&id).expect("found above").plan = Some(plan.to_owned());
            done(
                0,
                &format!("SUCCESS: Subscription '{name}' was switched to '{plan}'\n"),
                "",
            )
        }
        "--update" | "-u" => {
            let Some(given) = after(args, "-passwd") else {
                return done(1, "", "subscription --update: nothing to update\n");
            };
            // An empty -passwd means "read PSA_PASSWORD from the environment".
            let password = match given {
                "" => body
                    .pointer("/env/PSA_PASSWORD")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                p => p,
            };
            if password.chars().count() < 5 {
                return done(
                    1,
                    "",
                    "The password should contain at least 5 characters.\n",
                );
            }
            state
                .domains
                .get_mut(&id)
                .expect("found above")
                .ftp_password_sha256 = digest(password);
            done(
                0,
                &format!("SUCCESS: Update of subscription '{name}' completed.\n"),
                "",
            )
        }
        other => done(1, "", &format!("subscription: unknown command {other}\n")),
    }
}

fn login(args: &[String], state: &mut PleskState, env: &Env) -> Answer {
    let Some(user) = args.first() else {
        return done(1, "", "login: a user name is required\n");
    };
    if state.client_by_login(user).is_none() {
        return done(1, "", &format!("Unable to find user \"{user}\"\n"));
    }
    let token = super::state::guid().replace('-', "");
    let url = format!("{}/login?secret={token}", env.base_url);
    state.links.push(super::state::LoginLink {
        login: user.clone(),
        url: url.clone(),
    });
    done(0, &format!("{url}\n"), "")
}
