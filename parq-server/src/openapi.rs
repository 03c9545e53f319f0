//! The OpenAPI 3.1 document of the API, served at `/api/v1/openapi.json` and printed by
//! `parq openapi`.
//!
//! It is generated: each handler's `#[utoipa::path]` gives its operation (parameters, bodies,
//! responses, links between operations) and each type's `ToSchema` its schema; the route table
//! collects them ([`crate::routes::api`]). Added here, because they hold for many routes at once:
//! the document's information, server and security schemes; the `Idempotency-Key` header of the
//! routes that need one ([`crate::routes::keys`]); and the problems (`application/problem+json`)
//! that the layers in front of every handler answer: unknown credentials (401) and rate limits
//! (429) on every route, a missing role (403) where the route has a security requirement, a
//! malformed parameter (400), and the idempotency layer's (400, 409, 413, 422). Every problem
//! answer of a route is described by the [`ProblemCode`](crate::problem::ProblemCode)s of its
//! status.
//!
//! Tests hold the document to the route table, and to a committed snapshot
//! (`tests/snapshots/openapi.json`), so that every change to the API shows in review.

use std::collections::{BTreeSet, HashMap};

use axum::http::{Method, StatusCode};
use serde_json::Value;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    InfoBuilder, LicenseBuilder, OpenApi, RefOr, Required, Response, ResponseBuilder, Server,
};
use utoipa::{PartialSchema, ToSchema};

use crate::idempotency::Keys;
use crate::problem::{self, PROBLEM_JSON, Problem};
use crate::routes;

/// The document, as JSON.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(openapi()).expect("the OpenAPI document serialises");
    camel_case_links(&mut doc);
    doc
}

/// utoipa 5 writes a link's fixed fields in snake case (`operation_id`); OpenAPI names them in
/// camel case (`operationId`), and clients following links look for those names.
fn camel_case_links(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    let operations = paths.values_mut().filter_map(Value::as_object_mut).flat_map(|item| item.values_mut());
    let responses =
        operations.filter_map(|op| op.get_mut("responses")?.as_object_mut()).flat_map(|r| r.values_mut());
    let links = responses.filter_map(|r| r.get_mut("links")?.as_object_mut()).flat_map(|l| l.values_mut());
    for link in links.filter_map(Value::as_object_mut) {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(v) = link.remove(from) {
                link.insert(to.to_owned(), v);
            }
        }
    }
}

/// The document.
pub fn openapi() -> OpenApi {
    let mut api = routes::api();
    api.info = InfoBuilder::new()
        .title("ParQ")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Parking reservations: find a lot, hold a spot, pay, get a pass, open the gate. Every \
             unsafe request carries an Idempotency-Key; errors are application/problem+json (RFC 9457).",
        ))
        .license(Some(
            LicenseBuilder::new().name("MIT OR Apache-2.0").identifier(Some("MIT OR Apache-2.0")).build(),
        ))
        .build();
    api.servers = Some(vec![Server::new("/")]);
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A session token from /api/v1/auth/login, or an API key."))
                .build(),
        ),
    );
    components
        .add_security_scheme("apiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))));
    components.add_security_scheme(
        "adminKey",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The platform's admin key (the server's admin_key secret)."))
                .build(),
        ),
    );
    let mut schemas = vec![(Problem::name().into_owned(), Problem::schema())];
    Problem::schemas(&mut schemas);
    components.schemas.extend(schemas);

    let keys: HashMap<(Method, String), Keys> =
        routes::keys().into_iter().map(|(method, path, keys)| ((method, path), keys)).collect();
    for (path, item) in &mut api.paths.paths {
        for (method, op) in operations(item) {
            let keys = keys.get(&(method.clone(), path.clone())).copied().unwrap_or(Keys::None);
            complete(op, keys);
        }
    }
    api
}

/// The operations of a path item, with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::OPTIONS, &mut item.options),
        (Method::HEAD, &mut item.head),
        (Method::PATCH, &mut item.patch),
        (Method::TRACE, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// Adds to a route's operation what the layers in front of its handler do.
fn complete(op: &mut Operation, keys: Keys) {
    let parameters = op.parameters.get_or_insert_with(Vec::new);
    // Problems the handler declares (`response = Problem`, or a group such as `JsonBody`).
    let mut problems: BTreeSet<StatusCode> = op
        .responses
        .responses
        .iter()
        .filter(|(_, r)| is_problem(r))
        .filter_map(|(status, _)| status.parse().ok())
        .collect();
    // Credentials that are unknown or expired, on any route; the rate limits.
    problems.extend([StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS]);
    if op.security.is_some() {
        problems.insert(StatusCode::FORBIDDEN);
    }
    if !parameters.is_empty() {
        problems.insert(StatusCode::BAD_REQUEST);
    }
    if keys.required() {
        parameters.push(idempotency_key());
        problems.insert(StatusCode::BAD_REQUEST);
    }
    if keys == Keys::Recorded {
        // In progress, too large to record, reused with another request.
        problems.extend([
            StatusCode::CONFLICT,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNPROCESSABLE_ENTITY,
        ]);
    }
    let responses = &mut op.responses.responses;
    for status in problems {
        let key = status.as_str().to_owned();
        if responses.get(&key).is_none_or(is_problem) {
            responses.insert(key, RefOr::T(problem::response_for(status)));
        }
    }
    let default = ResponseBuilder::new()
        .description("Any other problem")
        .content(PROBLEM_JSON, problem_content())
        .build();
    responses.insert("default".into(), RefOr::T(default));
}

/// Whether a documented answer is a problem.
fn is_problem(r: &RefOr<Response>) -> bool {
    match r {
        RefOr::Ref(r) => {
            r.ref_location == format!("#/components/responses/{}", <Problem as ToSchema>::name())
        }
        RefOr::T(r) => r.content.contains_key(PROBLEM_JSON),
    }
}

fn problem_content() -> utoipa::openapi::Content {
    utoipa::openapi::ContentBuilder::new()
        .schema(Some(utoipa::openapi::Ref::from_schema_name(<Problem as ToSchema>::name())))
        .build()
}

/// The `Idempotency-Key` header: what [`crate::idempotency::parse_key`] takes.
fn idempotency_key() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::True)
        .description(Some(
            "A unique key per logical request (a random UUID); a retry with the same key and request \
             gets the same answer.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[!-~]+$")),
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idempotency;
    use crate::problem::ProblemCode;

    #[test]
    fn the_problem_codes_are_in_the_document() {
        let doc = document();
        let codes = &doc["components"]["schemas"]["ProblemCode"]["enum"];
        let expected: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes, &serde_json::json!(expected));
        let problem = &doc["components"]["schemas"]["Problem"]["allOf"];
        let own = problem.as_array().unwrap().iter().find(|s| s.get("properties").is_some()).unwrap();
        let types = own["properties"]["type"]["enum"].as_array().unwrap();
        let expected: Vec<String> = ProblemCode::ALL.iter().map(|c| c.type_uri()).collect();
        assert_eq!(types, &expected.iter().map(|t| serde_json::json!(t)).collect::<Vec<_>>());
        assert!(idempotency::HEADER.eq_ignore_ascii_case("Idempotency-Key"));
    }
}
