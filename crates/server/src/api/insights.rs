//! `GET /api/v1/insights`: the insights engine's report, computed when asked.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use otaas_api::insights::FleetInsights;

use crate::api::ApiError;
use crate::insights::Insights;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/insights", get(serve))
}

async fn serve(State(insights): State<Arc<Insights>>) -> Result<Json<FleetInsights>, ApiError> {
    Ok(Json(insights.report().await?))
}
