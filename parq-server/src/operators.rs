//! Operators and their API keys, made without the demo: by the platform's admin API
//! (`POST /api/v1/admin/operators`), by operators themselves (`/api/v1/operator/keys`), and
//! by `parq operator create` and `parq key create|list|revoke` against the configured store.
//! Operators live in the reservation store, API keys in the account store (as digests).

use parq_core::{DynReservationStore, Error, Operator, OperatorId, Result};

use crate::accounts::{Accounts, ApiKeyRecord, Role};

/// A new operator and its first operator API key, shown once.
#[derive(Debug, Clone)]
pub struct Created {
    /// The operator.
    pub operator: Operator,
    /// Its first operator key's record.
    pub record: ApiKeyRecord,
    /// The key itself: shown once, never kept.
    pub key: String,
}

fn check_name(field: &'static str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid(field, "must be 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

/// Makes an operator named `name` (with at most `max_holds_per_user` live holds per driver
/// across its lots, when given) and its first operator API key, named after it.
///
/// # Errors
/// [`Error::Invalid`] for a bad name or limit; the stores' errors.
pub async fn create(
    store: &DynReservationStore,
    accounts: &Accounts,
    name: &str,
    max_holds_per_user: Option<u32>,
) -> Result<Created> {
    let name = check_name("name", name)?;
    if max_holds_per_user == Some(0) {
        return Err(Error::invalid("max_holds_per_user", "must be at least 1 (leave it out for no limit)"));
    }
    let operator = Operator { id: OperatorId::new(), name, max_holds_per_user };
    store.put_operator(&operator).await?;
    let (record, key) =
        ApiKeyRecord::issue(&format!("{} (first key)", operator.name), Role::Operator, operator.id);
    accounts.put_api_key(&record).await?;
    Ok(Created { operator, record, key })
}

/// Makes an API key of `role` (`operator` or `gate`) for the operator `operator`, which must
/// exist. Returns its record and the key, shown once.
///
/// # Errors
/// [`Error::NotFound`] for an unknown operator, [`Error::Invalid`] for a driver role or a bad
/// name; the stores' errors.
pub async fn create_key(
    store: &DynReservationStore,
    accounts: &Accounts,
    operator: OperatorId,
    role: Role,
    name: &str,
) -> Result<(ApiKeyRecord, String)> {
    if role == Role::Driver {
        return Err(Error::invalid("role", "API keys are for gates and operators"));
    }
    let name = check_name("name", name)?;
    store.operator(operator).await?;
    let (record, key) = ApiKeyRecord::issue(&name, role, operator);
    accounts.put_api_key(&record).await?;
    Ok((record, key))
}
