//! The request's transaction. Every POST handler writes through
//! [`Effect::begin`]; the middleware commits what it wrote only after the
//! handler answered 2xx (and, under an `Idempotency-Key`, after the answer
//! was written into the same transaction). An error answer rolls it back.
use super::{buffer, faults, Claim, Stored};
use crate::problem::{ApiError, ApiResult};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// A handler's access to its request's transaction (an extractor).
#[derive(Clone)]
pub struct Effect(Arc<Mutex<Slot>>);

struct Slot {
    pool: PgPool,
    claim: Option<Claim>,
    tx: Option<Transaction<'static, Postgres>>,
    /// Another request under the same key committed while this one waited
    /// for the key: its answer is this request's answer.
    answered: Option<Stored>,
}

/// The open transaction, borrowed by the handler; use it as a
/// `&mut PgConnection`. Drop it before calling [`Effect::begin`] again.
pub struct EffectTx(OwnedMutexGuard<Slot>);

impl Deref for EffectTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        // `begin` returns an EffectTx only after it put the transaction in.
        self.0
            .tx
            .as_deref()
            .expect("an EffectTx holds an open transaction")
    }
}

impl DerefMut for EffectTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.0
            .tx
            .as_deref_mut()
            .expect("an EffectTx holds an open transaction")
    }
}

impl Effect {
    pub(super) fn new(pool: PgPool, claim: Option<Claim>) -> Effect {
        Effect(Arc::new(Mutex::new(Slot {
            pool,
            claim,
            tx: None,
            answered: None,
        })))
    }

    /// The request's transaction, begun on first use. Under a key it first
    /// takes the key (waiting for a duplicate in flight); if that duplicate
    /// committed, this returns an error and the middleware answers with the
    /// duplicate's answer instead of the handler's.
    pub async fn begin(&self) -> ApiResult<EffectTx> {
        let mut slot = self.0.clone().lock_owned().await;
        if slot.tx.is_none() {
            let mut tx = slot.pool.begin().await?;
            if let Some(claim) = &slot.claim {
                if let Some(stored) = claim.lock(&mut tx).await? {
                    slot.answered = Some(stored);
                    // Replaced by the stored answer in `finish`.
                    return Err(ApiError::IdempotencyInProgress);
                }
            }
            slot.tx = Some(tx);
        }
        Ok(EffectTx(slot))
    }

    /// After the handler: commit with the answer, or roll back.
    pub(super) async fn finish(self, resp: Response) -> Result<Response, ApiError> {
        let mut slot = self.0.lock().await;
        let claim = slot.claim.clone();
        if let (Some(stored), Some(claim)) = (slot.answered.take(), &claim) {
            return claim.replay(stored);
        }
        let tx = slot.tx.take();
        if !resp.status().is_success() {
            // Dropping the transaction rolls it back: nothing happened.
            drop(tx);
            return Ok(resp);
        }
        let Some(claim) = claim else {
            if let Some(tx) = tx {
                tx.commit().await?;
            }
            return Ok(resp);
        };
        let mut tx = match tx {
            Some(tx) => tx,
            // A handler that wrote nothing still answers once per key.
            None => {
                let mut tx = slot.pool.begin().await?;
                if let Some(stored) = claim.lock(&mut tx).await? {
                    return claim.replay(stored);
                }
                tx
            }
        };
        let (resp, body) = buffer(resp).await?;
        claim.store(&mut tx, resp.status(), body).await?;
        faults::at(faults::Point::BeforeCommit);
        tx.commit().await?;
        faults::at(faults::Point::AfterCommit);
        Ok(resp)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Effect {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Effect>().cloned().ok_or_else(|| {
            ApiError::internal("effect", "a POST route outside the idempotency layer")
        })
    }
}
