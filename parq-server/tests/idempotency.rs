//! Each route says what it does with `Idempotency-Key` where the router defines it: holds hand
//! the key to the engine, payment webhooks are deduplicated by their event id and gate uploads
//! by their readings' scan ids, every other
//! unsafe route is recorded by the idempotency layer, and safe routes take no key.

use parq_server::idempotency::Keys;

#[test]
fn every_route_is_marked_as_the_api_promises() {
    let routes = parq_server::routes::keys();
    assert!(routes.len() > 20, "{} routes", routes.len());
    for (method, path, keys) in &routes {
        let path: &str = path.as_ref();
        let expected = match (method.as_str(), path) {
            ("GET" | "HEAD" | "OPTIONS", _) => Keys::None,
            ("POST", "/api/v1/holds") => Keys::Engine,
            ("POST", p) if p.starts_with("/api/v1/webhooks/") => Keys::EventId,
            ("POST", "/api/v1/gates/scans") => Keys::EventId,
            _ => Keys::Recorded,
        };
        assert_eq!(*keys, expected, "{method} {path}");
        assert_eq!(keys.required(), matches!(expected, Keys::Engine | Keys::Recorded), "{method} {path}");
    }
    assert!(routes.iter().any(|(_, _, k)| *k == Keys::Engine));
    assert_eq!(routes.iter().filter(|(_, _, k)| *k == Keys::EventId).count(), 3);
}
