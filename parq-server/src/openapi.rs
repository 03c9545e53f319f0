//! The OpenAPI 3.1 document of the API, served at `/api/v1/openapi.json`.
//!
//! Written here by hand next to the routes; a test checks that every route is in it and that
//! it names no route that does not exist, and the `schemathesis` run checks responses against it.

use serde_json::{Map, Value, json};

use crate::problem::ProblemCode;

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(v: Value) -> Value {
    json!({ "anyOf": [v, { "type": "null" }] })
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn ts() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn duration() -> Value {
    json!({ "type": "string", "description": "ISO 8601 duration, e.g. PT15M", "examples": ["PT15M"] })
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

fn closed(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props, "additionalProperties": false })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    User,
    Operator,
    Gate,
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

fn query(name: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": required, "schema": schema, "description": description })
}

fn window_query() -> Vec<Value> {
    let mut start = query("start", true, ts(), "First instant of the window (RFC 3339).");
    start["example"] = json!(EXAMPLE_START);
    let mut end = query("end", true, ts(), "First instant after the window (RFC 3339).");
    end["example"] = json!(EXAMPLE_END);
    vec![start, end]
}

const EXAMPLE_START: &str = "2030-01-07T09:00:00Z";
const EXAMPLE_END: &str = "2030-01-07T11:00:00Z";

/// The demo's Eleftheria Square lot, whose id is the same in every demo run.
fn example_lot() -> String {
    crate::demo::lot_id("Eleftheria Square Car Park, Nicosia").to_string()
}

fn reservation_links() -> Value {
    let link =
        |op: &str| json!({ "operationRef": op, "parameters": { "reservation_id": "$response.body#/id" } });
    json!({
        "GetReservation": link("#/paths/~1api~1v1~1reservations~1{reservation_id}/get"),
        "Checkout": link("#/paths/~1api~1v1~1reservations~1{reservation_id}~1checkout/post"),
        "Cancel": link("#/paths/~1api~1v1~1reservations~1{reservation_id}~1cancel/post"),
        "Extend": link("#/paths/~1api~1v1~1reservations~1{reservation_id}~1extend/post"),
        "Pass": link("#/paths/~1api~1v1~1reservations~1{reservation_id}~1pass/get"),
    })
}

struct Op {
    summary: &'static str,
    tag: &'static str,
    auth: Auth,
    params: Vec<Value>,
    body: Option<Value>,
    ok: u16,
    ok_desc: &'static str,
    ok_content: Option<(&'static str, Value)>,
    errors: &'static [u16],
}

fn status_desc(status: u16) -> String {
    let titles: Vec<&str> =
        ProblemCode::ALL.iter().filter(|c| c.status().as_u16() == status).map(|c| c.as_str()).collect();
    if titles.is_empty() { "Error".into() } else { format!("Problem: {}", titles.join(", ")) }
}

fn problem_response(status: u16) -> Value {
    let mut resp = json!({
        "description": status_desc(status),
        "content": { "application/problem+json": { "schema": r("Problem") } },
    });
    if status == 429 || status == 503 || status == 409 {
        resp["headers"] =
            json!({ "Retry-After": { "schema": { "type": "integer" }, "description": "Seconds to wait." } });
    }
    resp
}

fn build(op: Op, unsafe_method: bool) -> Value {
    let mut params = op.params;
    if unsafe_method {
        params.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": true,
            "description": "A unique key per logical request (a random UUID); a retry with the same key and request gets the same answer.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$" }
        }));
    }
    let mut responses = Map::new();
    let mut ok = json!({ "description": op.ok_desc });
    if let Some((ct, schema)) = op.ok_content {
        let mut content = Map::new();
        content.insert(ct.to_owned(), json!({ "schema": schema }));
        ok["content"] = Value::Object(content);
    }
    if op.summary.starts_with("Hold a named spot") {
        ok["links"] = reservation_links();
    }
    responses.insert(op.ok.to_string(), ok);
    let mut errors: Vec<u16> = op.errors.to_vec();
    errors.extend([400, 429]);
    if unsafe_method {
        errors.extend([409, 413, 415, 422]);
    }
    if op.auth != Auth::None {
        errors.extend([401, 403]);
    }
    errors.sort_unstable();
    errors.dedup();
    for s in errors {
        responses.insert(s.to_string(), problem_response(s));
    }
    responses.insert(
        "default".into(),
        json!({ "description": "Any other problem", "content": { "application/problem+json": { "schema": r("Problem") } } }),
    );
    let mut v = json!({
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
    });
    match op.auth {
        Auth::None => {}
        Auth::User => v["security"] = json!([{ "bearer": [] }]),
        Auth::Operator | Auth::Gate => v["security"] = json!([{ "bearer": [] }, { "apiKey": [] }]),
    }
    if let Some(schema) = op.body {
        v["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    }
    v
}

fn ops() -> Vec<(&'static str, &'static str, Op)> {
    let lot_id = || {
        let mut p = path_param("lot_id", uuid());
        p["example"] = json!(example_lot());
        p
    };
    let res_id = || path_param("reservation_id", uuid());
    let json_ok = |s: Value| Some(("application/json", s));
    vec![
        (
            "get",
            "/",
            Op {
                summary: "The live map for browsers (Accept: text/html); where things are for the rest",
                tag: "operations",
                auth: Auth::None,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "Links, or the web page",
                ok_content: json_ok(json!({"type": "object"})),
                errors: &[],
            },
        ),
        (
            "get",
            "/healthz",
            Op {
                summary: "Liveness",
                tag: "operations",
                auth: Auth::None,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "Up",
                ok_content: json_ok(obj(&["status"], json!({"status": {"type": "string"}}))),
                errors: &[],
            },
        ),
        (
            "get",
            "/readyz",
            Op {
                summary: "Readiness: every backend answers",
                tag: "operations",
                auth: Auth::None,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "Ready",
                ok_content: json_ok(r("Readiness")),
                errors: &[503],
            },
        ),
        (
            "get",
            "/metrics",
            Op {
                summary: "Prometheus metrics",
                tag: "operations",
                auth: Auth::None,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "Metrics",
                ok_content: Some(("text/plain", json!({"type": "string"}))),
                errors: &[],
            },
        ),
        (
            "get",
            "/api/v1/openapi.json",
            Op {
                summary: "This document",
                tag: "operations",
                auth: Auth::None,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "OpenAPI 3.1",
                ok_content: json_ok(json!({"type": "object"})),
                errors: &[],
            },
        ),
        (
            "get",
            "/api/v1/lots",
            Op {
                summary: "Lots near a point with a matching spot free for the window, nearest first",
                tag: "lots",
                auth: Auth::None,
                params: {
                    let mut p = vec![
                        query(
                            "lat",
                            true,
                            json!({"type": "number", "minimum": -90, "maximum": 90, "example": 35.1706}),
                            "Latitude.",
                        ),
                        query(
                            "lon",
                            true,
                            json!({"type": "number", "minimum": -180, "maximum": 180, "example": 33.3606}),
                            "Longitude.",
                        ),
                        query(
                            "radius_m",
                            false,
                            json!({"type": "number", "exclusiveMinimum": 0, "maximum": 100000, "default": 2000}),
                            "Search radius in metres.",
                        ),
                    ];
                    p.extend(window_query());
                    p.push(query("ev", false, json!({"type": "boolean"}), "Only spots with a charger."));
                    p.push(query("accessible", false, json!({"type": "boolean"}), "Only accessible spots."));
                    p.push(query("min_size", false, r("SpotSize"), "Smallest spot size."));
                    p
                },
                body: None,
                ok: 200,
                ok_desc: "Matches",
                ok_content: json_ok(obj(
                    &["results"],
                    json!({"results": {"type": "array", "items": r("LotMatch")}}),
                )),
                errors: &[422],
            },
        ),
        (
            "get",
            "/api/v1/lots/{lot_id}",
            Op {
                summary: "A lot and its spots",
                tag: "lots",
                auth: Auth::None,
                params: vec![lot_id()],
                body: None,
                ok: 200,
                ok_desc: "The lot",
                ok_content: json_ok(obj(
                    &["lot", "spots"],
                    json!({"lot": r("Lot"), "spots": {"type": "array", "items": r("Spot")}}),
                )),
                errors: &[404],
            },
        ),
        (
            "get",
            "/api/v1/lots/{lot_id}/availability",
            Op {
                summary: "Which spots are free for a window",
                tag: "lots",
                auth: Auth::None,
                params: {
                    let mut p = vec![lot_id()];
                    p.extend(window_query());
                    p
                },
                body: None,
                ok: 200,
                ok_desc: "Availability",
                ok_content: json_ok(r("Availability")),
                errors: &[404, 422],
            },
        ),
        (
            "get",
            "/api/v1/lots/{lot_id}/quote",
            Op {
                summary: "The price of a window",
                tag: "lots",
                auth: Auth::None,
                params: {
                    let mut p = vec![lot_id()];
                    p.extend(window_query());
                    p
                },
                body: None,
                ok: 200,
                ok_desc: "Quote",
                ok_content: json_ok(r("Quote")),
                errors: &[404, 409, 422],
            },
        ),
        (
            "get",
            "/api/v1/map/config",
            Op {
                summary: "How the web map draws: style, tiles and the starting view",
                tag: "find",
                auth: Auth::None,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "The map's configuration",
                ok_content: json_ok(obj(
                    &["style_url", "tile_url", "center", "zoom"],
                    json!({
                        "style_url": {"type": ["string", "null"]},
                        "tile_url": {"type": ["string", "null"]},
                        "center": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
                        "zoom": {"type": "number"},
                    }),
                )),
                errors: &[],
            },
        ),
        (
            "get",
            "/api/v1/public-parking",
            Op {
                summary: "Free public parking, as GeoJSON points (empty when none is loaded)",
                tag: "find",
                auth: Auth::None,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "A GeoJSON FeatureCollection",
                ok_content: Some((
                    "application/geo+json",
                    obj(
                        &["type", "features"],
                        json!({
                            "type": {"const": "FeatureCollection"},
                            "features": {"type": "array", "items": obj(
                                &["type", "geometry", "properties"],
                                json!({
                                    "type": {"const": "Feature"},
                                    "geometry": obj(&["type", "coordinates"], json!({
                                        "type": {"const": "Point"},
                                        "coordinates": {"type": "array", "items": {"type": "number"}},
                                    })),
                                    "properties": obj(&["name"], json!({
                                        "name": {"type": "string"},
                                        "capacity": {"type": ["integer", "null"]},
                                        "notes": {"type": ["string", "null"]},
                                    })),
                                }),
                            )},
                        }),
                    ),
                )),
                errors: &[],
            },
        ),
        (
            "get",
            "/api/v1/passes/keys",
            Op {
                summary: "Public keys that verify passes offline",
                tag: "passes",
                auth: Auth::None,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "Keys",
                ok_content: json_ok(obj(
                    &["keys"],
                    json!({"keys": {"type": "array", "items": obj(&["id", "public_key"], json!({"id": {"type": "integer"}, "public_key": {"type": "string"}}))}}),
                )),
                errors: &[],
            },
        ),
        (
            "post",
            "/api/v1/auth/register",
            Op {
                summary: "Register a driver account",
                tag: "accounts",
                auth: Auth::None,
                params: vec![],
                body: Some(closed(
                    &["email", "password"],
                    json!({"email": {"type": "string", "format": "email"}, "password": {"type": "string", "minLength": 10, "maxLength": 1024}}),
                )),
                ok: 201,
                ok_desc: "Registered",
                ok_content: json_ok(r("Account")),
                errors: &[],
            },
        ),
        (
            "post",
            "/api/v1/auth/login",
            Op {
                summary: "Log in (password, then a TOTP or recovery code when enrolled)",
                tag: "accounts",
                auth: Auth::None,
                params: vec![],
                body: Some(closed(
                    &["email", "password"],
                    json!({"email": {"type": "string"}, "password": {"type": "string"}, "totp_code": nullable(json!({"type": "string"})), "recovery_code": nullable(json!({"type": "string"}))}),
                )),
                ok: 200,
                ok_desc: "A session",
                ok_content: json_ok(r("Session")),
                errors: &[401],
            },
        ),
        (
            "post",
            "/api/v1/auth/logout",
            Op {
                summary: "End the session",
                tag: "accounts",
                auth: Auth::User,
                params: vec![],
                body: None,
                ok: 204,
                ok_desc: "Logged out",
                ok_content: None,
                errors: &[],
            },
        ),
        (
            "get",
            "/api/v1/me",
            Op {
                summary: "The caller's account",
                tag: "accounts",
                auth: Auth::User,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "Account",
                ok_content: json_ok(r("Account")),
                errors: &[],
            },
        ),
        (
            "post",
            "/api/v1/me/mfa/totp",
            Op {
                summary: "Start TOTP enrolment",
                tag: "accounts",
                auth: Auth::User,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "A seed to scan",
                ok_content: json_ok(r("TotpEnrolment")),
                errors: &[],
            },
        ),
        (
            "post",
            "/api/v1/me/mfa/totp/confirm",
            Op {
                summary: "Confirm TOTP with a code; returns recovery codes once",
                tag: "accounts",
                auth: Auth::User,
                params: vec![],
                body: Some(closed(&["code"], json!({"code": {"type": "string"}}))),
                ok: 200,
                ok_desc: "Enabled",
                ok_content: json_ok(obj(
                    &["mfa_enabled", "recovery_codes"],
                    json!({"mfa_enabled": {"type": "boolean"}, "recovery_codes": {"type": "array", "items": {"type": "string"}}}),
                )),
                errors: &[],
            },
        ),
        (
            "post",
            "/api/v1/holds",
            Op {
                summary: "Hold a named spot or any spot with the filter's attributes",
                tag: "reservations",
                auth: Auth::User,
                params: vec![],
                body: Some(
                    json!({"allOf": [r("HoldRequest")], "example": {"lot_id": example_lot(), "start": EXAMPLE_START, "end": EXAMPLE_END, "filter": {"ev": true}}}),
                ),
                ok: 201,
                ok_desc: "Held (or the same hold, replayed)",
                ok_content: json_ok(r("Reservation")),
                errors: &[404, 409, 422],
            },
        ),
        (
            "get",
            "/api/v1/reservations",
            Op {
                summary: "The caller's reservations, newest first",
                tag: "reservations",
                auth: Auth::User,
                params: vec![query(
                    "limit",
                    false,
                    json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
                    "How many.",
                )],
                body: None,
                ok: 200,
                ok_desc: "Reservations",
                ok_content: json_ok(obj(
                    &["reservations"],
                    json!({"reservations": {"type": "array", "items": r("Reservation")}}),
                )),
                errors: &[422],
            },
        ),
        (
            "get",
            "/api/v1/reservations/{reservation_id}",
            Op {
                summary: "A reservation",
                tag: "reservations",
                auth: Auth::User,
                params: vec![res_id()],
                body: None,
                ok: 200,
                ok_desc: "Reservation",
                ok_content: json_ok(r("Reservation")),
                errors: &[404],
            },
        ),
        (
            "post",
            "/api/v1/reservations/{reservation_id}/checkout",
            Op {
                summary: "Start (or get) the payment of a hold",
                tag: "reservations",
                auth: Auth::User,
                params: vec![res_id()],
                body: None,
                ok: 200,
                ok_desc: "The intent to pay",
                ok_content: json_ok(r("Checkout")),
                errors: &[402, 404, 410],
            },
        ),
        (
            "post",
            "/api/v1/reservations/{reservation_id}/cancel",
            Op {
                summary: "Cancel: a hold is released, a paid reservation refunded by the lot's policy",
                tag: "reservations",
                auth: Auth::User,
                params: vec![res_id()],
                body: None,
                ok: 200,
                ok_desc: "Cancelled",
                ok_content: json_ok(r("Cancellation")),
                errors: &[404],
            },
        ),
        (
            "post",
            "/api/v1/reservations/{reservation_id}/extend",
            Op {
                summary: "Move the end later",
                tag: "reservations",
                auth: Auth::User,
                params: vec![res_id()],
                body: Some(closed(&["end"], json!({"end": ts()}))),
                ok: 200,
                ok_desc: "Extended",
                ok_content: json_ok(r("Reservation")),
                errors: &[404, 410],
            },
        ),
        (
            "get",
            "/api/v1/reservations/{reservation_id}/pass",
            Op {
                summary: "The signed pass of a paid reservation",
                tag: "passes",
                auth: Auth::User,
                params: vec![res_id()],
                body: None,
                ok: 200,
                ok_desc: "Pass",
                ok_content: json_ok(r("Pass")),
                errors: &[404, 409],
            },
        ),
        (
            "get",
            "/api/v1/reservations/{reservation_id}/pass.svg",
            Op {
                summary: "The pass as a QR code (SVG)",
                tag: "passes",
                auth: Auth::User,
                params: vec![res_id()],
                body: None,
                ok: 200,
                ok_desc: "SVG",
                ok_content: Some(("image/svg+xml", json!({"type": "string"}))),
                errors: &[404, 409],
            },
        ),
        (
            "get",
            "/api/v1/reservations/{reservation_id}/pass.png",
            Op {
                summary: "The pass as a QR code (PNG)",
                tag: "passes",
                auth: Auth::User,
                params: vec![res_id()],
                body: None,
                ok: 200,
                ok_desc: "PNG",
                ok_content: Some(("image/png", json!({"type": "string", "contentMediaType": "image/png"}))),
                errors: &[404, 409],
            },
        ),
        (
            "post",
            "/api/v1/webhooks/test",
            Op {
                summary: "A signed delivery of the test payment gateway (header Parq-Signature: t=<unix>,v1=<hmac-sha256>)",
                tag: "payments",
                auth: Auth::None,
                params: vec![
                    json!({"name": "Parq-Signature", "in": "header", "required": true, "schema": {"type": "string"}}),
                ],
                body: Some(json!({"type": "object"})),
                ok: 200,
                ok_desc: "Applied",
                ok_content: json_ok(obj(
                    &["received", "reservation"],
                    json!({"received": {"type": "boolean"}, "reservation": r("Reservation")}),
                )),
                errors: &[403, 404, 409, 410, 413, 422],
            },
        ),
        (
            "post",
            "/api/v1/webhooks/stripe",
            Op {
                summary: "A Stripe event, verified with the endpoint's signing secret (header Stripe-Signature); events ParQ does not act on are acknowledged and ignored",
                tag: "payments",
                auth: Auth::None,
                params: vec![
                    json!({"name": "Stripe-Signature", "in": "header", "required": true, "schema": {"type": "string"}}),
                ],
                body: Some(json!({"type": "object"})),
                ok: 200,
                ok_desc: "Applied, or acknowledged and ignored",
                ok_content: json_ok(obj(
                    &["received"],
                    json!({"received": {"type": "boolean"}, "ignored": {"type": "boolean"}, "reservation": r("Reservation")}),
                )),
                errors: &[400, 403, 404, 409, 410, 413, 422],
            },
        ),
        (
            "post",
            "/api/v1/test-gateway/intents/{intent_id}/pay",
            Op {
                summary: "Test gateway: play the driver paying an intent, and deliver the webhook",
                tag: "payments",
                auth: Auth::User,
                params: vec![path_param("intent_id", json!({"type": "string"}))],
                body: None,
                ok: 200,
                ok_desc: "Paid (or declined)",
                ok_content: json_ok(obj(
                    &["event_id", "outcome", "reservation"],
                    json!({"event_id": {"type": "string"}, "outcome": {"type": "string"}, "reservation": r("Reservation")}),
                )),
                errors: &[402, 404, 410],
            },
        ),
        (
            "post",
            "/api/v1/gates/scan",
            Op {
                summary: "Decide a scan at a gate; a refusal is an answer with its reason",
                tag: "gates",
                auth: Auth::Gate,
                params: vec![],
                body: Some(r("ScanRequest")),
                ok: 200,
                ok_desc: "Decision",
                ok_content: json_ok(r("Decision")),
                errors: &[404],
            },
        ),
        (
            "get",
            "/api/v1/gates/revocations",
            Op {
                summary: "Revoked passes after a version, for offline gates",
                tag: "gates",
                auth: Auth::Gate,
                params: vec![query(
                    "since",
                    false,
                    json!({"type": "integer", "minimum": 0}),
                    "Version the gate holds.",
                )],
                body: None,
                ok: 200,
                ok_desc: "Delta",
                ok_content: json_ok(obj(
                    &["from", "to", "revocations"],
                    json!({"from": {"type": "integer"}, "to": {"type": "integer"}, "revocations": {"type": "array", "items": {"type": "object"}}}),
                )),
                errors: &[],
            },
        ),
        (
            "get",
            "/api/v1/operator/lots",
            Op {
                summary: "The operator's lots",
                tag: "operator",
                auth: Auth::Operator,
                params: vec![],
                body: None,
                ok: 200,
                ok_desc: "Lots",
                ok_content: json_ok(obj(&["lots"], json!({"lots": {"type": "array", "items": r("Lot")}}))),
                errors: &[],
            },
        ),
        (
            "post",
            "/api/v1/operator/lots",
            Op {
                summary: "Create a lot",
                tag: "operator",
                auth: Auth::Operator,
                params: vec![],
                body: Some(r("LotInput")),
                ok: 201,
                ok_desc: "Created",
                ok_content: json_ok(r("Lot")),
                errors: &[],
            },
        ),
        (
            "put",
            "/api/v1/operator/lots/{lot_id}",
            Op {
                summary: "Replace a lot's settings",
                tag: "operator",
                auth: Auth::Operator,
                params: vec![lot_id()],
                body: Some(r("LotInput")),
                ok: 200,
                ok_desc: "Replaced",
                ok_content: json_ok(r("Lot")),
                errors: &[404],
            },
        ),
        (
            "get",
            "/api/v1/operator/lots/{lot_id}/spots",
            Op {
                summary: "A lot's spots",
                tag: "operator",
                auth: Auth::Operator,
                params: vec![lot_id()],
                body: None,
                ok: 200,
                ok_desc: "Spots",
                ok_content: json_ok(obj(&["spots"], json!({"spots": {"type": "array", "items": r("Spot")}}))),
                errors: &[404],
            },
        ),
        (
            "post",
            "/api/v1/operator/lots/{lot_id}/spots",
            Op {
                summary: "Add a spot",
                tag: "operator",
                auth: Auth::Operator,
                params: vec![lot_id()],
                body: Some(closed(
                    &["label"],
                    json!({"label": {"type": "string", "minLength": 1, "maxLength": 64}, "attributes": r("SpotAttributes")}),
                )),
                ok: 201,
                ok_desc: "Created",
                ok_content: json_ok(r("Spot")),
                errors: &[404],
            },
        ),
        (
            "put",
            "/api/v1/operator/lots/{lot_id}/rates",
            Op {
                summary: "Replace the rate table",
                tag: "operator",
                auth: Auth::Operator,
                params: vec![lot_id()],
                body: Some(r("RateTable")),
                ok: 200,
                ok_desc: "The lot",
                ok_content: json_ok(r("Lot")),
                errors: &[404],
            },
        ),
        (
            "put",
            "/api/v1/operator/lots/{lot_id}/blackouts",
            Op {
                summary: "Replace the blackout windows",
                tag: "operator",
                auth: Auth::Operator,
                params: vec![lot_id()],
                body: Some(closed(
                    &["blackouts"],
                    json!({"blackouts": {"type": "array", "description": "At most 1000 windows.", "items": r("Window")}}),
                )),
                ok: 200,
                ok_desc: "The lot",
                ok_content: json_ok(r("Lot")),
                errors: &[404],
            },
        ),
        (
            "get",
            "/api/v1/operator/lots/{lot_id}/occupancy",
            Op {
                summary: "How the spots are used at an instant",
                tag: "operator",
                auth: Auth::Operator,
                params: vec![lot_id(), query("at", false, ts(), "The instant (default: now).")],
                body: None,
                ok: 200,
                ok_desc: "Occupancy",
                ok_content: json_ok(r("Occupancy")),
                errors: &[404, 422],
            },
        ),
        (
            "post",
            "/api/v1/operator/keys",
            Op {
                summary: "Create an API key for a gate or the operator (shown once)",
                tag: "operator",
                auth: Auth::Operator,
                params: vec![],
                body: Some(closed(
                    &["name", "role"],
                    json!({"name": {"type": "string", "minLength": 1, "maxLength": 100}, "role": {"type": "string", "enum": ["operator", "gate"]}}),
                )),
                ok: 201,
                ok_desc: "Created",
                ok_content: json_ok(obj(
                    &["id", "name", "role", "key", "created_at"],
                    json!({"id": uuid(), "name": {"type": "string"}, "role": {"type": "string"}, "key": {"type": "string"}, "created_at": ts()}),
                )),
                errors: &[],
            },
        ),
    ]
}

fn schemas() -> Value {
    let money = obj(
        &["minor", "currency"],
        json!({"minor": {"type": "integer", "description": "Minor units (cents)"}, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}}),
    );
    let window = obj(&["start", "end"], json!({"start": ts(), "end": ts()}));
    let geo = obj(
        &["lat", "lon"],
        json!({"lat": {"type": "number", "minimum": -90, "maximum": 90}, "lon": {"type": "number", "minimum": -180, "maximum": 180}}),
    );
    let size = json!({"type": "string", "enum": ["motorcycle", "compact", "standard", "large"]});
    let attributes = json!({"type": "object", "additionalProperties": false, "properties": {"ev": {"type": "boolean"}, "accessible": {"type": "boolean"}, "size": r("SpotSize")}});
    let tier = obj(
        &["up_to_minutes", "amount"],
        json!({"up_to_minutes": nullable(json!({"type": "integer", "minimum": 0})), "amount": {"type": "integer"}}),
    );
    let rate_line = json!({"oneOf": [
        closed(&["kind", "amount"], json!({"kind": {"const": "flat"}, "amount": {"type": "integer"}})),
        closed(&["kind", "tiers"], json!({"kind": {"const": "tiered"}, "tiers": {"type": "array", "items": r("Tier")}})),
        closed(&["kind", "every_minutes", "amount"], json!({"kind": {"const": "incrementing"}, "after_minutes": {"type": "integer", "minimum": 0}, "every_minutes": {"type": "integer", "minimum": 1}, "amount": {"type": "integer"}, "until_minutes": nullable(json!({"type": "integer", "minimum": 0}))})),
    ]});
    let rate_table = json!({"type": "object", "required": ["currency", "lines"], "additionalProperties": false, "properties": {"currency": {"type": "string"}, "lines": {"type": "array", "items": r("RateLine")}, "daily_cap": nullable(json!({"type": "integer"}))}});
    let cancellation = obj(
        &["full_refund_before", "late_refund_percent"],
        json!({"full_refund_before": duration(), "late_refund_percent": {"type": "integer", "minimum": 0, "maximum": 255}}),
    );
    let day_interval = obj(
        &["weekday", "open", "close"],
        json!({"weekday": {"type": "integer", "minimum": 0, "maximum": 255}, "open": {"type": "integer", "minimum": 0, "maximum": 65535}, "close": {"type": "integer", "minimum": 0, "maximum": 65535}}),
    );
    let hours = json!({"oneOf": [
        obj(&["kind"], json!({"kind": {"const": "always"}})),
        obj(&["kind", "intervals"], json!({"kind": {"const": "weekly"}, "intervals": {"type": "array", "items": r("DayInterval")}})),
    ]});
    let lot_props = json!({
        "id": uuid(), "operator": uuid(), "name": {"type": "string"}, "location": r("GeoPoint"),
        "time_zone": {"type": "string"}, "granularity": duration(), "hold_ttl": duration(), "max_stay": duration(),
        "grace": duration(), "max_holds_per_user": nullable(json!({"type": "integer", "minimum": 0})),
        "rates": r("RateTable"), "cancellation": r("CancellationPolicy"), "opening_hours": r("OpeningHours"),
        "blackouts": {"type": "array", "items": r("Window")},
    });
    let lot = obj(
        &[
            "id",
            "operator",
            "name",
            "location",
            "time_zone",
            "granularity",
            "hold_ttl",
            "max_stay",
            "grace",
            "rates",
            "cancellation",
            "opening_hours",
            "blackouts",
        ],
        lot_props.clone(),
    );
    let mut input_props = lot_props;
    if let Some(m) = input_props.as_object_mut() {
        m.remove("id");
        m.remove("operator");
    }
    let lot_input = closed(&["name", "location", "rates"], input_props);
    let reservation = obj(
        &["id", "lot_id", "spot_id", "state", "window", "price", "hold_expires_at", "created_at", "payment"],
        json!({
            "id": uuid(), "lot_id": uuid(), "spot_id": uuid(), "state": r("ReservationState"), "window": r("Window"),
            "price": r("Money"), "hold_expires_at": ts(), "created_at": ts(),
            "payment": nullable(obj(&["intent_id", "amount", "captured", "refunded"], json!({"intent_id": {"type": "string"}, "amount": r("Money"), "captured": {"type": "boolean"}, "refunded": r("Money")}))),
        }),
    );
    let intent = obj(
        &["id", "status", "amount"],
        json!({
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["requires_payment_method", "requires_confirmation", "requires_action", "processing", "requires_capture", "succeeded", "canceled"]},
            "amount": r("Money"), "client_secret": nullable(json!({"type": "string"})), "reservation": nullable(uuid()),
        }),
    );
    let problem = json!({
        "type": "object", "required": ["type", "title", "status", "detail", "code"],
        "description": "RFC 9457 problem details. `type` is https://parq.dev/problems/<code>.",
        "properties": {
            "type": {"type": "string", "format": "uri"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "code": {"type": "string", "enum": ProblemCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
            "field": {"type": "string"}, "reason": {"type": "string"}, "trace_id": {"type": "string"},
        },
    });
    let refusal = json!({"type": "string", "enum": ["invalid", "unknown_key", "revoked", "wrong_lot", "too_early", "expired", "already_inside", "not_inside", "not_paid", "reentry_not_allowed", "replayed"]});
    json!({
        "Problem": problem,
        "Money": money,
        "Window": window,
        "GeoPoint": geo,
        "SpotSize": size,
        "SpotAttributes": attributes,
        "SpotFilter": {"type": "object", "additionalProperties": false, "properties": {"ev": {"type": "boolean"}, "accessible": {"type": "boolean"}, "min_size": nullable(r("SpotSize"))}},
        "Spot": obj(&["id", "lot", "label", "attributes"], json!({"id": uuid(), "lot": uuid(), "label": {"type": "string"}, "attributes": r("SpotAttributes")})),
        "Tier": tier,
        "RateLine": rate_line,
        "RateTable": rate_table,
        "CancellationPolicy": cancellation,
        "DayInterval": day_interval,
        "OpeningHours": hours,
        "Lot": lot,
        "LotInput": lot_input,
        "LotMatch": obj(&["lot", "distance_m", "free", "price"], json!({"lot": r("Lot"), "distance_m": {"type": "number"}, "free": {"type": "integer"}, "price": r("Money")})),
        "Availability": obj(&["lot", "window", "spots", "free", "price"], json!({"lot": uuid(), "window": r("Window"), "spots": {"type": "array", "items": obj(&["spot", "free"], json!({"spot": r("Spot"), "free": {"type": "boolean"}}))}, "free": {"type": "integer"}, "price": r("Money")})),
        "Quote": obj(&["lot", "window", "price"], json!({"lot": uuid(), "window": r("Window"), "price": r("Money")})),
        "ReservationState": {"type": "string", "enum": ["held", "pending_payment", "confirmed", "checked_in", "completed", "expired", "cancelled", "no_show"]},
        "Reservation": reservation,
        "HoldRequest": closed(&["lot_id", "start", "end"], json!({"lot_id": uuid(), "start": ts(), "end": ts(), "spot_id": nullable(uuid()), "filter": nullable(r("SpotFilter"))})),
        "PaymentIntent": intent,
        "Checkout": obj(&["reservation", "intent", "test_pay_url"], json!({"reservation": r("Reservation"), "intent": r("PaymentIntent"), "test_pay_url": nullable(json!({"type": "string"}))})),
        "Cancellation": obj(&["reservation", "refunded"], json!({"reservation": r("Reservation"), "refunded": r("Money")})),
        "Account": obj(&["id", "email", "role", "mfa_enabled", "recovery_codes_left", "created_at"], json!({"id": uuid(), "email": {"type": "string"}, "role": {"type": "string", "enum": ["driver", "operator", "gate"]}, "mfa_enabled": {"type": "boolean"}, "recovery_codes_left": {"type": "integer"}, "created_at": ts()})),
        "Session": obj(&["token", "token_type", "expires_at", "user"], json!({"token": {"type": "string"}, "token_type": {"const": "Bearer"}, "expires_at": ts(), "user": r("Account")})),
        "TotpEnrolment": obj(&["secret", "otpauth_uri", "algorithm", "digits", "period"], json!({"secret": {"type": "string"}, "otpauth_uri": {"type": "string"}, "algorithm": {"type": "string"}, "digits": {"type": "integer"}, "period": {"type": "integer"}})),
        "Pass": obj(&["text", "key_id", "reservation_id", "lot_id", "spot_id", "window"], json!({"text": {"type": "string"}, "key_id": {"type": "integer"}, "reservation_id": uuid(), "lot_id": uuid(), "spot_id": uuid(), "window": r("Window")})),
        "ScanRequest": closed(&["pass", "lot_id", "direction", "gate"], json!({"pass": {"type": "string", "maxLength": 4096}, "lot_id": uuid(), "direction": {"type": "string", "enum": ["entry", "exit"]}, "gate": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "\\S"}, "scan_id": nullable(json!({"type": "string"}))})),
        "Decision": {"oneOf": [
            closed(&["decision"], json!({"decision": {"const": "allow"}})),
            closed(&["decision", "reason"], json!({"decision": {"const": "refuse"}, "reason": refusal})),
        ]},
        "Occupancy": obj(&["lot_id", "at", "spots", "free", "held", "pending_payment", "confirmed", "checked_in"], json!({"lot_id": uuid(), "at": ts(), "spots": {"type": "integer"}, "free": {"type": "integer"}, "held": {"type": "integer"}, "pending_payment": {"type": "integer"}, "confirmed": {"type": "integer"}, "checked_in": {"type": "integer"}})),
        "Readiness": obj(&["status", "backends"], json!({"status": {"type": "string"}, "backends": {"type": "object"}})),
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, op) in ops() {
        let unsafe_method = method != "get" && !path.starts_with("/api/v1/webhooks/");
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = build(op, unsafe_method);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ParQ",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Parking reservations: find a lot, hold a spot, pay, get a pass, open the gate. Every unsafe request carries an Idempotency-Key; errors are application/problem+json (RFC 9457).",
            "license": { "name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0" },
        },
        "servers": [{ "url": "/" }],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A session token from /api/v1/auth/login, or an API key." },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-Api-Key" },
            },
        },
    })
}
