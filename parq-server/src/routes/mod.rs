//! The HTTP API. Every route is registered through [`Routes`] from its handler, whose
//! `#[utoipa::path]` gives the method, the path and the route's OpenAPI operation ([`api`]);
//! `Routes` also keeps what each route does with `Idempotency-Key` ([`Keys`]): unsafe methods
//! are recorded by the idempotency layer unless the route says otherwise, right where it is
//! defined.

mod account;
mod admin;
mod driver;
mod gates;
mod operator;
mod ops;
mod payments;
mod public;
pub mod views;
mod web;

// The JSON request bodies (besides those in `views`), public so that they can be parsed on
// their own (the fuzz targets do).
pub use account::{ConfirmBody, LoginBody, RegisterBody};
pub use admin::OperatorBody;
pub use gates::ScanBody;
pub use operator::{BlackoutsBody, KeyBody, LotBody, SpotBody};
pub use payments::PayBody;

use axum::Router;
use axum::http::Method;
use axum::middleware::from_fn;
use axum::routing::{MethodRouter, get};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{OpenApi, RefOr, Schema};
use utoipa_axum::router::UtoipaMethodRouter;
use utoipa_axum::routes;

use crate::idempotency::{self, Keys};
use crate::state::AppState;

/// One route: where, what it does with `Idempotency-Key`, and its OpenAPI operation.
struct Entry {
    method: Method,
    path: String,
    keys: Keys,
    route: MethodRouter<AppState>,
    item: PathItem,
}

/// A router that remembers its routes; the axum router is built from them at the end.
struct Routes {
    entries: Vec<Entry>,
    /// The schemas the routes' operations name.
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl Routes {
    fn new() -> Self {
        Self { entries: Vec::new(), schemas: Vec::new() }
    }

    /// Adds a handler's route (`routes!(handler)`: the method and path of its
    /// `#[utoipa::path]`); an unsafe method's `Idempotency-Key` is recorded by the idempotency
    /// layer unless a modifier below says otherwise.
    fn at(mut self, (schemas, paths, route): UtoipaMethodRouter<AppState>) -> Self {
        let mut paths = paths.paths.into_iter();
        let (path, item) = paths.next().expect("a handler's path");
        assert!(paths.next().is_none(), "one path per handler");
        let method = method_of(&item).unwrap_or_else(|| panic!("{path}: one method per handler"));
        let keys = Keys::default_for(&method);
        self.schemas.extend(schemas);
        self.entries.push(Entry { method, path, keys, route, item });
        self
    }

    /// The route just added hands its `Idempotency-Key` to the engine, which records it
    /// atomically with the change it makes: the layer only checks the key and passes it on.
    fn keyed_by_engine(self) -> Self {
        self.mark(Keys::Engine)
    }

    /// The route just added is deduplicated by the event id in its body (payment webhooks):
    /// it takes no `Idempotency-Key`.
    fn deduplicated_by_event_id(self) -> Self {
        self.mark(Keys::EventId)
    }

    /// The route just added is deduplicated by the ids of the readings in its body (gate
    /// uploads): it takes no `Idempotency-Key`.
    fn deduplicated_by_scan_ids(self) -> Self {
        self.mark(Keys::EventId)
    }

    fn mark(mut self, keys: Keys) -> Self {
        let last = self.entries.last_mut().expect("a route to mark");
        assert!(Keys::default_for(&last.method).required(), "{} {} is a safe method", last.method, last.path);
        last.keys = keys;
        self
    }

    /// The axum router: each route with its idempotency layer. Per route, so that a wrong
    /// method is still 405 and an unknown path 404.
    fn router(self) -> Router<AppState> {
        self.entries.into_iter().fold(Router::new(), |router, e| {
            let route = match e.keys {
                Keys::Recorded => e.route.route_layer(from_fn(idempotency::record)),
                Keys::Engine => e.route.route_layer(from_fn(idempotency::pass_key)),
                Keys::None | Keys::EventId => e.route,
            };
            router.route(&e.path, route)
        })
    }
}

/// The one method of a handler's path item.
fn method_of(item: &PathItem) -> Option<Method> {
    let ops: [(Method, &Option<Operation>); 8] = [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::PATCH, &item.patch),
        (Method::TRACE, &item.trace),
    ];
    let mut present = ops.into_iter().filter(|(_, op)| op.is_some()).map(|(m, _)| m);
    let method = present.next()?;
    present.next().is_none().then_some(method)
}

