//! Console sessions: an API key is exchanged once for a server-side
//! session, so the browser never keeps the key (no localStorage a script
//! could read). The cookie holds a random token; the table keeps only its
//! SHA-256, the key's id and a CSRF token (migration 0019).
//!
//! - Every request with the cookie admits the session's key again through
//!   the same `panel1_admit` as a Bearer key (auth.rs): a revoked key ends
//!   its sessions at once, rate limits and failure counts are shared.
//! - The cookie is `HttpOnly; SameSite=Strict; Path=/`, plus `Secure` when
//!   configured or when a TLS-terminating proxy says `X-Forwarded-Proto:
//!   https` (plain http on loopback must still work for tests).
//! - Unsafe methods (anything but GET/HEAD/OPTIONS) with the cookie must
//!   send `X-CSRF-Token` equal to the session's token: SameSite=Strict is
//!   the first wall, the token the second (older browsers, same-site
//!   subdomains).
//! - Sign-in takes only `application/json` (a cross-origin HTML form cannot
//!   send it without a CORS preflight, which is never granted) and refuses a
//!   foreign `Origin`: no login CSRF.
use crate::auth::{self, Principal, Scope};
use crate::input::ApiJson;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use uuid::Uuid;

pub const COOKIE: &str = "panel1_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session token of the request's cookie, if it has one.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// Tokens are 32 random bytes in hex.
fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What a live session resolves to.
pub(crate) struct Session {
    pub principal: Principal,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

type SessionRow = (String, Vec<u8>, String, DateTime<Utc>);

/// Resolve a session token: the session must be unexpired and its key
/// unrevoked, and the key is then admitted like a Bearer key. An unknown
/// token counts as a failed authentication of the address.
pub(crate) async fn lookup(
    state: &AppState,
    token: &str,
    addr: Option<IpAddr>,
) -> ApiResult<Session> {
    let row: Option<SessionRow> = if well_formed(token) {
        sqlx::query_as(
            "SELECT k.prefix, k.hash, s.csrf_token, s.expires_at
             FROM console_sessions s JOIN api_keys k ON k.id = s.key_id
             WHERE s.token_hash = $1 AND s.expires_at > now() AND k.revoked_at IS NULL",
        )
        .bind(token_hash(token))
        .fetch_optional(&state.pool)
        .await?
    } else {
        None
    };
    let Some((prefix, hash, csrf, expires_at)) = row else {
        // Matches no key: counted, then refused (or 429 when blocked).
        return auth::admit_stored(state, "", &[], addr)
            .await
            .and(Err(ApiError::Unauthorized));
    };
    let principal = auth::admit_stored(state, &prefix, &hash, addr).await?;
    Ok(Session {
        principal,
        csrf,
        expires_at,
    })
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Equal strings, compared in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_csrf(headers: &HeaderMap, session: &Session) -> ApiResult<()> {
    let sent = headers.get(CSRF_HEADER).map(|v| v.as_bytes());
    match sent {
        Some(t) if same_secret(t, session.csrf.as_bytes()) => Ok(()),
        _ => Err(ApiError::Forbidden(
            "a console session must send its X-CSRF-Token header with POST, PUT, PATCH and DELETE"
                .into(),
        )),
    }
}

/// For the `/v1` middleware: the principal of a cookie-authenticated
/// request, CSRF-checked for unsafe methods.
pub(crate) async fn admit_request(
    state: &AppState,
    token: &str,
    method: &Method,
    headers: &HeaderMap,
    addr: Option<IpAddr>,
) -> ApiResult<Principal> {
    let session = lookup(state, token, addr).await?;
    if unsafe_method(method) {
        check_csrf(headers, &session)?;
    }
    Ok(session.principal)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub key: String,
}

/// What the page needs to know about its session (never the token).
#[derive(Debug, Serialize)]
pub struct SessionInfo {
    pub csrf_token: String,
    pub key_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub scopes: Vec<Scope>,
    pub expires_at: DateTime<Utc>,
}

impl SessionInfo {
    fn of(s: Session) -> SessionInfo {
        SessionInfo {
            csrf_token: s.csrf,
            key_id: s.principal.key_id,
            tenant_id: s.principal.tenant,
            scopes: s.principal.scopes,
            expires_at: s.expires_at,
        }
    }
}

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer_ip(peer: &Peer) -> Option<IpAddr> {
    peer.as_ref().map(|Extension(ConnectInfo(a))| a.ip())
}

/// A foreign `Origin` (another site posting to the sign-in) is refused.
fn same_origin(headers: &HeaderMap) -> ApiResult<()> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(()); // not a browser, or a same-origin GET-like request
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok();
    let ok = match (origin, host) {
        (Some(o), Some(h)) => o == format!("http://{h}") || o == format!("https://{h}"),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "sign-in is only accepted from the console's own origin".into(),
        ))
    }
}

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.console_secure_cookie
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

fn cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let flags = if secure { "; Secure" } else { "" };
    // The value is hex (or empty): always a valid header value.
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{flags}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("panel1_session=; Max-Age=0"))
}

/// `POST /console/session` `{"key": "p1_..."}`: sign in.
pub async fn sign_in(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignIn>,
) -> ApiResult<Response> {
    same_origin(&headers)?;
    let principal = auth::admit(&state, Some(body.key.trim()), peer_ip(&peer)).await?;
    let token = new_token();
    let csrf = new_token();
    let ttl = state.config.console_session_ttl.as_secs().max(60) as i64;
    // Sweep expired sessions now and then (the expiry index makes it cheap).
    if rand::random::<u8>() < 16 {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < now()")
            .execute(&state.pool)
            .await?;
    }
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO console_sessions (token_hash, key_id, csrf_token, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at",
    )
    .bind(token_hash(&token))
    .bind(principal.key_id)
    .bind(&csrf)
    .bind(ttl as f64)
    .fetch_one(&state.pool)
    .await?;
    let info = SessionInfo::of(Session {
        principal,
        csrf,
        expires_at,
    });
    let mut resp = (StatusCode::CREATED, Json(info)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&token, ttl, secure(&state, &headers)),
    );
    Ok(resp)
}

/// `GET /console/session`: the current session (and its CSRF token).
pub async fn current(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
) -> ApiResult<Json<SessionInfo>> {
    let token = cookie_token(&headers).ok_or(ApiError::Unauthorized)?;
    let session = lookup(&state, token, peer_ip(&peer)).await?;
    Ok(Json(SessionInfo::of(session)))
}

/// `DELETE /console/session`: sign out (the row is deleted, the cookie
/// cleared). Needs the CSRF token like any unsafe console request.
pub async fn sign_out(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = cookie_token(&headers).ok_or(ApiError::Unauthorized)?;
    let session = lookup(&state, token, peer_ip(&peer)).await?;
    check_csrf(&headers, &session)?;
    sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
        .bind(token_hash(token))
        .execute(&state.pool)
        .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, secure(&state, &headers)));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; panel1_session=abc"),
        );
        assert_eq!(cookie_token(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("xpanel1_session=abc"),
        );
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abcd", b"abcd"));
        assert!(!same_secret(b"abcd", b"abce"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn cookies_carry_the_flags() {
        let c = cookie("ff", 60, false);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"));
        assert!(!c.contains("Secure"));
        assert!(cookie("ff", 60, true)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
    }
}
