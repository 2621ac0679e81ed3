//! `GET /api/health`: database and queue reachability; 503 only when the database is
//! down (a queue outage degrades to the outbox and loses nothing).
use std::convert::Infallible;

use deadpool_postgres::Pool;
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Map, Value};

use crate::adapters::{db, queue::EventQueue};
use crate::lambda::http::json_response;

pub struct Health {
    pub pool: Pool,
    pub queues: Vec<(&'static str, EventQueue)>,
}

pub async fn handle(health: &Health, _req: Request) -> Response<Body> {
    let database = db::ping(&health.pool).await;
    let mut queues = Map::new();
    let mut queues_ok = true;
    for (name, queue) in &health.queues {
        let ok = queue.ping().await.is_ok();
        queues_ok &= ok;
        queues.insert(
            name.to_string(),
            Value::from(if ok { "ok" } else { "unreachable" }),
        );
    }
    let (status, overall) = match (&database, queues_ok) {
        (Err(_), _) => (StatusCode::SERVICE_UNAVAILABLE, "down"),
        (Ok(()), false) => (StatusCode::OK, "degraded"),
        (Ok(()), true) => (StatusCode::OK, "ok"),
    };
    if let Err(err) = &database {
        tracing::error!(error = %err, "health: database unreachable");
    }
    let body = json!({
        "status": overall,
        "database": if database.is_ok() { "ok" } else { "unreachable" },
        "queues": queues,
    });
    json_response(status, &body)
}

pub async fn serve(health: &Health, req: Request) -> Result<Response<Body>, Infallible> {
    Ok(handle(health, req).await)
}
