//! The OpenAPI document served at `/api/v1/openapi.json` describes exactly the routes
//! the router has: every documented (method, path) is routed (no 404 or 405), and
//! every route is documented. It is served without a token even when tokens are
//! required.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use vigil_api::{AppState, ROUTES, app};
use vigil_store::SqliteStore;

async fn state(auth: bool) -> AppState {
    AppState {
        auth,
        ..AppState::new(
            SqliteStore::in_memory().await.unwrap(),
            Arc::new(vigil_model::clock::SystemClock),
        )
    }
}

#[tokio::test]
async fn the_document_and_the_router_agree() {
    let s = state(true).await;
    let res = app(s.clone())
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "served without a token");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, routes);
    // Each documented route is routed: without a token, an API route answers 401, the
    // others their own status, never 404 or 405.
    let open = state(false).await;
    for (method, path) in ROUTES {
        let uri = path
            .replace("{id}", "p-000123")
            .replace("{rule}", "hr_brady")
            .replace("{doctor}", "d-0001");
        let req = match *method {
            "get" => Request::get(&uri),
            "delete" => Request::delete(&uri),
            "put" => Request::put(&uri).header("content-type", "application/json"),
            _ => Request::post(&uri).header("content-type", "application/json"),
        };
        let body = if matches!(*method, "post" | "put") {
            Body::from("{}")
        } else {
            Body::empty()
        };
        let res = app(open.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if status == StatusCode::NOT_FOUND {
            // A handler's "no such alert" says so; the router's own 404 is empty.
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert!(
                String::from_utf8_lossy(&body).contains("error"),
                "{method} {path} is not routed"
            );
        }
    }
}
