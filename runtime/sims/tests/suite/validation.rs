use crate::common;
use crate::common::{reason, result, start};

#[tokio::test]
async fn createacct_without_username_is_rejected_and_logged() {
    let h = start().await;
    let body = h.get("createacct", &[("domain", "a.example")]).await;
    assert_eq!(result(&body), 0);
    assert_eq!(reason(&body), "The parameter “username” is required.");
    assert!(h.sim.accounts().is_empty());

    let entry = h.sim.request_log().pop().unwrap();
    assert_eq!(entry.function, "createacct");
    assert_eq!(entry.result, Some(0));
    assert!(entry
        .problems
        .contains(&"The parameter “username” is required.".to_string()));
    assert!(!entry.well_formed());
}

#[tokio::test]
async fn non_integer_for_an_integer_parameter_is_rejected() {
    let h = start().await;
    let body = h
        .get(
            "createacct",
            &[
                ("username", "alice"),
                ("domain", "alice.example"),
                ("quota", "lots"),
            ],
        )
        .await;
    assert_eq!(result(&body), 0);
    assert!(
        reason(&body).starts_with("Invalid value for “quota”: "),
        "{}",
        reason(&body)
    );
    assert!(reason(&body).ends_with('.'));
    assert!(h.sim.account("alice").is_none(), "nothing applied");

    // Out of the schema's range, and an enum miss.
    let body = h
        .get("createacct", &[("username", "alice"), ("quota", "1000000")])
        .await;
    assert!(reason(&body).starts_with("Invalid value for “quota”: "));
    let body = h
        .get("suspendacct", &[("user", "alice"), ("disallowun", "2")])
        .await;
    assert!(reason(&body).starts_with("Invalid value for “disallowun”: "));

    // Numbers in strings and the spec's "unlimited"/null alternatives pass.
    let body = h
        .get(
            "createacct",
            &[
                ("username", "alice"),
                ("domain", "alice.example"),
                ("quota", "500"),
                ("bwlimit", "unlimited"),
                ("maxftp", ""),
                ("hasshell", "0"),
            ],
        )
        .await;
    assert_eq!(result(&body), 1, "{body}");
    assert!(h.sim.request_log().last().unwrap().well_formed());
}

#[tokio::test]
async fn unknown_parameters_are_accepted_with_a_warning() {
    let h = start().await;
    let body = h.get("version", &[("frobnicate", "yes")]).await;
    assert_eq!(result(&body), 1);
    let entry = h.sim.request_log().pop().unwrap();
    assert_eq!(entry.problems.len(), 1, "{:?}", entry.problems);
    assert!(entry.problems[0].starts_with("warning:") && entry.problems[0].contains("frobnicate"));
    assert!(!entry.well_formed());

    // The generic API 1 parameters are not unknown.
    let body = h
        .get(
            "listaccts",
            &[
                ("api.chunk.enable", "1"),
                ("api.chunk.start", "1"),
                ("api.chunk.size", "5"),
                ("api.chunk.verbose", "1"),
            ],
        )
        .await;
    assert_eq!(result(&body), 1);
    assert!(h.sim.request_log().pop().unwrap().well_formed());
}

#[tokio::test]
async fn removeacct_needs_username_not_user() {
    let h = start().await;
    h.sim
        .add_account(panel1_sims::Account::new("bob", "bob.example"))
        .unwrap();
    let body = h.get("removeacct", &[("user", "bob")]).await;
    assert_eq!(reason(&body), "The parameter “username” is required.");
    assert!(h.sim.account("bob").is_some());
}

