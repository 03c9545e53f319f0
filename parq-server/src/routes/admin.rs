//! The platform's admin API: making operators. Authorised by the `admin_key` secret
//! (`Authorization: Bearer <admin_key>`); without one configured it is off and answers `404`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::views::{NewApiKey, NewOperator, SortedJson};
use crate::extract::{AdminCaller, ApiJson};
use crate::problem::{ApiResult, JsonBody, Problem};
use crate::state::AppState;

/// A new operator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OperatorRequest)]
pub struct OperatorBody {
    /// Its name.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// How many live holds one driver may have across its lots; leave out for no limit.
    #[serde(default)]
    #[schema(minimum = 1)]
    max_holds_per_user: Option<u32>,
}

/// Create an operator and its first operator API key (shown once). The key then manages the
/// operator's lots, spots and keys through `/api/v1/operator/…`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/operators",
    operation_id = "create_operator",
    tag = "admin",
    security(("adminKey" = [])),
    request_body = OperatorBody,
    responses(
        (status = CREATED, description = "Created", body = NewOperator),
        (status = NOT_FOUND, response = Problem),
        JsonBody,
    )
)]
pub async fn create_operator(
    State(s): State<AppState>,
    _: AdminCaller,
    ApiJson(b): ApiJson<OperatorBody>,
) -> ApiResult<(StatusCode, SortedJson<NewOperator>)> {
    let made =
        crate::operators::create(&**s.engine.store(), &s.accounts, &b.name, b.max_holds_per_user).await?;
    tracing::info!(operator = %made.operator.id, "created an operator");
    Ok((
        StatusCode::CREATED,
        SortedJson(NewOperator {
            id: made.operator.id,
            key: NewApiKey {
                created_at: made.record.created_at,
                id: made.record.id,
                key: made.key,
                name: made.record.name,
                role: made.record.role,
            },
            max_holds_per_user: made.operator.max_holds_per_user,
            name: made.operator.name,
        }),
    ))
}
