use crate::common::{assert_spec, reason, result, start};

#[tokio::test]
async fn account_lifecycle() {
    let h = start().await;
    let created = h
        .post(
            "createacct",
            &[
                ("username", "alice"),
                ("domain", "alice.example"),
                ("plan", "basic"),
                ("password", "pw-Alice-1"),
                ("contactemail", "alice@example.org"),
            ],
        )
        .await;
    assert_eq!(result(&created), 1, "{created}");
    assert_eq!(reason(&created), "OK");
    assert_eq!(created["data"]["package"], "basic");
    assert!(created["metadata"]["output"]["raw"]
        .as_str()
        .unwrap()
        .contains("alice"));
    assert_spec("createacct", &created);
    h.sim.set_usage("alice", 12, 3 * 1024 * 1024).unwrap();

    let summary = h.get("accountsummary", &[("user", "alice")]).await;
    assert_spec("accountsummary", &summary);
    let acct = &summary["data"]["acct"][0];
    assert_eq!(acct["user"], "alice");
    assert_eq!(acct["domain"], "alice.example");
    assert_eq!(acct["plan"], "basic");
    assert_eq!(acct["owner"], "root");
    assert_eq!(acct["email"], "alice@example.org");
    assert_eq!(acct["suspended"], 0);
    assert_eq!(acct["diskused"], "12M");
    assert_eq!(acct["disklimit"], 5120);
    assert!(acct["unix_startdate"].as_i64().unwrap() > 1_600_000_000);
    let by_domain = h
        .get("accountsummary", &[("domain", "alice.example")])
        .await;
    assert_eq!(by_domain["data"]["acct"][0]["user"], "alice");

    let suspended = h
        .get(
            "suspendacct",
            &[("user", "alice"), ("reason", "Nonpayment")],
        )
        .await;
    assert_eq!(result(&suspended), 1);
    assert_spec("suspendacct", &suspended);
    let acct = h.sim.account("alice").unwrap();
    assert!(acct.suspended && acct.suspend_time.is_some());
    assert_eq!(acct.suspend_reason.as_deref(), Some("Nonpayment"));
    let summary = h.get("accountsummary", &[("user", "alice")]).await;
    assert_eq!(summary["data"]["acct"][0]["suspended"], 1);
    assert_eq!(summary["data"]["acct"][0]["suspendreason"], "Nonpayment");

    let again = h.get("suspendacct", &[("user", "alice")]).await;
    assert_eq!(result(&again), 0);
    assert_eq!(reason(&again), "The account “alice” is already suspended.");

    let unsuspended = h.get("unsuspendacct", &[("user", "alice")]).await;
    assert_eq!(result(&unsuspended), 1);
    assert_spec("unsuspendacct", &unsuspended);
    assert!(!h.sim.account("alice").unwrap().suspended);
    let again = h.get("unsuspendacct", &[("user", "alice")]).await;
    assert_eq!(reason(&again), "The account “alice” is not suspended.");

    let changed = h
        .get("changepackage", &[("user", "alice"), ("pkg", "pro")])
        .await;
    assert_eq!(result(&changed), 1, "{changed}");
    assert_spec("changepackage", &changed);
    let acct = h.sim.account("alice").unwrap();
    assert_eq!(acct.plan, "pro");
    assert_eq!(acct.bw_limit_bytes, None, "pro has unlimited bandwidth");
    let missing_pkg = h
        .get("changepackage", &[("user", "alice"), ("pkg", "gold")])
        .await;
    assert_eq!(reason(&missing_pkg), "The package “gold” does not exist.");

    let pw = h
        .post("passwd", &[("user", "alice"), ("password", "pw-Alice-2")])
        .await;
    assert_eq!(result(&pw), 1);
    assert_spec("passwd", &pw);
    let acct = h.sim.account("alice").unwrap();
    assert!(acct.password_matches("pw-Alice-2") && !acct.password_matches("pw-Alice-1"));
    assert_eq!(acct.password_changes, 1);

    let bw = h
        .get("showbw", &[("searchtype", "user"), ("search", "alice")])
        .await;
    assert_eq!(result(&bw), 1);
    assert_spec("showbw", &bw);
    assert_eq!(bw["data"]["acct"][0]["user"], "alice");
    assert_eq!(bw["data"]["acct"][0]["totalbytes"], 3 * 1024 * 1024);
    assert_eq!(bw["data"]["acct"][0]["limit"], 0, "unlimited");
    assert_eq!(bw["data"]["totalused"], 3 * 1024 * 1024);

    let removed = h.get("removeacct", &[("username", "alice")]).await;
    assert_eq!(result(&removed), 1);
    assert_spec("removeacct", &removed);
    assert!(h.sim.account("alice").is_none());

    let gone = h.get("accountsummary", &[("user", "alice")]).await;
    assert_eq!(result(&gone), 0);
    assert_eq!(reason(&gone), "The user “alice” does not exist.");
    for function in ["suspendacct", "unsuspendacct", "passwd"] {
        let body = h
            .get(function, &[("user", "alice"), ("password", "x")])
            .await;
        assert_eq!(
            reason(&body),
            "The user “alice” does not exist.",
            "{function}"
        );
    }
    let body = h.get("removeacct", &[("username", "alice")]).await;
    assert_eq!(reason(&body), "The user “alice” does not exist.");

    assert_eq!(h.sim.count_calls("accountsummary"), 4);
    // Every request this test sent was well-formed except the deliberate
    // `password` on suspendacct/unsuspendacct (unknown there).
    let odd: Vec<_> = h
        .sim
        .request_log()
        .into_iter()
        .filter(|r| !r.well_formed())
        .collect();
    assert_eq!(odd.len(), 2, "{odd:#?}");
}

#[tokio::test]
async fn listpkgs_and_temporary_domains() {
    let h = start().await;
    let pkgs = h.get("listpkgs", &[]).await;
    assert_spec("listpkgs", &pkgs);
    let names: Vec<&str> = pkgs["data"]["pkg"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["basic", "default", "pro"]);
    assert_eq!(pkgs["data"]["pkg"][1]["QUOTA"], 1024);
    assert_eq!(pkgs["data"]["pkg"][2]["BWLIMIT"], "unlimited");

    let created = h.get("createacct", &[("username", "nodomain")]).await;
    assert_eq!(result(&created), 1);
    let acct = h.sim.account("nodomain").unwrap();
    assert!(acct.temporary_domain && acct.domain.starts_with("nodomain."));
}
