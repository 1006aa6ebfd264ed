//! The console's files, embedded at compile time from `runtime/api/console/`
//! (plain files, no build step): the binary is the whole deployment.
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub const INDEX_HTML: &str = include_str!("../../console/index.html");

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// (name under `/console/assets/`, body, content type).
const FILES: &[(&str, &str, &str)] = &[
    (
        "console.css",
        include_str!("../../console/console.css"),
        CSS,
    ),
    ("app.js", include_str!("../../console/app.js"), JS),
    ("api.js", include_str!("../../console/api.js"), JS),
    ("dom.js", include_str!("../../console/dom.js"), JS),
    ("services.js", include_str!("../../console/services.js"), JS),
    ("service.js", include_str!("../../console/service.js"), JS),
    ("tasks.js", include_str!("../../console/tasks.js"), JS),
    ("servers.js", include_str!("../../console/servers.js"), JS),
    ("settings.js", include_str!("../../console/settings.js"), JS),
    ("adapters.js", include_str!("../../console/adapters.js"), JS),
    ("bulk.js", include_str!("../../console/bulk.js"), JS),
    ("webhooks.js", include_str!("../../console/webhooks.js"), JS),
    ("usage.js", include_str!("../../console/usage.js"), JS),
];

/// An embedded file by name: (body, content type).
pub fn find(name: &str) -> Option<(&'static str, &'static str)> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, body, ct)| (*body, *ct))
}

pub fn respond(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Assets change with the binary; revalidation is cheap on loopback and
    // keeps a browser from mixing two versions' modules.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_pages_import_is_embedded() {
        let mut sources: Vec<&str> = FILES.iter().map(|(_, b, _)| *b).collect();
        sources.push(INDEX_HTML);
        for src in sources {
            for part in src
                .split("./")
                .skip(1)
                .chain(src.split("/console/assets/").skip(1))
            {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                    .collect();
                if name.ends_with(".js") || name.ends_with(".css") {
                    assert!(
                        find(&name).is_some(),
                        "{name} is referenced but not embedded"
                    );
                }
            }
        }
    }

    #[test]
    fn no_inline_script_or_style_in_the_page() {
        // The CSP forbids them: the page would break, not just look odd.
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
        let handler = INDEX_HTML.split(" on").skip(1).any(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "no inline event handlers");
        for tag in INDEX_HTML.split("<script").skip(1) {
            assert!(
                tag.split('>').next().unwrap().contains("src="),
                "inline script"
            );
        }
    }
}
