//! The shapes of WHM's answers: API 1 envelopes, API 0 leftovers, and the
//! HTML pages a client gets when it is not talking to the JSON API.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::functions::Answer;
use crate::common::serve::{text as build, Body};

/// A response plus what the log records about it.
pub(crate) struct Reply {
    pub response: Response<Body>,
    pub result: Option<u8>,
}

pub(crate) fn json(body: &Value, result: u8) -> Reply {
    Reply {
        response: build(
            StatusCode::OK,
            "application/json; charset=utf-8",
            body.to_string(),
        ),
        result: Some(result),
    }
}

/// `{"metadata":{"version":1,"command":…,"result":1,"reason":"OK",…},"data":…}`
pub(crate) fn api1_ok(function: &str, answer: Answer) -> Reply {
    let mut metadata = json!({"version": 1, "command": function, "result": 1, "reason": "OK"});
    if let Some(raw) = answer.raw {
        metadata["output"] = json!({ "raw": raw });
    }
    if let Some(chunk) = answer.chunk {
        metadata["chunk"] = chunk;
    }
    let mut body = json!({ "metadata": metadata });
    if let Some(data) = answer.data {
        body["data"] = data;
    }
    json(&body, 1)
}

pub(crate) fn api1_fail(function: &str, reason: &str) -> Reply {
    json(
        &json!({"metadata": {"version": 1, "command": function, "result": 0, "reason": reason}}),
        0,
    )
}

/// What WHM did before API 1: createacct answered `result[].status`, the
/// rest a `cpanelresult`. The simulator never applies an API 0 call.
pub(crate) fn api0_fail(function: &str) -> Reply {
    let msg = format!(
        "This server only performs “{function}” through WHM API 1: add api.version=1 to the request."
    );
    let body = if function == "createacct" {
        json!({"result": [{"status": 0, "statusmsg": msg, "options": null, "rawout": null}]})
    } else {
        json!({"cpanelresult": {"apiversion": "0", "func": function, "error": msg, "data": {"result": 0}}})
    };
    json(&body, 0)
}

const LOGIN_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>WHM Login</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body class="whm" id="login-body">
<div id="login-wrapper">
  <h1 id="login-title">WHM</h1>
  <div id="login-status" class="info-notice">Log in to WHM.</div>
  <form id="login_form" action="/login/?login_only=1" method="post" autocomplete="off">
    <label for="user">Username</label>
    <input name="user" id="user" type="text" autofocus>
    <label for="pass">Password</label>
    <input name="pass" id="pass" type="password">
    <input name="goto_uri" type="hidden" value="/">
    <button type="submit" id="login_submit">Log in</button>
  </form>
</div>
</body>
</html>
"#;

pub(crate) fn login_page(status: StatusCode) -> Reply {
    Reply {
        response: build(status, "text/html; charset=utf-8", LOGIN_PAGE),
        result: None,
    }
}

pub(crate) fn error_page(status: StatusCode) -> Reply {
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = status.as_u16();
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n\
         <body><h1>{reason}</h1><p>cpsrvd could not complete the request.</p></body></html>\n"
    );
    Reply {
        response: build(status, "text/html; charset=utf-8", page),
        result: None,
    }
}

/// Where a create_user_session URL leads: a stand-in for the cPanel UI.
pub(crate) fn session_page(user: &str, service: &str) -> Reply {
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>{service} — {user}</title></head>\n\
         <body><h1>Logged in as {user}</h1><p>Simulated {service} session.</p></body></html>\n"
    );
    Reply {
        response: build(StatusCode::OK, "text/html; charset=utf-8", page),
        result: None,
    }
}

pub(crate) fn plain(status: StatusCode, text: &str) -> Reply {
    Reply {
        response: build(status, "text/plain; charset=utf-8", text.to_owned()),
        result: None,
    }
}
