//! Extractors whose rejections are problems: malformed input is a 4xx `problem+json`,
//! never a 500 and never a plain-text body.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use parq_core::{OperatorId, UserId};
use serde::de::DeserializeOwned;

use crate::accounts::Role;
use crate::problem::{Problem, ProblemCode};
use crate::state::{Admin, AppState, Principal};

/// A JSON body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(r: JsonRejection) -> Problem {
    match r {
        JsonRejection::JsonDataError(e) => {
            // serde_path_to_error's text names the field: "lot_id: invalid type …".
            Problem::new(ProblemCode::Invalid, format!("the JSON body does not match: {}", e.body_text()))
                .with("field", "body")
        }
        JsonRejection::JsonSyntaxError(e) => {
            Problem::bad_request(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(ProblemCode::UnsupportedMediaType, "send the body as Content-Type: application/json")
        }
        JsonRejection::BytesRejection(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                ProblemCode::PayloadTooLarge,
                format!("the body must be at most {} bytes", crate::http::MAX_BODY),
            )
        }
        other => Problem::bad_request(format!("the body could not be read: {}", other.body_text())),
    }
}

/// Path parameters (ids are UUIDs).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(Problem::bad_request(format!("bad path parameter: {}", e.body_text()))
                    .with("field", "path"))
            }
            Err(e) => Err(Problem::bad_request(e.body_text())),
        }
    }
}

/// Query parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(Problem::bad_request(format!("bad query: {}", e.body_text())).with("field", "query"))
            }
            Err(e) => Err(Problem::bad_request(e.body_text())),
        }
    }
}

/// Any authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts.extensions.get::<Principal>().cloned().map(Caller).ok_or_else(|| {
            Problem::unauthorized("log in and send Authorization: Bearer <token>, or an API key")
        })
    }
}

/// A logged-in account (a person, not an API key): what reservations belong to.
#[derive(Debug, Clone)]
pub struct User {
    /// The account.
    pub id: UserId,
    /// The session's token digest.
    pub session: String,
}

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Problem> {
        match Caller::from_request_parts(parts, s).await?.0 {
            Principal::User { id, session, .. } => Ok(User { id, session }),
            Principal::Key { .. } => Err(Problem::forbidden("this needs a person's login, not an API key")),
        }
    }
}

/// A caller acting for an operator: an operator account or an operator API key.
#[derive(Debug, Clone, Copy)]
pub struct OperatorCaller(pub OperatorId);

impl<S: Send + Sync> FromRequestParts<S> for OperatorCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Problem> {
        let p = Caller::from_request_parts(parts, s).await?.0;
        match (p.role(), p.operator()) {
            (Role::Operator, Some(op)) => Ok(OperatorCaller(op)),
            _ => Err(Problem::forbidden("this needs the operator role")),
        }
    }
}

/// A gate (or an operator) scanning passes at one operator's lots.
#[derive(Debug, Clone, Copy)]
pub struct GateCaller(pub OperatorId);

impl<S: Send + Sync> FromRequestParts<S> for GateCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Problem> {
        let p = Caller::from_request_parts(parts, s).await?.0;
        match (p.role(), p.operator()) {
            (Role::Gate | Role::Operator, Some(op)) => Ok(GateCaller(op)),
            _ => Err(Problem::forbidden("this needs a gate API key")),
        }
    }
}

/// The platform's admin, who presented `admin_key`. Without an `admin_key` configured the admin
/// API is off: `404`, saying so.
#[derive(Debug, Clone, Copy)]
pub struct AdminCaller;

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Problem> {
        if s.config.admin_key().is_none() {
            return Err(Problem::not_found(
                "the admin API is off on this server: set admin_key (PARQ_ADMIN_KEY_FILE=/path) to turn it on",
            ));
        }
        if parts.extensions.get::<Admin>().is_some() {
            return Ok(AdminCaller);
        }
        if parts.extensions.get::<Principal>().is_some() {
            return Err(Problem::forbidden(
                "this needs the platform's admin key (admin_key), not an account or API key",
            ));
        }
        Err(Problem::unauthorized("send the admin key as Authorization: Bearer <admin_key>"))
    }
}
