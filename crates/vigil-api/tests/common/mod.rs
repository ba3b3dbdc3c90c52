//! Helpers shared by the API's router-level tests.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use vigil_api::{AppState, app};

/// `POST uri` with a JSON body through the router: (status, body).
pub async fn post(state: &AppState, uri: &str, body: Value) -> (StatusCode, String) {
    let res = app(state.clone())
        .oneshot(
            Request::post(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}
