//! API keys: generated once, shown once, stored as a SHA-256 (keys are 208
//! random bits, so a fast hash is enough: there is nothing to brute-force).
//! Scopes nest: `admin` ⊇ `write` ⊇ `read`; `platform` is separate and only
//! manages tenants and built-in adapters.
use crate::problem::{ApiError, ApiResult};
use crate::rate_limit;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::net::{IpAddr, SocketAddr};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
    Platform,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Platform => "platform",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "read" => Scope::Read,
            "write" => Scope::Write,
            "admin" => Scope::Admin,
            "platform" => Scope::Platform,
            _ => return None,
        })
    }
}

/// Who is calling: resolved from the `Authorization: Bearer` key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: Uuid,
    /// `None` for platform keys.
    pub tenant: Option<Uuid>,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// The caller's tenant, with at least `scope` (tenant endpoints).
    pub fn tenant(&self, scope: Scope) -> ApiResult<Uuid> {
        let Some(tenant) = self.tenant else {
            return Err(ApiError::Forbidden(
                "platform keys manage tenants and built-in adapters; use a tenant key here".into(),
            ));
        };
        if !self
            .scopes
            .iter()
            .any(|s| *s != Scope::Platform && *s >= scope)
        {
            return Err(ApiError::Forbidden(format!(
                "this key lacks the `{}` scope",
                scope.as_str()
            )));
        }
        Ok(tenant)
    }

    pub fn require_platform(&self) -> ApiResult<()> {
        if self.scopes.contains(&Scope::Platform) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs a platform key".into()))
        }
    }

    pub fn is_platform(&self) -> bool {
        self.scopes.contains(&Scope::Platform)
    }

    /// Whose idempotency keys these are (nil = platform).
    pub fn owner(&self) -> Uuid {
        self.tenant.unwrap_or(Uuid::nil())
    }
}

const KEY_PREFIX: &str = "p1_";
const PREFIX_LEN: usize = 12;

/// A new key: `p1_` + 52 hex digits; the first 12 are its lookup prefix.
pub fn generate_key() -> (String, String, [u8; 32]) {
    let bytes: [u8; 26] = rand::random();
    let key = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    let prefix = key[KEY_PREFIX.len()..KEY_PREFIX.len() + PREFIX_LEN].to_string();
    let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    (key, prefix, hash)
}

/// Store a new key; returns (id, the plaintext key — shown once).
pub async fn create_key(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Option<Uuid>,
    name: &str,
    scopes: &[Scope],
) -> Result<(Uuid, String), sqlx::Error> {
    let (key, prefix, hash) = generate_key();
    let id = Uuid::now_v7();
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, hash, scopes) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(tenant)
    .bind(name)
    .bind(&prefix)
    .bind(&hash[..])
    .bind(&scopes)
    .execute(db)
    .await?;
    Ok((id, key))
}

/// Create the first platform key when none exists (first start of a new
/// installation). Returns the plaintext key, or `None` if one exists.
pub async fn bootstrap_platform_key(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Two servers starting at once must not both create one.
    sqlx::query("SELECT pg_advisory_xact_lock(7120001)")
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM api_keys WHERE tenant_id IS NULL AND revoked_at IS NULL)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        return Ok(None);
    }
    let (key, prefix, hash) = generate_key();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, hash, scopes) VALUES ($1, NULL, 'bootstrap', $2, $3, ARRAY['platform'])",
    )
    .bind(Uuid::now_v7())
    .bind(&prefix)
    .bind(&hash[..])
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(key))
}

/// What `panel1_admit` decided (migrations/0012): outcome, the wait in
/// seconds for a 429, and the key's id, tenant and scopes when admitted.
type Admission = (
    String,
    Option<f64>,
    Option<Uuid>,
    Option<Uuid>,
    Option<Vec<String>>,
);