/// The API under `/api/v1` (paths here include the prefix) and the operational endpoints.
fn table() -> Routes {
    Routes::new()
        // Operations.
        .at(routes!(web::index))
        .at(routes!(ops::healthz))
        .at(routes!(ops::readyz))
        .at(routes!(ops::metrics))
        .at(routes!(ops::openapi))
        // Finding a place.
        .at(routes!(public::search))
        .at(routes!(public::lot))
        .at(routes!(public::availability))
        .at(routes!(public::quote))
        .at(routes!(public::pass_keys))
        .at(routes!(web::map_config))
        .at(routes!(web::public_parking))
        // Accounts.
        .at(routes!(account::register))
        .at(routes!(account::login))
        .at(routes!(account::logout))
        .at(routes!(account::me))
        .at(routes!(account::totp_enrol))
        .at(routes!(account::totp_confirm))
        // Reservations.
        .at(routes!(driver::hold))
        .keyed_by_engine()
        .at(routes!(driver::list))
        .at(routes!(driver::get))
        .at(routes!(driver::checkout))
        .at(routes!(driver::cancel))
        .at(routes!(driver::extend))
        .at(routes!(driver::pass_json))
        .at(routes!(driver::pass_svg))
        .at(routes!(driver::pass_png))
        // Payments.
        .at(routes!(payments::webhook_test))
        .deduplicated_by_event_id()
        .at(routes!(payments::webhook_stripe))
        .deduplicated_by_event_id()
        .at(routes!(payments::test_pay))
        // Gates.
        .at(routes!(gates::scan))
        .at(routes!(gates::revocations))
        .at(routes!(gates::upload_scans))
        .deduplicated_by_scan_ids()
        // Operators.
        .at(routes!(operator::lots))
        .at(routes!(operator::create_lot))
        .at(routes!(operator::replace_lot))
        .at(routes!(operator::spots))
        .at(routes!(operator::create_spot))
        .at(routes!(operator::set_rates))
        .at(routes!(operator::set_blackouts))
        .at(routes!(operator::occupancy))
        .at(routes!(operator::create_key))
        .at(routes!(operator::list_keys))
        .at(routes!(operator::revoke_key))
        // The platform's admin.
        .at(routes!(admin::create_operator))
}

/// Every route, as `(method, path template)`.
pub fn list() -> Vec<(Method, String)> {
    table().entries.into_iter().map(|e| (e.method, e.path)).collect()
}

/// Every route, as `(method, path template, what it does with Idempotency-Key)`.
pub fn keys() -> Vec<(Method, String, Keys)> {
    table().entries.into_iter().map(|e| (e.method, e.path, e.keys)).collect()
}

/// The routes' OpenAPI paths and the schemas they name, from the handlers' `#[utoipa::path]`;
/// [`crate::openapi`] makes the document of it.
pub fn api() -> OpenApi {
    let table = table();
    let mut api = OpenApi::default();
    for e in table.entries {
        match api.paths.paths.get_mut(&e.path) {
            Some(item) => item.merge_operations(e.item),
            None => {
                api.paths.paths.insert(e.path, e.item);
            }
        }
    }
    api.components.get_or_insert_with(Default::default).schemas.extend(table.schemas);
    api
}

/// The router, before state and middleware: the API, and the web page's files.
pub(crate) fn router() -> Router<AppState> {
    table().router().route("/assets/{*path}", get(web::asset))
}
