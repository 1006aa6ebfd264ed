//! Completions the database refuses for what they carry, not for being
//! unable to answer. An adapter's result is the tenant's input: a
//! `remote_id` another live service already has breaks a unique index, an
//! overlong one the index's size limit. Retried as if the database were
//! down, one such item held up every completion of its batch (up to 512
//! tasks of any tenant) for four lease lengths, and was then run again.
//! Such a batch is committed one item at a time instead, and an item still
//! refused alone is committed as a failure that says why.
use panel1_store::{AttemptRecord, ClaimedTask, StoreError, TaskOutcome};

/// The database refused the data (SQLSTATE class 22, data exception; 23,
/// integrity constraint; 54, program limit such as an index row's size):
/// the same statement would be refused again.
pub(crate) fn refused_for_its_data(e: &StoreError) -> bool {
    match e {
        StoreError::Db(sqlx::Error::Database(db)) => db
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54")),
        StoreError::Invalid(_) => true,
        _ => false,
    }
}

/// The item as a failed attempt: the result could not be stored. Not
/// retried (the adapter would return the same), and a provision's service
/// fails with the reason.
pub(crate) fn as_failure(
    item: &(ClaimedTask, TaskOutcome, AttemptRecord),
    e: &StoreError,
) -> (ClaimedTask, TaskOutcome, AttemptRecord) {
    let (task, _, record) = item;
    let outcome = TaskOutcome::SandboxError {
        kind: "invalid-output".into(),
        message: format!("the adapter's result could not be stored: {e}"),
    };
    (task.clone(), outcome, record.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_errors_count_as_refused() {
        assert!(refused_for_its_data(&StoreError::Invalid("x".into())));
        assert!(!refused_for_its_data(&StoreError::Db(
            sqlx::Error::PoolTimedOut
        )));
        assert!(!refused_for_its_data(&StoreError::NotFound("x".into())));
    }
}
