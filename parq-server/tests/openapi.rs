//! The OpenAPI document names exactly the routes the server has, its links lead to operations
//! that exist, and it changes only with a reviewed snapshot.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::Value;

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let doc = parq_server::openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes: BTreeSet<(String, String)> = parq_server::routes::list()
        .into_iter()
        .map(|(m, p)| (m.as_str().to_lowercase(), p.to_owned()))
        .collect();
    // Routes deduplicated by their body's own ids (payment webhooks, gate uploads) take no key.
    let keyed: BTreeSet<(String, String)> = parq_server::routes::keys()
        .into_iter()
        .filter(|(_, _, k)| k.required())
        .map(|(m, p, _)| (m.as_str().to_lowercase(), p))
        .collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("default"), "{method} {path} documents its problems");
            let unsafe_method = keyed.contains(&(method.clone(), path.clone()));
            assert!(
                method == "get"
                    || unsafe_method
                    || path.starts_with("/api/v1/webhooks/")
                    || path == "/api/v1/gates/scans",
                "{method} {path} takes no Idempotency-Key"
            );
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

/// `parq openapi` prints the document; a change to it changes the committed snapshot, so every
/// change to the API is seen in review. `PARQ_BLESS=1` writes the new snapshot.
#[test]
fn the_document_is_the_committed_snapshot() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parq")).arg("openapi").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    let doc = parq_server::openapi::document();
    assert_eq!(
        printed,
        format!("{}\n", serde_json::to_string_pretty(&doc).unwrap()),
        "parq openapi prints the document"
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    if std::env::var_os("PARQ_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &printed).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != printed {
        let first = committed.lines().zip(printed.lines()).position(|(a, b)| a != b);
        panic!(
            "the OpenAPI document differs from {} (first at line {}); review the change and run \
             PARQ_BLESS=1 cargo test -p parq-server --test openapi to update the snapshot",
            path.display(),
            first.map_or_else(|| "the end".to_owned(), |i| (i + 1).to_string()),
        );
    }
}

#[test]
fn operations_have_unique_ids_and_links_lead_to_them() {
    let doc = parq_server::openapi::document();
    let mut ids = BTreeSet::new();
    let mut links = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id =
                op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            for (status, response) in op["responses"].as_object().unwrap() {
                for (name, link) in response.get("links").and_then(Value::as_object).into_iter().flatten() {
                    links.push((format!("{method} {path} {status} {name}"), link.clone()));
                }
            }
        }
    }
    assert!(!links.is_empty(), "a hold links to what can be done with it");
    for (at, link) in links {
        let target = link["operationId"].as_str().unwrap_or_else(|| panic!("{at}: no operationId in {link}"));
        assert!(ids.contains(target), "{at} leads to {target}, which is no operation");
    }
}

/// Every problem answer of every route is `application/problem+json` of the `Problem` schema,
/// and the statuses the layers in front of the handlers answer are there.
#[test]
fn every_route_documents_its_problems() {
    let doc = parq_server::openapi::document();
    let codes: Vec<&str> = doc["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(codes.contains(&"rate_limited") && codes.contains(&"conflict"), "{codes:?}");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for status in ["401", "429"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
            if op.get("security").is_some() {
                assert!(responses.contains_key("403"), "{method} {path}: 403");
            }
            if op.get("requestBody").is_some() {
                assert!(
                    responses.contains_key("413") && responses.contains_key("422"),
                    "{method} {path}: body"
                );
            }
            for (status, response) in responses {
                let problem = status.starts_with('4') || status == "default";
                if problem {
                    let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/Problem", "{method} {path} {status}");
                }
            }
        }
    }
    // The hold names its spot or a filter, never both.
    let hold = &doc["components"]["schemas"]["HoldRequest"]["oneOf"];
    assert_eq!(hold.as_array().map(Vec::len), Some(2), "{hold}");
}