#[tokio::test]
async fn missing_api_version_answers_like_api_0_and_applies_nothing() {
    let h = start().await;
    let send = |function: &str, query: &[(&str, &str)]| {
        h.http
            .get(h.url(function))
            .header("Authorization", h.sim.auth_header())
            .query(query)
            .send()
    };
    let created: serde_json::Value = send(
        "createacct",
        &[("username", "carol"), ("domain", "carol.example")],
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(created["result"][0]["status"], 0, "{created}");
    assert!(created["result"][0]["statusmsg"].is_string());
    assert!(created.get("metadata").is_none());
    assert!(h.sim.account("carol").is_none());

    let listed: serde_json::Value = send("listaccts", &[]).await.unwrap().json().await.unwrap();
    assert_eq!(listed["cpanelresult"]["apiversion"], "0");
    assert_eq!(listed["cpanelresult"]["data"]["result"], 0);
    assert!(listed["cpanelresult"]["error"].is_string());

    let log = h.sim.request_log();
    assert!(log.iter().all(|r| !r.api_version_1 && !r.well_formed()));
    assert!(log[0].problems.iter().any(|p| p.contains("api.version")));
}

#[tokio::test]
async fn cpanel_username_rules() {
    let h = start().await;
    h.sim
        .add_account(panel1_sims::Account::new("abcdefgh1", "one.example"))
        .unwrap();
    for (user, why) in [
        ("Alice", "lowercase"),
        ("9lives", "begin with a letter"),
        ("testuser", "“test”"),
        ("root", "reserved"),
        ("cpanel", "reserved"),
        ("abcdefgh2", "first 8 characters"),
        ("abcdefghijklmnopq", "16"),
    ] {
        let body = h
            .get(
                "createacct",
                &[
                    ("username", user),
                    ("domain", &format!("d{}.example", user.len())),
                ],
            )
            .await;
        assert_eq!(result(&body), 0, "{user}");
        let r = reason(&body);
        assert!(
            r.starts_with("Invalid value for “username”: ") && r.contains(why),
            "{user}: {r}"
        );
    }
    assert_eq!(h.sim.accounts().len(), 1);
}

#[tokio::test]
async fn duplicates_and_unknown_packages() {
    let h = start().await;
    let ok = h
        .get(
            "createacct",
            &[("username", "dave"), ("domain", "dave.example")],
        )
        .await;
    assert_eq!(result(&ok), 1);
    let again = h
        .get(
            "createacct",
            &[("username", "dave"), ("domain", "other.example")],
        )
        .await;
    assert_eq!(reason(&again), "An account named “dave” already exists.");
    let domain = h
        .get(
            "createacct",
            &[("username", "erin"), ("domain", "dave.example")],
        )
        .await;
    assert_eq!(reason(&domain), "The domain “dave.example” already exists.");
    let plan = h
        .get(
            "createacct",
            &[
                ("username", "erin"),
                ("domain", "erin.example"),
                ("plan", "gold"),
            ],
        )
        .await;
    assert_eq!(reason(&plan), "The package “gold” does not exist.");
    assert!(h.sim.account("erin").is_none());
}

#[tokio::test]
async fn post_form_body_carries_the_password_and_it_is_never_logged() {
    let h = start().await;
    let secret = "Corr3ct-Horse-Battery";
    let body = h
        .post(
            "createacct",
            &[
                ("username", "frank"),
                ("domain", "frank.example"),
                ("password", secret),
                ("contactemail", "frank@example.org"),
            ],
        )
        .await;
    assert_eq!(result(&body), 1, "{body}");
    let acct = h.sim.account("frank").unwrap();
    assert!(acct.password_matches(secret));
    assert_eq!(acct.contact_email, "frank@example.org");

    let body = h
        .post(
            "passwd",
            &[("user", "frank"), ("password", "N3w-Secret-Pass")],
        )
        .await;
    assert_eq!(result(&body), 1);
    assert!(h
        .sim
        .account("frank")
        .unwrap()
        .password_matches("N3w-Secret-Pass"));

    let log = h.sim.request_log();
    assert_eq!(log[0].params["password"], panel1_sims::REDACTED);
    assert_eq!(log[0].params["username"], "frank");
    let path = std::env::temp_dir().join(format!("whm-sim-log-{}.jsonl", std::process::id()));
    h.sim.write_log_jsonl(&path).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(written.lines().count(), 2);
    for text in [written, format!("{log:?}")] {
        assert!(!text.contains(secret) && !text.contains("N3w-Secret-Pass"));
        assert!(!text.contains(common::TOKEN));
    }
}
