//! `GET /api/admin/lists/status`: every mapped GHL tag → Aloware list, with the members
//! we know of (contacts whose last seen tags include it), its last successful sync and
//! its errors of the last 24 hours.
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};

use super::admin::{authorize, require_method, respond, Refusal};
use crate::adapters::sync_store;
use crate::lambda::{ConfigError, Settings};

pub struct ListsStatus {
    pub pool: deadpool_postgres::Pool,
    pub admin_secret: String,
    pub list_map: std::collections::BTreeMap<String, String>,
}

impl ListsStatus {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(ListsStatus {
            pool: s.pool()?,
            admin_secret: s.require("DF_ADMIN_SECRET")?.to_string(),
            list_map: crate::sync::parse_list_map(s.get_or("ALOWARE_LIST_MAP", "{}"))?,
        })
    }
}

pub async fn handle(ctx: &ListsStatus, req: Request) -> Response<Body> {
    let result = async {
        require_method(&req, "GET")?;
        authorize(&req, &ctx.admin_secret)?;
        status(ctx).await.map_err(|e| {
            tracing::error!(error = %e, "lists status: store unavailable");
            Refusal::store_unavailable()
        })
    };
    respond(StatusCode::OK, result.await)
}

async fn status(ctx: &ListsStatus) -> Result<Value, crate::adapters::db::DbError> {
    let map = sync_store::call_list_map(&ctx.pool, &ctx.list_map).await?;
    let client = ctx.pool.get().await?;
    let mut lists = Vec::new();
    let mut total_members = 0i64;
    let mut recent_errors = 0i64;
    for (tag, list_id) in &map {
        let members: i64 = client
            .query_one(
                "SELECT count(*) FROM contact_tag_snapshots WHERE $1 = ANY(tags)",
                &[tag],
            )
            .await?
            .get(0);
        // List work is logged per event: tag events of members and manual list jobs.
        let row = client
            .query_one(
                "SELECT max(l.finished_at) FILTER (WHERE l.status = 'success'),
                        count(*) FILTER (WHERE l.status = 'error' AND l.started_at > now() - interval '24 hours')
                 FROM sync_log l JOIN webhook_events e ON e.id::text = l.correlation_id
                 WHERE (e.entity_type = 'list' AND e.entity_id = $1)
                    OR (e.entity_type = 'tag' AND (l.decisions->'lists_added' ? $1
                                                   OR l.decisions->'lists_removed' ? $1))",
                &[tag],
            )
            .await?;
        let errors = client
            .query(
                "SELECT l.started_at, l.error_message FROM sync_log l
                   JOIN webhook_events e ON e.id::text = l.correlation_id
                 WHERE e.entity_type = 'list' AND e.entity_id = $1 AND l.status = 'error'
                   AND l.started_at > now() - interval '24 hours'
                 ORDER BY l.started_at DESC LIMIT 10",
                &[tag],
            )
            .await?;
        let error_count: i64 = row.get(1);
        total_members += members;
        recent_errors += error_count;
        lists.push(json!({
            "tag": tag, "alowareListId": list_id, "memberCount": members,
            "lastSuccessfulSyncAt": row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(0),
            "errorsLast24Hours": error_count,
            "recentErrors": errors.iter().map(|r| json!({"at": r.get::<_, chrono::DateTime<chrono::Utc>>(0),
                "error": r.get::<_, Option<String>>(1)})).collect::<Vec<_>>(),
        }));
    }
    Ok(
        json!({"lists": lists, "summary": {"totalLists": map.len(), "totalMembers": total_members,
        "recentErrors": recent_errors}}),
    )
}