/// Admit one request: the address's failed-authentication count, the key
/// (looked up by prefix and hash; a wrong one counts against the address)
/// and the key's rate, in one round trip shared by every API process.
pub(crate) async fn admit(
    state: &AppState,
    key: Option<&str>,
    addr: Option<IpAddr>,
) -> ApiResult<Principal> {
    // A malformed key is looked up as one that matches nothing, so it
    // counts as a failure like any other wrong key.
    let (prefix, hash) = match key.and_then(|k| k.strip_prefix(KEY_PREFIX).map(|r| (k, r))) {
        Some((key, rest)) if rest.len() == 52 && rest.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            (rest[..PREFIX_LEN].to_string(), hash.to_vec())
        }
        _ => (String::new(), Vec::new()),
    };
    admit_stored(state, &prefix, &hash, addr).await
}

/// [`admit`] for a key known by its stored prefix and hash (a console
/// session admits its key this way: the plaintext key is never kept).
/// An empty prefix and hash match nothing and count as a failure.
pub(crate) async fn admit_stored(
    state: &AppState,
    prefix: &str,
    hash: &[u8],
    addr: Option<IpAddr>,
) -> ApiResult<Principal> {
    let limits = &state.config;
    let (outcome, wait, id, tenant, scopes): Admission = sqlx::query_as(
        "SELECT outcome, extract(epoch FROM wait)::float8, key_id, tenant_id, scopes
         FROM panel1_admit($1, $2, $3::inet, $4, make_interval(secs => $5), $6, $7)",
    )
    .bind(prefix)
    .bind(hash)
    .bind(addr.map(|ip| rate_limit::client_block(ip).to_string()))
    .bind(limits.auth_failure_limit.max(1) as i32)
    .bind(limits.auth_failure_window.as_secs_f64())
    .bind(limits.rate_limit_per_second.max(1) as i32)
    .bind(limits.rate_limit_burst.max(1) as i32)
    .fetch_one(&state.pool)
    .await?;
    match (outcome.as_str(), id) {
        ("ok", Some(key_id)) => Ok(Principal {
            key_id,
            tenant,
            scopes: scopes
                .unwrap_or_default()
                .iter()
                .filter_map(|s| Scope::parse(s))
                .collect(),
        }),
        ("address-blocked" | "rate-limited", _) => Err(rate_limit::too_many(wait.unwrap_or(1.0))),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Middleware: admit the request (address, key, rate; see [`admit`]) and
/// hand the [`Principal`] to the handlers. A request without
/// `Authorization` may instead carry a console session cookie: it acts as
/// the session's key (admitted the same way) and, for unsafe methods, must
/// echo the session's CSRF token (see `console::session`).
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // Set by `server::serve`; absent only under another server loop.
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let key = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Any `Authorization` header (even a malformed one) is what counts.
    let session = match req.headers().contains_key(header::AUTHORIZATION) {
        false => crate::console::session::cookie_token(req.headers()),
        true => None,
    };
    let principal = match session {
        Some(token) => {
            let token = token.to_string();
            crate::console::session::admit_request(
                &state,
                &token,
                req.method(),
                req.headers(),
                addr,
            )
            .await?
        }
        None => admit(&state, key, addr).await?,
    };
    authorize(&principal, req.method(), req.uri().path())?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// The coarse rule for a route, checked before the body is read (so a key
/// without the right gets 403 whatever it sends); handlers check again.
fn authorize(p: &Principal, method: &axum::http::Method, path: &str) -> ApiResult<()> {
    if path.starts_with("/v1/tenants") {
        return p.require_platform();
    }
    // Platform keys manage built-in adapters; tenant keys everything else.
    if path.starts_with("/v1/adapters") && p.is_platform() {
        return Ok(());
    }
    let scope = if path.starts_with("/v1/keys") {
        Scope::Admin
    } else if method == axum::http::Method::GET {
        Scope::Read
    } else {
        Scope::Write
    };
    p.tenant(scope).map(|_| ())
}
