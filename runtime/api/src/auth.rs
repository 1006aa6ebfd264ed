//! API keys: generated once, shown once, stored as a SHA-256 (keys are 208
//! random bits, so a fast hash is enough: there is nothing to brute-force).
//! Scopes nest: `admin` ⊇ `write` ⊇ `read`; `platform` is separate and only
//! manages tenants and built-in adapters.
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::net::SocketAddr;
use subtle::ConstantTimeEq;
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

/// (id, tenant, hash, scopes, last-used stamp is stale)
type KeyRow = (Uuid, Option<Uuid>, Vec<u8>, Vec<String>, bool);

async fn resolve(pool: &PgPool, key: &str) -> ApiResult<Principal> {
    let rest = key.strip_prefix(KEY_PREFIX).ok_or(ApiError::Unauthorized)?;
    if rest.len() != 52 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::Unauthorized);
    }
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT id, tenant_id, hash, scopes, last_used_at IS NULL OR last_used_at < now() - interval '1 minute'
         FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL",
    )
    .bind(&rest[..PREFIX_LEN])
    .fetch_optional(pool)
    .await?;
    let Some((id, tenant, hash, scopes, touch)) = row else {
        return Err(ApiError::Unauthorized);
    };
    let given: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    if !bool::from(given.ct_eq(hash.as_slice())) {
        return Err(ApiError::Unauthorized);
    }
    if touch {
        // At most one write a minute per key.
        sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
    }
    Ok(Principal {
        key_id: id,
        tenant,
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
    })
}

/// Middleware: refuse an address that failed too often, resolve the key
/// (counting a failure against the address), apply the key's rate limit,
/// and hand the [`Principal`] to the handlers.
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
    if let Some(ip) = addr {
        state.auth_failures.check(ip)?;
    }
    let key = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let resolved = match key {
        Some(key) => resolve(&state.pool, key).await,
        None => Err(ApiError::Unauthorized),
    };
    let principal = match resolved {
        Ok(p) => p,
        Err(ApiError::Unauthorized) => {
            if let Some(ip) = addr {
                state.auth_failures.failed(ip);
            }
            return Err(ApiError::Unauthorized);
        }
        Err(other) => return Err(other),
    };
    state.rate_limits.check(principal.key_id)?;
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
