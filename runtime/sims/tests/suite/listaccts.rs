use crate::common;
use crate::common::{assert_spec, result, start};
use panel1_sims::Account;
use serde_json::Value;

fn users(body: &Value) -> Vec<String> {
    body["data"]["acct"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["user"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn paging_walks_every_account_once_in_user_order() {
    let h = start().await;
    // Seeded out of order; listaccts sorts by user.
    for user in [
        "golf", "alpha", "echo", "charlie", "bravo", "foxtrot", "delta",
    ] {
        h.sim
            .add_account(Account::new(user, &format!("{user}.example")))
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut start_at = 1;
    loop {
        let start_s = start_at.to_string();
        let body = h
            .get(
                "listaccts",
                &[
                    ("api.chunk.enable", "1"),
                    ("api.chunk.start", &start_s),
                    ("api.chunk.size", "3"),
                ],
            )
            .await;
        assert_eq!(result(&body), 1);
        assert_spec("listaccts", &body);
        let chunk = &body["metadata"]["chunk"];
        assert_eq!(chunk["start"], start_at);
        assert_eq!(chunk["size"], 3);
        assert_eq!(chunk["records"], 7);
        let page = users(&body);
        assert_eq!(chunk["current"], page.len());
        seen.extend(page);
        start_at += 3;
        if start_at > 7 {
            assert_eq!(chunk["current"], 1, "the last chunk holds the seventh");
            break;
        }
        assert_eq!(chunk["current"], 3);
    }
    assert_eq!(
        seen,
        ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
    );

    // Past the end: an empty chunk, still counting all records.
    let past = h
        .get(
            "listaccts",
            &[
                ("api.chunk.enable", "1"),
                ("api.chunk.start", "20"),
                ("api.chunk.size", "3"),
            ],
        )
        .await;
    assert_eq!(past["metadata"]["chunk"]["current"], 0);
    assert_eq!(past["metadata"]["chunk"]["records"], 7);

    // Without paging: everything, and no chunk metadata.
    let all = h.get("listaccts", &[]).await;
    assert_eq!(users(&all).len(), 7);
    assert!(all["metadata"].get("chunk").is_none());

    // A chunk start of 0 breaks the generic parameter's schema (1-based).
    let zero = h
        .get(
            "listaccts",
            &[
                ("api.chunk.enable", "1"),
                ("api.chunk.start", "0"),
                ("api.chunk.size", "3"),
            ],
        )
        .await;
    assert_eq!(result(&zero), 0);
    assert!(common::reason(&zero).starts_with("Invalid value for “api.chunk.start”: "));
}

#[tokio::test]
async fn search_and_want() {
    let h = start().await;
    h.sim
        .add_account(Account::new("alpha", "alpha.example"))
        .unwrap();
    h.sim
        .add_account(
            Account::new("bravo", "shop.example")
                .with_plan("pro")
                .suspended_for("spam"),
        )
        .unwrap();
    h.sim
        .add_account(Account::new("charlie", "charlie.test"))
        .unwrap();

    let by_domain = h
        .get(
            "listaccts",
            &[("searchtype", "domain"), ("search", "example$")],
        )
        .await;
    assert_eq!(users(&by_domain), ["alpha", "bravo"]);
    let exact = h
        .get(
            "listaccts",
            &[
                ("searchtype", "user"),
                ("search", "alph"),
                ("searchmethod", "exact"),
            ],
        )
        .await;
    assert!(users(&exact).is_empty());
    let by_plan = h
        .get(
            "listaccts",
            &[("searchtype", "package"), ("search", "^pro$")],
        )
        .await;
    assert_eq!(users(&by_plan), ["bravo"]);
    assert_eq!(by_plan["data"]["acct"][0]["suspended"], 1);
    assert_eq!(by_plan["data"]["acct"][0]["suspendreason"], "spam");
    assert!(by_plan["data"]["acct"][0]["suspendtime"].is_i64());
    let bad_type = h
        .get("listaccts", &[("searchtype", "colour"), ("search", "x")])
        .await;
    assert!(common::reason(&bad_type).starts_with("Invalid value for “searchtype”: "));

    let want = h.get("listaccts", &[("want", "user,diskused")]).await;
    let first = want["data"]["acct"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["diskused", "user"]);
}
