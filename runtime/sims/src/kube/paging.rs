//! List chunking (`limit`, `continue`): items in name order, an opaque
//! continue token naming where the next page starts and the revision of the
//! first page, `remainingItemCount` when it can be known cheaply.

use serde_json::{json, Value};

use super::errors::KubeError;

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Page {
    pub items: Vec<Value>,
    /// The revision the list is at (the first page's, for later pages).
    pub revision: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// A token: hex of `{"v":"meta.k8s.io/v1","rv":N,"start":"<last name>"}`.
fn encode(revision: u64, after: &str) -> String {
    hex::encode(json!({"v": "meta.k8s.io/v1", "rv": revision, "start": after}).to_string())
}

/// The revision and last name a token carries; `None` when it is not one of ours.
fn decode(token: &str, current: u64) -> Option<(u64, String)> {
    let bytes = hex::decode(token).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    if v["v"] != "meta.k8s.io/v1" {
        return None;
    }
    let revision = v["rv"].as_u64().filter(|r| *r <= current)?;
    Some((revision, v["start"].as_str()?.to_owned()))
}

/// Cut `items` (name, object), already filtered and in name order, into the
/// page `limit` and `token` ask for. `count_remaining` is false for
/// selector-filtered lists, where kube-apiserver leaves the count out.
pub(crate) fn page(
    items: Vec<(String, Value)>,
    limit: Option<usize>,
    token: Option<&str>,
    current: u64,
    count_remaining: bool,
) -> Result<Page, KubeError> {
    let (revision, after) = match token.filter(|t| !t.is_empty()) {
        Some(t) => {
            let (r, after) = decode(t, current).ok_or_else(KubeError::expired)?;
            (r, Some(after))
        }
        None => (current, None),
    };
    let mut rest: Vec<(String, Value)> = items
        .into_iter()
        .filter(|(name, _)| after.as_ref().is_none_or(|a| name > a))
        .collect();
    let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let more = rest.len() > limit;
    let tail = if more {
        rest.split_off(limit)
    } else {
        Vec::new()
    };
    let continue_token = more.then(|| encode(revision, &rest[rest.len() - 1].0));
    Ok(Page {
        remaining: (more && count_remaining).then_some(tail.len()),
        items: rest.into_iter().map(|(_, v)| v).collect(),
        revision,
        continue_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: usize) -> Vec<(String, Value)> {
        (0..n)
            .map(|i| {
                (
                    format!("n{i:02}"),
                    json!({"metadata": {"name": format!("n{i:02}")}}),
                )
            })
            .collect()
    }

    #[test]
    fn pages_cover_everything_once() {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let p = page(named(25), Some(10), token.as_deref(), 7, true).unwrap();
            assert_eq!(p.revision, 7);
            seen.extend(
                p.items
                    .iter()
                    .map(|v| v["metadata"]["name"].as_str().unwrap().to_owned()),
            );
            match p.continue_token {
                Some(t) => {
                    assert_eq!(p.remaining, Some(25 - seen.len()));
                    token = Some(t);
                }
                None => {
                    assert_eq!(p.remaining, None);
                    break;
                }
            }
        }
        assert_eq!(
            seen,
            named(25).into_iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        assert_eq!(
            page(named(3), None, Some("zz"), 7, true).unwrap_err().code,
            410
        );
        assert_eq!(
            page(named(3), None, Some(&encode(9, "a")), 7, true)
                .unwrap_err()
                .code,
            410
        );
        assert_eq!(
            page(named(3), Some(2), None, 7, false).unwrap().remaining,
            None
        );
    }
}
