//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the API (filled in below).

use axum::Json;
use serde_json::{Value, json};

pub(super) async fn serve() -> Json<Value> {
    Json(document())
}

pub fn document() -> Value {
    json!({"openapi": "3.1.0"})
}
