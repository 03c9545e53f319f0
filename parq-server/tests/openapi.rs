//! The OpenAPI document names exactly the routes the server has.

mod common;

use std::collections::BTreeSet;

use reqwest::StatusCode;

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let doc = parq_server::openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes: BTreeSet<(String, String)> = parq_server::routes::list()
        .into_iter()
        .map(|(m, p)| (m.as_str().to_lowercase(), p.to_owned()))
        .collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("default"), "{method} {path} documents its problems");
            let unsafe_method = method != "get" && !path.starts_with("/api/v1/webhooks/");
            let has_key = op["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "Idempotency-Key");
            assert_eq!(unsafe_method, has_key, "{method} {path}: Idempotency-Key on unsafe requests");
        }
    }
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&routes).collect();
    assert!(undocumented.is_empty(), "routes missing from the document: {undocumented:?}");
    assert!(phantom.is_empty(), "documented routes that do not exist: {phantom:?}");
    // Every reference resolves.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served() {
    let s = common::start().await;
    let served = common::expect(s.get("/api/v1/openapi.json", None).await, StatusCode::OK).await;
    assert_eq!(served, parq_server::openapi::document());
    s.running.shutdown().await;
}
