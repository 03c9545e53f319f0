//! The HTTP API. Every route is registered through [`Routes`], which keeps the list of
//! `(method, path)` pairs so a test can hold the OpenAPI document to it.

mod account;
mod driver;
mod gates;
mod operator;
mod ops;
mod payments;
mod public;
pub mod views;

pub(crate) use ops::index as ops_index;

// The JSON request bodies (besides those in `views`), public so that they can be parsed on
// their own (the fuzz targets do).
pub use account::{ConfirmBody, LoginBody, RegisterBody};
pub use gates::ScanBody;
pub use operator::{BlackoutsBody, KeyBody, LotBody, SpotBody};
pub use payments::PayBody;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

use crate::state::AppState;

/// A router that remembers its routes.
struct Routes {
    router: Router<AppState>,
    list: Vec<(Method, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Self { router: Router::new(), list: Vec::new() }
    }

    fn at<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        let mut route = on(filter, handler);
        if crate::idempotency::recorded_here(&method, path) {
            // Per route, so that a wrong method is still 405 and an unknown path 404.
            route = route.route_layer(axum::middleware::from_fn(crate::idempotency::layer));
        }
        self.router = self.router.route(path, route);
        self.list.push((method, path));
        self
    }
}

/// The API under `/api/v1` (paths here include the prefix) and the operational endpoints.
fn table() -> Routes {
    use Method as M;
    Routes::new()
        // Operations.
        .at(M::GET, "/", crate::web::index)
        .at(M::GET, "/healthz", ops::healthz)
        .at(M::GET, "/readyz", ops::readyz)
        .at(M::GET, "/metrics", ops::metrics)
        .at(M::GET, "/api/v1/openapi.json", ops::openapi)
        // Finding a place.
        .at(M::GET, "/api/v1/lots", public::search)
        .at(M::GET, "/api/v1/lots/{lot_id}", public::lot)
        .at(M::GET, "/api/v1/lots/{lot_id}/availability", public::availability)
        .at(M::GET, "/api/v1/lots/{lot_id}/quote", public::quote)
        .at(M::GET, "/api/v1/passes/keys", public::pass_keys)
        .at(M::GET, "/api/v1/map/config", crate::web::map_config)
        .at(M::GET, "/api/v1/public-parking", crate::web::public_parking)
        // Accounts.
        .at(M::POST, "/api/v1/auth/register", account::register)
        .at(M::POST, "/api/v1/auth/login", account::login)
        .at(M::POST, "/api/v1/auth/logout", account::logout)
        .at(M::GET, "/api/v1/me", account::me)
        .at(M::POST, "/api/v1/me/mfa/totp", account::totp_enrol)
        .at(M::POST, "/api/v1/me/mfa/totp/confirm", account::totp_confirm)
        // Reservations.
        .at(M::POST, "/api/v1/holds", driver::hold)
        .at(M::GET, "/api/v1/reservations", driver::list)
        .at(M::GET, "/api/v1/reservations/{reservation_id}", driver::get)
        .at(M::POST, "/api/v1/reservations/{reservation_id}/checkout", driver::checkout)
        .at(M::POST, "/api/v1/reservations/{reservation_id}/cancel", driver::cancel)
        .at(M::POST, "/api/v1/reservations/{reservation_id}/extend", driver::extend)
        .at(M::GET, "/api/v1/reservations/{reservation_id}/pass", driver::pass_json)
        .at(M::GET, "/api/v1/reservations/{reservation_id}/pass.svg", driver::pass_svg)
        .at(M::GET, "/api/v1/reservations/{reservation_id}/pass.png", driver::pass_png)
        // Payments.
        .at(M::POST, "/api/v1/webhooks/test", payments::webhook_test)
        .at(M::POST, "/api/v1/webhooks/stripe", payments::webhook_stripe)
        .at(M::POST, "/api/v1/test-gateway/intents/{intent_id}/pay", payments::test_pay)
        // Gates.
        .at(M::POST, "/api/v1/gates/scan", gates::scan)
        .at(M::GET, "/api/v1/gates/revocations", gates::revocations)
        // Operators.
        .at(M::GET, "/api/v1/operator/lots", operator::lots)
        .at(M::POST, "/api/v1/operator/lots", operator::create_lot)
        .at(M::PUT, "/api/v1/operator/lots/{lot_id}", operator::replace_lot)
        .at(M::GET, "/api/v1/operator/lots/{lot_id}/spots", operator::spots)
        .at(M::POST, "/api/v1/operator/lots/{lot_id}/spots", operator::create_spot)
        .at(M::PUT, "/api/v1/operator/lots/{lot_id}/rates", operator::set_rates)
        .at(M::PUT, "/api/v1/operator/lots/{lot_id}/blackouts", operator::set_blackouts)
        .at(M::GET, "/api/v1/operator/lots/{lot_id}/occupancy", operator::occupancy)
        .at(M::POST, "/api/v1/operator/keys", operator::create_key)
}

/// Every route, as `(method, path template)`.
pub fn list() -> Vec<(Method, &'static str)> {
    table().list
}

/// The router, before state and middleware.
pub(crate) fn router() -> Router<AppState> {
    table().router
}
